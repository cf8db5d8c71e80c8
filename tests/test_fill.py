"""--fill: the garment's box scaled to a share of the page and centred, found by its silhouette."""

import numpy as np
import pytest
from PIL import Image

from clothes_extractor import extract_garment, new_session
from clothes_extractor.data.synth import synth_sample
from clothes_extractor.models import model_for
from clothes_extractor.runtime.fill import garment_box, on_white, parse_fill, placer
from clothes_extractor.runtime.options import ExtractOptions, generator_outputs
from clothes_extractor.runtime.signature import read_signature
from conftest import run_cli


def box_of(alpha: np.ndarray, level: int = 128) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(alpha >= level)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def drawn(box=(40, 100, 100, 180), size=(256, 192), colour=(200, 30, 30), haze=236):
    """A garment as a generator draws one: on a grey haze, with its silhouette (alpha 255 in ``box``)."""
    x0, y0, x1, y1 = box
    garment = np.full((*size, 3), haze, np.uint8)
    garment[y0:y1, x0:x1] = colour
    alpha = np.zeros(size, np.uint8)
    alpha[y0:y1, x0:x1] = 255
    return garment, alpha


def test_a_share_is_given_as_a_percentage_or_a_fraction():
    assert parse_fill("85%") == pytest.approx(0.85) and parse_fill(" 0.85 ") == pytest.approx(0.85)
    assert parse_fill("100%") == 1.0 and parse_fill(0.5) == 0.5 and parse_fill("10%") == pytest.approx(0.1)
    for bad in ("85", "5%", "101%", "0", "nan", "big", "", True):
        with pytest.raises(ValueError, match=r"10% to 100% \(85% or 0\.85\)"):
            parse_fill(bad)
    assert ExtractOptions(fill="90%").fill == pytest.approx(0.9)
    with pytest.raises(ValueError, match="share of the page"):
        ExtractOptions(fill=85)


def test_the_box_is_the_silhouette_s_and_specks_do_not_stretch_it():
    garment, alpha = drawn()
    alpha[5, 5] = 255  # a speck in a corner of the silhouette
    alpha[100:180, 20] = 100  # a faint veil beside the garment (under the half-way line)
    assert garment_box(garment, alpha) == (40, 100, 100, 180)
    assert garment_box(garment, alpha[..., None]) == (40, 100, 100, 180)  # [H, W, 1] as a model gives it
    # without a silhouette: what is not white (the haze, 236, is 19 levels from white: not garment)
    assert garment_box(garment, None) == (40, 100, 100, 180)
    pale = np.full((256, 192, 3), 255, np.uint8)
    pale[50:60, 30:150] = (255, 255, 200)  # a pale yellow is garment: its palest channel is far from white
    assert garment_box(pale, None) == (30, 50, 150, 60)
    assert garment_box(np.full((256, 192, 3), 250, np.uint8), None) is None
    assert garment_box(garment, np.zeros((256, 192), np.uint8)) is None


@pytest.mark.parametrize(
    "box, page, fill, past_the_frame",
    [
        ((40, 100, 100, 180), (300, 300), 0.85, False),  # taller than wide: its height reaches 85%
        ((10, 200, 180, 240), (300, 300), 0.85, True),  # wide and low in the frame: its width does
        ((40, 100, 100, 180), (256, 192), 0.5, False),  # smaller than drawn, on the drawn frame's size
        ((40, 100, 100, 180), (300, 300), 0.2, True),  # small on the page: the frame's edges inside it
        ((0, 0, 192, 256), (400, 400), 1.0, True),  # the whole frame, to the page's edges
    ],
)
def test_the_box_fills_its_share_of_the_page_centred(box, page, fill, past_the_frame):
    garment, alpha = drawn(box)
    place = placer(garment, alpha, page, fill)
    rgb, shown = place(garment), place(alpha)
    assert rgb.shape == (*page, 3) and shown.shape == page
    x0, y0, x1, y1 = box_of(shown)
    height, width = page
    share = max((y1 - y0) / height, (x1 - x0) / width)
    assert share == pytest.approx(fill, abs=2.5 / min(page))
    assert (x0 + x1) / 2 == pytest.approx(width / 2, abs=1.5) and (y0 + y1) / 2 == pytest.approx(height / 2, abs=1.5)
    # the garment's colour inside; past the drawn frame white (alpha 0), within it the haze
    assert (rgb[(y0 + y1) // 2, (x0 + x1) // 2] == (200, 30, 30)).all()
    assert (rgb[0, 0] == (255 if past_the_frame else 236)).all() and shown[0, 0] == 0


def test_no_garment_is_the_frame_as_drawn_nothing_made_up():
    empty = np.full((256, 192, 3), 255, np.uint8)
    place = placer(empty, np.zeros((256, 192), np.uint8), (256, 192), 0.85)
    assert np.array_equal(place(empty), empty)
    # a page of another aspect: the frame contained and centred, as without fill
    garment, _ = drawn(haze=255)
    page = placer(garment, None, (256, 256), 0.85)(np.full((256, 192, 3), 255, np.uint8))
    assert page.shape == (256, 256, 3) and (page == 255).all()


def test_on_white_leaves_the_haze_out_and_the_garment_as_drawn():
    garment, alpha = drawn()
    alpha[100:180, 39] = 128  # a soft edge: half the garment, half white
    white = on_white(garment, alpha)
    assert (white[:100] == 255).all() and (white[100:180, 40:100] == (200, 30, 30)).all()
    assert np.abs(white[120, 39].astype(int) - (0.5 * np.array([236, 236, 236]) + 127.5)).max() <= 1


def test_a_filled_page_through_the_api_with_the_bundled_models(figures):
    photo = figures / "figure-2.jpg"
    with new_session("segmenter", "cpu") as segmenter, new_session("generator", "cpu") as generator:
        square = extract_garment(photo, generator=generator, segmenter=segmenter, output_size=(400, 400), fill="85%")
        plain = extract_garment(photo, generator=generator, segmenter=segmenter, output_size=(400, 400))
        cut = extract_garment(photo, generator=generator, segmenter=segmenter, background="transparent", fill=0.6)
    page, rgba = np.asarray(square), np.asarray(cut)
    assert page.shape == (400, 400, 3)
    x0, y0, x1, y1 = box_of(255 - page.min(axis=2), 255 - 240)  # (the garment on the white page)
    assert max(y1 - y0, x1 - x0) == pytest.approx(340, abs=4)
    assert (x0 + x1) / 2 == pytest.approx(200, abs=4) and (y0 + y1) / 2 == pytest.approx(200, abs=4)
    # the page is white to its edges and around the garment: the drawn frame's haze is left out
    assert (page[:, :20] == 255).all() and (page[:20] == 255).all()
    assert (np.asarray(plain)[:, :50] == 255).all() and (np.asarray(plain)[:, 50:53] >= 250).all()  # (so a page's)
    x0, y0, x1, y1 = box_of(rgba[..., 3])  # (the auto size: the photo crop's own, 3:4)
    assert max((y1 - y0) / rgba.shape[0], (x1 - x0) / rgba.shape[1]) == pytest.approx(0.6, abs=0.01)


def test_a_page_lays_a_drawn_garment_on_its_white_and_a_cut_out_as_it_is(figures, tmp_path):
    catalog = tmp_path / "catalog.png"
    synth_sample(0, seed=3)[2].save(catalog)  # a top laid flat on white: cut out, not drawn
    outputs = generator_outputs("white", None, (256, 256))  # (a page: the silhouette is read, for this model)
    with new_session("segmenter", "cpu") as segmenter, new_session("generator", "cpu", outputs=outputs) as generator:
        assert generator.output_names == ["garment", "alpha"]
        cut_page, cut, worn_page, worn = (
            np.asarray(extract_garment(photo, generator=generator, segmenter=segmenter, output_size=size))
            for photo in (catalog, figures / "figure-2.jpg")
            for size in ((256, 256), (256, 192))
        )
    # a cut-out is on white by its alpha already: on the page as it is (laid again, its edge paled by up to 24)
    assert np.array_equal(cut_page[:, 32:224], cut) and (cut_page[:, :32] == 255).all()
    # a drawn garment keeps its grey haze at the 3:4 frame's edge; on a page it is left out
    assert worn[:, :3].mean() < 245 and (worn_page[:, :35] >= 254).all()


def test_the_outputs_of_a_page_depend_on_the_model_s_aspect(tiny_model_path):
    from clothes_extractor.runtime.session import contract_of

    bundled, tiny = contract_of(model_for("generator", gpu=False)), contract_of(tiny_model_path)
    assert bundled.size == (256, 192)
    page = generator_outputs("white", None, (1000, 1000))
    assert page(bundled) is None
    assert generator_outputs("white", None, (1000, 750))(bundled) == ("garment",)  # its own aspect: no page
    assert generator_outputs("white", None, [1024, 768])(bundled) == ("garment",)
    assert generator_outputs("white", None, "auto") == ("garment",) and generator_outputs("white", None, 512) == (
        "garment",
    )
    assert generator_outputs("#ffffff", None, (1000, 1000)) is None
    height, width = tiny.size
    assert generator_outputs("white", None, (height * 4, width * 4))(tiny) == ("garment",)


def test_a_session_without_its_silhouette_is_refused_a_fill(figures):
    with new_session("generator", "cpu", outputs=generator_outputs("white")) as generator:
        with pytest.raises(ValueError, match="opened without its alpha output, which .* a fill needs"):
            extract_garment(figures / "figure-2.jpg", generator=generator, fill="85%")
    assert generator_outputs("white", 0.85) is None and generator_outputs("white") == ("garment",)


def test_extract_fill_on_the_command_line_and_a_rerun_without_it_redoes_the_page(figures, tmp_path):
    out = tmp_path / "out"
    done = run_cli("extract", figures, "-o", out, "--provider", "cpu", "--fill", "85%", "--output-size", "500x500")
    assert done.returncode == 0, done.stderr
    assert "each is brought to a 500x500 page, its box filling 85% of it" in done.stdout + done.stderr
    written = sorted(out.iterdir())
    assert written and all(Image.open(path).size == (500, 500) for path in written)
    assert "fill=85%" in read_signature(written[0], "png")
    again = run_cli("extract", figures, "-o", out, "--provider", "cpu", "--fill", "0.85", "--output-size", "500x500")
    assert "0 extracted" in again.stdout + again.stderr  # (the same share, written another way: skipped)
    plain = run_cli("extract", figures, "-o", out, "--provider", "cpu", "--output-size", "500x500")
    assert f"{len(written)} extracted" in plain.stdout + plain.stderr
    bad = run_cli("extract", figures, "-o", tmp_path / "bad", "--fill", "85")
    assert bad.returncode == 2 and "--fill" in bad.stderr and "85% or 0.85" in bad.stderr
    assert not (tmp_path / "bad").exists()


def test_extract_folder_fills_its_pages_and_opens_the_generator_with_its_silhouette(figures, tmp_path):
    from clothes_extractor import extract_folder

    summary = extract_folder(figures, tmp_path / "out", fill="70%", output_size=(300, 300), workers=1)
    assert summary.ok == len(list(figures.iterdir())) and summary.failed == 0
    for path in sorted((tmp_path / "out").iterdir()):
        page = np.asarray(Image.open(path))
        x0, y0, x1, y1 = box_of(255 - page.min(axis=2), 255 - 240)
        assert page.shape == (300, 300, 3) and max(y1 - y0, x1 - x0) == pytest.approx(210, abs=5), path.name
        assert "fill=70%" in read_signature(path, "png")
