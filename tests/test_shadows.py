"""A garment laid on a light backdrop under a lamp casts a soft shadow beside it: the cut-out
keeps the garment and leaves the shadow on the backdrop (``backdrop.without_shadow``). Drawn
tops with a drawn shadow and the parser's garment given, then ``extract`` with the bundled
parser on the synthetic catalog images laid out so."""

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from clothes_extractor.data.synth import write_synthetic
from clothes_extractor.runtime.backdrop import backdrop_silhouette
from clothes_extractor.runtime.silhouette import garment_silhouette
from conftest import run_cli

BEIGE, WHITE, PALE_BLUE = (236, 226, 208), (255, 255, 255), (210, 225, 240)


def drawn_top(h: int = 256, w: int = 192) -> np.ndarray:
    """A T-shirt's silhouette (bool [h, w]), with straight and slanted edges."""
    shape = Image.new("L", (w, h), 0)
    outline = [(62, 40), (84, 52), (108, 52), (130, 40), (172, 80), (150, 104), (140, 96), (140, 220), (52, 220)]
    ImageDraw.Draw(shape).polygon(outline + [(52, 96), (42, 104), (20, 80)], fill=255)
    return np.asarray(shape) > 127


def under_a_lamp(truth: np.ndarray, backdrop, garment, depth: float = 0.35, blur: float = 6) -> np.ndarray:
    """The garment (one colour) on the backdrop with its shadow: the silhouette moved 8 px down and
    6 right, blurred, darkening the backdrop by up to ``depth``."""
    h, w = truth.shape
    cast = np.zeros((h, w), np.uint8)
    cast[8:, 6:] = truth[:-8, :-6] * 255
    shade = np.asarray(Image.fromarray(cast).filter(ImageFilter.GaussianBlur(blur)), np.float32)[..., None] / 255
    floor = np.asarray(backdrop, np.float32) * (1 - depth * shade)
    return np.where(truth[..., None], np.asarray(garment, np.float32), floor).round().astype(np.uint8)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.mark.parametrize("backdrop", [BEIGE, WHITE, PALE_BLUE])
@pytest.mark.parametrize("garment", [(30, 60, 150), (200, 40, 60), (140, 132, 120), (232, 232, 226)])
def test_a_drop_shadow_is_left_on_the_backdrop(backdrop, garment):
    """Every garment colour on every light backdrop: the silhouette is the garment's, the shadow
    not in it (it was: IoU 0.78), and none of the garment lost (under 0.2%), also where the parser
    missed a sleeve and the garment is the shadow's own colour (taupe: beige at 0.59 of its light). An
    off-white top on white loses a few pixels of its edge where the shadow is its own grey (16),
    and a sleeve the parser missed goes with the shadow there (a known limit: nothing tells that
    sleeve from the shadow it touches; the parser's plane of a garment alone takes sleeves in)."""
    truth = drawn_top()
    photo = under_a_lamp(truth, backdrop, garment)
    missed = truth.copy()
    missed[40:110, 20:52] = False  # the parser's garment without its left sleeve
    neutral = backdrop == WHITE and garment == (232, 232, 226)
    for parser in (truth,) if neutral else (truth, missed):
        found = backdrop_silhouette(photo, parser)
        assert found is not None and iou(found, truth) > 0.95, (garment, backdrop)
        assert (truth & ~found).sum() < 0.002 * truth.sum()  # the sleeve the parser missed is kept: no way in
        assert (found & ~truth).sum() < 0.04 * truth.sum()  # the shadow's first pixels, where it steps to the garment


def test_a_silhouette_without_a_shadow_is_as_it_was():
    """No shadow: nothing of a grey garment on white is taken, nor of a white top whose edge is
    only a faint grey line (its inside is near white: no shadow darkens that little)."""
    truth = drawn_top()
    grey = np.where(truth[..., None], [150, 150, 150], [255, 255, 255]).astype(np.uint8)
    parser = truth.copy()
    parser[40:110, 20:52] = False
    assert np.array_equal(backdrop_silhouette(grey, parser), truth)
    white = np.where(truth[..., None], [246, 246, 246], [255, 255, 255]).astype(np.uint8)
    edge = truth & ~np.asarray(Image.fromarray(truth).filter(ImageFilter.MinFilter(3)))
    white[edge] = 225  # the faint outline that tells a white top from white
    found = backdrop_silhouette(white, parser)
    assert found is not None and np.array_equal(found, garment_silhouette(white) & found)
    assert iou(found, truth) > 0.99


@pytest.mark.parametrize("backdrop", [WHITE, PALE_BLUE])
def test_extract_cuts_a_flat_lay_out_without_its_shadow(backdrop, tmp_path):
    """The synthetic catalog images laid on white and on a pale blue under a lamp (on beige the
    head takes these drawn tops for worn), cut out as garments alone: the silhouette ``extract``
    cut them out with (``--save-masks``, over the photo) is the garment's, not its shadow's. IoU
    against the catalog image's silhouette 0.80-0.82 with the shadow kept; now 0.85-0.91 (the
    parser takes in part of the band next to these drawn tops, which stays: the shadow's own
    colour inside the parser's garment is the garment's)."""
    data = tmp_path / "synthetic"
    write_synthetic(data, 4, seed=3)
    folder = tmp_path / "photos"
    folder.mkdir()
    truths = {}
    for catalog in sorted((data / "garment").iterdir()):
        image = np.asarray(Image.open(catalog).convert("RGB"))
        truths[catalog.stem] = truth = garment_silhouette(image)
        Image.fromarray(np.where(truth[..., None], image, under_a_lamp(truth, backdrop, (0, 0, 0)))).save(
            folder / f"{catalog.stem}.png"
        )
    masks, report = tmp_path / "masks", tmp_path / "r.jsonl"
    done = run_cli("extract", folder, "-o", tmp_path / "out", "--save-masks", masks, "--report", report)
    assert done.returncode == 0, done.stderr
    assert {r["mask"] for r in map(json.loads, open(report))} == {"segmenter+alone"}
    scores = []
    for stem, truth in truths.items():
        saved = Image.open(masks / f"{stem}.png").convert("L").resize(truth.shape[::-1], Image.Resampling.BILINEAR)
        scores.append(iou(np.asarray(saved) >= 128, truth))
    assert min(scores) > 0.83 and np.mean(scores) > 0.86, scores
