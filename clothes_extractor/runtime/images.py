"""Reading photos and masks of any format and mode, writing results atomically.

Every failure becomes an ``InputError`` that says what is wrong with the file. Pillow's
decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``) is kept, and enforced for every
image over it rather than only past twice the limit, where Pillow itself stops.
"""

from __future__ import annotations

import functools
import io
import stat
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import InputError
from .colour import to_srgb
from .fill import placer
from .fitting import check_photo_size
from .matte import settled, uncomposed
from .png import encode_png

# Suffixes a folder walk picks up. A file named explicitly is tried whatever its suffix.
# HEIC/HEIF (phone photos) open with pillow-heif installed (the [heif] extra), and are reported
# with that fix without it; AVIF needs Pillow 11.3+.
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".avif", ".bmp", ".tif", ".tiff", ".gif", ".heic", ".heif"}
    | {".jp2", ".j2k"}  # JPEG 2000 (archives, asset managers)
)
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1")
OUTPUT_FORMATS = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}

_EXIF_ORIENTATION = 0x0112
_ROTATED_ORIENTATIONS = {5, 6, 7, 8}  # these swap width and height
WHOLE_READ_MAX = 8 << 20  # a photo file up to this size is read once for all its job does (``read_whole``)


def read_whole(path: Path) -> bytes | None:
    """A photo file's bytes, read once for its job's digest and every decode of it (``data``),
    where a read again is a trip (a network folder; an object store mounted as one fetches the
    object at each read); None for a file over ``WHOLE_READ_MAX`` (read again, in pieces), no
    regular file, or one that cannot be read (``open_image`` says why)."""
    try:
        found = path.stat()
        if stat.S_ISREG(found.st_mode) and found.st_size <= WHOLE_READ_MAX:
            with open(path, "rb") as file:
                data = file.read(WHOLE_READ_MAX + 1)
            return data if len(data) <= WHOLE_READ_MAX else None
    except OSError:
        pass
    return None


def open_image(path: Path, what: str = "image", data: bytes | None = None) -> Image.Image:
    """Open (not decode) an image, with a clear error for every way that can fail; ``data``: its
    file's bytes, read already (``read_whole``), which it is opened from."""
    if data is None:
        try:
            found = path.stat()
        except FileNotFoundError:
            raise InputError(f"{what} not found: {path}") from None
        except OSError as exc:
            raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
        if stat.S_ISDIR(found.st_mode):  # (the stat above, not a second one: this runs for every photo)
            raise InputError(f"{what} {path} is a folder, not an image")
    if (found.st_size if data is None else len(data)) == 0:
        raise InputError(f"{what} is an empty file (0 bytes): {path}")
    source = path if data is None else io.BytesIO(data)
    try:
        try:
            image = Image.open(source)
        except UnidentifiedImageError:
            if not _heif_opener():  # the first HEIC photo of a process registers the plugin, if installed
                raise
            image = Image.open(source)
    except UnidentifiedImageError:
        raise InputError(_unreadable(path, what)) from None
    except Image.DecompressionBombError:
        limit = Image.MAX_IMAGE_PIXELS or 0
        raise InputError(
            f"{what} {path} is too large to decode safely: over twice the decompression-bomb limit of "
            f"{limit / 1e6:.0f} Mpx; downscale it first"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{what} {path} cannot be opened: {exc}") from None
    limit = Image.MAX_IMAGE_PIXELS
    if limit and image.width * image.height > limit:
        image.close()
        raise InputError(
            f"{what} {path} is {image.width}x{image.height} "
            f"({image.width * image.height / 1e6:.0f} Mpx), over the decompression-bomb limit "
            f"of {limit / 1e6:.0f} Mpx; downscale it first"
        )
    if what == "photo" and extract_wrote(image):
        image.close()
        raise InputError(
            f"{what} {path} is a garment image that extract wrote, not a photo of someone wearing one (an "
            "earlier run's output among the photos? a walk leaves out only its own run's -o): leave it out, or "
            "give it to try-on as the garment (tryon --garment)"
        )
    return image


def extract_wrote(image: Image.Image) -> bool:
    """Whether an opened image is one of ``extract``'s garments: its signature (``encode_image``:
    a PNG text chunk, a JPEG comment, WebP XMP; read with the header, no decoding) names a
    generator. ``tryon``'s outputs, photos of people, name a try-on model."""
    text = _signature(image)
    return text is not None and text.startswith("model=")


def written_background(image: Image.Image) -> tuple[int, int, int] | None:
    """The colour one of ``extract``'s garments was written on, where its signature names one
    (``--background #RRGGBB``); None for white, transparent, or an image ``extract`` did not write."""
    text = _signature(image)
    if text is None or not text.startswith("model="):
        return None
    for word in text.split():
        if word.startswith("background=#") and len(word) == len("background=#RRGGBB"):
            try:
                return tuple(bytes.fromhex(word[len("background=#") :]))  # type: ignore[return-value]
            except ValueError:
                return None
    return None


def _signature(image: Image.Image) -> str | None:
    text = image.info.get(SIGNATURE_KEY)
    tagged = f"{SIGNATURE_KEY}:".encode()
    for key in ("comment", "xmp"):
        value = image.info.get(key)
        if text is None and isinstance(value, bytes) and value.startswith(tagged):
            text = value[len(tagged) :].decode("latin-1")
    return text if isinstance(text, str) else None


@functools.cache
def _heif_opener() -> bool:
    """Let Pillow open HEIC/HEIF photos, if pillow-heif is installed (once per process)."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def _unreadable(path: Path, what: str) -> str:
    """Why Pillow cannot open ``path``, with the fix for formats it reads only with help."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(64)
    except OSError:
        head = b""
    brands = head[8:64] if head[4:8] == b"ftyp" else b""  # ISO media: major and compatible brands
    if b"avif" in brands or b"avis" in brands:
        return f"{what} {path} is an AVIF image, which this Pillow cannot read: pip install -U 'Pillow>=11.3'"
    if any(brand in brands for brand in _HEIF_BRANDS):
        if _heif_opener():
            return f"{what} {path} is a HEIC/HEIF file that pillow-heif cannot read; the file may be corrupt"
        return (
            f"{what} {path} is a HEIC/HEIF photo, which Pillow reads only with pillow-heif: "
            'pip install "clothes-extractor[heif]" (or convert it to JPEG)'
        )
    return (
        f"{what} {path} is not an image in a format Pillow can read "
        "(JPEG, PNG, WebP, AVIF, BMP, TIFF, GIF; HEIC with pillow-heif); the file may be corrupt"
    )


def decode_opened(image: Image.Image, path: Path, what: str) -> None:
    """Decode an image ``open_image`` opened; a truncated or corrupt file is an ``InputError`` naming it."""
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(f"{what} {path} cannot be decoded ({exc}); is the file truncated or corrupt?") from None


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation (1: as stored; 2-8: mirrored and/or rotated)."""
    try:
        return int(image.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block only loses the rotation
        return 1


def displayed_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) after the EXIF orientation is applied."""
    w, h = image.size
    return (h, w) if exif_orientation(image) in _ROTATED_ORIENTATIONS else (w, h)


def _upright(image: Image.Image) -> Image.Image:
    if exif_orientation(image) == 1:
        return image  # as stored (exif_transpose would return a whole copy of the photo)
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
    """(RGB image, alpha channel or None), from an image of any mode.

    Where there is an alpha channel the RGB image is composited on white: a cut-out's
    hidden pixels (often black, or garbage) never reach the models.
    """
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    elif image.mode == "PA":
        image = image.convert("RGBA")
    alpha = None
    if image.mode in ("RGBA", "LA", "RGBa", "La"):
        if image.mode in ("RGBa", "La"):
            image = image.convert("RGBA" if image.mode == "RGBa" else "LA")
        alpha = image.getchannel("A")
        colour = image if image.mode == "RGBA" else image.convert("RGBA")
        on_white = Image.new("RGB", image.size, (255, 255, 255))
        on_white.paste(colour, mask=alpha)  # = alpha_composite on white, to the byte, in a third of the memory
        on_white.info.update({key: image.info[key] for key in (SIGNATURE_KEY, "xmp") if key in image.info})
        image = on_white  # (with its file's signature, if it has one: ``extract_wrote`` reads it)
    if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        image = _to_8bit(image)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return image, alpha


def load_photo(
    path: Path,
    decode_scale: Callable[[tuple[int, int]], float] | None = None,
    role: str = "photo",
    data: bytes | None = None,
) -> tuple[Image.Image, Image.Image | None]:
    """Decode a photo upright as sRGB, with its alpha channel if it has a non-opaque one.

    ``decode_scale`` maps the photo's displayed (width, height) to how far it may be
    shrunk (<= 1). For JPEGs that shrink happens while decoding (draft mode, by a power
    of two), which is far faster than decoding full size and resizing. ``role`` names
    the image in error messages; ``data``: the file's bytes, read already (``read_whole``).
    """
    image = open_image(path, role, data)
    with image:
        if decode_scale is not None:
            scale = decode_scale(displayed_size(image))  # called for every format: it learns the size
            if scale < 1.0 and image.format == "JPEG":
                w, h = image.size
                image.draft(None, (max(1, int(w * scale)), max(1, int(h * scale))))
        decode_opened(image, path, role)
        image = to_srgb(_upright(image))  # (a phone's Display P3, a studio's Adobe RGB: colour.py)
        rgb, alpha = split_alpha(image)
    if alpha is not None and alpha.getextrema()[0] == 255:
        alpha = None  # an opaque alpha channel says nothing about the garment
    return rgb, alpha


def load_person(path: Path, data: bytes | None = None) -> Image.Image:
    """A try-on's person photo, upright RGB (a cut-out composited on white); too small: ``InputError``.
    ``data``: its file's bytes, read already (``read_whole``)."""
    return _load_checked(path, "person photo", data)


def load_garment(path: Path, data: bytes | None = None) -> Image.Image:
    """A try-on's garment image, as ``load_person`` loads a person photo."""
    return _load_checked(path, "garment image", data)


def _load_checked(path: Path, role: str, data: bytes | None) -> Image.Image:
    return load_photo(path, lambda shown: check_photo_size(shown, path, role) or 1.0, role, data)[0]


def load_mask(path: Path) -> Image.Image:
    """A garment mask file of any format and mode, as an upright ``L`` image (255 = garment).

    Grey levels are kept (soft masks). An image with a varying alpha channel is read as a
    cut-out: its alpha is the mask.
    """
    image = open_image(path, "mask")
    with image:
        decode_opened(image, path, "mask")
        image = _upright(image)
        if image.mode == "1":
            return image.convert("L")
        if image.mode == "L":
            return image.copy()
        rgb, alpha = split_alpha(image)
    if alpha is not None and alpha.getextrema()[0] != alpha.getextrema()[1]:
        return alpha
    return rgb.convert("L")


SIGNATURE_KEY = "clothes-extractor"  # PNG text chunk / JPEG comment / WebP XMP holding the output's signature


def apply_background(
    garment: np.ndarray,
    alpha: np.ndarray | None,
    background,
    size: tuple[int, int] | None = None,
    fill: float | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(RGB, alpha or None) to encode: ``garment`` is on white; ``alpha`` its silhouette.

    white: as it is. transparent: the garment's own colours (un-composed from white) with the
    silhouette as alpha. (r, g, b): the transparent garment laid on that colour (so the two
    agree: where the rendering reaches past the silhouette, neither shows it). Both with the
    garment's edge settled first (``matte.settled``: no pale glow where the silhouette reaches
    past the rendering). ``size`` (height, width): brought to that size (bicubic) where it is
    another, after the settling and before the un-composing (the garment on white and its alpha
    resized alike keep their relation, so the colours are those of the garment resized). ``fill``:
    the garment's box brought to that share of a page of ``size`` instead (``fill.placer``).
    """
    place = functools.partial(resized, size=size) if fill is None else placer(garment, alpha, size, fill)
    if background == "white" or alpha is None:
        return place(garment), None
    garment, alpha = settled(garment, alpha)
    garment, alpha = place(garment), place(alpha.reshape(garment.shape[:2]))
    if background == "transparent":
        return uncomposed(garment, alpha), alpha.reshape(garment.shape[:2])
    return uncomposed(garment, alpha, tuple(background)), None


def on_canvas(
    rgb: np.ndarray, alpha: np.ndarray | None, canvas: tuple[int, int], background
) -> tuple[np.ndarray, np.ndarray | None]:
    """A written garment (``apply_background``'s RGB and alpha or None) centred on a ``canvas``
    (height, width) at least its size, the rest the background: white, the colour, or transparent
    (alpha 0 on white)."""
    height, width = canvas
    top, left = (height - rgb.shape[0]) // 2, (width - rgb.shape[1]) // 2
    fill = (255, 255, 255) if isinstance(background, str) else tuple(background)
    page = np.empty((height, width, 3), np.uint8)
    page[:] = fill
    page[top : top + rgb.shape[0], left : left + rgb.shape[1]] = rgb
    if alpha is None:
        return page, None
    shown = np.zeros((height, width), np.uint8)
    shown[top : top + rgb.shape[0], left : left + rgb.shape[1]] = alpha
    return page, shown


def resized(image: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """uint8 ``image`` ([H, W] or [H, W, 3]) at ``size`` (height, width), bicubic; as it is where
    ``size`` is None or its own (a garment a generator drew at its model size, brought to the size
    a user asked for: smoother, no detail added)."""
    if size is None or tuple(image.shape[:2]) == tuple(size):
        return image
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.Resampling.BICUBIC))


def encode_image(
    array: np.ndarray, fmt: str, quality: int = 95, *, alpha: np.ndarray | None = None, signature: str | None = None
) -> bytes:
    """Encode a uint8 [H, W, 3] (RGB) or [H, W] (grey) array; ``fmt`` is png, jpg or webp.

    ``alpha`` [H, W] makes an RGBA image (png and webp only). ``signature`` is stored in the
    file (PNG text chunk, JPEG comment, WebP XMP) so a later run can tell which model and
    settings wrote it (see ``read_signature``).
    """
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; choose one of {', '.join(OUTPUT_FORMATS)}")
    if alpha is not None and fmt == "jpg":
        raise ValueError("JPEG has no alpha channel: use png or webp for a transparent background")
    pixels = np.dstack([array, alpha.reshape(array.shape[:2])]) if alpha is not None else array
    if fmt == "png":  # (the runtime's own writer: 1.5-2.7x faster than Pillow's, see ``png``)
        return encode_png(pixels, {SIGNATURE_KEY: signature} if signature is not None else None)
    image = Image.fromarray(pixels, "RGBA" if alpha is not None else "RGB" if array.ndim == 3 else "L")
    buffer = io.BytesIO()
    if fmt == "jpg":
        extra = {"comment": f"{SIGNATURE_KEY}:{signature}".encode()} if signature is not None else {}
        image.save(buffer, "JPEG", quality=quality, **extra)
    else:
        extra = {"xmp": f"{SIGNATURE_KEY}:{signature}".encode()} if signature is not None else {}
        image.save(buffer, "WEBP", quality=quality, **extra)
    return buffer.getvalue()
