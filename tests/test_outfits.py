"""A flat lay of an outfit: a top laid out with a skirt or trousers under or beside it. The
cut-out is the top (``alone.other_garments``, ``alone.alone_garment``, ``backdrop_silhouette``'s
``apart``); a garment of one colour the parser splits into a top and lower clothes (a T-shirt
dress) stays whole. Drawn parses and photos first (try-on's garment image on a coloured backdrop,
``alone.on_white``, among them), then ``extract`` with the bundled parser on drawn tops laid
over skirts."""

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from clothes_extractor.runtime.alone import alone_garment, on_white, other_garments
from clothes_extractor.runtime.backdrop import backdrop_silhouette
from clothes_extractor.tasks import PARSER_CLASSES as NAMES
from conftest import extracted_masks

UPPER, FACE, LOWER, ARMS, LEGS = (NAMES.index(n) for n in ("upper", "face", "lower", "arms", "legs"))
TOP = [(62, 40), (84, 52), (108, 52), (130, 40), (172, 80), (150, 104), (140, 96), (140, 220), (52, 220)]
TOP += [(52, 96), (42, 104), (20, 80)]
SKIRT = [(56, 0), (136, 0), (170, 150), (22, 150)]
NAVY, KHAKI, RED = (30, 60, 150), (190, 170, 130), (200, 40, 60)


def shape(points, at: tuple[int, int], size=(512, 384)) -> np.ndarray:
    """A polygon's pixels (bool [h, w]), moved by ``at`` (x, y)."""
    plane = Image.new("L", size[::-1], 0)
    ImageDraw.Draw(plane).polygon([(x + at[0], y + at[1]) for x, y in points], fill=255)
    return np.asarray(plane) > 127


def outfit(top_colour, skirt_colour, gap: int = -10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A drawn top laid over a skirt on white, 512x384 (the skirt's waist ``gap`` px under the
    top's hem; negative: under it): the photo, the top's pixels, the skirt's (what shows)."""
    top = shape(TOP, (96, 20))
    skirt = shape(SKIRT, (96, 240 + gap)) & ~top
    photo = np.full(top.shape + (3,), 255, np.uint8)
    photo[skirt], photo[top] = skirt_colour, top_colour
    return photo, top, skirt


def parse(top: np.ndarray, skirt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A parser's answer on an outfit: the top's probability and labels (the skirt lower clothes)."""
    labels = np.where(top, UPPER, np.where(skirt, LOWER, 0)).astype(np.uint8)
    return np.where(top, 230, 10).astype(np.uint8), labels


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_trousers_or_a_skirt_with_the_top_are_another_garment():
    """Lower clothes at least half the top's size, of another colour, are another garment: under
    the top (touching it) or beside it; a hem the parser calls lower clothes (a fifth of the top)
    is the top's, and so is a skirt of the top's own colour (a T-shirt dress the parser splits)."""
    photo, top, skirt = outfit(NAVY, KHAKI)
    mask, labels = parse(top, skirt)
    assert np.array_equal(other_garments(photo, mask, labels, NAMES, 128), skirt)
    beside = shape(SKIRT, (200, 300))  # laid aside: touching nothing
    aside = np.full_like(photo, 255)
    aside[beside], aside[top] = KHAKI, NAVY
    mask, labels = parse(top, beside)
    assert np.array_equal(other_garments(aside, mask, labels, NAMES, 128), beside)
    dress, _, _ = outfit(NAVY, NAVY)
    mask, labels = parse(top, skirt)
    assert other_garments(dress, mask, labels, NAMES, 128) is None
    hem = skirt & (np.cumsum(skirt.any(axis=1)) <= 30)[:, None]  # the skirt's first rows: a fifth of the top
    assert 0.1 < hem.sum() / top.sum() < 0.3
    mask, labels = parse(top, hem)
    assert other_garments(photo, mask, labels, NAMES, 128) is None


def test_the_garment_plane_keeps_what_touches_the_top_and_leaves_the_rest():
    """The garment plane of a garment alone: a sleeve the parser calls arms and a print it calls a
    face stay (they touch the top, or lie in it), and so does a tie's end apart from the top in
    the parse, of the top's colour; a shoe laid beside it (legs) and a skirt of other colours go
    (the plane took every class before)."""
    photo, top, skirt = outfit(NAVY, KHAKI)
    mask, labels = parse(top, skirt)
    sleeve = top & shape([(20, 80), (62, 40), (62, 110), (42, 104)], (96, 20))
    labels[sleeve], mask[sleeve] = ARMS, 10
    labels[120:140, 180:200], mask[120:140, 180:200] = FACE, 10  # a print on the chest
    shoe = np.zeros_like(top)
    shoe[430:470, 20:80] = True
    labels[shoe], photo[shoe] = LEGS, (90, 40, 20)
    tie = np.zeros_like(top)
    tie[250:300, 60:70] = True  # hanging below the hem, beside the skirt: the parse's gap between
    labels[tie], photo[tie] = ARMS, NAVY
    plane, apart = alone_garment(photo, mask, labels, NAMES, 128)
    assert np.array_equal(apart, skirt)
    assert np.array_equal(plane >= 128, top | tie)
    plane, apart = alone_garment(photo, mask, None, NAMES, 128)  # a segmenter with no parse: its mask only
    assert apart is None and np.array_equal(plane >= 128, top & ~sleeve)


@pytest.mark.parametrize("gap", [-10, 0, 16])
@pytest.mark.parametrize("colours", [(NAVY, KHAKI), (RED, (30, 30, 30)), ((232, 232, 226), NAVY)])
def test_the_silhouette_of_a_top_on_a_skirt_leaves_the_skirt_out(gap, colours):
    """The photo's silhouette of the top, with the parser's edges loose (its top grown by two
    pixels, onto the skirt, and the skirt's shrunk by two): the top only (IoU > 0.98, the line of
    skirt under the hem that the parser gave the top left out by its colour); without the other
    garment's pixels it is the top and the skirt (the silhouette holds them as one)."""
    photo, top, skirt = outfit(*colours, gap)
    grown = np.asarray(Image.fromarray(top).filter(ImageFilter.MaxFilter(5)))
    shrunk = np.asarray(Image.fromarray(skirt).filter(ImageFilter.MinFilter(5)))
    found = backdrop_silhouette(photo, grown, apart=shrunk)
    assert found is not None and iou(found, top) > 0.98, iou(found, top)
    whole = backdrop_silhouette(photo, grown)
    assert whole is not None and (gap > 0 or iou(whole, top | skirt) > 0.98)


@pytest.mark.parametrize("backdrop", [(20, 110, 60), (255, 255, 255)])
def test_try_on_takes_the_top_of_an_outfit_onto_white(backdrop):
    """A garment image given to try-on is cut out onto white (``on_white``) as ``extract`` cuts
    one out: an outfit's top, on a saturated backdrop and on white, the skirt made white (it kept
    the skirt before: on green cut out with the top, on white fitted as it is), its own pixels
    kept; one garment on white is fitted as it is (None)."""
    photo, top, skirt = outfit(NAVY, KHAKI)
    photo[~(top | skirt)] = backdrop
    mask, labels = parse(top, skirt)
    cut = on_white(Image.fromarray(photo), photo, mask, labels, NAMES, (0, 0, 384, 512), 255, 128)
    assert cut is not None
    kept = np.abs(np.asarray(cut).astype(int) - 255).max(axis=-1) > 12
    assert iou(kept, top) > 0.98 and (kept & skirt).sum() < 0.01 * skirt.sum()
    assert (np.asarray(cut)[top & kept] == NAVY).all()
    alone = np.where(top[..., None], photo, np.uint8(255))
    labels[skirt] = 0
    assert on_white(Image.fromarray(alone), alone, mask, labels, NAMES, (0, 0, 384, 512), 255, 128) is None


def test_extract_cuts_out_the_top_of_an_outfit_laid_flat(tmp_path):
    """``extract`` with the bundled parser on drawn tops laid over skirts on white (the head says
    alone, the parser calls most skirts lower clothes): the saved mask is the top's (IoU > 0.95)
    on at least 8 of 12 (9 when measured; the top and the skirt as one before: 0 of 12); a
    dress drawn in one colour stays whole."""
    folder = tmp_path / "photos"
    folder.mkdir()
    tops = {}
    tops_colours = (NAVY, RED, (40, 120, 70), (230, 200, 60))
    for k, (top_colour, skirt_colour) in enumerate(
        (t, s) for t in tops_colours for s in ((60, 80, 120), KHAKI, (30, 30, 30))
    ):
        photo, top, _ = outfit(top_colour, skirt_colour, (-10, 0, 16)[k % 3])
        Image.fromarray(photo).save(folder / f"outfit{k:02d}.png")
        tops[f"outfit{k:02d}"] = top
    dress, dress_top, dress_skirt = outfit(NAVY, NAVY)
    Image.fromarray(dress).save(folder / "dress.png")
    found = extracted_masks(folder, tmp_path)
    assert [name for name, (source, _) in found.items() if source != "segmenter+alone"] == []
    masks = {name: mask for name, (_, mask) in found.items()}
    assert sum(iou(masks[name], top) > 0.95 for name, top in tops.items()) >= 8
    assert iou(masks["dress"], dress_top | dress_skirt) > 0.95
