"""A generated garment's edge settled for a page that is not white (``settled``).

The generator draws the garment on white and, with a head of its own, the garment's
silhouette (``alpha``). The two edges do not agree: the head's soft edge reaches a few pixels
past the rendering's, where the rendering is already white or a blend of the garment's colour
and white. Un-composed from white for a transparent or coloured background, those pixels come
out pale: a pale glow around every dark or saturated garment, and pale wedges where a sleeve
hangs beside the body, on any page but white.

``settled`` reads each pixel of the head's soft edge (alpha below ``SURE``) along the line from
white to the colour of the garment the head is sure of nearby: the share of the garment's
colour it holds. Where the head calls it background (alpha below half), its alpha drops to that
share (never rises): the glow goes. Where the head calls it garment, its alpha (the shape) stays
and the white it shows is painted in the nearby garment's colour. Only the soft edge within
``PEEL_STEPS`` steps of ``PEEL_PX`` of the outside is touched (a pale patch deep inside the
garment is the rendering's, not its edge's), outside only as far from the inside and where the
alpha is at least ``FAINT``, and only where the nearby garment is far from white and of one
colour: a white or pale garment's edge cannot be told from the white around it, and a striped
or printed garment's light parts are its own. The head's alpha also never quite reaches 0 on the
page: a veil of 1-60 over much of the frame where the rendering is white, a grey haze around the
garment on a dark page. Where the rendering is white (within ``CLEAR_LEVELS``) and the alpha is
under half, past that band or under ``FAINT`` in it, the alpha is cleared to 0; whatever the
rendering draws there keeps its alpha. ``apply_background`` runs it for a transparent or
coloured background, never for white: the garment on white stays exactly the generator's. (A
garment cut out of a photo, shown alone, goes through it too: its alpha's edge is crisp, under a
pixel wide at 256x192 on VITON's and VITON-HD's catalog images, and it is left as it is.)
``uncomposed`` then takes the settled garment off its white, and lays it on a colour.
"""

from __future__ import annotations

import functools

import numpy as np

from .silhouette import dilate

SURE = 250  # alpha the head is sure of: its garment; below it, its soft edge
REFERENCE_SIDE = 192  # pixel sizes below are at a frame this many pixels on its shorter side (256x192)
NEAR_PX = (2, 4, 8, 16, 32)  # the garment colour a pixel is read against: the nearest of these boxes holding it
SPREAD_PX = 8  # the box whose colour spread says whether the nearby garment is of one colour
SPREAD_ONE, SPREAD_MANY = 15.0, 35.0  # levels (per channel): one colour up to SPREAD_ONE, patterned past SPREAD_MANY
WHITE_NEAR, WHITE_FAR = 30.0, 80.0  # the garment's distance from white: no telling it from white up to NEAR
PEEL_PX, PEEL_STEPS = 2, 4  # how far into the garment (and out of it) the edge is read: 8 px
FAINT = 8  # alpha below this is not read against the garment (3% of a glow: a few levels on any page)
CLEAR_LEVELS = 12  # a rendering within this many levels of white (every channel) shows no garment there
BLOCK_PX = 2  # the colours are summed in blocks of this many (reference) pixels a side
NARROW_PX = 1.5  # a soft edge narrower than this on average is crisp (a cut-out's: 0.1-0.6; the U-Net's: 4-45)


def settled(garment: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(garment, alpha): ``garment`` (uint8 [H, W, 3], on white) and its ``alpha`` (uint8 [H, W]
    or [H, W, 1], 255 = garment) with the soft edge settled (module docstring); the same shapes
    and dtypes, untouched pixels as they were."""
    a_all = alpha.reshape(garment.shape[:2])
    unsure = a_all < SURE
    if not unsure.any() or unsure.all():
        return garment, alpha
    scale = min(a_all.shape) / REFERENCE_SIDE
    outside = a_all < 128
    edge = outside & dilate(~outside, 1)  # the half-way line, its outer side
    if (unsure & (a_all >= FAINT)).sum() < NARROW_PX * scale * edge.sum():  # a crisp edge: no glow to settle
        return garment, alpha
    reach, step = outside, max(1, round(PEEL_PX * scale))
    for _ in range(PEEL_STEPS):  # the soft edge inside, from the outside in
        reach = unsure & dilate(reach, step)
    # and outside, as far from the inside, where anything is left to lower
    band = dilate(~outside, step * PEEL_STEPS)
    reach = (reach & ~outside) | (outside & (a_all >= FAINT) & band)
    # Past the band, or faint, an alpha where the rendering is white is a veil: cleared.
    palest = np.minimum(np.minimum(garment[..., 0], garment[..., 1]), garment[..., 2])
    clear = outside & (palest >= 255 - CLEAR_LEVELS) & (~band | (a_all < FAINT)) & (a_all > 0)
    alpha_out = a_all.copy()
    alpha_out[clear] = 0  # (no pixel of it is in ``reach``, which needs the band and FAINT outside)
    ys, xs = np.nonzero(reach)
    if ys.size == 0:
        return garment, alpha_out.reshape(alpha.shape)
    g = garment[ys, xs].astype(np.float32)
    a = a_all[ys, xs].astype(np.float32)[:, None] / 255.0
    colour, spread, found = _garment_colour(garment, ~unsure, ys, xs, scale)
    away = 255.0 - colour  # the nearby garment's colour, from white
    far = np.sqrt((away * away).sum(-1))
    share = np.clip(((255.0 - g) * away).sum(-1) / np.maximum(far * far, 1.0), 0.0, 1.0)[:, None]
    trust = (found * _ramp(far, WHITE_NEAR, WHITE_FAR) * (1.0 - _ramp(spread, SPREAD_ONE, SPREAD_MANY)))[:, None]
    out = outside[ys, xs][:, None]
    # Outside: the alpha drops to the share, the pixel stays (un-composed with the lower alpha, its
    # colour is the garment's, not a pale one). Inside: the alpha stays; un-composed, the pixel is
    # the garment's colour and (1 - share / alpha) of white: that white is painted the garment's.
    lowered = np.where(out, a + trust * (np.minimum(a, share) - a), a)
    paint = np.where(out, 0.0, trust * np.clip(1.0 - share / np.maximum(a, 1e-3), 0.0, 1.0))
    own = (g - (1.0 - a) * 255.0) / np.maximum(a, 1.0 / 255.0)  # un-composed from white
    painted = a * np.clip(own + paint * (colour - 255.0), 0.0, 255.0) + (1.0 - a) * 255.0  # its white, replaced
    garment_out = garment.copy()
    garment_out[ys, xs] = np.where(paint > 0, np.rint(painted), g).astype(np.uint8)
    alpha_out[ys, xs] = np.where(lowered < a, np.rint(lowered * 255.0), a_all[ys, xs, None]).astype(np.uint8)[:, 0]
    return garment_out, alpha_out.reshape(alpha.shape)


def _garment_colour(garment: np.ndarray, sure: np.ndarray, ys: np.ndarray, xs: np.ndarray, scale: float):
    """At the pixels (``ys``, ``xs``): the mean colour of the garment the head is ``sure`` of
    (as it is on white: there the alpha is nearly 1) in the nearest box (``NEAR_PX``) holding
    some, its spread (levels per channel, over ``SPREAD_PX``), and whether any was found (float
    0/1). Box sums from one summed-area table of blocks (``BLOCK_PX`` reference pixels a side)
    over the pixels' surroundings, read only where asked."""
    k = max(1, int(BLOCK_PX * scale))
    around = k * (round(max(NEAR_PX + (SPREAD_PX,)) * scale / k) + 2)  # the boxes' reach, whole blocks
    top, left = max(0, int(ys.min()) - around) // k * k, max(0, int(xs.min()) - around) // k * k
    bottom, right = int(ys.max()) + around + 1, int(xs.max()) + around + 1
    sure, garment, ys, xs = sure[top:bottom, left:right], garment[top:bottom, left:right], ys - top, xs - left
    h, w = -(-sure.shape[0] // k), -(-sure.shape[1] // k)
    pad = ((0, h * k - sure.shape[0]), (0, w * k - sure.shape[1]))
    held = np.pad(sure, pad)
    rgb = np.pad(garment, pad + ((0, 0),)) * held[..., None]
    pixels = np.concatenate([held[..., None], rgb, (rgb.astype(np.int32) ** 2).sum(-1, keepdims=True)], -1)
    blocks = sum(pixels[i::k, j::k].astype(np.int64) for i in range(k) for j in range(k))  # (exact: integers)
    table = np.zeros((h + 1, w + 1, 5), np.int64)
    table[1:, 1:] = blocks.cumsum(0).cumsum(1)
    table = table.reshape(-1, 5)
    ys, xs = ys // k, xs // k

    def box(px: int, at: np.ndarray) -> np.ndarray:
        r = max(1, round(px * scale / k))
        y0, y1 = np.clip(ys[at] - r, 0, h) * (w + 1), np.clip(ys[at] + r + 1, 0, h) * (w + 1)
        x0, x1 = np.clip(xs[at] - r, 0, w), np.clip(xs[at] + r + 1, 0, w)
        return table.take(y1 + x1, 0) - table.take(y0 + x1, 0) - table.take(y1 + x0, 0) + table.take(y0 + x0, 0)

    colour = np.zeros((ys.size, 3), np.float32)
    found = np.zeros(ys.size, np.float32)
    todo = np.arange(ys.size)
    for px in NEAR_PX:
        sums = box(px, todo)
        here = sums[:, 0] >= 1.0
        colour[todo[here]] = sums[here, 1:4] / sums[here, :1]
        found[todo[here]] = 1.0
        todo = todo[~here]
    sums = box(SPREAD_PX, np.arange(ys.size))
    held = np.maximum(sums[:, 0], 1.0)
    mean, square = sums[:, 1:4] / held[:, None], sums[:, 4] / held
    spread = np.sqrt(np.maximum(square - (mean * mean).sum(-1), 0.0) / 3.0).astype(np.float32)
    return colour, spread, found


def _ramp(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """0 up to ``low``, 1 from ``high``, linear between."""
    return np.clip((x - low) / (high - low), 0.0, 1.0)


def uncomposed(garment: np.ndarray, alpha: np.ndarray, on: tuple[int, int, int] | None = None) -> np.ndarray:
    """The garment's own colours (uint8 [H, W, 3]): ``garment`` (on white) un-composed from white
    by its ``alpha`` ([H, W] or [H, W, 1]); with ``on``, laid on that colour. Each channel's
    value depends only on its alpha and its value, so it is read from a table of the 65,536
    pairs (``_uncompose_table``: the float32 arithmetic done once per pair, the same bytes as
    doing it per pixel): 10 ms instead of 22-32 for a 1024x768 garment on two CPU cores."""
    index = (alpha.reshape(garment.shape[:2]).astype(np.uint16) << 8)[..., None] | garment
    if on is None:
        return np.take(_uncompose_table(None), index)
    if on[0] == on[1] == on[2]:
        return np.take(_uncompose_table(on[0]), index)
    out = np.empty_like(garment)
    for channel, level in enumerate(on):
        out[..., channel] = np.take(_uncompose_table(level), index[..., channel])
    return out


@functools.lru_cache(maxsize=16)
def _uncompose_table(on: int | None) -> np.ndarray:
    """uint8 [65,536]: at ``alpha * 256 + value``, a channel's ``value`` on white un-composed by
    ``alpha`` (0 where the alpha is 0), and with ``on`` laid on that level (``on`` where the alpha is 0)."""
    a = (np.arange(256, dtype=np.float32) / 255.0)[:, None]
    value = np.arange(256, dtype=np.float32)[None, :]
    colour = np.clip((value - (1.0 - a) * 255.0) / np.maximum(a, 1.0 / 255.0), 0.0, 255.0)
    if on is not None:
        colour = np.clip(np.rint(a * colour + (1.0 - a) * np.float32(on)), 0, 255)
    return np.rint(colour).astype(np.uint8).reshape(-1)
