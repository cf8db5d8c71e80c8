"""A garment's silhouette in a catalog image: what is not the background around it.

Used where the runtime needs a garment's shape from a catalog image (try-on's garment
mask; which of a product image's views to take, for try-on and ``extract`` alike) and by
training and ``evaluate`` (a generator's alpha target and its score).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

from .fitting import Box, frame_edge, within

# A catalog pixel may count as background when every channel is within this of the
# background colour (JPEG noise around a garment's edge reaches ~8-12 levels)...
SILHOUETTE_TOLERANCE = 12
# ...but only within HALO_PX of background that is within STRICT_TOLERANCE of it. A white
# garment's inside sits 3-12 levels off white, so the loose fill alone runs into it through
# any gap in its outline (a tenth of VITON's white tops kept under 13% of the frame); the strict
# fill stops at the garment, and the halo keeps the JPEG ringing around a dark garment's
# edge, which only the loose tolerance takes in, out of the silhouette.
STRICT_TOLERANCE = 3
HALO_PX = 2
# The background is the expected colour (white) where at least this share of the border is
# near it; else a backdrop of the border's own colour where this share is near its median.
UNIFORM_BORDER = 0.5
# A garment whose inside is within STRICT_TOLERANCE of the background (a white T-shirt on a
# studio's 246 grey: 244-246) is held only by its faint outline, and the strict fill runs in
# through any gap in it. The fill is made again with the outline's gaps up to
# 2 x ceil(min(H, W) / GAP_FRACTION) px wide closed (grown back up to them, never through),
# and taken where it gives the garment at least GROWTH times the area: such a garment lost
# most of its body. Closing also seals the narrow background channel between a sleeve and
# the body, a few percent of a garment's area: below GROWTH, so other garments stay as the
# plain fill finds them (1,518 of VITON's 1,528 validation catalog images, unchanged).
GAP_FRACTION, GROWTH = 64, 1.25
# ...and only a light, near-neutral colour is taken for a backdrop (studio greys and beiges,
# a shop's pale colour): a dark or saturated border is a garment that fills the frame (a
# close-up of a navy top), which is all garment.
BACKDROP_MIN, BACKDROP_SPREAD = 160, 48
# Parts of a silhouette of at least SEVERAL times the largest's area, apart side by side or one
# above the other, are garments of their own (a product's front and back views); of those within
# NEAR_TIE of the largest, the first is the one taken (left, or top: where shops put the front).
SEVERAL, NEAR_TIE = 0.5, 0.85
# Two sides of a silhouette cut between a garment's views are alike: their boxes' sides and
# their areas within ALIKE of each other (a product's front and back views; ``one_view``).
# Measured at the first look: 500 VITON catalog images beside or above their mirror image, cut
# at a gap in the silhouette (379) or the parse (27): the least of the three ratios at least
# 0.946 and 0.842 (one); two catalog images of one garment whose parse lost its middle (of the
# 1,528 validation ones on four backdrops), cut there: 0.66 and 0.68 (e2e-garment-product-images.txt).
ALIKE = 0.85
# A part of a product image's silhouette apart from the garment, from SWATCH_LEAST to SEVERAL of
# its area, that fills at least SWATCH_FILL of its box and is at most SWATCH_ASPECT times as long
# as wide is a swatch of its fabric (a shop's colour swatch beside the garment), no part of the
# garment; smaller parts are specks (of a grain, a JPEG's noise), as they were.
SWATCH_LEAST, SWATCH_FILL, SWATCH_ASPECT = 0.01, 0.9, 2.0
SWATCH_CORE = 3  # (pixels at the parser's size: a swatch of 1% of a garment there is 15 or more across)


def _row_runs(free: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each ``free`` pixel's row run, numbered from 1 in row-major order (int32 [h, w]; 0: not
    free), and each run's first pixel (flat indices, run 1's first)."""
    starts = free.copy()
    starts[:, 1:] &= ~free[:, :-1]
    return np.cumsum(starts.ravel(), dtype=np.int32).reshape(free.shape) * free, np.flatnonzero(starts)


def _pieces_of_runs(free: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 4-connected pieces of ``free`` (bool [h, w]) as its row runs (``_row_runs``), and each
    run's piece: its least run number (index 0: no run). Runs in rows next to each other that
    share a column are joined: each round hooks every piece to the least it touches and then
    points every run straight at its piece's, until no two joined runs are in two pieces (a few
    rounds over a few thousand runs, where flooding the pixels takes a round per turn of a
    channel through them)."""
    runs, starts = _row_runs(free)
    both = free[:-1] & free[1:]
    upper, lower = runs[:-1][both], runs[1:][both]  # (a pair of runs once for each column they share)
    if len(upper):
        new = np.ones(len(upper), bool)
        new[1:] = (upper[1:] != upper[:-1]) | (lower[1:] != lower[:-1])
        upper, lower = upper[new], lower[new]
    root = np.arange(len(starts) + 1)
    while True:
        a, b = root[upper], root[lower]
        apart = a != b
        if not apart.any():
            return runs, starts, root
        a, b = a[apart], b[apart]
        np.minimum.at(root, np.maximum(a, b), np.minimum(a, b))  # (a and b are pieces' own runs)
        while True:
            up = root[root]
            if np.array_equal(up, root):
                break
            root = up


def reached_from_border(free: np.ndarray) -> np.ndarray:
    """The ``free`` pixels connected to the image's border through ``free`` pixels."""
    seed = np.zeros_like(free)
    seed[0], seed[-1], seed[:, 0], seed[:, -1] = free[0], free[-1], free[:, 0], free[:, -1]
    return reached_from(seed, free)


def reached_from(seed: np.ndarray, free: np.ndarray) -> np.ndarray:
    """The ``free`` pixels connected to a ``seed`` pixel (bool [h, w] both) through ``free``
    pixels, 4-connected: the pieces (``_pieces_of_runs``) that hold a seed."""
    runs, _, root = _pieces_of_runs(free)
    hit = np.zeros(len(root), bool)
    hit[root[runs[seed & free]]] = True
    return hit[root][runs]


def labelled(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 4-connected pieces of ``mask`` (bool [h, w]) all at once: its pixels' flat indices
    (row-major) and, for each, its piece's number (the least flat index in it: the first pixel
    of its least run, ``_pieces_of_runs``)."""
    where = np.flatnonzero(mask)
    runs, starts, root = _pieces_of_runs(mask)
    first = np.concatenate(([0], starts))
    return where, first[root[runs.ravel()[where]]]


def pieces(mask: np.ndarray, least: float = 1) -> Iterator[np.ndarray]:
    """The 4-connected pieces (bool [h, w] each) of ``mask`` with at least ``least`` pixels, one
    at a time, top to bottom by their first pixel. (One labelling, ``labelled``: a speckled mask's
    hundreds of pieces cost no flood each.)"""
    where, number = labelled(mask)
    order = np.argsort(number, kind="stable")
    _, sizes = np.unique(number, return_counts=True)  # (ascending roots: by their first pixel)
    for size, end in zip(sizes.tolist(), np.cumsum(sizes).tolist(), strict=True):
        if size >= least:
            piece = np.zeros(mask.shape, bool)
            piece.flat[where[order[end - size : end]]] = True
            yield piece


def one_of_several(mask: np.ndarray) -> tuple[bool, float, float] | None:
    """Where ``mask`` (bool [h, w]) holds several garments apart (``SEVERAL``, ``NEAR_TIE``: a
    product's front and back views), the band of it that holds one: (across, start, stop), the
    columns (``across``: side by side) or rows (one above the other) from ``start`` to ``stop``,
    cut halfway across the gaps to its neighbours; else None."""
    parts = list(itertools.islice(pieces(mask), 32))  # (specks beyond the 32nd part: no garment)
    areas = [int(part.sum()) for part in parts]
    big = [part for part, area in zip(parts, areas, strict=True) if area >= SEVERAL * max(areas, default=0)]
    if len(big) < 2:
        return None
    for across in (True, False):  # side by side (their columns apart), or one above the other (their rows)
        spans = []
        for part in big:
            on = np.flatnonzero(part.any(axis=0 if across else 1))
            spans.append((int(on[0]), int(on[-1]) + 1, int(part.sum())))
        spans.sort()
        if any(a[1] > b[0] for a, b in zip(spans, spans[1:], strict=False)):
            continue  # (they overlap this way)
        largest = max(area for _, _, area in spans)
        k = next(i for i, (_, _, area) in enumerate(spans) if area >= NEAR_TIE * largest)
        start = (spans[k - 1][1] + spans[k][0]) / 2 if k else 0.0
        stop = (spans[k][1] + spans[k + 1][0]) / 2 if k + 1 < len(spans) else float(mask.shape[1 if across else 0])
        return across, start, stop
    return None


def one_view(plane: np.ndarray, silhouette: np.ndarray, threshold: int) -> tuple[np.ndarray, Box | None]:
    """A garment plane (``alone.alone_garment``'s, at ``threshold``) that holds several views of
    a garment apart (``one_of_several``: a product image of its front and back side by side or
    one above the other) cut to the band of the one taken, and the band (plane pixels:
    ``alone.framed`` looks for its silhouette there only); as it is and None where it holds
    one. The parts are told apart in the photo's own ``silhouette`` (bool, like ``plane``), else
    in the plane (views whose edges touch are one piece of the silhouette), by an empty row or
    column between them (``_gapped``; parts that touch corner to corner are one), and are views
    where the silhouette's two sides of the cut are alike (``_alike``: a parse that loses a
    garment's middle is two parts of it, a top laid beside trousers two garments)."""
    for parts in (silhouette, plane >= threshold):
        one = one_of_several(parts) if _gapped(parts) else None  # (most garments: no row or column free)
        band = None if one is None else _band(one, plane.shape)
        if band is not None and _alike(silhouette, band):
            return within(plane, band), band
    return plane, None


def swatches(silhouette: np.ndarray) -> np.ndarray | None:
    """The parts (bool, like ``silhouette``) of a product image's silhouette that are swatches of
    its fabric beside the garment (``SWATCH_LEAST``, ``SWATCH_FILL``, ``SWATCH_ASPECT``: small
    filled rectangles apart from the largest part), grown by two pixels away from it; None where
    there are none. The parts are found in the silhouette shrunk by ``SWATCH_CORE`` pixels (a
    swatch's core; specks of a grain or a JPEG's noise are gone there, one flood each spared)."""
    core = ~dilate(~silhouette, SWATCH_CORE)
    seeds = list(itertools.islice(pieces(core), 32))
    if len(seeds) < 2:
        return None
    parts = [reached_from(seed, silhouette) for seed in seeds]
    areas = [int(part.sum()) for part in parts]
    largest = parts[int(np.argmax(areas))]
    found = np.zeros_like(silhouette)
    for part, area in zip(parts, areas, strict=True):
        rows, cols = np.flatnonzero(part.any(1)), np.flatnonzero(part.any(0))
        h, w = rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0]
        small = SWATCH_LEAST * max(areas) <= area < SEVERAL * max(areas)
        if small and area >= SWATCH_FILL * h * w and max(h, w) <= SWATCH_ASPECT * min(h, w):
            found |= part
    return dilate(found, 2) & ~largest if found.any() else None


def _gapped(parts: np.ndarray) -> bool:
    """Whether an empty column or row of ``parts`` (bool) lies between its first and last ones:
    parts apart (views, or a speck) leave one; a garment in one piece does not."""
    for axis in (0, 1):
        on = np.flatnonzero(parts.any(axis))
        if len(on) and on[-1] + 1 - on[0] > len(on):
            return True
    return False


def _band(one: tuple[bool, float, float], shape: tuple[int, int]) -> Box:
    """``one_of_several``'s answer as a box (x0, y0, x1, y1) of a plane of ``shape`` (h, w)."""
    across, start, stop = one
    lo, hi = round(start), round(stop)
    return (lo, 0, hi, shape[0]) if across else (0, lo, shape[1], hi)


def _alike(silhouette: np.ndarray, band: Box) -> bool:
    """Whether ``silhouette`` (bool) within ``band`` and outside it are alike: their boxes' width
    and height and their areas each within ``ALIKE`` of the other's."""
    x0, y0, x1, y1 = band
    inside = np.zeros_like(silhouette)
    inside[y0:y1, x0:x1] = True
    sizes = []
    for part in (silhouette & inside, silhouette & ~inside):
        rows, cols = np.flatnonzero(part.any(1)), np.flatnonzero(part.any(0))
        if not len(rows):
            return False
        sizes.append(np.array([rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0], part.sum()], float))
    return bool((np.minimum(*sizes) >= ALIKE * np.maximum(*sizes)).all())


def channel_max(values: np.ndarray) -> np.ndarray:
    """The largest of the three channels of ``values`` [h, w, 3] (faster than ``max(axis=-1)``)."""
    return np.maximum(np.maximum(values[..., 0], values[..., 1]), values[..., 2])


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """``mask`` grown by ``radius`` pixels each way (a square): a max filter, by rows then columns."""
    wide = mask.copy()
    for shift in range(1, radius + 1):
        wide[:, shift:] |= mask[:, :-shift]
        wide[:, :-shift] |= mask[:, shift:]
    grown = wide.copy()
    for shift in range(1, radius + 1):
        grown[shift:] |= wide[:-shift]
        grown[:-shift] |= wide[shift:]
    return grown


def _background_colour(rgb: np.ndarray, expected: np.ndarray, tolerance: int) -> np.ndarray:
    """The image's own background colour: the median of its border pixels near ``expected``
    where most of the border is (a studio's white is often 244-250, not 255); else the
    border's own colour where most of it is one light, near-neutral colour (a grey or beige
    studio, a shop's pale backdrop: a few whitish pixels of the garment on the border do
    not make it white); else
    the median of the few near ``expected``, or ``expected``."""
    border = frame_edge(rgb)
    near = border[np.all(np.abs(border - expected) <= tolerance, axis=-1)]
    if len(near) >= UNIFORM_BORDER * len(border):
        return np.median(near, axis=0).astype(np.int16)
    own = np.median(border, axis=0).astype(np.int16)
    backdrop = own.min() >= BACKDROP_MIN and int(own.max() - own.min()) <= BACKDROP_SPREAD  # light and greyish
    if backdrop and np.all(np.abs(border - own) <= tolerance, axis=-1).mean() >= UNIFORM_BORDER:
        return own
    return np.median(near, axis=0).astype(np.int16) if len(near) else expected


def garment_silhouette(garment: np.ndarray, background=(255, 255, 255), tolerance: int = SILHOUETTE_TOLERANCE):
    """The garment's silhouette in a catalog image (uint8 [H, W, 3]): bool [H, W].

    Background is what is connected to the image's border through pixels within
    ``tolerance`` of the background colour (the border's own: near ``background``, or a
    backdrop of one colour) and lies
    within ``HALO_PX`` of background within ``STRICT_TOLERANCE`` of it (with the gaps of a
    faint outline closed where that gives the garment ``GROWTH`` times the area); everything
    else, white prints and a white garment's inside included, is the garment. Training learns a
    generator's alpha from it, and ``evaluate`` scores that alpha against it.
    """
    rgb = np.asarray(garment, dtype=np.int16)
    reference = _background_colour(rgb, np.asarray(background, np.int16), tolerance)
    deviation = channel_max(np.abs(rgb - reference))
    loose = reached_from_border(deviation <= tolerance)
    free = deviation <= min(STRICT_TOLERANCE, tolerance)
    found = ~(loose & dilate(reached_from_border(free), HALO_PX))
    gap = -(-min(free.shape) // GAP_FRACTION)
    closed = ~(loose & dilate(_reached_with_gaps_closed(free, gap), HALO_PX))
    return closed if closed.sum() >= GROWTH * found.sum() else found


def _reached_with_gaps_closed(free: np.ndarray, radius: int) -> np.ndarray:
    """``reached_from_border`` where gaps up to ``2 * radius`` pixels wide in what is not
    ``free`` are closed: the fill runs through ``free`` pixels at least ``radius`` from anything not
    free, then grows back ``radius`` pixels through free ones (up to a closed gap, never
    through it)."""
    reached = reached_from_border(free & ~dilate(~free, radius))
    for _ in range(radius):
        reached = dilate(reached, 1) & free
    return reached
