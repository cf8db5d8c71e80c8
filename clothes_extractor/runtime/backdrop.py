"""A garment shown alone told from its backdrop: its silhouette in the photo's own pixels.

``alone`` asks ``backdrop_silhouette`` at the first look (whether a garment the head calls alone
can be cut out at all) and again at the photo's resolution (``alone.framed``, the cut-out's
alpha), and of a garment image try-on is given on a coloured backdrop (``alone.on_white``). On a
backdrop of one colour the silhouette is ``garment_silhouette``'s less the backdrop the garment
encloses (``enclosed_backdrop``); on a busy one (a wood grain) what no path of the border's own
colours joins to the frame's edge; on a light one, less the garment's drop shadow
(``without_shadow``); less the other garments of an outfit laid out with it (``apart_side``);
the parts that hold the parser's garment.
"""

from __future__ import annotations

import numpy as np

from .fitting import border_colour, frame_edge
from .silhouette import (
    BACKDROP_MIN,
    HALO_PX,
    SILHOUETTE_TOLERANCE,
    STRICT_TOLERANCE,
    channel_max,
    dilate,
    garment_silhouette,
    labelled,
    pieces,
    reached_from,
    reached_from_border,
)

# A garment alone is cut out where its backdrop is one colour, at least BACKDROP_UNIFORM of the
# frame's border within SILHOUETTE_TOLERANCE of the border's median (VITON's catalog images on
# white or on a plain colour: a median 1.0, 5% under 0.97; on a wood-like grain 0.52 to 0.59),
# and its silhouette there (``garment_silhouette``) holds COVERED of the parser's garment and
# is at most LARGER times its size (the parser misses parts of a garment alone, such as a drawn
# top's sleeves, more often than it takes in backdrop): measured in the segmenter card.
BACKDROP_UNIFORM = 0.8
COVERED, LARGER = 0.8, 4.0
# Elsewhere the backdrop is the border's colours, BACKDROP_COLOURS of them, and a pixel within
# BACKDROP_REACH times the border's own 90th-percentile distance to them is of it (on the
# wood-like grain, the first 200 validation catalog images: 144 found, IoU 0.991 against the
# catalog image's own silhouette; the segmenter card).
BACKDROP_COLOURS, BACKDROP_REACH = 8, 3.0
# A garment laid on a light backdrop under a lamp casts a soft shadow beside it, which the
# backdrop's flood stops at (it is darker than the backdrop) and the silhouette kept: a grey or
# tinted band along the cut-out's edge. A pixel is of a shadow where it is the backdrop's colour
# darkened (SHADOW_DARKEST to SHADOW_LIGHTEST times it, each channel within SHADOW_TOLERANCE of
# that), steps at most SHADOW_STEP levels to its neighbours (a shadow is soft; a garment's edge is
# a step), lies outside the parser's garment (shrunk by one of the parser's pixels: its edge is
# that uncertain) and is joined to the backdrop through such pixels; a stretch of them is taken
# only where it darkens to SHADOW_CORE somewhere (a white top's faint edge on white does not).
# Measured on the first 500 validation catalog images on white, a plain colour, a grain and a
# light colour under a drop shadow (benchmarks/garment_alone.py; the segmenter card, "Known
# failure modes"): the shadow's silhouettes change; the others are as they were but for one white
# top's hem on white (125 pixels).
SHADOW_DARKEST, SHADOW_LIGHTEST, SHADOW_CORE = 0.45, 1.0, 0.82
SHADOW_TOLERANCE, SHADOW_STEP = 14, 6
# What of the photo's silhouette lies nearer another garment of an outfit (``alone.other_garments``)
# than the top, within this many of the parser's pixels, is that garment's (``apart_side``): the
# two parses' edges are that loose.
APART_REACH = 4
# ...and a piece of the silhouette left apart from the top holding under this share of the
# parser's garment is a piece of that garment the parser took for the top's.
APART_PIECE = 0.1
# The backdrop a garment encloses (between a long sleeve and the body it touches at the hem, inside
# a cami's straps, through a keyhole) is no way out to the frame's edge, so the silhouette keeps it:
# a wedge of the backdrop's colour where the cut-out should be transparent. A piece of the
# silhouette is such a gap where it is the backdrop's colour as the silhouette's fill reads it (within
# SILHOUETTE_TOLERANCE of it and HALO_PX of pixels within STRICT_TOLERANCE), is at least GAP_LEAST of
# the silhouette's area, at least GAP_RING of the garment's pixels around it, from 1 / GAP_RING_FROM to
# 1 / GAP_RING_TO of the frame's shorter side out (past its own blurred edge: 2-3 px at VITON's 192
# columns, 5-12 at 768), are at least GAP_CONTRAST levels off the backdrop, and the parse holds under
# GAP_PARSED of it. A print of the backdrop's colour (white letters on a navy top) is the parse's
# garment; a white top's gaps are not ringed by another colour, and stay (measured on VITON's 1,528
# validation catalog images: the segmenter card, "Known failure modes").
GAP_LEAST, GAP_RING, GAP_CONTRAST, GAP_PARSED = 0.002, 0.8, 40, 0.5
GAP_RING_FROM, GAP_RING_TO = 192, 64


def backdrop_silhouette(
    rgb: np.ndarray,
    parser: np.ndarray,
    parser_px: int = 1,
    apart: np.ndarray | None = None,
    parsed: np.ndarray | None = None,
) -> np.ndarray | None:
    """The silhouette (bool [h, w]) of a garment shown alone in ``rgb`` [h, w, 3] against its
    backdrop: on a backdrop of one colour (``BACKDROP_UNIFORM``) what ``garment_silhouette``
    finds against that colour, less the backdrop the garment encloses (``enclosed_backdrop``, told
    by ``parsed``: the parser's garment with its holes as the parse left them, else ``parser``),
    else what is not joined to the frame's edge through pixels near one of the border's own
    colours (``_off_backdrop``: a wood grain, a bedsheet); on a light backdrop, less its shadow
    (``without_shadow``); of it, the parts that hold the parser's garment (``parser``: bool
    [h, w], each of its pixels ``parser_px`` pixels here; not a watch laid beside the top), less
    the other garments of an outfit laid out with it (``apart``: bool [h, w] or None,
    ``alone.other_garments``; ``apart_side``: trousers the top lies on), where they hold at least
    ``COVERED`` of it and are at most ``LARGER`` times its size; else None (a flood that ran into
    the garment, or out along a shadow)."""
    colour = np.asarray(border_colour(rgb), np.int16)
    border = frame_edge(rgb).astype(np.int16)
    if (np.abs(border - colour).max(axis=-1) <= SILHOUETTE_TOLERANCE).mean() >= BACKDROP_UNIFORM:
        found = garment_silhouette(rgb, background=tuple(int(c) for c in colour))
        gaps = enclosed_backdrop(rgb, found, colour, parser if parsed is None else parsed)
        found, parser = found & ~gaps, parser & ~gaps  # (a gap the parser's plane filled is none of its garment)
    else:
        found = _off_backdrop(rgb, border.astype(np.float32))
    if colour.min() >= BACKDROP_MIN:
        found = without_shadow(rgb, found, parser, colour, parser_px)
    if apart is not None:
        found = _without_others(rgb, found, parser, apart, parser_px)
    found = reached_from(found & parser, found)
    held, size = int((found & parser).sum()), int(parser.sum())
    return found if held >= COVERED * size and found.sum() <= LARGER * size else None


def enclosed_backdrop(rgb: np.ndarray, found: np.ndarray, colour: np.ndarray, parsed: np.ndarray) -> np.ndarray:
    """The gaps (bool [h, w]) that ``found`` (a silhouette in ``rgb`` [h, w, 3] against a backdrop of
    ``colour``) encloses: its pieces of the backdrop's colour, ringed by the garment's and held by
    under ``GAP_PARSED`` of them by ``parsed`` (the parser's garment, its holes not filled).
    Nothing where there are none."""
    deviation = channel_max(np.abs(rgb.astype(np.int16) - colour.astype(np.int16)))
    candidates = found & (deviation <= SILHOUETTE_TOLERANCE)
    candidates &= dilate(candidates & (deviation <= STRICT_TOLERANCE), HALO_PX)
    where, number = labelled(candidates)
    roots, sizes = np.unique(number, return_counts=True)
    missed = np.isin(roots, number[~parsed.ravel()[where]])  # (the pieces the parse misses some of)
    gaps = np.zeros_like(found)
    edge, reach = (-(-min(found.shape) // part) for part in (GAP_RING_FROM, GAP_RING_TO))
    for root in roots[missed & (sizes >= GAP_LEAST * float(found.sum()))]:
        at = where[number == root]
        ys, xs = at // found.shape[1], at % found.shape[1]
        y0, x0 = max(0, int(ys.min()) - reach), max(0, int(xs.min()) - reach)
        near = (slice(y0, int(ys.max()) + 1 + reach), slice(x0, int(xs.max()) + 1 + reach))  # (piece and ring)
        piece = np.zeros(found[near].shape, bool)
        piece[ys - y0, xs - x0] = True
        ring = dilate(piece, reach) & ~dilate(piece, edge) & found[near]
        if (
            ring.any()
            and (deviation[near][ring] >= GAP_CONTRAST).mean() >= GAP_RING
            and (piece & parsed[near]).sum() < GAP_PARSED * piece.sum()
        ):
            gaps[near] |= piece
    return gaps


def _without_others(
    rgb: np.ndarray, found: np.ndarray, parser: np.ndarray, apart: np.ndarray, parser_px: int
) -> np.ndarray:
    """``found`` less the other garments of an outfit (``apart_side``) and the pieces of them that
    are left apart from the garment: a piece holding under ``APART_PIECE`` of what ``found`` holds
    of the parser's garment (a patch of trousers the parser took for the top's: it would stretch
    the cut-out's frame)."""
    found = found & ~apart_side(rgb, parser, apart, APART_REACH * parser_px)
    found = reached_from(found & parser, found)
    least = APART_PIECE * float((found & parser).sum())
    kept = np.zeros_like(found)
    for piece in pieces(found):
        if (piece & parser).sum() >= least:
            kept |= piece
    return kept


def nearer(these: np.ndarray, those: np.ndarray, reach: int) -> np.ndarray:
    """``these`` (bool [h, w]) and the pixels within ``reach`` of them (a square's steps) that are
    nearer them than ``those`` (bool [h, w]), none of ``those``: the side of ``these`` of the line
    half way between the two."""
    side, grown_these, grown_those = these & ~those, these, those
    for _ in range(reach):
        grown_these, grown_those = dilate(grown_these, 1), dilate(grown_those, 1)
        side |= grown_these & ~grown_those
    return side


def apart_side(rgb: np.ndarray, parser: np.ndarray, apart: np.ndarray, reach: int) -> np.ndarray:
    """What of ``rgb`` [h, w, 3] is the other garments' (``apart``, bool [h, w]) rather than the
    parser's garment's (``parser``): they and the pixels within ``reach`` of them that are nearer
    them (``nearer``; the two parses' edges are that loose), and of the other pixels within
    ``reach`` of them, those nearer their median colour than the garment's (the parser's edge runs
    past the top's onto the trousers it lies on)."""
    side = nearer(apart, parser, reach)
    near = dilate(apart, reach)
    band, own = near & ~side, parser & ~near
    if band.any() and own.any():
        pixels = rgb[band].astype(np.float32)
        theirs, ours = np.median(rgb[apart], axis=0), np.median(rgb[own], axis=0)
        side[band] = ((pixels - theirs) ** 2).sum(-1) < ((pixels - ours) ** 2).sum(-1)
    return side


def without_shadow(
    rgb: np.ndarray, found: np.ndarray, parser: np.ndarray, colour: np.ndarray, parser_px: int = 1
) -> np.ndarray:
    """``found`` (bool [h, w], a silhouette in ``rgb``) less the shadow a garment casts on its
    light backdrop of ``colour`` (``SHADOW_DARKEST`` ...: the backdrop's colour darkened, soft,
    outside ``parser``'s garment shrunk by ``parser_px`` pixels, joined to the backdrop, and
    darkening to ``SHADOW_CORE`` somewhere)."""
    ring = found & dilate(~parser, parser_px)  # where a shadow can be
    pixels = rgb[ring].astype(np.float32)
    c = colour.astype(np.float32)
    shade = pixels @ c / max(float(c @ c), 1.0)  # how much of the backdrop's light each pixel has
    tint = channel_max(np.abs(pixels - shade[:, None] * c))
    like, core = np.zeros_like(ring), np.zeros_like(ring)
    like[ring] = (shade >= SHADOW_DARKEST) & (shade <= SHADOW_LIGHTEST) & (tint <= SHADOW_TOLERANCE)
    core[ring] = shade <= SHADOW_CORE
    if not (like & core).any():
        return found  # (no shadow: the common case, without a flood)
    step = np.zeros(ring.shape, np.int16)  # the largest change to a neighbour (4-connected, as the flood runs)
    beside = np.zeros_like(ring)  # ...and whether a neighbour is backdrop
    levels = rgb.astype(np.int16)
    for axis in (0, 1):
        rise = channel_max(np.abs(np.diff(levels, axis=axis)))
        gone = np.diff(found.astype(np.int8), axis=axis) != 0
        ahead, behind = [slice(None)] * 2, [slice(None)] * 2
        ahead[axis], behind[axis] = slice(1, None), slice(None, -1)
        for side in (tuple(ahead), tuple(behind)):
            step[side] = np.maximum(step[side], rise)
            beside[side] |= gone
    free = like & (step <= SHADOW_STEP)
    shadow = reached_from(beside & free, free)
    return found & ~reached_from(shadow & core, shadow)


def _off_backdrop(rgb: np.ndarray, border: np.ndarray) -> np.ndarray:
    """What of ``rgb`` no path of backdrop-coloured pixels joins to the frame's edge: the
    backdrop's colours are the border's, ``BACKDROP_COLOURS`` centres (k-means from evenly
    spaced border pixels), a pixel is of the backdrop within ``BACKDROP_REACH`` times the 90th
    percentile of the border's own distance to them (at least ``SILHOUETTE_TOLERANCE``)."""
    centres = border[np.linspace(0, len(border) - 1, BACKDROP_COLOURS).astype(int)]
    for _ in range(10):
        nearest = ((border[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
        centres = np.stack(
            [border[nearest == k].mean(0) if (nearest == k).any() else centres[k] for k in range(len(centres))]
        )
    spread = np.sqrt(((border[:, None] - centres[None]) ** 2).sum(-1)).min(1)
    reach = max(float(SILHOUETTE_TOLERANCE), BACKDROP_REACH * float(np.percentile(spread, 90)))
    pixels = rgb.astype(np.float32)
    distance = np.full(rgb.shape[:2], np.inf, np.float32)
    for centre in centres:
        distance = np.minimum(distance, np.sqrt(((pixels - centre) ** 2).sum(-1)))
    return ~reached_from_border(distance <= reach)
