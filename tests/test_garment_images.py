"""The garment images ``tryon --garment`` is given, as the dresser fits them: a catalog image
or a flat lay on a coloured or busy backdrop (cut out onto white: ``alone.on_white``), a
garment ``extract`` wrote on a colour (``--background #RRGGBB``: that colour made white,
``alone.off_colour``), one framed loosely (a shop's square image, a garment in a corner:
reframed as VITON frames one, ``tryon.framed_garment``) and a product image of the front and
back views side by side (cut to one). The bundled parser and try-on model are real trained
models."""

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from clothes_extractor import dress, new_session
from clothes_extractor.data.synth import synth_sample
from clothes_extractor.runtime.dressing import Dresser
from clothes_extractor.runtime.images import encode_image, written_background
from clothes_extractor.runtime.silhouette import garment_silhouette
from clothes_extractor.runtime.tryon import fit_garment, framed_garment
from conftest import ROOT, TRYON_PERSONS, run_cli


def test_a_catalog_image_on_a_coloured_backdrop_is_cut_out_onto_white_for_the_try_on(tryon_folders):
    """``tryon --garment`` given a drawn top laid on an orange backdrop or a wood-like grain: the
    catalog silhouette takes such a border for garment (the whole frame: the person got a
    balloon of a top), so the dresser cuts the garment out onto white first (``alone.on_white``)
    and dresses the person as the same top on white dresses them. On white nothing changes."""
    persons, _ = tryon_folders
    person = Image.open(persons / TRYON_PERSONS[1]).convert("RGB")
    y, x = np.mgrid[0:512, 0:384]
    grain = np.clip(np.array([150, 100, 60]) + (np.sin(x * 0.3 + 3 * np.sin(y * 0.02)) * 18)[..., None], 0, 255)
    with new_session("tryon", "cpu") as tryon, new_session("segmenter", "cpu") as parser:
        dresser = Dresser(tryon, parser)
        for index, backdrop in ((0, np.array([230, 120, 40])), (3, grain)):
            white = synth_sample(index, seed=3, size=(512, 384))[2]
            pixels = np.asarray(white)
            laid = Image.fromarray(np.where(garment_silhouette(pixels)[..., None], pixels, backdrop).astype(np.uint8))
            on_white = dresser.garment(white)
            assert np.array_equal(on_white.image, fit_garment(white, dresser.size)[0])  # (on white: as before)
            truth = on_white.mask[..., 0] > 127
            as_it_is = fit_garment(laid, dresser.size)[1][..., 0] > 127
            assert (as_it_is & truth).sum() / (as_it_is | truth).sum() < 0.6  # the backdrop taken for garment
            garment = dresser.garment(laid)
            cut = garment.mask[..., 0] > 127
            assert (cut & truth).sum() / (cut | truth).sum() > 0.95
            dressed, dressed_white = (np.asarray(dress(person, g, tryon=tryon, parser=parser)) for g in (laid, white))
            assert np.abs(dressed.astype(int) - dressed_white).mean() < 0.5, index  # (5.3 and 1.3 before)


@pytest.mark.parametrize(
    ("signature", "colour"),
    [
        ("model=3d6997de1a38f092 size=auto background=#1e3a8a", (30, 58, 138)),
        ("model=3d6997de1a38f092 size=auto background=#1e3a8a segmenter=c2db8694f85f5b05", (30, 58, 138)),
        ("model=3d6997de1a38f092 size=auto background=white", None),
        ("model=3d6997de1a38f092 size=model background=transparent", None),
        ("tryon=0123456789abcdef parser=0123456789abcdef", None),  # a try-on output: a person, no garment
        ("model=3d6997de1a38f092 size=auto background=#1e3a8g", None),  # not a colour
        (None, None),
    ],
)
@pytest.mark.parametrize("fmt", ["png", "jpg", "webp"])
def test_the_colour_a_garment_was_written_on_is_read_from_its_signature(signature, colour, fmt):
    data = encode_image(np.full((8, 6, 3), 200, np.uint8), fmt, signature=signature)
    assert written_background(Image.open(io.BytesIO(data))) == colour


def test_a_garment_extract_wrote_on_a_colour_dresses_as_the_one_it_wrote_on_white(tmp_path):
    """``extract --background "#1e3a8a"`` then ``tryon --garment`` that file: the navy backdrop
    is no garment (it was: navy painted on the dressed arms), so it dresses the person as the
    garment extracted on white does."""
    photo = ROOT / "examples" / "photos" / "figure-1.jpg"
    person = ROOT / "examples" / "photos" / "figure-6.jpg"
    navy, white = tmp_path / "navy.png", tmp_path / "white.png"
    for out, background in ((navy, "#1e3a8a"), (white, "white")):
        done = run_cli("extract", photo, "-o", out, "--background", background)
        assert done.returncode == 0, done.stderr
    assert written_background(Image.open(navy)) == (30, 58, 138)
    on_navy, on_white = (np.asarray(dress(person, garment)).astype(int) for garment in (navy, white))
    dressed = np.any(on_white != np.asarray(Image.open(person).convert("RGB")), axis=2)
    navy_pixels = (np.abs(on_navy - (30, 58, 138)).max(axis=2) < 40) & dressed
    assert navy_pixels.sum() == 0  # (390 of its 13,664 dressed pixels were navy)
    assert np.abs(on_navy - on_white)[dressed].mean() < 6  # (4.0; 7.5 before)


def _canvas(image: Image.Image, size: tuple[int, int], at: tuple[int, int], colour) -> Image.Image:
    canvas = Image.new("RGB", size, colour)
    canvas.paste(image, at)
    return canvas


def test_a_garment_framed_loosely_is_cut_from_its_image_as_viton_frames_one():
    """A catalog garment a try-on sees framed as it learned (VITON: the garment fills 85% or more
    of the frame one way) is taken as it is; the same garment in a corner of a larger image, or
    centred in a square one on a studio's off-white, is cut from its image to that framing."""
    size = (256, 192)
    white = synth_sample(2, seed=3, size=(512, 384))[2]  # a drawn top filling its frame as VITON's do
    same, image, mask = framed_garment(white, size)
    assert same is white and np.array_equal(image, fit_garment(white, size)[0])
    for loose in (
        _canvas(white, (900, 1000), (0, 0), (255, 255, 255)),  # in a corner, wide margins
        _canvas(_off_white(white), (512, 512), (64, 0), (246, 246, 246)),  # a shop's square image, off-white
    ):
        framed, image, mask = framed_garment(loose, size)
        assert framed is not loose and framed.width / framed.height == pytest.approx(0.75, abs=0.01)
        x0, y0, x1, y1 = _box(mask[..., 0] > 127)
        assert (x1 - x0) / size[1] == pytest.approx(0.953, abs=0.02)  # VITON's median width
        tx0, ty0, tx1, ty1 = _box(fit_garment(white, size)[1][..., 0] > 127)
        truth = Image.fromarray(fit_garment(white, size)[1][ty0:ty1, tx0:tx1, 0]).resize((x1 - x0, y1 - y0))
        same, found = np.asarray(truth) > 127, mask[y0:y1, x0:x1, 0] > 127
        assert (same & found).sum() / (same | found).sum() > 0.95  # the same garment, whole


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _off_white(image: Image.Image) -> Image.Image:
    pixels = np.asarray(image)
    return Image.fromarray(np.where(garment_silhouette(pixels)[..., None], pixels, np.uint8(246)))


def test_a_square_catalog_image_dresses_the_person_as_the_garment_framed_as_viton_frames_it():
    """A shop's square catalog image (the garment centred on its studio's off-white, margins both
    sides): padded with white around it, its whole square was the garment's silhouette (the ten
    VITON-HD sample pairs, their garments so: SSIM 0.760 and 12.2 dB against 0.830 and 18.6 as
    VITON-HD frames them); it now dresses as the well-framed image does."""
    person = ROOT / "examples" / "photos" / "figure-6.jpg"
    white = synth_sample(2, seed=3, size=(512, 384))[2]
    square = _canvas(_off_white(white), (512, 512), (64, 0), (246, 246, 246))
    with new_session("tryon", "cpu") as tryon, new_session("segmenter", "cpu") as parser:
        framed, loose = (np.asarray(dress(person, g, tryon=tryon, parser=parser)).astype(int) for g in (white, square))
    photo = np.asarray(Image.open(person).convert("RGB"))
    dressed = np.any(framed != photo, axis=2)
    assert dressed.mean() > 0.05
    assert np.abs(loose - framed)[dressed].mean() < 2  # (0.3; 10.1 before)


def test_front_and_back_views_side_by_side_dress_the_person_in_one_of_them():
    """A product image with the garment's front and back views side by side (or one above the
    other) is cut to one view: the first (left, top) of two alike, else the larger. Dressed in
    both views at once, the person got two half garments. (No single catalog image of VITON's
    1,528 validation and 2,845 training ones, nor of the VITON-HD and Dress Code samples, is cut.)"""
    size = (256, 192)
    front = synth_sample(2, seed=3, size=(512, 384))[2]
    back = ImageOps.mirror(front)
    pair = _canvas(front, (768, 512), (0, 0), (255, 255, 255))
    pair.paste(back, (384, 0))
    stacked = _canvas(front, (384, 1024), (0, 0), (255, 255, 255))
    stacked.paste(back, (0, 512))
    single = fit_garment(front, size)[1][..., 0] > 127
    for image in (pair, stacked):
        framed, _, mask = framed_garment(image, size)
        assert np.array_equal(np.asarray(framed), np.asarray(image)[: framed.height, : framed.width])  # a band of it
        assert framed.size in ((384, 512), (384, 502))  # cut halfway across the gap between the views
        found = mask[..., 0] > 127
        assert (found & single).sum() / (found | single).sum() > 0.95  # the front, framed as alone
    smaller = _canvas(front.resize((256, 341)), (768, 512), (64, 85), (255, 255, 255))
    smaller.paste(back, (384, 0))  # the left view at 44% of the right's area: the larger is taken
    framed, _, _ = framed_garment(smaller, size)
    assert np.array_equal(np.asarray(framed)[:, -384:], np.asarray(back))
    with new_session("tryon", "cpu") as tryon, new_session("segmenter", "cpu") as parser:
        person = ROOT / "examples" / "photos" / "figure-6.jpg"
        one, two = (np.asarray(dress(person, g, tryon=tryon, parser=parser)).astype(int) for g in (front, pair))
    assert np.array_equal(one, two)
