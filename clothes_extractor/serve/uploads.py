"""Reading a request (its options, its images), and every failure as a status code and a reason (JSON).

Both routes that take images (``/extract``, ``/tryon``) read them here, with the same
upload limit, and answer their failures the same way: 400 unreadable, 413 too large, 422
nothing to work on (no garment, no one to dress), 503 a full queue, 504 over the timeout,
500 anything else (logged; the server goes on).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Iterable, Mapping
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..errors import ClothesExtractorError, InputError, NoGarmentError, NothingToDressError
from ..runtime.fill import parse_fill
from ..runtime.options import parse_background, parse_output_size
from .batcher import QueueFull

log = logging.getLogger(__name__)

MEDIA = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}


def request_options(
    fmt: str, output_size: str, background: str, response: str = "image", fill: str | None = None
) -> dict[str, Any]:
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
        share = parse_fill(fill) if fill is not None else None
    except ValueError as exc:
        raise InputError(str(exc)) from None
    extract = {"output_size": size, "background": parsed_background, "fill": share, "workers": 1}
    return {"format": fmt, "extract": extract}


def read_query(request: Request, known: Iterable[str]) -> Mapping[str, str]:
    """The request's query parameters, each one of ``known`` (what the route reads) and given
    once; ``InputError`` (a 400) for another, which would otherwise go unread (a misspelt
    ``backround=transparent`` answered on white), or one given twice (the answer would follow
    one of them, and the client could not tell which)."""
    query, known = request.query_params, tuple(known)
    unknown = [name for name in query if name not in known]
    if unknown:
        raise InputError(
            f"unknown query parameter{'s' * (len(unknown) > 1)} {', '.join(map(repr, unknown))}: "
            f"this route takes {', '.join(known)}"
        )
    _once(query, "the query parameter", "give it once")
    return query


def _once(items: Any, what: str, fix: str) -> None:
    """``InputError`` for a name ``items`` (a query or a form) holds more than once."""
    for name in items:
        count = len(items.getlist(name))
        if count > 1:
            raise InputError(f"{what} {name!r} is given {count} times: {fix}")


class UploadTooLarge(Exception):
    pass


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def failure(exc: Exception, timeout_s: float, subject: str) -> JSONResponse:
    """The answer to a request that raised ``exc``; ``subject`` names what took too long."""
    if isinstance(exc, UploadTooLarge):
        return error(413, str(exc))
    if isinstance(exc, QueueFull):
        return error(503, f"the server is busy: {exc}; retry shortly")
    if isinstance(exc, asyncio.TimeoutError):
        return error(504, f"{subject} took longer than {timeout_s:g} s")
    if isinstance(exc, (NoGarmentError, NothingToDressError)):
        return error(422, str(exc))
    if isinstance(exc, ClothesExtractorError):
        return error(400, str(exc))
    log.error("request failed", exc_info=exc)
    return error(500, f"unexpected {type(exc).__name__}: {exc}")


async def refuse_oversized(request: Request, megabytes: float, files: int) -> JSONResponse | None:
    """A 413 for a request whose declared length is far over the limit of its ``files``
    uploads (read and dropped, so that the client gets to read the answer); None for the others."""
    limit = int(megabytes * 2**20)
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > files * limit + 2**20:
        await drain(request, 64 * limit)
        return error(413, f"the request is larger than the {megabytes:g} MB limit")
    return None


async def _form(request: Request, limit: int, megabytes: float, names: tuple[str, ...], options: Iterable[str]):
    """The request's multipart form, of the fields ``names`` (what the route reads), each at
    most once: a part over ``limit`` bytes is ``UploadTooLarge`` (a 413), a body that is no
    readable form, another field or one sent twice an ``InputError`` (a 400) that says so
    (and, for a field named as one of the route's query ``options``, where it goes)."""
    try:
        form = await request.form(max_part_size=limit + 1)
    except HTTPException as exc:  # Starlette's multipart parser answers every failure so
        if "maximum size" in str(exc.detail).lower():
            raise UploadTooLarge(f"a part of the form is larger than {megabytes:g} MB") from None
        raise InputError(
            f"the multipart form cannot be read ({exc.detail}): send the files as a browser's FormData or curl -F does"
        ) from None
    unknown = [name for name in form if name not in names]
    if unknown:  # (a misspelt 'maks' would leave the mask unread, and the segmenter would draw one)
        raise InputError(
            f"the form has {'fields' if len(unknown) > 1 else 'a field'} {', '.join(map(repr, unknown))} this route "
            f"does not read: it reads {', '.join(map(repr, names))}{_misplaced(request, form, unknown, options)}"
        )
    _once(form, "the field", "a request takes one of each (send a request for each photo)")
    return form


def _misplaced(request: Request, form: Any, unknown: list[str], options: Iterable[str]) -> str:
    """Where the fields of ``unknown`` that are query ``options`` go (the URL), with their values."""
    known = set(options)
    moved = [name for name in unknown if name in known]
    if not moved:
        return ""
    sent = {name: form.get(name) for name in moved}
    query = "&".join(f"{name}={quote(value)}" if isinstance(value, str) else name for name, value in sent.items())
    several = len(moved) > 1
    return (
        f"; {', '.join(map(repr, moved))} {'are query parameters' if several else 'is a query parameter'}: "
        f"put {'them' if several else 'it'} in the URL, POST {request.url.path}?{query}"
    )


async def read_upload(form, name: str, limit: int, megabytes: float) -> bytes | None:
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


async def read_form(
    request: Request, names: Iterable[str], megabytes: float, wanted: str, options: Iterable[str] = ()
) -> dict[str, bytes | None]:
    """The files ``names`` of a multipart form (None for those not sent); ``wanted`` says
    what to send where the request is no multipart form at all; ``options``: the route's
    query parameters (a form field of their name is refused with where it goes)."""
    limit = int(megabytes * 2**20)
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise InputError(f"send a multipart form (Content-Type multipart/form-data) with {wanted}")
    names = tuple(names)
    form = await _form(request, limit, megabytes, names, options)
    return {name: await read_upload(form, name, limit, megabytes) for name in names}


async def read_photo_and_mask(
    request: Request, megabytes: float, options: Iterable[str] = ()
) -> tuple[bytes, bytes | None]:
    """The photo and its mask from a multipart form, or the photo alone as the whole body
    (``Content-Type: image/...``, as ``curl --data-binary @photo.jpg`` sends it); ``options``
    as ``read_form``'s."""
    limit = int(megabytes * 2**20)
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
        form = await _form(request, limit, megabytes, ("photo", "mask"), options)
        photo = await read_upload(form, "photo", limit, megabytes)
        mask = await read_upload(form, "mask", limit, megabytes)
    if photo is None:
        raise InputError(
            "no photo in the request: send it as the multipart field 'photo' (and its mask as 'mask'), "
            "or as the whole body with Content-Type image/jpeg (or image/png, ...)"
        )
    return photo, mask


async def drain(request: Request, cap: int) -> None:
    """Read and drop up to ``cap`` bytes of a body that will not be used."""
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > cap:
            break
