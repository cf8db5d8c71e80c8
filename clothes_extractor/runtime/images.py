"""Reading photos and masks of any format and mode, writing results atomically.

Every failure becomes an ``InputError`` that says what is wrong with the file. Pillow's
decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``) is kept, and enforced for every
image over it rather than only past twice the limit, where Pillow itself stops.
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import InputError, OutputError

# Suffixes a folder walk picks up. A file named explicitly is tried whatever its suffix.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
OUTPUT_FORMATS = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}

PARSE_UPPER_LABEL = 5  # upper clothes in the LIP-style parse maps of VITON and VITON-HD
PARSE_UPPER_RGB = (254, 85, 0)  # the same label as VITON-HD draws it in colour

_EXIF_ORIENTATION = 0x0112
_ROTATED_ORIENTATIONS = {5, 6, 7, 8}  # these swap width and height


def open_image(path: Path, what: str = "image") -> Image.Image:
    """Open (not decode) an image, with a clear error for every way that can fail."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InputError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if size == 0:
        raise InputError(f"{what} is an empty file (0 bytes): {path}")
    try:
        image = Image.open(path)
    except UnidentifiedImageError:
        raise InputError(
            f"{what} {path} is not an image in a format Pillow can read "
            "(JPEG, PNG, WebP, BMP, TIFF, GIF); the file may be corrupt"
        ) from None
    except Image.DecompressionBombError as exc:
        raise InputError(f"{what} {path} is too large to decode safely: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{what} {path} cannot be opened: {exc}") from None
    limit = Image.MAX_IMAGE_PIXELS
    if limit and image.width * image.height > limit:
        image.close()
        raise InputError(
            f"{what} {path} is {image.width}x{image.height} "
            f"({image.width * image.height / 1e6:.0f} Mpx), over the decompression-bomb limit "
            f"of {limit / 1e6:.0f} Mpx; downscale it before extracting"
        )
    return image


def _decode(image: Image.Image, path: Path, what: str) -> None:
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(f"{what} {path} cannot be decoded ({exc}); is the file truncated or corrupt?") from None


def displayed_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) after the EXIF orientation is applied."""
    try:
        orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block only loses the rotation
        orientation = 1
    w, h = image.size
    return (h, w) if orientation in _ROTATED_ORIENTATIONS else (w, h)


def _upright(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - a broken EXIF block: keep the stored orientation
        return image


def _to_8bit(image: Image.Image) -> Image.Image:
    """16-bit and float single-channel images -> mode L (Pillow's own conversion clips)."""
    array = np.asarray(image)
    if image.mode == "F":
        scale = 255.0 if array.size and float(np.nanmax(array)) <= 1.0 else 1.0
        array = np.nan_to_num(array * scale)
    elif array.size and int(array.max()) > 255:
        array = array / 257.0  # 16-bit range 0..65535 -> 0..255
    return Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8), "L")


def split_alpha(image: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """(RGB image, alpha channel or None), from an image of any mode."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    elif image.mode == "PA":
        image = image.convert("RGBA")
    alpha = None
    if image.mode in ("RGBA", "LA", "RGBa", "La"):
        alpha = image.getchannel("A")
        image = image.convert("RGB" if image.mode.startswith("RGB") else "L")
    if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        image = _to_8bit(image)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return image, alpha


def load_photo(
    path: Path, decode_scale: Callable[[tuple[int, int]], float] | None = None
) -> tuple[Image.Image, Image.Image | None]:
    """Decode a photo upright as RGB, with its alpha channel if it has a non-opaque one.

    ``decode_scale`` maps the photo's displayed (width, height) to how far it may be
    shrunk (<= 1). For JPEGs that shrink happens while decoding (draft mode, by a power
    of two), which is far faster than decoding full size and resizing.
    """
    image = open_image(path, "photo")
    with image:
        if decode_scale is not None and image.format == "JPEG":
            scale = decode_scale(displayed_size(image))
            if scale < 1.0:
                w, h = image.size
                image.draft(None, (max(1, int(w * scale)), max(1, int(h * scale))))
        _decode(image, path, "photo")
        image = _upright(image)
        rgb, alpha = split_alpha(image)
    if alpha is not None and alpha.getextrema()[0] == 255:
        alpha = None  # an opaque alpha channel says nothing about the garment
    return rgb, alpha


def load_mask(path: Path) -> Image.Image:
    """A garment mask file of any format and mode, as an upright ``L`` image (255 = garment).

    Grey levels are kept (soft masks). An image with a varying alpha channel is read as a
    cut-out: its alpha is the mask.
    """
    image = open_image(path, "mask")
    with image:
        _decode(image, path, "mask")
        image = _upright(image)
        if image.mode == "1":
            return image.convert("L")
        if image.mode == "L":
            return image.copy()
        rgb, alpha = split_alpha(image)
    if alpha is not None and alpha.getextrema()[0] != alpha.getextrema()[1]:
        return alpha
    return rgb.convert("L")


def load_parse_mask(path: Path) -> Image.Image:
    """The upper-clothes mask (0/255, mode L) from a VITON / VITON-HD human-parsing map.

    Palette and grey maps store labels (5 = upper clothes); RGB maps store VITON-HD's
    colour for that label, (254, 85, 0).
    """
    image = open_image(path, "parse map")
    with image:
        _decode(image, path, "parse map")
        if image.mode in ("P", "L"):
            labels = np.asarray(image)
            on = labels == PARSE_UPPER_LABEL
        elif image.mode in ("RGB", "RGBA"):
            rgb = np.asarray(image.convert("RGB"))
            on = np.all(rgb == np.array(PARSE_UPPER_RGB, np.uint8), axis=-1)
        else:
            raise InputError(
                f"parse map {path} has mode {image.mode}; expected a palette or grey label map "
                f"(label {PARSE_UPPER_LABEL} = upper clothes) or an RGB map drawing it as {PARSE_UPPER_RGB}"
            )
    return Image.fromarray(on.astype(np.uint8) * 255, "L")


def encode_image(array: np.ndarray, fmt: str, quality: int = 95) -> bytes:
    """Encode a uint8 [H, W, 3] (RGB) or [H, W] (grey) array; ``fmt`` is png, jpg or webp."""
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; choose one of {', '.join(OUTPUT_FORMATS)}")
    image = Image.fromarray(array, "RGB" if array.ndim == 3 else "L")
    buffer = io.BytesIO()
    if fmt == "png":
        # Level 1 encodes several times faster than Pillow's default 6 for ~10% more bytes;
        # in a folder job the encoder, not the model, is the bottleneck.
        image.save(buffer, "PNG", compress_level=1)
    else:
        image.save(buffer, OUTPUT_FORMATS[fmt], quality=quality)
    return buffer.getvalue()


def partial_name(path: Path) -> Path:
    """The temporary name a file is written under before it is renamed into place."""
    return path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.partial")


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is either absent or complete."""
    temp = partial_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temp, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
