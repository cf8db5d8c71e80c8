"""POST /tryon: the person of one photo dressed in a garment (stage two), over HTTP.

    POST /tryon   multipart ``person`` (a photo of the person to dress) and either
                  ``garment`` (a catalog image: the garment on white, transparent or a plain backdrop) or
                  ``garment_photo`` (a photo of someone wearing it: stage one, as POST
                  /extract runs it, makes its catalog image first; its mask, if the
                  segmenter is not to find it, as ``garment_mask``); query ``format`` (png,
                  jpg, webp), ``response`` (image, or json: the dressed photo, and the
                  catalog garment made from ``garment_photo``, as data URLs; the size;
                  timings).

The answer is the person photo at its own size, its pixels changed only where the garment
goes (``runtime/dressing``: the same pixels as ``clothes-extractor tryon`` and
``api.dress``). Concurrent requests are dressed in one parser run and one model run. A
person with no top or arms to dress, or a garment image with no garment, is a 422: nothing
is invented.
"""

from __future__ import annotations

import asyncio
import base64
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import Request
from fastapi.responses import Response
from PIL import Image

from ..errors import ClothesExtractorError, InputError, NoGarmentError, files_named
from ..runtime.dressing import Dresser, Garment, Person, paste
from ..runtime.images import encode_image, load_garment, load_person
from . import openapi
from .settings import ServeSettings
from .uploads import MEDIA, error, failure, read_form, read_query, refuse_oversized, request_options

FIELDS = {
    "person": "a photo of the person to dress",
    "garment": "a catalog image: the garment on white, transparent or a plain backdrop of one colour",
    "garment_photo": "instead of garment: a photo of someone wearing it (stage one makes its catalog image)",
    "garment_mask": "the mask of garment_photo (white on the garment); optional",
}
WANTED = "the fields 'person' (the photo to dress) and 'garment' (a catalog image) or 'garment_photo'"
QUALITY = 95  # JPEG and WebP answers, as `tryon` writes them
TRYON_API = openapi.operation(
    [openapi.FORMAT, openapi.response_query("the dressed photo, and the garment made of garment_photo, as data URLs")],
    {"multipart/form-data": openapi.multipart(FIELDS, required=["person"])},
    {"image": "data URL", "garment": "data URL (PNG), with garment_photo", "size": "[height, width]", "timings_ms": ""},
    {**openapi.ERRORS, "501": "this server runs without try-on (the reason)"},
)


class TryOn:
    """A ``Dresser`` and its batcher; ``dress`` runs one request's pair through it."""

    def __init__(self, dresser: Dresser, settings: ServeSettings):
        self.dresser = dresser
        # the batch thread runs the models; each request fits its photo and garment before
        # (``Dresser.person``, ``Dresser.garment``: resizes of the whole photo) and pastes its
        # own result back into its photo after, in a thread of its own, as the folder job does
        self.batcher = settings.batcher(dresser.draw_pairs, "tryon", lambda: [dresser.tryon, dresser.parser])

    def close(self) -> None:
        self.batcher.close()

    async def dress(self, person: bytes, garment: bytes, fmt: str) -> dict[str, Any]:
        """One pair: the dressed person encoded as ``fmt``, its size, timings."""
        started = time.perf_counter()
        photo, catalog = await asyncio.to_thread(_decode, self.dresser, person, garment)
        decoded = time.perf_counter()
        fitted, drawn = await asyncio.wrap_future(self.batcher.submit((photo, catalog)))
        dressed: Image.Image = await asyncio.to_thread(paste, fitted, drawn)
        done = time.perf_counter()
        image = await asyncio.to_thread(encode_image, np.asarray(dressed), fmt, QUALITY)
        finished = time.perf_counter()
        timings = {
            "decode_ms": (decoded - started) * 1000,
            "dress_ms": (done - decoded) * 1000,
            "encode_ms": (finished - done) * 1000,
            "total_ms": (finished - started) * 1000,
        }
        return {"image": image, "size": [dressed.height, dressed.width], "timings": timings}


def _decode(dresser: Dresser, person: bytes, garment: bytes) -> tuple[Person, Garment]:
    """The uploads decoded as the folder job decodes and fits files (upright, a cut-out on
    white; the photo's first look, the garment fitted)."""
    with tempfile.TemporaryDirectory(prefix="ce-serve-") as tmp:
        paths = {"person": Path(tmp) / "person", "garment": Path(tmp) / "garment"}
        paths["person"].write_bytes(person)
        paths["garment"].write_bytes(garment)
        with files_named({path: "" for path in paths.values()}):  # no server paths in answers
            photo, catalog = load_person(paths["person"]), load_garment(paths["garment"])
    return dresser.person(photo), dresser.garment(catalog)


async def _catalog_from_photo(extractor, photo: bytes, mask: bytes | None, options: dict[str, Any]) -> bytes:
    """Stage one on ``garment_photo``: its catalog garment on white (PNG), at the dresser's
    ``garment_size`` (a garment shown alone keeps its resolution for a server that dresses at
    the photo's). Errors name the field."""
    try:
        result = await extractor.extract(photo, mask, options)
    except NoGarmentError as exc:  # (its hint, a mask, is no field of this route)
        exc.args = (
            f"garment_photo: {exc.SUMMARY}; if there is one, send its mask as the field 'garment_mask', "
            "or the garment's catalog image as 'garment'",
        )
        raise
    except ClothesExtractorError as exc:
        exc.args = (f"garment_photo: {exc}",)
        raise
    return result["image"]


async def handle_tryon(request: Request, tryon: TryOn | None, off: str, extractor, settings) -> Any:
    """One POST /tryon: every failure becomes a status code and a reason."""
    refused = await refuse_oversized(request, settings.max_upload_mb, files=3)  # person, garment photo, its mask
    if refused is not None:
        return refused
    if tryon is None:
        return error(501, off)
    catalog = None
    try:
        query = read_query(request, known := openapi.query_names(TRYON_API))
        options = request_options(query.get("format", "png"), "auto", "white", query.get("response", "image"))
        form = await read_form(request, FIELDS, settings.max_upload_mb, WANTED, known)
        person, garment, photo, mask = (form[name] for name in FIELDS)
        _check_fields(person, garment, photo, mask)
        started = time.perf_counter()  # (the timeout is the work's, as for /extract: stage one and two together)
        if photo is not None:
            stage_one = request_options("png", tryon.dresser.garment_size, "white")
            made = _catalog_from_photo(extractor, photo, mask, stage_one)
            catalog = await asyncio.wait_for(made, settings.timeout_s)
        left = settings.timeout_s - (time.perf_counter() - started)
        result = await asyncio.wait_for(tryon.dress(person, garment or catalog, options["format"]), max(left, 0.001))
    except Exception as exc:  # noqa: BLE001 - one bad request must not take the server down
        return failure(exc, settings.timeout_s, "the pair")
    media = MEDIA[options["format"]]
    if query.get("response") == "json":
        answer = {
            "image": f"data:{media};base64," + base64.b64encode(result["image"]).decode(),
            "size": result["size"],
            "timings_ms": result["timings"],
        }
        if catalog is not None:
            answer["garment"] = "data:image/png;base64," + base64.b64encode(catalog).decode()
        return answer
    return Response(result["image"], media_type=media)


def _check_fields(person: bytes | None, garment: bytes | None, photo: bytes | None, mask: bytes | None) -> None:
    if person is None:
        raise InputError(f"no person photo in the request: send {WANTED}")
    if garment is None and photo is None:
        raise InputError(
            "no garment in the request: send a catalog image as the field 'garment', or a photo of someone "
            "wearing it as 'garment_photo'"
        )
    if garment is not None and photo is not None:
        raise InputError("send the garment once: 'garment' (a catalog image) or 'garment_photo', not both")
    if mask is not None and photo is None:
        raise InputError("'garment_mask' is the mask of a 'garment_photo': send that photo with it (or leave it out)")
