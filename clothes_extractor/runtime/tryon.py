"""Try-on's inputs, fitted as serving and training both fit them (numpy + Pillow).

A try-on model dresses a person in a catalog garment. It sees the person letterboxed to
its size, the region it dresses anew (the parser's upper clothes and arms, grown a few
pixels so no trace of the old top's outline survives), the catalog garment letterboxed on
white and the garment's silhouette. The graph paints the region grey itself; everything
outside it is the person's own pixels in the output.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from .fitting import Box, crop_labels, crop_photo, edge_pixels, fit_window, letterbox
from .silhouette import SILHOUETTE_TOLERANCE, garment_silhouette, one_of_several

REGION_NAMES = ("upper", "arms")  # the parser's classes a try-on dresses anew
TOP = "upper"  # of them, the one a person must wear to be dressed (``dressing.MIN_TOP_SHARE``)
REGION_GROW_PX = 3  # at the model size
# A try-on model learned on VITON's half-body photos: head to mid-thigh, filling the frame.
# Where a person's upper body takes less of the photo (a full-body or distant shot), the
# parser looks again and the model dresses a window framed like that.
UPPER_BODY = ("hair", "face", "upper", "other-upper", "arms")
BELOW_UPPER_BODY = 0.35  # the frame goes on below the upper body by this share of its height
ZOOM_BELOW = 0.7  # ... zoomed only where that window is less than this share of the whole photo's letterbox
WINDOW_MARGIN = 0.05
# A try-on network learned VITON's catalog framing: the garment fills FRAME_FILL or more of
# its frame's width or height (99% of VITON's validation catalog images, a median 0.96; the
# VITON-HD sample's 0.78-0.89, Dress Code's 0.59-0.90). One framed looser is cut from its image so that it fills
# GARMENT_WIDTH of the width (VITON's median 0.953) and at most GARMENT_HEIGHT of the height,
# TOP_SLACK of the rows left over above it (VITON's margins: a median 3.5% above, 7.8% below).
FRAME_FILL = 0.85
GARMENT_WIDTH, GARMENT_HEIGHT, TOP_SLACK = 0.953, 0.95, 0.3
# Rows without upper body that still join it, as a share of the frame's height: above it, a
# bare neck and chest the parser leaves out (the head is never far above the top); below,
# only a few (a stray patch the parser calls a top or arms at the ankles is no part of it).
GAP_ABOVE, GAP_BELOW = 0.2, 0.03


def grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    """A boolean mask grown by ``pixels`` steps to the 4 neighbours (a diamond of that radius)."""
    grown = mask.copy()
    for _ in range(pixels):
        padded = np.pad(grown, 1)
        grown = padded[1:-1, 1:-1] | padded[:-2, 1:-1] | padded[2:, 1:-1] | padded[1:-1, :-2] | padded[1:-1, 2:]
    return grown


def region_from_labels(labels: np.ndarray, names: tuple[str, ...], grow_px: int = REGION_GROW_PX) -> np.ndarray:
    """uint8 [H, W, 1] (255 = dress anew) from a parser's class map [H, W(, 1)] and its class names."""
    labels = np.asarray(labels)
    if labels.ndim == 3:
        labels = labels[..., 0]
    wanted = [names.index(name) for name in REGION_NAMES if name in names]
    if len(wanted) != len(REGION_NAMES):
        raise ValueError(f"a try-on needs a parser with the classes {REGION_NAMES}, this one has {names}")
    region = grow(np.isin(labels, wanted), grow_px)
    return (region.astype(np.uint8) * 255)[:, :, None]


def upper_body_window(
    classes: np.ndarray,
    plane: Box,
    photo_size: tuple[int, int],
    size: tuple[int, int],
    names: tuple[str, ...],
    always: bool = False,
) -> Box | None:
    """The window of the photo (photo pixels, aspect of ``size`` (h, w)) framed as a try-on
    model's training photos are, from a parser's class map [H, W] over ``plane`` (the
    window of the photo it saw); None where the whole photo is framed so already (unless
    ``always``: the one person dressed among several) or the map shows no upper body."""
    classes = np.asarray(classes)
    body = np.isin(classes, [names.index(name) for name in UPPER_BODY if name in names])
    trunk = np.isin(classes, [names.index(name) for name in UPPER_BODY if name in names and name != "arms"])
    rows = _body_rows(trunk.sum(axis=1))  # (arms are left out here: a parser takes bare legs for them)
    if rows is None:
        return None
    cols = np.nonzero(body[rows[0] : rows[1]].any(axis=0))[0]
    x0, y0, x1, y1 = plane
    sx, sy = (x1 - x0) / body.shape[1], (y1 - y0) / body.shape[0]
    top, bottom = y0 + rows[0] * sy, y0 + rows[1] * sy
    box = (x0 + cols[0] * sx, top, x0 + (cols[-1] + 1) * sx, bottom + BELOW_UPPER_BODY * (bottom - top))
    window = fit_window(box, size, WINDOW_MARGIN)
    # the whole photo letterboxed (a photo wider than the frame: taller than the photo)
    whole = fit_window((0.0, 0.0, float(photo_size[0]), float(photo_size[1])), size, 0.0)
    return window if always or window[3] - window[1] < ZOOM_BELOW * (whole[3] - whole[1]) else None


def _body_rows(counts: np.ndarray) -> tuple[int, int] | None:
    """The rows [start, stop) of the upper body: the rows around the fullest one that hold
    more than stray pixels, across gaps of ``GAP_ABOVE`` above it and ``GAP_BELOW`` below."""
    if counts.max() == 0:
        return None
    present = counts >= max(1, 0.05 * counts.max())
    peak = int(np.argmax(counts))
    ends = []
    for step, share in ((-1, GAP_ABOVE), (1, GAP_BELOW)):
        gap = max(2, round(share * counts.size))
        end, row, missed = peak, peak, 0
        while 0 <= row + step < counts.size and missed <= gap:
            row += step
            end, missed = (row, 0) if present[row] else (end, missed + 1)
        ends.append(end)
    return ends[0], ends[1] + 1


def fit_person(photo: Image.Image, size: tuple[int, int], window: Box | None = None) -> tuple[np.ndarray, Box]:
    """The person photo on white at ``size`` (h, w): the whole photo letterboxed, or
    ``window`` of it (``upper_body_window``); and the window shown."""
    if window is None:
        return letterbox(photo, size, (255, 255, 255))
    return crop_photo(photo, window, size, (255, 255, 255)), window


def fit_labels(labels: Image.Image, photo_size: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """A class map (mode L) of the photo, letterboxed like it with nearest neighbours: [h, w]."""
    if labels.size != photo_size:
        labels = labels.resize(photo_size, Image.Resampling.NEAREST)
    return letterbox(labels, size, 0, Image.Resampling.NEAREST)[0]


def labels_in_frame(
    parsed: tuple[Image.Image, Box], photo_size: tuple[int, int], window: Box, size: tuple[int, int]
) -> np.ndarray:
    """A parser's class map (over the plane showing ``parsed[1]`` of the photo) in the frame
    that shows ``window`` at ``size`` (h, w): [h, w] class indices."""
    classes, parsed_window = parsed[:2]  # (a dresser's parse also says whether it shows a garment alone)
    if np.allclose(parsed_window, window, atol=1e-6):  # the same plane (the same aspect): rescale it
        return np.asarray(classes.resize(size[::-1], Image.Resampling.NEAREST))
    on_photo = window_to_photo(classes, parsed_window, photo_size, Image.Resampling.NEAREST)
    return fit_labels(on_photo, photo_size, size)


def window_to_photo(image: Image.Image, window: Box, photo_size: tuple[int, int], resample) -> Image.Image:
    """A model-frame image (``window`` of the photo fills it) cropped and scaled to the photo;
    where the window is inside the photo (a zoomed look), the rest of the photo is 0."""
    x0, y0, x1, y1 = window
    sx, sy = image.width / (x1 - x0), image.height / (y1 - y0)
    # the photo pixels the window covers whole (all of them for a letterboxed photo)
    left, top = max(0, math.ceil(x0)), max(0, math.ceil(y0))
    right, bottom = min(photo_size[0], math.floor(x1)), min(photo_size[1], math.floor(y1))
    box = ((left - x0) * sx, (top - y0) * sy, (right - x0) * sx, (bottom - y0) * sy)
    part = image.resize((right - left, bottom - top), resample, box=box)
    if (left, top, right, bottom) == (0, 0, *photo_size):
        return part
    canvas = Image.new(image.mode, photo_size, 0)
    canvas.paste(part, (left, top))
    return canvas


def fit_person_and_labels(
    photo: Image.Image, labels: Image.Image, size: tuple[int, int], names: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray, Box]:
    """A person photo and its class map (mode L, the photo's shape at any resolution) fitted
    as serving fits a person (``Dresser``): the whole photo letterboxed, or where the upper
    body is small in it, the window ``upper_body_window`` frames. ([h, w, 3], [h, w], the
    window.) Training and ``evaluate`` fit their pairs by it."""
    if labels.size != photo.size:
        labels = labels.resize(photo.size, Image.Resampling.NEAREST)
    whole = (0.0, 0.0, float(photo.width), float(photo.height))
    person, window = fit_person(photo, size, upper_body_window(np.asarray(labels), whole, photo.size, size, names))
    return person, crop_labels(labels, window, size), window  # (the letterboxed window too: fit_labels')


def fit_at_resolution(
    photo: Image.Image, window: Box, garment: Image.Image, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """A photo-resolution try-on's ``photo`` and ``garment_photo`` at ``size`` (h, w): the
    person photo's ``window`` on white and the catalog garment (as ``framed_garment`` gives it)
    letterboxed, as ``fit_person`` and ``framed_garment`` fit them at the model size."""
    return crop_photo(photo, window, size, (255, 255, 255)), letterbox(garment, size, backdrop_of(garment))[0]


def fit_garment(garment: Image.Image, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The catalog garment letterboxed on white, and its silhouette: ([h, w, 3], [h, w, 1]),
    reframed where it was framed loosely (``framed_garment``)."""
    return framed_garment(garment, size)[1:]


def _one_of_several(garment: Image.Image, mask: np.ndarray, window: Box) -> Image.Image | None:
    """Where the silhouette (``mask``, bool, over the letterboxed ``garment``: ``window`` of it)
    holds several garments apart (``silhouette.one_of_several``: a product's front and back
    views), the band of the image holding the one taken; else None."""
    one = one_of_several(mask)
    if one is None:
        return None
    across, start, stop = one
    length = mask.shape[1 if across else 0]
    lo_w, hi_w = (window[0], window[2]) if across else (window[1], window[3])  # the frame in image pixels
    scale = (hi_w - lo_w) / length
    lo, hi = max(0, round(lo_w + start * scale)), round(lo_w + stop * scale)
    if across:
        return garment.crop((lo, 0, min(garment.width, hi), garment.height))
    return garment.crop((0, lo, garment.width, min(garment.height, hi)))


def backdrop_of(garment: Image.Image) -> tuple[int, int, int]:
    """The colour a catalog garment is letterboxed on: its own border's (the median of its edge
    pixels) where that is white within ``SILHOUETTE_TOLERANCE`` (a studio's 246 grey: padded
    with pure white around it, its silhouette took the whole image for the garment), else white."""
    colour = np.median(edge_pixels(garment), axis=0).astype(int)
    return tuple(int(c) for c in colour) if (255 - colour).max() <= SILHOUETTE_TOLERANCE else (255, 255, 255)


def framed_garment(garment: Image.Image, size: tuple[int, int]) -> tuple[Image.Image, np.ndarray, np.ndarray]:
    """The catalog garment as a try-on network sees it: the garment image, the array
    letterboxed at ``size`` (h, w) on white (or the image's own near-white: ``backdrop_of``) and
    its silhouette ([h, w, 3], [h, w, 1]). A garment
    that fills less than ``FRAME_FILL`` of the frame both ways (a shop's square image, wide
    margins, a flat lay in a corner) is first cut from its image as VITON frames a catalog
    garment (``GARMENT_WIDTH``, ``GARMENT_HEIGHT``, ``TOP_SLACK``), at the image's own
    resolution: the returned image is that crop (what a photo-resolution try-on samples). An
    image of several garments apart (``_one_of_several``: a product's front and back views side
    by side) is cut to one of them first."""
    white = backdrop_of(garment)
    image, window = letterbox(garment, size, white)
    mask = garment_silhouette(image)
    one = _one_of_several(garment, mask, window)
    if one is not None:  # (front and back views side by side: the image cut to one of them)
        garment, white = one, backdrop_of(one)
        image, window = letterbox(garment, size, white)
        mask = garment_silhouette(image)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    h, w = size
    if not len(rows) or max((rows[-1] + 1 - rows[0]) / h, (cols[-1] + 1 - cols[0]) / w) >= FRAME_FILL:
        return garment, image, mask.astype(np.uint8)[:, :, None] * 255
    sx, sy = (window[2] - window[0]) / w, (window[3] - window[1]) / h  # frame pixels -> image pixels
    x0, x1 = window[0] + cols[0] * sx, window[0] + (cols[-1] + 1) * sx
    y0, y1 = window[1] + rows[0] * sy, window[1] + (rows[-1] + 1) * sy
    across = max((x1 - x0) / GARMENT_WIDTH, (y1 - y0) / GARMENT_HEIGHT * w / h)
    down = across * h / w
    top = y0 - (down - (y1 - y0)) * TOP_SLACK
    left = (x0 + x1 - across) / 2
    shape = (max(1, round(down)), max(1, round(across)))
    framed = Image.fromarray(crop_photo(garment, (left, top, left + across, top + down), shape, white))
    image = letterbox(framed, size, white)[0]
    return framed, image, garment_silhouette(image).astype(np.uint8)[:, :, None] * 255
