"""Photo + garment mask -> the model's input tensors. Written once: training uses it too.

The garment is cut out around its mask (box + margin), widened to the model's aspect
ratio so nothing is stretched, and resized to the model's size. Parts of that window that
lie outside the photo are filled with the pad colour (mask: 0), which is letterboxing
without wasting the photo's own pixels where it has them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import InputError
from .contract import FitSettings

Box = tuple[float, float, float, float]  # x0, y0, x1, y1; x1/y1 exclusive
MIN_PHOTO_SIDE = 16  # pixels; smaller photos cannot show a garment
REDUCING_GAP = 3.0  # Pillow's reducing_gap for photos shrunk this much: integer reduction first (faster)


# Catalog-resolution outputs ("auto"): the crop's own resolution, at most this (height,
# width) unless the model says otherwise, rounded down to a multiple of OUTPUT_STEP rows so a
# folder of photos falls into a few output sizes that batch together.
DEFAULT_MAX_OUTPUT = (1024, 768)
OUTPUT_STEP = 64


@dataclass(frozen=True)
class FittedInput:
    image: np.ndarray  # uint8 [H, W, 3]
    mask: np.ndarray  # uint8 [H, W, 1]
    box: Box  # the window of the photo that was resized to the model size, photo pixels
    photo: np.ndarray | None = None  # the same window at the output size, uint8 [h, w, 3] (catalog resolution)


def output_size_for(
    window_height: float, contract, requested: str | tuple[int, int] = "auto", own_pixels: bool = False
) -> tuple[int, int]:
    """(height, width) of the garment for a photo window ``window_height`` photo pixels tall.

    ``requested``: "model" (the model size: the fast path), "auto" (the window's own
    resolution, never more than the photo has, at most ``contract.max_output``, on a
    64-row grid; never less than the model size) or an explicit (height, width).
    A model without catalog resolution always answers at its own size, unless the garment
    is the photo's own pixels (``own_pixels``: a garment shown alone, cut out, not drawn); an
    explicit size is then its garment resized as it is written (``stages.Plan.page``).
    """
    if requested == "model" or not (contract.catalog_resolution or own_pixels):
        return contract.size
    if isinstance(requested, tuple):
        return requested
    max_h = (contract.max_output or DEFAULT_MAX_OUTPUT)[0]
    height = min(max_h, int(window_height))
    height = max(contract.height, height - height % OUTPUT_STEP)
    return height, round(height * contract.width / contract.height)


# Specks a segmenter finds far below a worn garment (on the shoes of a full-length photo) frame it as
# small as the whole person: rows of the mask over DETACHED_GAP of its height below the garment and
# under DETACHED_SHARE of its pixels are left out of its box (a hem below crossed arms is near; a
# strap's top, which a parse may hold apart from the garment, is above it and kept).
DETACHED_GAP, DETACHED_SHARE = 0.1, 0.03


def mask_box(mask: np.ndarray, threshold: int, detached: bool = False) -> tuple[int, int, int, int] | None:
    """Bounding box (x0, y0, x1, y1) of the pixels >= threshold (``detached``: specks below left out), or None."""
    on = mask >= threshold
    counts = on.sum(axis=1)
    rows = np.flatnonzero(counts)
    if rows.size == 0:
        return None
    r0, r1 = _garment_rows(rows, counts, mask.shape[0]) if detached else (int(rows[0]), int(rows[-1]) + 1)
    cols = np.flatnonzero(on[r0:r1].any(axis=0))
    return int(cols[0]), r0, int(cols[-1]) + 1, r1


def _garment_rows(rows: np.ndarray, counts: np.ndarray, height: int) -> tuple[int, int]:
    """[start, stop) of the garment's rows: ``rows`` (with ``counts`` mask pixels) down to the first
    run of them apart by over ``DETACHED_GAP`` of ``height`` below the fullest one that is a speck."""
    breaks = np.flatnonzero(np.diff(rows) > max(2, round(DETACHED_GAP * height)))
    starts, stops = np.append(rows[0], rows[breaks + 1]), np.append(rows[breaks], rows[-1]) + 1
    mass = np.array([counts[a:b].sum() for a, b in zip(starts, stops, strict=True)])
    peak, specks = int(np.argmax(mass)), np.flatnonzero(mass < DETACHED_SHARE * mass.sum())
    last = min((i - 1 for i in specks if i > peak), default=len(mass) - 1)
    return int(rows[0]), int(stops[last])


def check_photo_size(shown: tuple[int, int], path, role: str = "photo") -> None:
    """``InputError`` for a photo too small to show a garment (``shown``: (width, height));
    ``role`` names it in the message."""
    if min(shown) < MIN_PHOTO_SIDE:
        raise InputError(
            f"{role} {path} is {shown[0]}x{shown[1]} pixels: too small to show a garment "
            f"(at least {MIN_PHOTO_SIDE}x{MIN_PHOTO_SIDE})"
        )


def check_mask_shape(mask_size: tuple[int, int], shown: tuple[int, int]) -> None:
    """A mask file covers its whole photo at any resolution, so it has the photo's aspect
    ratio (to a pixel of rounding, or 2%); ``InputError`` otherwise (sizes are (width, height),
    the photo's as it is shown, after its EXIF orientation)."""
    (mw, mh), (pw, ph) = mask_size, shown
    expected = mh * pw / ph
    if abs(mw - expected) <= max(1.5, 0.02 * expected):
        return
    turned = " (this one is turned: a mask is upright, as the photo is shown after its EXIF rotation)"
    turned = turned if (mw, mh) == (ph, pw) else ""
    raise InputError(
        f"the mask is {mw}x{mh} and the photo {pw}x{ph}: a mask must cover the whole photo, "
        f"at any resolution but the same shape{turned}; is it another photo's mask?"
    )


def fit_window(box: Box, size: tuple[int, int], margin: float) -> Box:
    """Grow ``box`` by ``margin`` of its size on every side, then to the aspect of ``size``.

    ``size`` is the model's (height, width). The result is centred on the box and may
    extend past the photo's edges.
    """
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    w, h = w * (1 + 2 * margin), h * (1 + 2 * margin)
    target_h, target_w = size
    aspect = target_w / target_h
    if w / h < aspect:
        w = h * aspect
    else:
        h = w / aspect
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


def _landing(
    window: Box, image_size: tuple[int, int], size: tuple[int, int]
) -> tuple[Box, tuple[int, int, int, int]] | None:
    """The part of ``window`` that an image of ``image_size`` (w, h) covers, and the canvas
    pixels (x0, y0, x1, y1) it lands on when the window is resized to ``size`` (h, w); None
    where it covers none."""
    target_h, target_w = size
    x0, y0, x1, y1 = window
    scale_x, scale_y = target_w / (x1 - x0), target_h / (y1 - y0)
    ix0, iy0 = max(x0, 0.0), max(y0, 0.0)
    ix1, iy1 = min(x1, float(image_size[0])), min(y1, float(image_size[1]))
    if ix1 <= ix0 or iy1 <= iy0:
        return None
    dx0 = round((ix0 - x0) * scale_x)
    dy0 = round((iy0 - y0) * scale_y)
    dx1 = min(round((ix1 - x0) * scale_x), target_w)
    dy1 = min(round((iy1 - y0) * scale_y), target_h)
    if dx1 <= dx0 or dy1 <= dy0:
        return None
    return (ix0, iy0, ix1, iy1), (dx0, dy0, dx1, dy1)


def crop_resize(
    image: Image.Image, window: Box, size: tuple[int, int], fill, resample=Image.Resampling.BILINEAR
) -> Image.Image:
    """Resize ``window`` of ``image`` to ``size`` (h, w); outside the image becomes ``fill``.
    Label maps take ``resample=NEAREST``, so that no pixel gets a label between two."""
    target_h, target_w = size
    canvas = Image.new(image.mode, (target_w, target_h), fill)
    landed = _landing(window, image.size, size)
    if landed is None:
        return canvas
    source, (dx0, dy0, dx1, dy1) = landed
    part = image.resize(
        (dx1 - dx0, dy1 - dy0),
        resample=resample,
        box=source,
        reducing_gap=REDUCING_GAP if resample != Image.Resampling.NEAREST else None,  # integer reduction first: faster
    )
    canvas.paste(part, (dx0, dy0))
    return canvas


def crop_photo(photo, window: Box, size: tuple[int, int], fill) -> np.ndarray:
    """``crop_resize`` of a Pillow photo, or of a photo that lies on a device (anything else
    with ``crop_resize``, ``resample.DevicePhoto``), as uint8 [h, w, 3]."""
    if isinstance(photo, Image.Image):
        return np.asarray(crop_resize(photo, window, size, fill), dtype=np.uint8)
    return photo.crop_resize(window, size, fill)


def crop_labels(labels: Image.Image, window: Box, size: tuple[int, int]) -> np.ndarray:
    """``window`` of a class map (mode L or P) at ``size`` (h, w), nearest neighbours, 0
    outside the map: uint8 [h, w]."""
    return np.asarray(crop_resize(labels, window, size, 0, Image.Resampling.NEAREST), dtype=np.uint8)


def fit_to_model(
    photo: Image.Image,
    mask: Image.Image,
    size: tuple[int, int],
    fit: FitSettings,
    box: tuple[int, int, int, int] | None = None,
    output_size: tuple[int, int] | None = None,
) -> FittedInput:
    """Fit an RGB ``photo`` (Pillow, or on a device: ``crop_photo``) and its ``L`` garment
    ``mask`` to ``size`` (h, w).

    The mask may have another resolution than the photo (a full-size mask for a photo
    decoded smaller, say): it covers the same scene and is cropped at its own resolution,
    never resized on its own first. ``box`` is ``mask_box(mask, detached=True)`` if the caller has it.
    ``output_size``: also crop the same window of the photo at that size (``photo``), for
    a catalog-resolution model.
    """
    if photo.mode != "RGB" or mask.mode != "L":
        raise ValueError(f"fit_to_model takes an RGB photo and an L mask, got {photo.mode}/{mask.mode}")
    if box is None:
        box = mask_box(np.asarray(mask), fit.mask_threshold, detached=True)
    if box is None:
        raise InputError(
            f"the garment mask is empty: no pixel is >= {fit.mask_threshold}. Masks must be "
            "white (255) on the garment and black (0) elsewhere"
        )
    sx, sy = photo.width / mask.width, photo.height / mask.height
    window = fit_window((box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy), size, fit.margin)
    image = crop_photo(photo, window, size, fit.pad_rgb)
    mask_window = (window[0] / sx, window[1] / sy, window[2] / sx, window[3] / sy)
    fitted_mask = crop_resize(mask, mask_window, size, 0)
    big = None
    if output_size is not None:
        big = image if tuple(output_size) == tuple(size) else crop_photo(photo, window, output_size, fit.pad_rgb)
    return FittedInput(
        image=image,
        mask=np.asarray(fitted_mask, dtype=np.uint8)[:, :, None],
        box=window,
        photo=big,
    )


def letterbox(
    image: Image.Image, size: tuple[int, int], fill, resample=Image.Resampling.BILINEAR
) -> tuple[np.ndarray, Box]:
    """The whole ``image`` resized into ``size`` (h, w) keeping its aspect, centred, padded
    (``image``: Pillow, or an RGB photo on a device, see ``crop_photo``).

    Returns the array and the window of the image that fills the output (image pixels),
    which maps a result back onto the image.
    """
    window = fit_window((0.0, 0.0, float(image.width), float(image.height)), size, 0.0)
    if not isinstance(image, Image.Image):
        return crop_photo(image, window, size, fill), window
    return np.asarray(crop_resize(image, window, size, fill, resample)), window


def letterbox_part(image, size: tuple[int, int], fill, part: tuple[int, int, int, int]) -> np.ndarray:
    """``letterbox(image, size, fill)[0][y0:y1, x0:x1]`` for ``part`` (x0, y0, x1, y1, inside
    ``size``), resampling only the photo pixels that part shows, at a fraction of the cost when
    the part is small: the same pixels within a level or two (Pillow resamples a box at a
    fractional offset with weights a hair apart; 10% of the values of a part differ by 1-2).
    A photo on a device, or one the letterbox shrinks ``REDUCING_GAP`` times or more (Pillow
    reduces it in blocks aligned to the box, so a part would not match), is letterboxed whole."""
    x0, y0, x1, y1 = part
    window = fit_window((0.0, 0.0, float(image.width), float(image.height)), size, 0.0)
    landed = _landing(window, image.size, size)
    if not isinstance(image, Image.Image) or landed is None:
        return letterbox(image, size, fill)[0][y0:y1, x0:x1]
    (sx0, sy0, sx1, sy1), (dx0, dy0, dx1, dy1) = landed
    step_x, step_y = (sx1 - sx0) / (dx1 - dx0), (sy1 - sy0) / (dy1 - dy0)  # photo pixels per letterbox pixel
    if max(step_x, step_y) >= REDUCING_GAP:
        return letterbox(image, size, fill)[0][y0:y1, x0:x1]
    canvas = Image.new(image.mode, (x1 - x0, y1 - y0), fill)
    a, b, c, d = max(x0, dx0), max(y0, dy0), min(x1, dx1), min(y1, dy1)  # the part the photo lands on
    if c > a and d > b:
        box = (sx0 + (a - dx0) * step_x, sy0 + (b - dy0) * step_y, sx0 + (c - dx0) * step_x, sy0 + (d - dy0) * step_y)
        canvas.paste(image.resize((c - a, d - b), Image.Resampling.BILINEAR, box=box), (a - x0, b - y0))
    return np.asarray(canvas)


def letterbox_for(photo, size: tuple[int, int], fit: FitSettings) -> tuple[np.ndarray, Box, tuple[int, int, int]]:
    """``letterbox`` padded as ``fit`` says: with its ``pad_rgb``, or (``pad`` "border") with
    the photo's own border colour, the median of the edge pixels of the photo as it lands in
    the frame (``train.augment`` fills a zoomed-out photo so). Returns the array, the window
    and the padding colour, for other crops of the same photo (a segmenter's zoomed look)."""
    plane, window = letterbox(photo, size, fit.pad_rgb)
    if fit.pad != "border":
        return plane, window, fit.pad_rgb
    plane = np.array(plane)  # (writable: the bars are painted over)
    landed = _landing(window, (photo.width, photo.height), size)
    if landed is None:
        return plane, window, fit.pad_rgb
    x0, y0, x1, y1 = landed[1]
    colour = border_colour(plane[y0:y1, x0:x1])
    plane[:y0], plane[y1:], plane[:, :x0], plane[:, x1:] = colour, colour, colour, colour
    return plane, window, colour


def edge_pixels(image: Image.Image) -> np.ndarray:
    """The edge pixels of an RGB Pillow image, [n, 3] uint8, read from four one-pixel strips
    (no copy of the whole image)."""
    w, h = image.size
    strips = [image.crop(box) for box in ((0, 0, w, 1), (0, h - 1, w, h), (0, 0, 1, h), (w - 1, 0, w, h))]
    return np.concatenate([np.asarray(strip.convert("RGB")).reshape(-1, 3) for strip in strips])


def frame_edge(array: np.ndarray) -> np.ndarray:
    """The values along an array's frame edge ([h, w, ...] -> [2 (h + w), ...]: the top and
    bottom rows, then the left and right columns; corners twice). ``edge_pixels`` reads a
    Pillow image's without converting all of it."""
    return np.concatenate([array[0], array[-1], array[:, 0], array[:, -1]])


def border_colour(pixels: np.ndarray) -> tuple[int, int, int]:
    """The median colour (per channel; the lower of two middles, as torch's) of the edge pixels
    of an RGB array [h, w, 3]: the backdrop a photo of a person shows at its edges."""
    edges = frame_edge(pixels)
    r, g, b = (int(c) for c in np.sort(edges, axis=0)[(len(edges) - 1) // 2])
    return r, g, b


def shown_box(window: Box, image_size: tuple[int, int], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The pixels (x0, y0, x1, y1) of a frame of ``size`` (h, w) showing ``window`` that an
    image of ``image_size`` (w, h) covers (not its padding); empty where it covers none."""
    landed = _landing(window, image_size, size)
    return landed[1] if landed is not None else (0, 0, 0, 0)


def share_shown(found: np.ndarray, window: Box, image_size: tuple[int, int], size: tuple[int, int]) -> float:
    """``found``'s (a mask over a frame of ``size`` showing ``window``) share of the part of the
    frame that an image of ``image_size`` (w, h) covers, not its padding (``shown_box``)."""
    x0, y0, x1, y1 = shown_box(window, image_size, size)
    inside = found[y0:y1, x0:x1]
    return float(inside.mean()) if inside.size else 0.0


def fills_frame(window: Box, image_size: tuple[int, int], size: tuple[int, int]) -> bool:
    """Whether an image of ``image_size`` (w, h) covers the whole frame of ``size`` (h, w) that
    ``window`` is resized to: no padding shows (a letterboxed photo of the frame's aspect)."""
    return shown_box(window, image_size, size) == (0, 0, size[1], size[0])


def photo_window(
    mask_box_px: tuple[float, float, float, float],
    mask_size: tuple[int, int],
    photo_size: tuple[int, int],
    size: tuple[int, int],
    fit: FitSettings,
) -> Box:
    """The window ``fit_to_model`` will crop, in the photo's displayed pixels, from a mask box
    in the mask's pixels (``mask_size`` and ``photo_size`` are (width, height))."""
    sx = photo_size[0] / mask_size[0]
    sy = photo_size[1] / mask_size[1]
    x0, y0, x1, y1 = mask_box_px
    return fit_window((x0 * sx, y0 * sy, x1 * sx, y1 * sy), size, fit.margin)


def decode_scale_for(window: Box, size: tuple[int, int]) -> float:
    """How far the photo can be shrunk while decoding and still give ``window`` (photo pixels)
    at ``size`` (h, w) without under-sampling: <= 1, for both axes."""
    return min(1.0, size[1] / (window[2] - window[0]))


def paste_box(mask: np.ndarray, zoom: Box, plane_size: tuple[int, int]) -> np.ndarray:
    """A plane of ``plane_size`` (h, w), 0 but for ``mask`` resized into the box ``zoom``."""
    plane = Image.new("L", (plane_size[1], plane_size[0]), 0)
    x0, y0, x1, y1 = zoom
    scale_x, scale_y = mask.shape[1] / (x1 - x0), mask.shape[0] / (y1 - y0)
    # the part of the zoom box inside the plane, in plane pixels and in mask pixels
    px0, py0 = max(0, round(x0)), max(0, round(y0))
    px1, py1 = min(plane_size[1], round(x1)), min(plane_size[0], round(y1))
    if px1 <= px0 or py1 <= py0:
        return np.asarray(plane)
    # rounding may put a plane pixel edge a fraction outside the zoom box: clamp to the mask
    h, w = mask.shape
    source = (
        min(w, max(0.0, (px0 - x0) * scale_x)),
        min(h, max(0.0, (py0 - y0) * scale_y)),
        min(w, max(0.0, (px1 - x0) * scale_x)),
        min(h, max(0.0, (py1 - y0) * scale_y)),
    )
    part = Image.fromarray(mask, "L").resize((px1 - px0, py1 - py0), Image.Resampling.BILINEAR, box=source)
    plane.paste(part, (px0, py0))
    return np.asarray(plane)


def within(plane: np.ndarray, box: Box | None) -> np.ndarray:
    """``plane`` [h, w, ...] with what lies outside ``box`` (its pixels, x0, y0, x1, y1) cleared;
    itself where ``box`` is None (the whole plane)."""
    if box is None:
        return plane
    x0, y0, x1, y1 = (int(v) for v in box)
    out = np.zeros_like(plane)
    out[y0:y1, x0:x1] = plane[y0:y1, x0:x1]
    return out


def box_in(box: Box, window: Box, size: tuple[int, int]) -> Box:
    """``box`` (a plane's pixels) in the pixels of ``window`` of that plane resized to ``size``
    (h, w), clipped to them (``paste_box`` the other way)."""
    h, w = size
    sx, sy = w / (window[2] - window[0]), h / (window[3] - window[1])
    x0, y0 = max(0, round((box[0] - window[0]) * sx)), max(0, round((box[1] - window[1]) * sy))
    x1, y1 = round((box[2] - window[0]) * sx), round((box[3] - window[1]) * sy)
    return x0, y0, min(w, max(x0, x1)), min(h, max(y0, y1))
