"""The HTTP API and its page. Routes call the runtime's stages, as ``extract`` does.

    POST /extract   multipart ``photo`` (and optional ``mask``), or the photo as the body
                    (``Content-Type: image/...``); query ``format`` (png, jpg, webp),
                    ``output_size`` (auto, model, HxW or a height), ``background`` (white,
                    transparent, #RRGGBB), ``response`` (image, or json: the garment and the
                    mask as data URLs, the mask's source, the size, timings)
    GET  /          a page: drop photos, see photo | mask | garment, download
    GET  /health    {"status": "ok"}
    GET  /info      models, provider, contracts, batching settings

Bad input is a 4xx with the reason (400 unreadable, 413 too large, 422 no garment); a
request that takes longer than the timeout is a 504; a full queue a 503. The server
never dies on a request.
"""

import asyncio
import base64
import dataclasses
import logging
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from ..errors import ClothesExtractorError, InputError, NoGarmentError, NoMaskError, files_named
from ..runtime.fitting import parse_background, parse_output_size
from ..runtime.images import encode_image
from ..runtime.jobs import ExtractJob, MaskSource
from ..runtime.options import ExtractOptions, generator_outputs, make_plan
from ..runtime.session import ModelSession
from ..runtime.stages import NeedsMask, Prepared, SegmentedMask, apply_background, finish, prepare, segment
from .batcher import Batcher, QueueFull

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
MEDIA = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}


@dataclass(frozen=True)
class ServeSettings:
    max_batch: int = 8  # 1: one request per model run (no batching)
    max_wait_ms: float = 10.0  # how long a batch waits for more requests
    max_upload_mb: float = 20.0
    timeout_s: float = 60.0
    max_queue: int = 256


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
        common = {"max_batch": settings.max_batch, "max_wait_ms": settings.max_wait_ms, "max_queue": settings.max_queue}
        self.generate = Batcher(self._run_generator, name="generator-batcher", **common)
        self.segments = Batcher(self._run_segmenter, name="segmenter-batcher", **common) if segmenter else None

    def close(self) -> None:
        self.generate.close()
        if self.segments is not None:
            self.segments.close()
        if self._whole is not None:
            self._whole.close()

    def _serves(self, background: Any) -> bool:
        """Whether the given generator session gives what a request on ``background`` reads
        (or its model has no silhouette to give: ``make_plan`` says so)."""
        given = self.generator
        needed = generator_outputs(background) or [spec.name for spec in given.contract.outputs]
        return set(needed) <= set(given.output_names) or not given.contract.alpha

    def generator_for(self, background: Any) -> ModelSession:
        """The generator session for requests on ``background``."""
        given = self.generator
        if self._serves(background):
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
        background = options["extract"]["background"]
        # (opening the whole model for another background: off the event loop)
        generator = (
            self.generator if self._serves(background) else await asyncio.to_thread(self.generator_for, background)
        )
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
            outputs = await asyncio.wrap_future(self.generate.submit((item, generator)))
            timings["generate_ms"] = (time.perf_counter() - t0) * 1000
            fmt = options["format"]
            encoded = await asyncio.to_thread(_encode, outputs, plan.background, fmt, plan.quality)
            mask_png = (folder / "mask-used.png").read_bytes()
        timings["total_ms"] = (time.perf_counter() - started) * 1000
        size = list(outputs["garment"].shape[:2])
        return {
            "image": encoded,
            "mask_png": mask_png,
            "mask": item.mask_source.split(":")[0],
            "size": size,
            "timings": timings,
        }


def _encode(outputs: dict[str, np.ndarray], background, fmt: str, quality: int) -> bytes:
    rgb, alpha = apply_background(outputs["garment"], outputs.get("alpha"), background)
    return encode_image(rgb, fmt, quality, alpha=alpha)


def request_options(fmt: str, output_size: str, background: str, response: str = "image") -> dict[str, Any]:
    """The query parameters as extract options; ``InputError`` (a 400) for a bad value."""
    fmt = {"jpeg": "jpg"}.get(fmt.lower(), fmt.lower())
    if fmt not in MEDIA:
        raise InputError(f"format must be png, jpg or webp, got {fmt!r}")
    if response not in ("image", "json"):
        raise InputError(f"response must be image or json, got {response!r}")
    try:
        parsed_background = parse_background(background)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if parsed_background == "transparent" and fmt == "jpg":
        raise InputError("JPEG has no transparency: use format=png or webp with background=transparent")
    try:
        size = parse_output_size(output_size)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return {"format": fmt, "extract": {"output_size": size, "background": parsed_background, "workers": 1}}


def create_app(generator: ModelSession, segmenter: "ModelSession | None", settings: "ServeSettings | None" = None):
    """The FastAPI application serving ``generator`` (and ``segmenter`` for photos without a mask)."""
    settings = settings or ServeSettings()
    extractor = Extractor(generator, segmenter, settings)
    app = FastAPI(title="clothes-extractor", version=_version())
    app.state.extractor = extractor
    app.router.add_event_handler("shutdown", extractor.close)

    @app.post("/extract")
    async def extract_route(request: Request):
        return await handle_extract(request, extractor, settings)

    @app.get("/")
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
        }

    return app


def _public(description: dict[str, Any]) -> dict[str, Any]:
    """A model's description for clients: its file's name, not where the server keeps it."""
    return {**description, "path": Path(description["path"]).name}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _read_upload(form, name: str, limit: int, megabytes: float) -> "bytes | None":
    upload = form.get(name)
    if upload is None:
        return None
    if isinstance(upload, str):
        raise InputError(f"'{name}' must be a file in the multipart form, not a text field")
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise UploadTooLarge(f"the {name} is larger than {megabytes:g} MB")
    if not data:
        raise InputError(f"the {name} is empty (0 bytes)")
    return data


async def _read_photo_and_mask(request: Request, limit: int, megabytes: float) -> tuple[bytes, "bytes | None"]:
    """The photo and its mask from a multipart form, or the photo alone as the whole body
    (``Content-Type: image/...``, as ``curl --data-binary @photo.jpg`` sends it)."""
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith(("image/", "application/octet-stream")):
        photo, size = bytearray(), 0
        async for chunk in request.stream():  # (all of it, up to a cap, so that the client reads the answer)
            size += len(chunk)
            if size <= limit:
                photo += chunk
            elif size > 64 * limit:
                break
        if size > limit:
            raise UploadTooLarge(f"the photo is larger than {megabytes:g} MB")
        if not photo:
            raise InputError("the photo is empty (0 bytes)")
        return bytes(photo), None
    photo = mask = None
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_part_size=limit + 1)
        photo = await _read_upload(form, "photo", limit, megabytes)
        mask = await _read_upload(form, "mask", limit, megabytes)
    if photo is None:
        raise InputError(
            "no photo in the request: send it as the multipart field 'photo' (and its mask as 'mask'), "
            "or as the whole body with Content-Type image/jpeg (or image/png, ...)"
        )
    return photo, mask


async def _drain(request: Request, cap: int) -> None:
    """Read and drop up to ``cap`` bytes of a body that will not be used."""
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > cap:
            break


async def handle_extract(request: Request, extractor: Extractor, settings: ServeSettings):
    """One POST /extract: every failure becomes a status code and a reason."""
    limit = int(settings.max_upload_mb * 2**20)
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > 2 * limit + 2**20:
        await _drain(request, 64 * limit)  # let the client finish sending, so it reads the answer
        return _error(413, f"the request is larger than the {settings.max_upload_mb:g} MB limit")
    query = request.query_params
    try:
        options = request_options(
            query.get("format", "png"),
            query.get("output_size", "auto"),
            query.get("background", "white"),
            query.get("response", "image"),
        )
        photo, mask = await _read_photo_and_mask(request, limit, settings.max_upload_mb)
        result = await asyncio.wait_for(extractor.extract(photo, mask, options), settings.timeout_s)
    except UploadTooLarge as exc:
        return _error(413, str(exc))
    except QueueFull as exc:
        return _error(503, f"the server is busy: {exc}; retry shortly")
    except asyncio.TimeoutError:
        return _error(504, f"the photo took longer than {settings.timeout_s:g} s")
    except NoGarmentError:
        return _error(422, str(NoGarmentError("send it as the multipart field 'mask'")))
    except ClothesExtractorError as exc:
        return _error(400, str(exc))
    except Exception as exc:  # noqa: BLE001 - one bad request must not take the server down
        if "maximum" in str(exc).lower() and "size" in str(exc).lower():  # the multipart parser's own limit
            return _error(413, f"the photo is larger than {settings.max_upload_mb:g} MB")
        log.exception("request failed")
        return _error(500, f"unexpected {type(exc).__name__}: {exc}")
    media = MEDIA[options["format"]]
    if query.get("response") == "json":
        return {
            "garment": f"data:{media};base64," + base64.b64encode(result["image"]).decode(),
            "mask_image": "data:image/png;base64," + base64.b64encode(result["mask_png"]).decode(),
            "mask": result["mask"],
            "size": result["size"],
            "timings_ms": result["timings"],
        }
    return Response(result["image"], media_type=media, headers={"X-Mask-Source": result["mask"]})


class UploadTooLarge(Exception):
    pass


def _version() -> str:
    from .. import __version__

    return __version__
