"""A garment photographed alone (a flat lay, a ghost mannequin, a catalog image): cut out of
the photo and framed as a catalog image frames a garment, not generated.

The generator turns a worn garment into a flat one; handed a garment that is flat already,
it smears it (prints and all). The bundled parser has a head that tells a garment shown alone
from a worn one (``train --alone-head``: its ``alone`` output). ``stages.segment`` asks
``alone_plane`` at the first look: the head says so (``shown_alone``) and the garment can be
told from its backdrop (``backdrop.backdrop_silhouette``); ``stages.fit_photo`` then has
``framed`` find its silhouette in the photo's own pixels and ``cut_out`` make the output from
them, the silhouette as its ``alpha`` (the ``--background`` choices work as for a generated
garment). The garment is the parse's top and what joins it (``alone_garment``), not the other
garments of an outfit laid out with it (``other_garments``: trousers or a skirt) nor a swatch
of its fabric beside it (``swatches``), nor the backdrop it encloses (``enclosed_backdrop``: seen
between a sleeve and the body, inside straps), and of a product image of its front and back
views, one view (``one_view``).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from PIL import Image

from .backdrop import backdrop_silhouette
from .contract import FitSettings, ModelContract
from .fill import LAID
from .fitting import Box, crop_photo, crop_resize, edge_pixels, frame_edge, mask_box, photo_window
from .people import upper_garment
from .silhouette import (
    SILHOUETTE_TOLERANCE,
    UNIFORM_BORDER,
    dilate,
    garment_silhouette,
    one_view,
    pieces,
    reached_from,
    reached_from_border,
    swatches,
)

# The parser's ``alone`` output (its head's probability x 255) from which a garment is shown
# alone, and the most of the frame's edge it may lie on: a photo cut to a worn top's torso
# shows nothing of a person, but the frame cuts the garment (measured: the segmenter card).
ALONE_AT = 128
EDGE_BELOW = 0.02
# ``tryon`` refuses a garment image the head gives less than this: a refusal leaves the user
# nothing to dress, a catalog image taken as it is only a poorer garment, so only where the head
# is sure (the first 500 VITON validation catalog images on white: 1 under 64, 3 under 128;
# every photo of a person: under 64, but for 2 of 500 headless and 13 of 500 torso crops).
WORN_BELOW = 64
# The silhouette of a garment alone is looked for in its catalog window grown by this share of
# the window's size on each side (within the photo): the backdrop all round it, and any part of
# the garment the parser missed.
AROUND = 0.25
# ...at this many times the output's resolution (or the photo's, if less): an edge to
# anti-alias (``stages.fit_photo`` decodes a garment alone that much larger).
SILHOUETTE_SCALE = 2
# A parse of a garment alone can give parts of it to a person's classes (a sleeve to arms, a
# hem to lower clothes, a collar to hair, a print to a face), at the edge of its top or near it;
# a full-length person's parse goes on far below the top. A garment the head calls alone is worn
# after all where its parse has at least LEGS_BELOW (a share of the top's pixels) of legs (skin,
# socks, shoes) below the top's box, or spans PARSE_TALLER times the top's height, or where the
# top's box is PERSON_ASPECT times as tall as wide (a person the parser calls a top head to shoe).
# Measured at the first look on 2,000 VITON catalog images on white, a plain colour, a grain and
# a drop shadow and Dress Code's and VITON-HD's catalog images: with the parser bundled since the
# night of 2026-12-02 none over a line (legs at most 0.006, the parse 1.40 times the top, the box
# 1.99 times as tall as wide); with the one before it 3 of 1,810 (legs 0.03, 2.04, 2.27 for the
# rest); on the full-length photos the two cut out whole at the first look, 70 of 99 over a line
# (benchmarks/results/cpu-2core-round2/e2e-garment-alone.txt).
LEGS_BELOW, PARSE_TALLER, PERSON_ASPECT = 0.04, 2.2, 2.5
# ...or where it has at least HEAD_ABOVE of hair and face above the top's box: the head of the
# person wearing it. The alone head, trained on photos in their own light, takes a dim photo
# for a garment alone (a stop darker: 12 of VITON's 1,528 validation photos; two stops: 741),
# and the person was cut out whole, face and trousers with the top. Measured at the first look
# (benchmarks/garment_alone.py, photo dark / dim): on VITON's validation photos, in their own
# light and darker, at least 0.0096 (0.085 where the head called one alone); on its 1,528
# catalog images at most 0.003 where the head calls them alone (0.17-0.22 for three that are
# photos of people, which it does not).
HEAD_ABOVE = 0.05
# A garment image on a backdrop is told from it at most this many rows tall (``on_white``):
# its silhouette's edge is then brought up to the image's own resolution.
ON_WHITE_ROWS = 512
# ...where the catalog silhouette takes at least this share of the image's border for garment.
BORDER_TAKEN = 0.5
# A flat lay of an outfit shows other garments with the top: trousers or a skirt under or
# beside it, which the parser calls lower clothes, shoes it calls legs. A part of the parse of
# those classes (``OUTFIT_CLASSES``; 4-connected) is another garment, left out of the garment and
# of its cut-out (``other_garments``), where it is at least OUTFIT_SHARE of the top's size and its
# median colour is OUTFIT_COLOUR levels from the top's in a channel: a part of one garment given
# to them is smaller or of its colour. Measured at the first look (the segmenter card, "Known
# failure modes"): on 2,000 VITON catalog images (white, a plain colour, a grain, a shadow) such
# parts reach 0.21 of the top where their colour differs, and 0.59 where it does not (a T-shirt
# dress, its skirt 8 to 14 levels from its top); trousers under or beside a top, 0.69 to 3.8.
OUTFIT_CLASSES = ("lower", "legs")
OUTFIT_SHARE, OUTFIT_COLOUR = 0.5, 24
# The catalog frame's margin around the garment, a share of the garment's size on each side:
# VITON's catalog images leave a median 2.6% of the width beside the garment.
CATALOG_MARGIN = 0.03


def shown_alone(alone: int | None, garment: np.ndarray) -> bool:
    """Whether a photo shows its garment alone: the parser's ``alone`` output for it (None: a
    parser without the head, which never says so) is at least ``ALONE_AT``, and the garment
    (``garment``: bool [h, w], the mask at its threshold over the part of the frame the photo
    covers) lies on less than ``EDGE_BELOW`` of the frame's edge."""
    if alone is None or alone < ALONE_AT or not garment.any():
        return False
    edge = np.concatenate([garment[0], garment[-1], garment[1:-1, 0], garment[1:-1, -1]])
    return bool(edge.mean() < EDGE_BELOW)


def shows_person(garment: np.ndarray, labels: np.ndarray | None, names: tuple[str, ...]) -> bool:
    """Whether the parse of a photo whose garment the head calls alone shows the person who
    wears it (``LEGS_BELOW``, ``PARSE_TALLER``, ``PERSON_ASPECT``, ``HEAD_ABOVE``): ``garment``, bool [h, w],
    the top at the mask's threshold; ``labels`` [h, w], the parse over the same pixels (None: a
    segmenter without one: only the top's own shape tells), class names ``names``."""
    rows, cols = np.flatnonzero(garment.any(1)), np.flatnonzero(garment.any(0))
    if not len(rows):
        return False
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    if y1 - y0 >= PERSON_ASPECT * (int(cols[-1]) + 1 - int(cols[0])):
        return True
    if labels is None:
        return False
    parsed = np.flatnonzero((labels != 0).any(1))
    if len(parsed) and parsed[-1] + 1 - parsed[0] >= PARSE_TALLER * (y1 - y0):
        return True
    head = [names.index(name) for name in ("hair", "face") if name in names]
    if head and float(np.isin(labels[:y0], head).sum()) >= HEAD_ABOVE * float(garment.sum()):
        return True
    legs = names.index("legs") if "legs" in names else None
    return legs is not None and float((labels[y1:] == legs).sum()) >= LEGS_BELOW * float(garment.sum())


def no_one_wears(alone: int | None, labels: np.ndarray, names: tuple[str, ...]) -> bool:
    """Whether a parse shows its top alone with no one wearing it (a catalog image, a flat lay),
    as ``extract`` tells one (``shown_alone``, ``shows_person``) where its mask is the parse's
    top: ``alone``, the parser's head for the photo; ``labels`` [h, w], the parse over the
    photo's pixels; ``names``, its classes. ``tryon`` asks it of a person photo."""
    top = labels == names.index("upper")
    return shown_alone(alone, top) and not shows_person(top, labels, names)


def as_parsed(mask: np.ndarray, labels: np.ndarray | None, threshold: int) -> np.ndarray:
    """What the parse of a garment shown alone calls anything but background (bool [h, w]): the
    garment as ``parsed_garment`` takes it, its holes as the parse left them."""
    return (mask >= threshold) if labels is None else (mask >= threshold) | (labels != 0)


def parsed_garment(mask: np.ndarray, labels: np.ndarray | None, threshold: int) -> np.ndarray:
    """The parser's garment plane for a garment shown alone: its top's probability (``mask``,
    uint8), 255 wherever its ``labels`` say anything but background, and its holes filled to
    ``threshold`` (the mask's). On a garment alone the parser gives parts of it to other
    classes (a sleeve to arms, a hem to lower clothes, a print to a face): nothing of a person
    is there, so all of it is the garment."""
    plane = mask if labels is None else np.where(labels != 0, np.uint8(255), mask)
    return np.where(filled(as_parsed(mask, labels, threshold)), np.maximum(plane, np.uint8(threshold)), plane)


def other_garments(
    image: np.ndarray, mask: np.ndarray, labels: np.ndarray, names: tuple[str, ...], threshold: int
) -> np.ndarray | None:
    """The parts (bool [h, w]) of the parse of a garment shown alone that are other garments of
    an outfit laid out with it (``OUTFIT_CLASSES``, ``OUTFIT_SHARE``, ``OUTFIT_COLOUR``: trousers
    or a skirt under or beside a top), or None where there are none (the common case, told from
    the classes' pixel count alone). ``image`` [h, w, 3]: the pixels parsed; ``mask``: the top's
    probability (uint8); ``labels``: the parse, classes ``names``; ``threshold``: the mask's."""
    return _other_garments(image, labels, names, _core(mask, labels, names, threshold))


def _other_garments(
    image: np.ndarray, labels: np.ndarray, names: tuple[str, ...], core: np.ndarray
) -> np.ndarray | None:
    """``other_garments`` given the top (``_core``)."""
    left = np.isin(labels, [names.index(n) for n in OUTFIT_CLASSES if n in names]) & ~core
    least = OUTFIT_SHARE * float(core.sum())
    if not core.any() or left.sum() < least:
        return None
    colour = np.median(image[core], axis=0)
    apart = np.zeros_like(left)
    for part in pieces(left, least):
        if _unlike(image, part, colour):
            apart |= part
    return apart if apart.any() else None


def _unlike(image: np.ndarray, part: np.ndarray, colour: np.ndarray) -> bool:
    """Whether the median colour of ``image`` over ``part`` is ``OUTFIT_COLOUR`` from ``colour``."""
    return bool(np.abs(np.median(image[part], axis=0) - colour).max() >= OUTFIT_COLOUR)


def alone_garment(
    image: np.ndarray, mask: np.ndarray, labels: np.ndarray | None, names: tuple[str, ...], threshold: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """The garment plane of a garment shown alone (``parsed_garment``) without the other garments
    of an outfit laid out with it, and those (``other_garments``; None: none). Of the rest of the
    parse, what touches the top (``mask`` at ``threshold``, or a garment class) is the garment's
    (a sleeve the parser calls arms), and so is a part apart from it of the top's colour (within
    ``OUTFIT_COLOUR``: a tie's ends hanging below a hem); a part apart of another colour is
    another thing laid beside it (a shoe, a belt), or a speck of a grain or a shadow. Arguments
    as ``other_garments``'s; ``labels`` None: a segmenter without a parse (nothing to tell them by)."""
    if labels is None:
        return parsed_garment(mask, labels, threshold), None
    core = _core(mask, labels, names, threshold)
    apart = _other_garments(image, labels, names, core)
    rest = (labels != 0) & ~core
    if apart is not None:
        rest &= ~apart
    away = rest & ~reached_from(rest & dilate(core, 1), rest)
    if apart is not None or away.any():
        colour = np.median(image[core], axis=0) if core.any() else np.zeros(3)
        gone = np.zeros_like(away) if apart is None else apart.copy()
        for piece in pieces(away):
            if _unlike(image, piece, colour):
                gone |= piece
        labels = np.where(gone, 0, labels).astype(labels.dtype)
    return parsed_garment(mask, labels, threshold), apart


def _core(mask: np.ndarray, labels: np.ndarray, names: tuple[str, ...], threshold: int) -> np.ndarray:
    """The top of a parse: ``mask`` at ``threshold``, or a garment class (``people.upper_garment``)."""
    return upper_garment(mask, labels, names) >= threshold


def filled(garment: np.ndarray) -> np.ndarray:
    """``garment`` (bool [h, w]) with its holes filled: what no path of non-garment pixels joins
    to the frame's edge (a print the parser took for something else, a button)."""
    return ~reached_from_border(~garment)


def on_white(
    image: Image.Image,
    letterboxed: np.ndarray,
    mask: np.ndarray,
    labels: np.ndarray | None,
    names: tuple[str, ...],
    shown: Box,
    said: int | None,
    threshold: int,
) -> Image.Image | None:
    """A garment image shown alone on a backdrop the catalog silhouette takes for garment (a
    saturated or dark plain colour, a wood grain: ``garment_silhouette`` reads such a border as a
    garment that fills the frame), or laid out with other garments of an outfit on any backdrop,
    cut out onto white at its own resolution (the garment ``alone_garment``'s, not the others);
    None where it is one garment on a white or light plain backdrop (the silhouette finds it as
    it is), where it is not shown alone (``shown_alone``, ``said``: the parser's ``alone``) or
    where no silhouette tells it from its backdrop (``backdrop_silhouette``). ``mask`` and
    ``labels``: the parser's answer [h, w] on the image ``letterboxed`` ([h, w, 3], the parser's
    input), its pixels ``shown`` (x0, y0, x1, y1); ``names``: the parse's classes; ``threshold``:
    the mask's. Try-on asks it of a garment image it is given as one."""
    x0, y0, x1, y1 = (int(v) for v in shown)
    if not shown_alone(said, mask[y0:y1, x0:x1] >= threshold):
        return None
    plane, apart = alone_garment(letterboxed, mask, labels, names, threshold)
    image = image if image.mode == "RGB" else image.convert("RGB")
    w, h = image.size
    if apart is None:  # one garment on white, as the catalog silhouette reads it: the common case, told from its border
        edge = edge_pixels(image).astype(np.int16)
        if (np.abs(edge - 255).max(axis=-1) <= SILHOUETTE_TOLERANCE).mean() >= UNIFORM_BORDER:
            return None
    scale = min(1.0, ON_WHITE_ROWS / h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    rgb = np.asarray(image.resize(size, Image.Resampling.BILINEAR) if scale < 1 else image)
    if apart is None and frame_edge(garment_silhouette(rgb)).mean() < BORDER_TAKEN:
        return None  # (the border is background to the catalog silhouette: the image is fitted as it is)
    parser, parsed = (
        np.asarray(Image.fromarray(part[y0:y1, x0:x1]).resize(size, Image.Resampling.NEAREST)) >= threshold
        for part in (plane, np.where(as_parsed(mask, labels, threshold), np.uint8(255), np.uint8(0)))
    )
    if apart is not None:
        apart = np.asarray(Image.fromarray(apart[y0:y1, x0:x1]).resize(size, Image.Resampling.NEAREST))
    silhouette = backdrop_silhouette(rgb, parser, math.ceil(size[1] / max(1, y1 - y0)), apart, parsed)
    if silhouette is None:
        return None
    soft = Image.fromarray(silhouette.astype(np.uint8) * 255).resize(image.size, Image.Resampling.BILINEAR)
    a = np.clip(2.0 * np.asarray(soft, np.float32)[:, :, None] / 255.0 - 1.0, 0.0, 1.0)  # as ``cut_out`` narrows it
    pixels = np.asarray(image, np.float32)
    return Image.fromarray(np.clip(np.rint(pixels * a + 255.0 * (1.0 - a)), 0, 255).astype(np.uint8))


def off_colour(image: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    """A garment ``extract`` wrote on a backdrop of ``colour`` (``--background #RRGGBB``: the
    signature says which) with that backdrop made white: the catalog silhouette, which takes a
    saturated or dark border for garment, read against that colour. Try-on asks it of such a
    garment image."""
    pixels = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    garment = garment_silhouette(pixels, background=colour)
    return Image.fromarray(np.where(garment[..., None], pixels, np.uint8(255)))


def alone_plane(
    image: np.ndarray,
    shown: Box,
    mask: np.ndarray,
    labels: np.ndarray | None,
    said: int | None,
    threshold: int,
    names: tuple[str, ...],
) -> tuple[np.ndarray, np.ndarray | None, Box | None] | None:
    """The parser's garment plane (``alone_garment``; [h, w] uint8 like ``mask``) of a photo
    whose garment is shown alone (``shown_alone``: ``said``, the parser's ``alone`` output)
    on a backdrop its silhouette can be told from (``backdrop_silhouette``, on ``image``, the
    letterboxed photo), less the backdrop it encloses (``backdrop.enclosed_backdrop``, told by the
    parse's own holes: a gap between a sleeve and the body) and a swatch of its fabric beside it
    (``swatches``), the other garments of an outfit laid out with it (bool [h, w], or None), and,
    where the photo shows several views of it apart, the band of the plane holding the one taken
    (``one_view``; the plane is cut to it), or None; else None. ``shown``: the pixels of the frame
    the photo covers; ``threshold``: the mask's; ``names``: the parse's classes. Whether its parse
    shows a person wearing it all the same is ``shows_person``'s to say (``stages.segment`` asks it
    at both looks)."""
    x0, y0, x1, y1 = (int(v) for v in shown)
    if not shown_alone(said, mask[y0:y1, x0:x1] >= threshold):
        return None
    plane, apart = alone_garment(image, mask, labels, names, threshold)
    found = backdrop_silhouette(
        image[y0:y1, x0:x1],
        plane[y0:y1, x0:x1] >= threshold,
        apart=None if apart is None else apart[y0:y1, x0:x1],
        parsed=as_parsed(mask, labels, threshold)[y0:y1, x0:x1],
    )
    if found is None:
        return None
    silhouette = np.zeros(plane.shape, bool)
    silhouette[y0:y1, x0:x1] = found
    plane = np.where(filled(silhouette) & ~silhouette, np.uint8(0), plane)  # (the backdrop it encloses: a gap)
    swatch = swatches(silhouette)
    if swatch is not None:  # (a colour swatch beside the garment: no part of it)
        plane, silhouette = np.where(swatch, np.uint8(0), plane), silhouette & ~swatch
    plane, band = one_view(plane, silhouette, threshold)
    return plane, apart, band


def framing(contract: ModelContract) -> FitSettings:
    """The generator's fit with a catalog image's margin around the garment (``CATALOG_MARGIN``)."""
    return dataclasses.replace(contract.fit, margin=CATALOG_MARGIN)


def framed(
    photo,
    mask: Image.Image,
    box: Box,
    contract: ModelContract,
    size: tuple[int, int],
    apart: Image.Image | None = None,
    band: Box | None = None,
) -> tuple[Image.Image, dict[str, np.ndarray]]:
    """A garment shown alone in ``photo`` (as decoded; Pillow, or on a device), framed as a
    catalog image frames one at the output ``size`` (h, w): its silhouette and the cut-out
    (``cut_out``). The silhouette is the photo's own (``backdrop_silhouette``), found in the
    window around the parser's garment (``mask``, over the whole photo; ``box``, its garment's
    box there) grown by ``AROUND`` on each side within the photo, at ``SILHOUETTE_SCALE`` times
    the output's resolution, less the other garments of an outfit (``apart``: L over the whole
    photo like ``mask``, 255 = another garment, or None), within ``band`` (photo pixels: the part
    of a product image holding one of its views, ``one_view``; None: the whole photo); where it
    finds none, the parser's."""
    fit = framing(contract)
    window = photo_window(box, mask.size, photo.size, contract.size, fit)
    dx, dy = AROUND * (window[2] - window[0]), AROUND * (window[3] - window[1])
    bx0, by0, bx1, by1 = band or (0, 0, photo.width, photo.height)
    x0, y0 = max(0, math.floor(bx0), math.floor(window[0] - dx)), max(0, math.floor(by0), math.floor(window[1] - dy))
    x1 = min(photo.width, math.ceil(bx1), math.ceil(window[2] + dx))
    y1 = min(photo.height, math.ceil(by1), math.ceil(window[3] + dy))
    scale = min(1.0, SILHOUETTE_SCALE * size[0] / (window[3] - window[1]))
    shape = (max(1, round((y1 - y0) * scale)), max(1, round((x1 - x0) * scale)))
    sx, sy = mask.width / photo.width, mask.height / photo.height
    seen = (x0 * sx, y0 * sy, x1 * sx, y1 * sy)
    theirs = np.asarray(crop_resize(mask, seen, shape, 0))
    threshold = contract.fit.mask_threshold
    others = None if apart is None else np.asarray(crop_resize(apart, seen, shape, 0)) >= 128
    rgb = crop_photo(photo, (x0, y0, x1, y1), shape, (255, 255, 255))
    parser_px = math.ceil(shape[0] / max(1e-6, (y1 - y0) * sy))
    found = backdrop_silhouette(rgb, theirs >= threshold, parser_px, others)
    if found is not None:
        mask = Image.new("L", (max(1, round(photo.width * scale)), max(1, round(photo.height * scale))), 0)
        mask.paste(Image.fromarray(found.astype(np.uint8) * 255), (round(x0 * scale), round(y0 * scale)))
        box = mask_box(np.asarray(mask), threshold) or box
        window = photo_window(box, mask.size, photo.size, contract.size, fit)
    return mask, cut_out(photo, mask, window, size)


def cut_out(photo, mask: Image.Image, window: Box, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """The garment of ``photo`` (RGB; Pillow, or on a device: ``fitting.crop_photo``) where
    ``mask`` (L, over the whole photo at any resolution, 255 = garment) says, in ``window``
    (photo pixels) at ``size`` (h, w), as the generator gives one: ``garment`` [h, w, 3] on
    white and ``alpha`` [h, w, 1], and ``fill.LAID`` (the garment is on white by its alpha
    already). The mask's edge is narrowed to its inner half: its outer half holds the backdrop's
    colour, a fringe around the garment."""
    sx, sy = mask.width / photo.width, mask.height / photo.height
    rgb = crop_photo(photo, window, size, (255, 255, 255)).astype(np.float32)
    mask_window = (window[0] * sx, window[1] * sy, window[2] * sx, window[3] * sy)
    soft = np.asarray(crop_resize(mask, mask_window, size, 0), np.float32)[:, :, None] / 255.0
    a = np.clip(2.0 * soft - 1.0, 0.0, 1.0)  # the outer half of the mask's edge, the backdrop's colour in it, goes
    garment = np.clip(np.rint(rgb * a + 255.0 * (1.0 - a)), 0, 255).astype(np.uint8)
    return {"garment": garment, "alpha": np.rint(a * 255.0).astype(np.uint8), LAID: np.ones((), bool)}
