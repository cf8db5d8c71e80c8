"""Product images: a garment's front and back views, side by side or one above the other, give
one view in ``extract`` (the first: left, or top), as try-on dresses one
(``silhouette.one_of_several``, ``silhouette.one_view``); a swatch of its fabric beside the garment
is left out (``silhouette.swatches``). Drawn silhouettes and planes first, then ``extract`` with
the bundled parser on drawn catalog tops beside and above their mirror image or a swatch."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from clothes_extractor.data.synth import synth_sample
from clothes_extractor.runtime.silhouette import one_of_several, one_view, swatches
from conftest import VITON_VAL, extracted_masks


def blob(shape: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    """bool ``shape`` with the rectangle ``box`` (x0, y0, x1, y1) set."""
    out = np.zeros(shape, bool)
    out[box[1] : box[3], box[0] : box[2]] = True
    return out


def drawn_tops(folder: Path) -> list[Image.Image]:
    """Four drawn catalog tops at 512x384, each also saved alone in ``folder`` (``single<i>.png``)."""
    folder.mkdir()
    tops = [synth_sample(i, seed=3, size=(512, 384))[2] for i in range(4)]
    for i, top in enumerate(tops):
        top.save(folder / f"single{i}.png")
    return tops


def test_several_garments_apart_give_the_band_of_the_first():
    """Two parts alike side by side: the columns up to halfway across the gap; one above the
    other: the rows; a smaller first view (under ``NEAR_TIE`` of the larger): the larger; a part
    under half the largest (a tag, a speck), parts that overlap both ways, or one part: none."""
    side = blob((100, 200), (10, 10, 90, 90)) | blob((100, 200), (110, 10, 190, 90))
    assert one_of_several(side) == (True, 0.0, 100.0)
    stacked = blob((200, 100), (10, 10, 90, 90)) | blob((200, 100), (10, 110, 90, 190))
    assert one_of_several(stacked) == (False, 0.0, 100.0)
    smaller = blob((100, 200), (10, 20, 80, 80)) | blob((100, 200), (110, 10, 190, 90))  # 0.66 of the other
    assert one_of_several(smaller) == (True, 95.0, 200.0)
    tag = blob((100, 200), (10, 10, 90, 90)) | blob((100, 200), (120, 40, 150, 70))
    assert one_of_several(tag) is None
    crossed = blob((200, 200), (10, 10, 110, 110)) | blob((200, 200), (100, 120, 190, 190))  # overlap in columns
    crossed |= blob((200, 200), (120, 20, 190, 100))  # ...and one beside the first, overlapping it in rows
    assert one_of_several(crossed) is None
    assert one_of_several(blob((100, 100), (10, 10, 90, 90))) is None


@pytest.mark.parametrize("joined", ["parse", "silhouette"])
def test_one_view_is_told_by_the_photo_or_the_parse(joined):
    """The views are told apart in the photo's silhouette or in the parse, whichever sees the gap:
    a parse that runs across a narrow gap, or a silhouette that joins two views where their edges
    touch, still gives the first view's band; the plane is cleared outside it."""
    left, right = blob((100, 200), (10, 10, 98, 90)), blob((100, 200), (102, 10, 190, 90))
    bridge = blob((100, 200), (98, 40, 102, 60))
    plane = ((left | right | (bridge if joined == "parse" else False)) * 230).astype(np.uint8)
    silhouette = left | right | (bridge if joined == "silhouette" else False)
    cut, band = one_view(plane, silhouette, 128)
    assert band == (0, 0, 100, 100)
    assert np.array_equal(cut >= 128, (plane >= 128) & blob((100, 200), band))  # (the bridge's half: the plane's)
    single, none = one_view((left * 230).astype(np.uint8), left, 128)
    assert none is None and np.array_equal(single >= 128, left)


def test_a_parse_that_loses_a_garments_middle_is_not_two_views():
    """A garment the parser finds in two parts, one above the other (its shoulders and its hem,
    the middle lost on a grain: VITON 011708 on the benchmark's grain), its silhouette whole: the
    two sides of the cut are unlike (the hem narrower, the parts of other heights), so it is one
    garment; the same parse over two stacked views alike in the silhouette is cut."""
    shoulders, hem = blob((240, 200), (10, 20, 190, 100)), blob((240, 200), (60, 118, 150, 210))
    plane = ((shoulders | hem) * 230).astype(np.uint8)
    whole = blob((240, 200), (5, 15, 195, 230))
    cut, band = one_view(plane, whole, 128)
    assert band is None and np.array_equal(cut, plane)
    top, bottom = blob((240, 200), (10, 10, 190, 110)), blob((240, 200), (10, 110, 190, 210))
    plane = ((top | bottom) * 230).astype(np.uint8)
    plane[108:112] = 0  # (the parse sees the seam between the views; the silhouette does not)
    assert one_view(plane, top | bottom, 128)[1] == (0, 0, 200, 110)


def test_extract_cuts_out_one_view_of_a_front_and_back_product_image(tmp_path):
    """``extract`` with the bundled parser on drawn catalog tops beside and above their mirror
    image (a back view's stand-in) on white: the garment is the front's, cut out as the front
    alone is (saved mask IoU > 0.95 over the front's half, under 1% of it on the back's; both
    views as one garment before: IoU 0.5 over the whole image)."""
    folder = tmp_path / "photos"
    for i, front in enumerate(drawn_tops(folder)):
        pair = Image.new("RGB", (768, 512), "white")
        pair.paste(front, (0, 0))
        pair.paste(ImageOps.mirror(front), (384, 0))
        pair.save(folder / f"pair{i}.png")
        stack = Image.new("RGB", (384, 1024), "white")
        stack.paste(front, (0, 0))
        stack.paste(ImageOps.mirror(front), (0, 512))
        stack.save(folder / f"stack{i}.png")
    found = extracted_masks(folder, tmp_path)
    assert [name for name, (source, _) in found.items() if source != "segmenter+alone"] == []
    masks = {name: mask for name, (_, mask) in found.items()}
    for i in range(4):
        single = masks[f"single{i}"]
        for name, front, back in (
            (f"pair{i}", masks[f"pair{i}"][:, :384], masks[f"pair{i}"][:, 384:]),
            (f"stack{i}", masks[f"stack{i}"][:512], masks[f"stack{i}"][512:]),
        ):
            assert (front & single).sum() / (front | single).sum() > 0.95, name
            assert back.sum() < 0.01 * single.sum(), name


@pytest.mark.skipif(not VITON_VAL.is_file(), reason=f"{VITON_VAL} is absent")
def test_a_view_the_closer_look_finds_worn_is_generated_from_that_view(tmp_path):
    """A black top beside its mirror image (VITON 005022): the head calls it alone at the first
    look and worn at the closer look on the front, so the front is generated from the closer
    parse, within the front's band (the columns of the "person" the first look chose, the back,
    had cleared it: "no garment found"). A white top beside its mirror (VITON 000010) is cut
    out, the front alone (its parse across both was too faint: "no garment found")."""
    import tarfile

    folder = tmp_path / "photos"
    folder.mkdir()
    with tarfile.open(VITON_VAL) as tar:
        for name in ("005022_1", "000010_1"):
            front = Image.open(tar.extractfile(f"val/cloth/{name}.jpg")).convert("RGB")
            pair = Image.new("RGB", (2 * front.width, front.height), "white")
            pair.paste(front, (0, 0))
            pair.paste(ImageOps.mirror(front), (front.width, 0))
            pair.save(folder / f"{name}.png")
    found = extracted_masks(folder, tmp_path)
    assert found["005022_1"][0] == "segmenter+zoom" and found["000010_1"][0] == "segmenter+alone"
    for name, (_, mask) in found.items():  # (the front's half: a garment; the back's: nothing)
        half = mask.shape[1] // 2
        assert mask[:, :half].mean() > 0.2 and not mask[:, half:].any(), name


def test_a_small_filled_rectangle_apart_from_the_garment_is_a_swatch():
    """A square or a short rectangle apart from the garment, under half its area and filling its
    box, is a swatch (grown two pixels, never into the garment); a tie's end (long and thin), a
    second view (as large), a ring or an L (not filled), or no part apart: none."""
    garment = blob((200, 200), (20, 20, 140, 180))
    square, bar = blob((200, 200), (150, 150, 180, 180)), blob((200, 200), (150, 40, 190, 50))  # (the bar 4:1)
    found = swatches(garment | square | bar)
    assert found is not None and (found & square).sum() == square.sum() and not (found & garment).any()
    assert not (found & bar).any() and found.sum() == blob((200, 200), (148, 148, 182, 182)).sum()
    assert swatches(garment | bar) is None
    assert swatches(garment | blob((200, 200), (142, 20, 200, 170))) is None  # (over half its area: a view)
    ring = square & ~blob((200, 200), (155, 155, 175, 175))
    ell = blob((200, 200), (150, 150, 160, 190)) | blob((200, 200), (150, 180, 190, 190))
    assert swatches(garment | ring) is None and swatches(garment | ell) is None
    assert swatches(garment) is None


def test_extract_leaves_a_fabric_swatch_beside_the_garment_out(tmp_path):
    """``extract`` on drawn catalog tops with a swatch of their fabric in a bottom corner, beside
    the garment (a shop's colour swatch): the garment is cut out as it is alone (saved mask IoU >
    0.95 against the top alone's), the swatch left out (taken with it before: the frame
    stretched to it)."""
    folder = tmp_path / "photos"
    for i, front in enumerate(drawn_tops(folder)):
        framed = Image.new("RGB", (480, 512), "white")
        framed.paste(front, (0, 0))
        framed.paste(front.crop((152, 216, 232, 296)), (392, 424))
        framed.save(folder / f"swatch{i}.png")
    found = extracted_masks(folder, tmp_path)
    assert [name for name, (source, _) in found.items() if source != "segmenter+alone"] == []
    for i in range(4):
        single, mask = found[f"single{i}"][1], found[f"swatch{i}"][1]
        assert (mask[:, :384] & single).sum() / (mask[:, :384] | single).sum() > 0.95
        assert not mask[:, 384:].any()
