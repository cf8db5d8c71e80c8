"""The HTTP API and its page. Routes call the runtime's stages, as ``extract`` does.

    POST /extract   multipart ``photo`` (and optional ``mask``), or the photo as the body
                    (``Content-Type: image/...``); query ``format`` (png, jpg, webp),
                    ``output_size`` (auto, model, HxW or a height), ``background`` (white,
                    transparent, #RRGGBB), ``fill`` (the garment's share of the image, 85%),
                    ``response`` (image, or json: the garment and the
                    mask as data URLs, the mask's source, the size, timings)
    POST /tryon     multipart ``person`` and ``garment`` (a catalog image) or ``garment_photo``
                    (``serve/tryon.py``): the person dressed in it, at the photo's size
    GET  /          a page: drop photos, see photo | mask | garment, download, try it on
    GET  /health    {"status": "ok"}
    GET  /info      models, provider, contracts, batching settings
    GET  /openapi.json  what the routes take and answer (``serve/openapi.py``)
    GET  /docs      Swagger UI on it, served from here (no CDN)
    GET  /metrics   requests, latencies, batches and queues for Prometheus (``serve/metrics.py``)

With API keys (``serve/access.py``), POST /extract, POST /tryon and GET /metrics need one.

Bad input is a 4xx with the reason (400 unreadable, 413 too large, 422 no garment, or no
one to dress; ``serve/uploads.py``); a request that takes longer than the timeout is a 504;
a full queue a 503; /tryon on a server without a try-on model a 501. The server never dies
on a request.
"""

import asyncio
import base64
import dataclasses
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import InputError, NoGarmentError, NoMaskError, files_named
from ..runtime.dressing import Dresser
from ..runtime.jobs import ExtractJob
from ..runtime.options import ExtractOptions, generator_outputs, make_plan
from ..runtime.session import ModelSession
from ..runtime.stages import NeedsMask, Prepared, SegmentedMask, finish, prepare, segment
from ..runtime.walk import MaskSource
from . import metrics, openapi
from .access import API_ROUTES, KeyRequired
from .settings import ServeSettings
from .tryon import TRYON_API, TryOn, handle_tryon
from .uploads import MEDIA, error, failure, read_photo_and_mask, read_query, refuse_oversized, request_options

STATIC = Path(__file__).resolve().parent / "static"
EXTRACT_API = openapi.operation(
    [
        openapi.FORMAT,
        openapi.query(
            "output_size",
            "auto (the photo crop's own, up to 1024x768), model, HxW (of another aspect: the garment centred on a "
            "page of that size) or a height",
            "auto",
        ),
        openapi.query("background", "white, transparent (png, webp) or a colour: #RRGGBB, #RGB, a CSS name", "white"),
        openapi.query(
            "fill",
            "the garment's box scaled to fill this share of the image (85% or 0.85), centred; without it, as the "
            "model frames it",
            None,
        ),
        openapi.response_query("the garment and the mask used as data URLs, the mask's source, the size, timings"),
    ],
    {
        "multipart/form-data": openapi.multipart(
            {"photo": "a photo of a person wearing the garment", "mask": "the garment's mask (white on it); optional"},
            required=["photo"],
        ),
        "image/*": {"type": "string", "format": "binary", "description": "the photo alone, as the whole body"},
    },
    {
        "garment": "data URL",
        "mask_image": "data URL (PNG)",
        "mask": "where the mask came from",
        "size": "[height, width]",
        "resized_from": "[height, width] the generator drew the garment at, where it was resized to size; else null",
        "timings_ms": "per stage",
    },
)


class Extractor:
    """The models and their batchers; ``extract`` runs one request through the stages.

    A ``generator`` session opened cut to its garment (``serve`` opens it so: white is the
    default and the silhouette costs a third of the model) serves white requests; the first
    request on another background opens the whole model beside it, for those requests.
    """

    def __init__(self, generator: ModelSession, segmenter: ModelSession | None, settings: ServeSettings):
        self.generator, self.segmenter, self.settings = generator, segmenter, settings
        self._whole: ModelSession | None = None  # the generator with its silhouette, once needed
        self._whole_lock = threading.Lock()
        self.generate = settings.batcher(self._run_generator, "generator", self.generator_sessions)
        self.segments = settings.batcher(self._run_segmenter, "segmenter", lambda: [segmenter]) if segmenter else None

    def close(self) -> None:
        self.generate.close()
        if self.segments is not None:
            self.segments.close()
        if self._whole is not None:
            self._whole.close()

    def _serves(self, asked: dict[str, Any]) -> bool:
        """Whether the given generator session gives what a request asking for ``asked`` (its
        extract options: background, fill, size) reads (or its model has no silhouette to give:
        ``make_plan`` says so)."""
        given = self.generator
        needed = generator_outputs(asked["background"], asked["fill"], asked["output_size"])
        if callable(needed):  # (a size: a page of another aspect than the model's reads the silhouette)
            needed = needed(given.contract)
        needed = needed or [spec.name for spec in given.contract.outputs]
        return set(needed) <= set(given.output_names) or not given.contract.alpha

    def generator_for(self, asked: dict[str, Any]) -> ModelSession:
        """The generator session for requests asking for ``asked`` (``_serves``)."""
        given = self.generator
        if self._serves(asked):
            return given
        with self._whole_lock:
            if self._whole is None:
                self._whole = ModelSession(given.path, given.provider, settings=given.settings)
            return self._whole

    def generator_sessions(self) -> list[ModelSession]:
        return [self.generator] + ([self._whole] if self._whole is not None else [])

    def _run_generator(self, items: Sequence[tuple[Prepared, ModelSession]]) -> list[dict[str, np.ndarray]]:
        results: list[dict[str, np.ndarray] | None] = [None] * len(items)
        groups: dict[tuple, list[int]] = {}
        for index, (item, session) in enumerate(items):
            groups.setdefault((item.batch_key, id(session)), []).append(index)
        for indices in groups.values():
            prepared = [items[i][0] for i in indices]
            feeds = {name: np.stack([item.inputs[name] for item in prepared]) for name in prepared[0].inputs}
            outputs = items[indices[0]][1].run(**feeds)
            for row, index in enumerate(indices):
                results[index] = {name: array[row] for name, array in outputs.items()}
        return results  # type: ignore[return-value]

    def _run_segmenter(self, items: Sequence[NeedsMask]) -> list[SegmentedMask | Exception]:
        return segment(list(items), self.segmenter)

    async def extract(self, photo: bytes, mask: bytes | None, options: dict[str, Any]) -> dict[str, Any]:
        """One request: the garment (encoded), the mask used (PNG), where it came from, timings."""
        timings: dict[str, float] = {}
        started = time.perf_counter()
        asked = options["extract"]
        # (opening the whole model for another background: off the event loop)
        generator = self.generator if self._serves(asked) else await asyncio.to_thread(self.generator_for, asked)
        plan = make_plan(generator, self.segmenter, ExtractOptions(**options["extract"]), spelling="http")
        with tempfile.TemporaryDirectory(prefix="ce-serve-") as tmp:
            folder = Path(tmp)
            (folder / "photo").write_bytes(photo)
            source = MaskSource("auto")
            if mask is not None:
                (folder / "mask").write_bytes(mask)
                source = MaskSource("file", folder / "mask")
            job = ExtractJob(folder / "photo", folder / "garment.png", source, mask_output=folder / "mask-used.png")
            with files_named({folder / "photo": "", folder / "mask": ""}):  # no server paths in answers
                try:
                    item = await asyncio.to_thread(prepare, job, plan)
                except NoMaskError:  # (a broken photo is reported as such first)
                    raise InputError(
                        "no mask given and the server runs without a segmenter (serve --no-segmenter): "
                        "send the garment's mask as the multipart field 'mask'"
                    ) from None
                timings["prepare_ms"] = (time.perf_counter() - started) * 1000
                if isinstance(item, NeedsMask):
                    found = await asyncio.wrap_future(self.segments.submit(item))  # type: ignore[union-attr]
                    if not isinstance(found, SegmentedMask):
                        raise found
                    item = await asyncio.to_thread(finish, item, found, plan)
                    timings["segment_ms"] = (time.perf_counter() - started) * 1000 - timings["prepare_ms"]
            t0 = time.perf_counter()
            if item.ready is not None:  # a garment shown alone, cut out already: nothing to generate
                outputs = item.ready
            else:
                outputs = await asyncio.wrap_future(self.generate.submit((item, generator)))
            timings["generate_ms"] = (time.perf_counter() - t0) * 1000
            fmt = options["format"]
            # as extract writes it, signature and all (a download dropped back on POST /extract is refused as a garment)
            encoded, written = await asyncio.to_thread(plan.encoded, outputs, fmt, source)
            size, drawn = list(written), list(outputs["garment"].shape[:2])
            mask_png = (folder / "mask-used.png").read_bytes()
        timings["total_ms"] = (time.perf_counter() - started) * 1000
        return {
            "image": encoded,
            "mask_png": mask_png,
            "mask": item.mask_source.split(":")[0],
            "size": size,
            "resized_from": drawn if drawn != size else None,
            "timings": timings,
        }


def create_app(
    generator: ModelSession,
    segmenter: "ModelSession | None",
    settings: "ServeSettings | None" = None,
    *,
    dresser: "Dresser | None" = None,
    tryon_off: str = "this server runs without try-on: start it with a try-on model (serve --tryon)",
    api_keys: Sequence[str] = (),
):
    """The FastAPI application serving ``generator`` (and ``segmenter`` for photos without a
    mask); with ``dresser``, POST /tryon too (without, it answers 501 with ``tryon_off``);
    with ``api_keys``, the API's routes only for requests that carry one (``serve/access.py``)."""
    settings = settings or ServeSettings()
    extractor = Extractor(generator, segmenter, settings)
    tryon = TryOn(dresser, settings) if dresser is not None else None
    app = FastAPI(title="clothes-extractor", version=_version(), docs_url=None, redoc_url=None)
    openapi.add_docs(app)
    if api_keys:
        app.add_middleware(KeyRequired, keys=tuple(api_keys))  # (inside CORS: a 401 carries its headers)
        openapi.require_keys(app, API_ROUTES)
    if settings.allow_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.allow_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
            expose_headers=["X-Mask-Source"],
        )
    app.state.extractor = extractor
    batchers = (extractor.generate, extractor.segments, tryon.batcher if tryon else None)
    metrics.add_metrics(app, lambda: [batcher for batcher in batchers if batcher is not None])
    app.router.add_event_handler("shutdown", extractor.close)
    if tryon is not None:
        app.router.add_event_handler("shutdown", tryon.close)

    @app.post("/extract", operation_id="extract", summary="The garment of a photo, as a catalog image", **EXTRACT_API)
    async def extract_route(request: Request):
        return await handle_extract(request, extractor, settings)

    @app.post("/tryon", operation_id="tryon", summary="A person dressed in a garment (stage two)", **TRYON_API)
    async def tryon_route(request: Request):
        return await handle_tryon(request, tryon, tryon_off, extractor, settings)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        # Starlette's own answers (404 no such route, 405 wrong method) in this API's shape
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/info")
    async def info():
        return {
            "generator": _public(generator.describe()),
            "generator_sessions": [session.output_names for session in extractor.generator_sessions()],
            "segmenter": _public(segmenter.describe()) if segmenter else None,
            "settings": dataclasses.asdict(settings),
            "batches": {"generator": extractor.generate.batches, "requests": extractor.generate.items},
            "tryon": _public(dresser.tryon.describe()) if dresser is not None else None,
            "tryon_off": None if dresser is not None else tryon_off,
            "tryon_batches": {"tryon": tryon.batcher.batches, "requests": tryon.batcher.items} if tryon else None,
            "api_key_required": bool(api_keys),  # (never the keys)
        }

    return app


def _public(description: dict[str, Any]) -> dict[str, Any]:
    """A model's description for clients: its file's name, not where the server keeps it."""
    return {**description, "path": Path(description["path"]).name}


async def handle_extract(request: Request, extractor: Extractor, settings: ServeSettings):
    """One POST /extract: every failure becomes a status code and a reason."""
    refused = await refuse_oversized(request, settings.max_upload_mb, files=2)  # the photo, its mask
    if refused is not None:
        return refused
    try:
        query = read_query(request, known := openapi.query_names(EXTRACT_API))
        options = request_options(
            query.get("format", "png"),
            query.get("output_size", "auto"),
            query.get("background", "white"),
            query.get("response", "image"),
            query.get("fill"),
        )
        photo, mask = await read_photo_and_mask(request, settings.max_upload_mb, known)
        result = await asyncio.wait_for(extractor.extract(photo, mask, options), settings.timeout_s)
    except NoGarmentError:
        return error(422, str(NoGarmentError("send it as the multipart field 'mask'")))
    except Exception as exc:  # noqa: BLE001 - one bad request must not take the server down
        return failure(exc, settings.timeout_s, "the photo")
    media = MEDIA[options["format"]]
    if query.get("response") == "json":
        return {
            "garment": f"data:{media};base64," + base64.b64encode(result["image"]).decode(),
            "mask_image": "data:image/png;base64," + base64.b64encode(result["mask_png"]).decode(),
            "mask": result["mask"],
            "size": result["size"],
            "resized_from": result["resized_from"],
            "timings_ms": result["timings"],
        }
    return Response(result["image"], media_type=media, headers={"X-Mask-Source": result["mask"]})


def _version() -> str:
    from .. import __version__

    return __version__
