"""The garment's share of its page (``--fill``): its box found, scaled and centred.

A generator frames a garment as the catalog images it learned from frame theirs: VITON's fill
~95% of a 3:4 frame's height or width, so a long shirt and a cropped top reach the frame's edges
alike and, on a square page, cover ~71% of its width. A shop may want every garment framed by
one rule instead: Amazon's main images are to be filled 85% by the product. ``placer`` gives the
function that brings a drawn garment (and its alpha, alike) onto a page of a given size with its
box scaled so that its longer side, relative to the page's, fills that share, centred: one
resampling of the drawn pixels (a garment drawn small is brought up, bicubic, no detail added).

The box is where the silhouette is at least half (``GARMENT_ALPHA``: the half-way line the matte
draws the edge on; below it a faint veil covers the whole frame), or, for a generator without a
silhouette, where the garment on white is not white (``OFF_WHITE``: a white garment's own edge
can be lost to it; a silhouette finds it). Rows and columns with only a speck of garment
(``SPECK_SHARE`` of the side) are not counted. A page with no garment on it is the drawn frame,
contained and centred, as without ``fill``: nothing is made up where nothing was drawn.

On white, a drawn garment with a silhouette is laid on its page by it (``on_white``, in
``Plan.page``: a filled one, or one on a page of another aspect): a generator draws a grey haze
around a garment (the bundled one's averages 236 where the catalog image is white), which would
show the drawn frame's edge as a rectangle on the page's white margin. A garment cut out of its
photo (``alone.cut_out``) is on white by its alpha already: its outputs say so (``LAID``).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from PIL import Image

from .fitting import crop_resize, fit_window

GARMENT_ALPHA = 128  # silhouette at least this: garment
OFF_WHITE = 24  # a pixel of a garment on white this far from white in a channel: garment
SPECK_SHARE = 0.005  # a row or column with fewer garment pixels than this share of its length: a speck
MIN_FILL, MAX_FILL = 0.1, 1.0
LAID = "laid_on_white"  # in a garment's outputs: its garment is on white by its alpha already (a cut-out)


def parse_fill(value: object) -> float:
    """``85%`` or ``0.85`` (a share of the page, 10% to 100%) -> 0.85; ``ValueError`` that says
    what is accepted otherwise (``85`` with no ``%`` is refused: a share of 85 pages)."""
    text = str(value).strip()
    try:
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        share = float("nan")
    if isinstance(value, bool) or not MIN_FILL <= share <= MAX_FILL:  # (NaN fails both)
        raise ValueError(f"fill is the garment's share of the page, 10% to 100% (85% or 0.85), got {value!r}")
    return share


def garment_box(garment: np.ndarray, alpha: np.ndarray | None) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1), ends excluded, of the garment in ``garment`` (uint8 [H, W, 3] on white)
    by its ``alpha`` ([H, W] or [H, W, 1]) or, without one, by what is not white; None where there
    is none (module docstring)."""
    height, width = garment.shape[:2]
    if alpha is not None:
        shown = alpha.reshape(height, width) >= GARMENT_ALPHA
    else:
        shown = (255 - garment.min(axis=2)) > OFF_WHITE  # (the palest channel: a pale yellow is garment)
    rows = np.flatnonzero(shown.sum(axis=1) >= max(2, round(SPECK_SHARE * width)))
    columns = np.flatnonzero(shown.sum(axis=0) >= max(2, round(SPECK_SHARE * height)))
    if rows.size == 0 or columns.size == 0:
        return None
    return int(columns[0]), int(rows[0]), int(columns[-1]) + 1, int(rows[-1]) + 1


def on_white(garment: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``garment`` (uint8 [H, W, 3], as drawn on white) laid on pure white by its ``alpha`` ([H, W]
    or [H, W, 1]): its own colours where the silhouette is whole, white where it is none."""
    a = alpha.reshape(*garment.shape[:2], 1).astype(np.float32) / 255.0
    return np.rint(garment * a + 255.0 * (1.0 - a)).astype(np.uint8)


def window_for(
    box: tuple[int, int, int, int] | None, drawn: tuple[int, int], page: tuple[int, int], fill: float
) -> tuple[float, float, float, float]:
    """The part (x0, y0, x1, y1) of the drawn frame (``drawn``: height, width) that a ``page``
    (height, width) shows where ``box`` fills ``fill`` of it; may reach past the frame (the page's
    margin). No box: the whole frame, contained (the page as it is without ``fill``)."""
    if box is None:
        return fit_window((0.0, 0.0, float(drawn[1]), float(drawn[0])), page, 0.0)
    return fit_window(box, page, (1.0 / fill - 1.0) / 2)  # (grown by 1/fill: the box is fill of its longer side)


def placer(
    garment: np.ndarray, alpha: np.ndarray | None, page: tuple[int, int] | None, fill: float
) -> Callable[[np.ndarray], np.ndarray]:
    """The function that brings an image drawn as ``garment`` is (the garment on white, uint8 [H, W,
    3]; or its alpha, [H, W]) onto a ``page`` (height, width; None: the drawn size) with the
    garment's box filling ``fill`` of it, centred; past the drawn frame, white (alpha: 0)."""
    drawn = garment.shape[:2]
    size = tuple(page) if page is not None else drawn
    window = window_for(garment_box(garment, alpha), drawn, size, fill)

    def place(image: np.ndarray) -> np.ndarray:
        grey = image.ndim == 2
        picture = Image.fromarray(image, "L" if grey else "RGB")
        return np.asarray(crop_resize(picture, window, size, 0 if grey else (255, 255, 255), Image.Resampling.BICUBIC))

    return place
