"""Try-on serving as its users run it: one pair, a folder, a pairs file, a garment taken from
another photo, the Python function; the person's own pixels outside what is dressed anew,
and every bad pair reported without stopping the others or inventing anything.

The parser is the bundled segmenter (a real trained model); the try-on network is a tiny
random one (what it draws is noise, where it draws is what these tests check).
"""

from __future__ import annotations

import functools
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clothes_extractor import dress, new_session
from clothes_extractor.data.synth import synth_sample
from clothes_extractor.errors import InputError, ModelError, NothingToDressError
from clothes_extractor.runtime.alone import WORN_BELOW
from clothes_extractor.runtime.dress_jobs import DressJob, run_dressing
from clothes_extractor.runtime.dressing import Dresser
from clothes_extractor.runtime.tryon import fit_garment, grow, region_from_labels, window_to_photo
from conftest import ROOT, TINY_SIZE, TRYON_PERSONS, run_cli, serving


@pytest.fixture(scope="module")
def tiny_tryon_path(tmp_path_factory) -> Path:
    """A tiny random try-on network whose grid moves, exported (64x48)."""
    torch = pytest.importorskip("torch")
    from clothes_extractor.export.onnx_export import export_model
    from clothes_extractor.train.tryon import TryOnConfig, TryOnGenerator

    torch.manual_seed(0)
    model = TryOnGenerator(TryOnConfig(height=TINY_SIZE[0], width=TINY_SIZE[1], ngf=4, levels=3, top=4))
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(2, 4, *TINY_SIZE), torch.randn(2, 4, *TINY_SIZE))
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d) and module.out_channels == 2:
                module.weight.normal_(0, 0.01)
    path = tmp_path_factory.mktemp("tryon") / "tryon.onnx"
    export_model(model.eval(), path)
    return path


@pytest.fixture
def parser():
    with new_session("segmenter", "cpu") as session:
        if not session.contract.labels:
            pytest.skip("the bundled segmenter is not a parser")
        yield session


def test_region_is_the_parsers_top_and_arms_grown():
    names = ("background", "hair", "face", "upper", "other-upper", "lower", "arms", "legs")
    labels = np.zeros((20, 20), np.uint8)
    labels[5:10, 5:10] = names.index("upper")
    labels[12, 3] = names.index("arms")
    labels[15:18, 15:18] = names.index("lower")
    region = region_from_labels(labels, names, grow_px=1)
    assert region.shape == (20, 20, 1) and region.dtype == np.uint8
    expected = grow(np.isin(labels, [3, 6]), 1)
    assert np.array_equal(region[..., 0] == 255, expected)
    assert region[4, 7, 0] == 255 and region[3, 7, 0] == 0  # one pixel of growth, not two
    assert region[16, 16, 0] == 0  # the lower body is never dressed anew
    with pytest.raises(ValueError, match="needs a parser"):
        region_from_labels(labels, ("background", "garment"))


def test_only_the_region_changes_and_the_photo_keeps_its_size(tiny_tryon_path, parser, tryon_folders):
    persons, garments = tryon_folders
    big = persons / "big.png"
    Image.open(persons / TRYON_PERSONS[0]).resize((300, 400), Image.Resampling.BICUBIC).save(big)
    with new_session(tiny_tryon_path, "cpu") as tryon:
        dresser = Dresser(tryon, parser)
        photo = Image.open(big).convert("RGB")
        (parsed,) = dresser.parse([photo])
        fitted = dresser.fit(photo, parsed, fit_garment(photo, dresser.size))
        (dressed,) = dresser.dress([fitted])
    assert dressed.size == photo.size
    region = Image.fromarray(fitted.inputs["region"][:, :, 0], "L")
    alpha = np.asarray(window_to_photo(region, fitted.window, photo.size, Image.Resampling.BILINEAR))
    outside, inside = alpha == 0, alpha == 255
    assert 0.3 < outside.mean() < 0.95 and inside.mean() > 0.05
    original, result = np.asarray(photo), np.asarray(dressed)
    assert np.array_equal(result[outside], original[outside])  # face, legs, background: untouched pixels
    assert np.abs(result[inside].astype(int) - original[inside]).mean() > 5  # the top is redrawn


def test_one_pair_a_folder_and_a_rerun(tiny_tryon_path, tryon_folders, tmp_path):
    persons, garments = tryon_folders
    model = ["--model", tiny_tryon_path, "--provider", "cpu"]
    one = tmp_path / "one.jpg"
    done = run_cli("tryon", "--person", persons / TRYON_PERSONS[0], "--garment", garments / "g0.png", "-o", one, *model)
    assert done.returncode == 0, done.stderr
    assert Image.open(one).size == Image.open(persons / TRYON_PERSONS[0]).size and "wrote" in done.stderr

    Image.new("RGB", (192, 256), (240, 240, 240)).save(persons / "empty-room.png")  # nobody to dress
    (persons / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (persons / "loop.jpg").symlink_to(persons / "loop.jpg")  # a link to itself: reported, not fatal
    out = tmp_path / "out"
    done = run_cli("tryon", "--person", persons, "--garment", garments / "g1.png", "-o", out, *model)
    assert done.returncode == 1
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(f"{Path(name).stem}__g1.png" for name in TRYON_PERSONS)  # and nothing else
    assert "empty-room.png" in done.stderr and "found no upper-body clothing" in done.stderr
    assert "broken.jpg" in done.stderr and "3 dressed" in done.stderr and "3 failed" in done.stderr
    broken = [line for line in done.stderr.splitlines() if "broken.jpg" in line]
    assert broken == [
        f"error: {persons / 'broken.jpg'} + {garments / 'g1.png'}: person photo is not an image"
        " in a format Pillow can read (JPEG, PNG, WebP, AVIF, BMP, TIFF, GIF; HEIC with pillow-heif);"
        " the file may be corrupt"
    ]  # the pair named once
    assert "loop.jpg" in done.stderr and "Traceback" not in done.stderr
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = run_cli("tryon", "--person", persons, "--garment", garments / "g1.png", "-o", out, *model)
    assert again.returncode == 1 and "3 skipped" in again.stderr
    assert stamps == {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    # a dry run: the three done, the empty room and the broken photo to dress (found by the
    # run itself), the link loop refused; nothing decoded or written, in a new folder neither
    report = tmp_path / "dry.jsonl"
    dry = run_cli("tryon", "--person", persons, "--garment", garments / "g1.png", "-o", out, "--dry-run",
                  "--report", report, *model)  # fmt: skip
    assert dry.returncode == 1 and "dry run of 6 pair(s): 2 to dress, 3 already done, 1 refused" in dry.stderr
    assert "loop.jpg" in dry.stderr and stamps == {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    statuses = {Path(json.loads(line)["person"]).name: json.loads(line)["status"] for line in report.open()}
    assert statuses == {**{name: "skipped" for name in TRYON_PERSONS}, "empty-room.png": "pending",
                        "broken.jpg": "pending", "loop.jpg": "error"}  # fmt: skip
    fresh = run_cli("tryon", "--person", persons / TRYON_PERSONS[0], "--garment", garments / "g0.png",
                    "-o", tmp_path / "new" / "x.png", "--dry-run", *model)  # fmt: skip
    assert fresh.returncode == 0 and "1 to dress" in fresh.stderr and not (tmp_path / "new").exists()


def test_a_sheet_shows_each_pair_person_garment_and_dressed_and_never_replaces_an_input_or_output(
    tiny_tryon_path, tryon_folders, tmp_path
):
    from clothes_extractor.runtime.fitting import letterbox
    from clothes_extractor.runtime.images import load_photo

    persons, garments = tryon_folders
    model = ["--model", tiny_tryon_path, "--provider", "cpu"]
    out, sheet = tmp_path / "out", tmp_path / "sheet.png"
    done = run_cli("tryon", "--person", persons, "--garment", garments / "g0.png", "-o", out, "--sheet", sheet, *model)
    assert done.returncode == 0 and f"contact sheet: {sheet}" in done.stderr, done.stderr
    with new_session(tiny_tryon_path, "cpu") as session:
        h, w = session.contract.size
    shown = np.asarray(Image.open(sheet).convert("RGB"))
    assert shown.shape == (3 * (h + 4) + 4, 3 * (w + 4) + 4, 3)  # three pairs: person | garment | dressed
    first = persons / sorted(TRYON_PERSONS)[0]
    for column, path in enumerate([first, garments / "g0.png", out / f"{first.stem}__g0.png"]):
        tile = shown[4 : 4 + h, 4 + column * (w + 4) : 4 + column * (w + 4) + w]
        assert np.array_equal(tile, letterbox(load_photo(path)[0], (h, w), (255, 255, 255))[0]), path
    inside = run_cli("tryon", "--person", persons, "--garment", garments / "g0.png", "-o", out,
                     "--sheet", persons / "sheet.png", *model)  # fmt: skip
    assert inside.returncode == 2 and "is in the input folder" in inside.stderr, inside.stderr
    written = out / f"{first.stem}__g0.png"
    before = written.read_bytes()
    again = run_cli("tryon", "--person", persons, "--garment", garments / "g0.png", "-o", out,
                    "--sheet", written, "--overwrite", *model)  # fmt: skip
    assert again.returncode == 1, again.stderr
    assert "is a dressed photo this tool wrote: it is kept, and no sheet was written" in again.stderr
    assert written.read_bytes() == before and not (persons / "sheet.png").exists()


def test_a_sheet_of_garments_from_photos_shows_the_catalog_image_each_was_dressed_in(tiny_tryon_path, tmp_path):
    """``--garment-from``: the garment a sheet row shows is the catalog image stage one made of
    the photo (what ``extract`` makes of it), not the photo, though that file is gone by then."""
    from clothes_extractor.runtime.fitting import letterbox
    from clothes_extractor.runtime.images import load_photo

    photo, person = ROOT / "examples" / "photos" / "figure-5.jpg", ROOT / "examples" / "photos" / "figure-6.jpg"
    sheet, model = tmp_path / "sheet.png", ["--model", tiny_tryon_path, "--provider", "cpu"]
    done = run_cli("tryon", "--person", person, "--garment-from", photo, "-o", tmp_path / "5-on-6.png",
                   "--sheet", sheet, *model)  # fmt: skip
    assert done.returncode == 0 and f"contact sheet: {sheet}" in done.stderr, done.stderr
    made = run_cli("extract", photo, "-o", tmp_path / "catalog.png", "--output-size", "model")
    assert made.returncode == 0, made.stderr
    with new_session(tiny_tryon_path, "cpu") as session:
        h, w = session.contract.size
    tile = np.asarray(Image.open(sheet).convert("RGB"))[4 : 4 + h, 4 + (w + 4) : 4 + (w + 4) + w]
    catalog = letterbox(load_photo(tmp_path / "catalog.png", role="garment image")[0], (h, w), (255, 255, 255))[0]
    assert np.array_equal(tile, catalog)
    assert not np.array_equal(tile, letterbox(load_photo(photo)[0], (h, w), (255, 255, 255))[0])
    # that catalog image given as the garment (extract, then tryon --garment): drawn as it is
    again = run_cli("tryon", "--person", person, "--garment", tmp_path / "catalog.png", "-o", tmp_path / "again.png",
                    "--sheet", tmp_path / "again-sheet.png", *model)  # fmt: skip
    assert again.returncode == 0 and "contact sheet:" in again.stderr, again.stderr
    tile = np.asarray(Image.open(tmp_path / "again-sheet.png").convert("RGB"))[4 : 4 + h, 4 + (w + 4) : 4 + (w + 4) + w]
    assert np.array_equal(tile, catalog)


def test_the_output_is_never_one_of_the_inputs(tiny_tryon_path, tryon_folders, tmp_path):
    persons, garments = tryon_folders
    person, garment = persons / TRYON_PERSONS[0], garments / "g0.png"
    before = person.read_bytes(), garment.read_bytes()
    model = ["--model", tiny_tryon_path, "--provider", "cpu"]
    for output, what in ((person, "person photo"), (garment, "garment")):
        done = run_cli("tryon", "--person", person, "--garment", garment, "-o", output, *model)
        assert done.returncode == 1 and f"is the {what} itself" in done.stderr
    done = run_cli("tryon", "--person", persons, "--garment", garment, "-o", tmp_path / "o", "--report", person, *model)
    assert done.returncode == 2 and f"--report {person} is in the input folder" in done.stderr
    assert (person.read_bytes(), garment.read_bytes()) == before
    twins = tmp_path / "twins"
    twins.mkdir()
    shutil.copy(person, twins / "a.jpg")
    Image.open(persons / TRYON_PERSONS[1]).save(twins / "a.png")  # another person, one output name
    done = run_cli("tryon", "--person", twins, "--garment", garment, "-o", tmp_path / "out", *model)
    assert done.returncode == 1 and "1 dressed" in done.stderr and "1 failed" in done.stderr
    said = f"error: {twins / 'a.png'} + {garment}: {tmp_path / 'out' / 'a__g0.png'} is already the output of "
    assert f"{said}{twins / 'a.jpg'} in the same garment; dress this pair separately" in done.stderr, done.stderr
    two = tmp_path / "two"  # one person in two garments of one name
    two.mkdir()
    shutil.copy(garment, two / "g.png")
    Image.open(garment).convert("RGB").save(two / "g.jpg")
    done = run_cli("tryon", "--person", person, "--garment", two, "-o", tmp_path / "o2", *model)
    said = f"error: {person} + {two / 'g.png'}: {tmp_path / 'o2' / person.stem}__g.png is already the output of "
    assert done.returncode == 1 and f"{said}the same person in {two / 'g.jpg'}; dress" in done.stderr, done.stderr
    piped = run_cli("tryon", "--person", person, "--garment", garment, "-o", "-", "--report", tmp_path / "r.jsonl",
                    *model, stdin=b"")  # fmt: skip
    assert piped.returncode == 0 and Image.open(io.BytesIO(piped.stdout)).size == Image.open(person).size
    piped = run_cli("tryon", "--person", person, "--garment", garment, "-o", "-", "--format", "webp", *model,
                    stdin=b"")  # fmt: skip
    assert piped.returncode == 0 and Image.open(io.BytesIO(piped.stdout)).format == "WEBP"
    done = run_cli("tryon", "--person", person, "--garment", garment, "-o", tmp_path / "w.webp", "--format", "jpg",
                   *model)  # fmt: skip
    assert done.returncode == 2 and "is written as WEBP" in done.stderr and not (tmp_path / "w.webp").exists()
    assert json.loads((tmp_path / "r.jsonl").read_text())["output"] == "-" and not Path("-").exists()
    both = run_cli("tryon", "--person", person, "--garment", garment, "-o", "-", "--report", "-", *model)
    assert both.returncode == 2 and "--report - and -o - would both write to standard output" in both.stderr
    listed = run_cli("tryon", "--person", persons, "--garment", garment, "-o", tmp_path / "o", "--report", "-", *model)
    assert listed.returncode == 0 and not Path("-").exists()
    assert [json.loads(line)["status"] for line in listed.stdout.splitlines()] == ["ok"] * len(TRYON_PERSONS)
    (tmp_path / "junk.jpg").write_bytes(b"junk")
    done = run_cli("tryon", "--person", tmp_path / "junk.jpg", "--garment", garment, "-o", tmp_path / "n.png", *model)
    assert done.returncode == 1 and f"Error: {tmp_path / 'junk.jpg'} + {garment}: person photo is not" in done.stderr
    done = run_cli("tryon", "--person", person, "--garment", garment, "-o", tmp_path / "x.gif", *model)
    assert done.returncode == 2 and ".png, .jpg or .webp" in done.stderr and not (tmp_path / "x.gif").exists()
    mine = tmp_path / "mine.png"
    Image.new("RGB", (30, 40), (200, 10, 10)).save(mine)  # not this tool's: kept
    done = run_cli("tryon", "--person", person, "--garment", garment, "-o", mine, *model)
    assert done.returncode == 1 and "was not written by clothes-extractor" in done.stderr
    assert Image.open(mine).size == (30, 40)
    done = run_cli("tryon", "--person", person, "--garment", garment, "-o", mine, "--overwrite", *model)
    assert done.returncode == 0 and Image.open(mine).size == Image.open(person).size


def test_labels_move_between_frames_of_any_aspect(tiny_tryon_path, parser, tryon_folders):
    """A try-on frame of the parser's aspect rescales the class map; one of another aspect
    maps it through the photo. Both put the classes where the photo's pixels land."""
    from clothes_extractor.runtime.fitting import letterbox
    from clothes_extractor.runtime.tryon import fit_labels, labels_in_frame, window_to_photo

    persons, _ = tryon_folders
    photo = Image.open(persons / TRYON_PERSONS[0]).convert("RGB").resize((300, 400))
    with new_session(tiny_tryon_path, "cpu") as tryon:
        ((classes, parsed_window, alone),) = Dresser(tryon, parser).parse([photo])
    assert alone is None  # (a person, not a garment alone)
    upper = parser.contract.labels.index("upper")
    size = (128, 96)  # the parser's aspect: the fast path
    window = letterbox(photo, size, (255, 255, 255))[1]
    fast = labels_in_frame((classes, parsed_window), photo.size, window, size)
    on_photo = window_to_photo(classes, parsed_window, photo.size, Image.Resampling.NEAREST)
    assert (fast == fit_labels(on_photo, photo.size, size)).mean() > 0.95  # nearest twice vs once: edges differ
    square = (96, 96)  # another aspect: through the photo
    window = letterbox(photo, square, (255, 255, 255))[1]
    labels = labels_in_frame((classes, parsed_window), photo.size, window, square)
    pad = round(-window[0] * square[1] / (window[2] - window[0]))
    assert labels.shape == square and pad > 5 and (labels[:, : pad - 1] == 0).all()  # padding: background
    shown = labels[:, pad:-pad]
    assert (shown == upper).mean() == pytest.approx((fast == upper).mean(), abs=0.03)


def test_a_pairs_file_and_the_garment_checks(tiny_tryon_path, tryon_folders, tmp_path):
    persons, garments = tryon_folders
    model = ["--model", tiny_tryon_path, "--provider", "cpu"]
    Image.new("RGB", (192, 256), (255, 255, 255)).save(garments / "blank.png")  # a catalog image of nothing
    listing = tmp_path / "pairs.txt"
    first, second, third = TRYON_PERSONS
    listing.write_text(  # a pair named twice is dressed once, and said
        f"# person garment\n{first} g0.png\n{second} g1.png\n{third} blank.png\n{first} g0.png\n"
    )
    out = tmp_path / "out"
    report = tmp_path / "report.jsonl"
    done = run_cli(
        "tryon", "--person", persons, "--garment", garments, "--pairs", listing, "-o", out, "--report", report, *model
    )
    assert done.returncode == 1
    assert sorted(p.name for p in out.iterdir()) == [
        f"{Path(TRYON_PERSONS[0]).stem}__g0.png",
        f"{Path(TRYON_PERSONS[1]).stem}__g1.png",
    ]
    assert "found no garment in the garment image" in done.stderr
    assert f"note: {listing} names 1 pair(s) again; each pair is dressed once" in done.stderr
    lines = report.read_text().splitlines()
    assert len(lines) == 3 and sum('"status": "error"' in line for line in lines) == 1

    both = run_cli("tryon", "--person", persons, "--garment", garments, "-o", out, *model)
    assert both.returncode == 2 and "--pairs" in both.stderr
    listing.write_text(f"{TRYON_PERSONS[0]}\n")
    bad = run_cli("tryon", "--person", persons, "--garment", garments, "--pairs", listing, "-o", out, *model)
    assert bad.returncode == 1 and "line 1" in bad.stderr
    many = run_cli("tryon", "--person", persons, "--garment", garments / "g0.png", "-o", tmp_path / "x.png", *model)
    assert many.returncode == 2 and "must be a folder" in many.stderr
    assert not (tmp_path / "x.png").exists()
    # given twice, an option click keeps the last of dressed one person in silence (until the 54th stop)
    two = ("--person", persons / first, "--person", persons / second, "--garment", garments / "g0.png")
    twice = run_cli("tryon", *two, "-o", tmp_path / "x.png", *model)
    assert twice.returncode == 2 and "'--person': given 2 times" in twice.stderr and not (tmp_path / "x.png").exists()
    listing.write_text(f"{first} g0.png\n")
    lists = run_cli("tryon", "--person", persons, "--garment", garments, *("--pairs", listing) * 2, "-o", out, *model)
    assert lists.returncode == 2 and "'--pairs': given 2 times" in lists.stderr


def test_a_garment_that_dresses_no_one_is_said_once_with_its_pairs_counted(tiny_tryon_path, tryon_folders, tmp_path):
    """The terminal: a bad garment once, with how many pairs it failed, not its reason once a
    pair (20 lines alike, then "... and N more"); the report: a line a pair, saying which input
    failed. A bad person is still its pair's line."""
    persons, garments = tryon_folders
    (persons / "empty.jpg").write_bytes(b"")
    blank = garments / "blank.png"
    Image.new("RGB", (192, 256), "white").save(blank)
    out, report, model = tmp_path / "out", tmp_path / "r.jsonl", ["--model", tiny_tryon_path]
    done = run_cli("tryon", "--person", persons, "--garment", blank, "-o", out, "--report", report, *model)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    why = (
        "found no garment in the garment image (0.0% of it is not background): it must be a catalog image, the "
        "garment on white, transparent or a plain backdrop (for a photo of someone wearing it: --garment-from, or "
        "garment_from_photo=True)"
    )
    assert done.returncode == 1 and errors == [f"error: {blank} (4 pairs not dressed): {why}"], done.stderr
    assert "4 failed" in done.stderr and "more errors" not in done.stderr
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert len(lines) == 4 and {line["error_of"] for line in lines} == {"garment"}
    good = garments / "g0.png"
    done = run_cli("tryon", "--person", persons, "--garment", good, "-o", out, "--report", report, *model)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    bad_person = f"error: {persons / 'empty.jpg'} + {good}: person photo is an empty file (0 bytes)"
    assert done.returncode == 1 and errors == [bad_person], done.stderr
    lines = {Path(line["person"]).name: line for line in map(json.loads, report.read_text().splitlines())}
    assert lines["empty.jpg"]["error_of"] == "person" and lines[TRYON_PERSONS[0]]["error_of"] is None


def test_garment_from_another_photo_in_one_command(tiny_tryon_path, tryon_folders, tmp_path):
    persons, _ = tryon_folders
    out = tmp_path / "b-in-a.png"
    done = run_cli(
        "tryon",
        "--person",
        persons / TRYON_PERSONS[0],
        "--garment-from",
        persons / TRYON_PERSONS[1],
        "-o",
        out,
        "--model",
        tiny_tryon_path,
        "--provider",
        "cpu",
    )
    assert done.returncode == 0, done.stderr
    assert "extracting the garments of 1 photo" in done.stderr and Image.open(out).size == (192, 256)
    Image.new("RGB", (192, 256), (128, 128, 128)).save(tmp_path / "grey.png")  # no garment to take
    model = ["--model", tiny_tryon_path, "--provider", "cpu"]
    done = run_cli(
        "tryon",
        "--person",
        persons / TRYON_PERSONS[0],
        "--garment-from",
        tmp_path / "grey.png",
        "-o",
        tmp_path / "x.png",
        *model,
    )
    assert done.returncode == 1 and "garment photo: no garment found" in done.stderr
    assert "extract PHOTO --masks DIR, then tryon --garment" in done.stderr  # tryon itself takes no masks


def test_a_person_or_a_garment_piped_in_on_standard_input_is_dressed_as_its_file_is(
    tiny_tryon_path, tryon_folders, tmp_path
):
    """``--person -`` (or ``--garment -``): the image piped in, dressed as the file it came from
    is, named ``-`` in the report; to standard output too (``-o -``). Two images asked of it:
    refused, saying which."""
    persons, garments = tryon_folders
    person, garment, model = persons / TRYON_PERSONS[0], garments / "g0.png", ["--model", tiny_tryon_path]
    files = run_cli("tryon", "--person", person, "--garment", garment, "-o", tmp_path / "files.png", *model)
    piped = run_cli("tryon", "--person", "-", "--garment", garment, "-o", tmp_path / "piped.png",
                    "--report", tmp_path / "piped.jsonl", *model, stdin=person.read_bytes())  # fmt: skip
    out = run_cli("tryon", "--person", person, "--garment", "-", "-o", "-", *model, stdin=garment.read_bytes())
    both = run_cli("tryon", "--person", "-", "--garment", "-", "-o", tmp_path / "both.png", *model, stdin=b"x")
    assert files.returncode == 0 and piped.returncode == 0 and out.returncode == 0, (piped.stderr, out.stderr)
    made = np.asarray(Image.open(tmp_path / "files.png"))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "piped.png")), made)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(out.stdout))), made)
    (line,) = map(json.loads, (tmp_path / "piped.jsonl").read_text().splitlines())
    assert (line["person"], line["garment"], line["status"]) == ("-", str(garment), "ok")
    assert both.returncode == 2 and b"standard input holds one image: give - to one of --person, --garment only" \
        in both.stderr and not (tmp_path / "both.png").exists(), both.stderr  # fmt: skip


def test_persons_and_garments_given_as_urls_are_fetched_and_named_as_given(tiny_tryon_path, tryon_folders, tmp_path):
    """A shop's garment image or a person photo online, given by its address: fetched, dressed,
    named by its URL in the report and the messages (its temporary file never), done already
    on a rerun; a URL that cannot be fetched is refused with why, nothing written."""
    import http.server

    persons, garments = tryon_folders
    (garments / "torn.png").write_bytes((garments / "g0.png").read_bytes()[:100])
    site = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    with serving(site) as url:
        person, garment, torn = (
            f"{url}/persons/{TRYON_PERSONS[0]}",
            f"{url}/garments/g1.png",
            f"{url}/garments/torn.png",
        )
        model, one, reports = (
            ["--model", tiny_tryon_path],
            tmp_path / "one.png",
            [tmp_path / f"{i}.jsonl" for i in range(3)],
        )
        done = run_cli("tryon", "--person", person, "--garment", garment, "-o", one, "--report", reports[0], *model)
        again = run_cli("tryon", "--person", person, "--garment", garment, "-o", one, *model)
        (garments / "torn.png").rename(tmp_path / "torn.png")  # (not in the folder job below)
        folder = run_cli("tryon", "--person", person, "--garment", garments, "-o", tmp_path / "out",
                         "--report", reports[1], *model)  # fmt: skip
        (tmp_path / "torn.png").rename(garments / "torn.png")
        bad = run_cli("tryon", "--person", persons, "--garment", torn, "-o", tmp_path / "t", "--report", reports[2],
                      *model)  # fmt: skip
        gone = run_cli("tryon", "--person", f"{url}/persons/gone.jpg", "--garment-from", f"{url}/garments/",
                       "-o", tmp_path / "never.png", *model)  # fmt: skip
    assert done.returncode == 0 and "fetching 2 URLs" in done.stderr, done.stderr
    assert Image.open(one).size == Image.open(persons / TRYON_PERSONS[0]).size
    (line,) = map(json.loads, reports[0].read_text().splitlines())
    assert (line["person"], line["garment"], line["status"]) == (person, garment, "ok")
    assert again.returncode == 0 and f"skipped (already done) {one}" in again.stderr, again.stderr  # (same bytes)

    assert folder.returncode == 0, folder.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{Path(person).stem}__g{i}.png" for i in (0, 1)]
    assert {json.loads(line)["person"] for line in reports[1].read_text().splitlines()} == {person}

    errors = [line for line in bad.stderr.splitlines() if line.startswith("error: ")]
    assert bad.returncode == 1 and errors == [
        f"error: {torn} (3 pairs not dressed): garment image cannot be decoded (image file is truncated); is the "
        "file truncated or corrupt?"
    ], bad.stderr
    lines = [json.loads(line) for line in reports[2].read_text().splitlines()]
    assert {(line["garment"], line["status"]) for line in lines} == {(torn, "error")} and len(lines) == 3
    assert all("clothes-extractor-" not in line["error"] for line in lines)  # (the temporary folder's name)

    assert gone.returncode == 1 and not (tmp_path / "never.png").exists()
    assert f"cannot fetch {url}/persons/gone.jpg: File not found" in gone.stderr, gone.stderr
    assert f"cannot fetch {url}/garments/: the server answers a web page (text/html)" in gone.stderr
    bucket = run_cli("tryon", "--person", "s3://shop/p.jpg", "--garment", garments, "-o", tmp_path / "b")
    assert bucket.returncode == 2 and "takes local files and folders, and http(s) URLs; copy it here" in bucket.stderr


def test_the_python_function(tiny_tryon_path, parser, tryon_folders):
    persons, garments = tryon_folders
    people = [persons / name for name in TRYON_PERSONS]
    with new_session(tiny_tryon_path, "cpu") as tryon:
        one = dress(people[0], garments / "g0.png", tryon=tryon, parser=parser)
        batch = dress(
            people, [garments / "g0.png", garments / "g1.png", garments / "g0.png"], tryon=tryon, parser=parser
        )
        from_photo = dress(people[0], people[1], garment_from_photo=True, tryon=tryon, parser=parser)
        with pytest.raises(NothingToDressError, match="^found no upper-body clothing"):
            dress(Image.new("RGB", (96, 128), "white"), garments / "g0.png", tryon=tryon, parser=parser)
        with pytest.raises(NothingToDressError, match=r"^pair \[1\]: found no upper-body clothing"):  # which pair
            dress([people[0], Image.new("RGB", (96, 128))], garments / "g0.png", tryon=tryon, parser=parser)
        with pytest.raises(NothingToDressError, match=r"someone wearing it: garment_from_photo=True\)$"):  # no CLI
            dress(people[0], Image.new("RGB", (96, 128), "white"), tryon=tryon, parser=parser)
        with pytest.raises(ValueError, match="3 persons but 2 garments"):
            dress(people, [garments / "g0.png"] * 2, tryon=tryon, parser=parser)
        with pytest.raises(InputError, match=r"^garment image \[1\] is not an image"):  # its place, not a temp file
            dress(people[:2], [garments / "g0.png", b"junk"], tryon=tryon, parser=parser)
        with pytest.raises(InputError, match=r"is a URL, .* or use clothes-extractor tryon --person/--garment URL$"):
            dress(people[0], "https://shop.example/shirt.png", tryon=tryon, parser=parser)
    assert one.mode == "RGB" and one.size == (192, 256) and from_photo.size == (192, 256)
    assert len(batch) == 3 and np.array_equal(np.asarray(batch[0]), np.asarray(one))  # a batch changes nothing


def test_a_garment_extracted_from_a_photo_is_not_asked_whether_someone_wears_it(tiny_tryon_path, parser, tmp_path):
    # The worn-photo check is for garment images a user gives; stage one's own catalog image is
    # one by construction, and the head took those of the example figures 4 and 5 for photos
    # (it told the user to pass garment_from_photo=True, which they had).
    worn = Image.open(ROOT / "examples" / "photos" / "figure-2.jpg").convert("RGB")
    person = ROOT / "examples" / "photos" / "figure-6.jpg"
    with new_session(tiny_tryon_path, "cpu") as tryon:
        given = Dresser(tryon, parser).garment(worn)
        assert given.alone is not None and given.alone < WORN_BELOW  # a worn photo given as a catalog image
        extracted = Dresser(tryon, parser, extracted=True).garment(worn)
        assert extracted.alone is None and np.array_equal(extracted.image, given.image)
        with pytest.raises(NothingToDressError, match="looks like a photo of someone wearing"):
            dress(person, worn, tryon=tryon, parser=parser)
        for figure in ("figure-4.jpg", "figure-5.jpg"):  # refused before, as photos of someone wearing it
            dressed = dress(person, ROOT / "examples" / "photos" / figure, garment_from_photo=True, tryon=tryon)
            assert dressed.size == Image.open(person).size
    done = run_cli(
        "tryon", "--person", person, "--garment-from", ROOT / "examples" / "photos" / "figure-5.jpg",
        "-o", tmp_path / "5-on-6.png", "--model", tiny_tryon_path, "--provider", "cpu",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_a_garment_extract_wrote_is_not_asked_whether_someone_wears_it(tiny_tryon_path, parser, tmp_path):
    # extract, then tryon --garment with what it wrote: the file's signature says it is a catalog
    # image (a cut-out's too, composited on white), which the fifth stage's head took for a photo on
    # figure 5; such a file is not asked at all (no `alone` answer), whatever a head would say of it
    photo, person = ROOT / "examples" / "photos" / "figure-5.jpg", ROOT / "examples" / "photos" / "figure-6.jpg"
    for name, background in (("g.png", "white"), ("g.webp", "transparent")):
        assert run_cli("extract", photo, "-o", tmp_path / name, "--background", background).returncode == 0
        done = run_cli(
            "tryon", "--person", person, "--garment", tmp_path / name, "-o", tmp_path / f"on-6-{name}.png",
            "--model", tiny_tryon_path, "--provider", "cpu",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    Image.open(tmp_path / "g.png").save(tmp_path / "resaved.png")  # its signature gone: asked
    with new_session(tiny_tryon_path, "cpu") as tryon:
        dresser = Dresser(tryon, parser)
        for name, asked in (("g.png", False), ("g.webp", False), ("resaved.png", True)):
            with Image.open(tmp_path / name) as image:
                assert (dresser.garment(image.convert("RGB")).alone is not None) == asked, name


def test_garment_free_photos_of_any_aspect_are_not_dressed(tiny_tryon_path, parser, tryon_folders):
    # Letterboxed on white, a band of wall or sky looked like a top (or arms) to the parser;
    # where it still sees a patch of one, less than a top's share is nothing to dress.
    small = np.random.default_rng(3).integers(0, 256, (3, 4, 3), dtype=np.uint8)
    photos = {
        "wall": np.full((400, 600, 3), (30, 120, 40), np.uint8),
        "sky": np.linspace((40, 60, 140), (250, 200, 150), 360)[:, None].repeat(640, 1).astype(np.uint8),
        "blotches": np.asarray(Image.fromarray(small).resize((300, 600), Image.Resampling.BICUBIC)),
    }
    _, garments = tryon_folders
    with new_session(tiny_tryon_path, "cpu") as tryon:
        for name, photo in photos.items():
            with pytest.raises(NothingToDressError, match="^found no upper-body clothing to replace"):
                dress(Image.fromarray(photo), garments / "g0.png", tryon=tryon, parser=parser)
                pytest.fail(f"dressed the {name}")


def test_a_garment_image_the_parser_sees_no_garment_in_is_no_garment(tiny_tryon_path, parser, tryon_folders, tmp_path):
    """Until the 54th stop a plain colour filling the frame, or a small square drawn on white, was
    dressed as a garment (the catalog silhouette takes a saturated frame, and any shape on white,
    for one): an invented garment. Now the parser has to see one there, by extract's own bar
    (the fitted garments of the folder are dressed in the same calls); and an image too small to
    show a garment is refused, as extract refuses such a photo."""
    persons, garments = tryon_folders
    person = persons / TRYON_PERSONS[0]
    square = np.full((800, 600, 3), 255, np.uint8)
    square[350:420, 250:330] = (20, 40, 200)
    images = {"red frame": np.full((800, 600, 3), (200, 30, 40), np.uint8), "square": square}
    Image.new("RGB", (5, 5), "red").save(tmp_path / "tiny.png")
    with new_session(tiny_tryon_path, "cpu") as tryon:
        for name, image in images.items():
            with pytest.raises(NothingToDressError, match=r"^found no garment in the garment image \(the parser sees"):
                dress(person, Image.fromarray(image), tryon=tryon, parser=parser)
                pytest.fail(f"dressed in the {name}")
        dressed = dress([person, person], [garments / "g0.png", garments / "g1.png"], tryon=tryon, parser=parser)
        with pytest.raises(InputError, match=r"garment image .*tiny.png is 5x5 pixels: too small to show a garment"):
            dress(person, tmp_path / "tiny.png", tryon=tryon, parser=parser)
        with pytest.raises(InputError, match=r"person photo .*tiny.png is 5x5 pixels: too small to show a garment"):
            dress(tmp_path / "tiny.png", garments / "g0.png", tryon=tryon, parser=parser)
    assert len(dressed) == 2 and all(d.size == Image.open(person).size for d in dressed)


def test_the_parsers_look_is_the_try_ons_input_only_where_they_are_padded_alike(parser, tryon_folders):
    persons, garments = tryon_folders
    figure = Image.open(persons / TRYON_PERSONS[0]).convert("RGB")
    wide = Image.new("RGB", (figure.width * 2, figure.height), (120, 130, 140))  # a wider studio shot
    wide.paste(figure, (figure.width // 2, 0))
    with new_session("tryon", "cpu") as tryon:
        dresser = Dresser(tryon, parser)
        assert tryon.contract.size == parser.contract.size  # (the bundled pair: one frame)
        garment = dresser.garment(Image.open(garments / "g0.png"))
        for photo, reused in ((figure, True), (wide, False)):
            person = dresser.person(photo)
            (parsed,) = dresser.parse([person])
            fitted = dresser.fit(person, parsed, garment)
            assert (fitted.inputs["person"] is person.plane) == reused
    # the parser saw the wide photo go on in its backdrop, the try-on sees it on white as it learned
    assert person.fill == (120, 130, 140) and (person.plane[0] == (120, 130, 140)).all()
    assert (fitted.inputs["person"][0] == 255).all()


def test_a_segmenter_without_classes_is_refused(tiny_tryon_path, tmp_path, tiny_model_path):
    torch = pytest.importorskip("torch")
    from clothes_extractor.export.onnx_export import export_model
    from clothes_extractor.train.networks import UNet, UNetConfig

    torch.manual_seed(0)
    path = tmp_path / "binary-segmenter.onnx"
    export_model(UNet(UNetConfig(task="segmenter", height=64, width=48, ngf=4, depth=3)).eval(), path)
    with new_session(tiny_tryon_path, "cpu") as tryon, new_session(path, "cpu") as segmenter:
        with pytest.raises(ModelError, match="without the parser's classes"):
            Dresser(tryon, segmenter)
    with new_session(tiny_model_path, "cpu") as generator, new_session(path, "cpu") as segmenter:
        with pytest.raises(ModelError, match="tryon"):
            Dresser(generator, segmenter)


def test_nothing_is_left_behind_when_writing_fails(tiny_tryon_path, parser, tryon_folders, tmp_path):
    persons, garments = tryon_folders
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the output folder should be")
    jobs = [DressJob(persons / TRYON_PERSONS[0], garments / "g0.png", blocked / "out.png")]
    results = []
    with new_session(tiny_tryon_path, "cpu") as tryon:
        summary = run_dressing(Dresser(tryon, parser), jobs, on_result=results.append)
    assert summary.failed == 1 and results[0].status == "error" and blocked.read_text().startswith("a file")


def test_evaluate_says_at_once_when_no_pair_has_a_parse_map(tiny_tryon_path, tmp_path):
    """Triplets carry no human parsing: each pair failed on its own, a line per pair, before
    the run said why."""
    from clothes_extractor.data.synth import write_synthetic

    write_synthetic(tmp_path / "triplets", 3, seed=0, size=TINY_SIZE)
    done = run_cli("evaluate", "--model", tiny_tryon_path, "--data", tmp_path / "triplets")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "Error: a try-on model is scored on pairs with a human parsing, the region to dress (VITON's image-parse/ "
        "or image-parse-v3/, Dress Code's label_maps/): none of these 3 pairs has one"
    ]


NAMES = ("background", "hair", "face", "upper", "other-upper", "lower", "arms", "legs")


def _classes(rows: dict[str, tuple[int, int]], shape=(256, 192)) -> np.ndarray:
    """A class map with each named class over a band of rows [start, stop), columns 60-132."""
    classes = np.zeros(shape, np.uint8)
    for name, (start, stop) in rows.items():
        classes[start:stop, 60:132] = NAMES.index(name)
    return classes


def test_a_small_upper_body_gets_a_window_framed_as_the_training_photos():
    """A full-body shot (head to waist in the top third): a window from above the head to
    below the waist, at the model's aspect, in photo pixels; a half-body photo: none. A
    stray patch the parser calls upper clothes at the ankles, or bare legs it calls arms,
    does not stretch the window to the feet."""
    from clothes_extractor.runtime.fitting import fit_window
    from clothes_extractor.runtime.tryon import upper_body_window

    photo, size = (768, 1024), (256, 192)
    plane = fit_window((0, 0, *photo), size, 0.0)  # the whole photo, as the first look sees it: 4 photo px a row
    body = {"hair": (10, 16), "face": (16, 30), "upper": (30, 80), "lower": (80, 200)}
    window = upper_body_window(_classes(body), plane, photo, size, NAMES)
    x0, y0, x1, y1 = window
    assert (x1 - x0) / (y1 - y0) == pytest.approx(192 / 256)
    assert y0 < 10 * 4 and 80 * 4 + 0.35 * 70 * 4 <= y1 < 0.7 * 1024  # above the hair, past the waist
    assert x0 < 60 * 4 and x1 > 132 * 4
    strays = _classes(body)
    strays[240:250, 70:80] = NAMES.index("upper")  # the ankles
    strays[80:250, 100:104] = NAMES.index("arms")  # bare legs taken for arms
    assert upper_body_window(strays, plane, photo, size, NAMES) == window
    low_neckline = np.zeros((256, 192), np.uint8)
    low_neckline[10:16, 86:106], low_neckline[16:30, 86:106] = NAMES.index("hair"), NAMES.index("face")
    low_neckline[55:80, 70:122] = NAMES.index("upper")  # a top wider than the head, 25 bare rows below it
    assert upper_body_window(low_neckline, plane, photo, size, NAMES)[1] < 10 * 4  # the head stays in
    half = {"hair": (5, 30), "face": (30, 70), "upper": (70, 220), "lower": (220, 256)}
    assert upper_body_window(_classes(half), plane, photo, size, NAMES) is None
    assert upper_body_window(_classes({"lower": (80, 200)}), plane, photo, size, NAMES) is None


def test_a_full_body_shot_is_dressed_in_a_zoomed_window_and_a_framed_one_as_before(
    tiny_tryon_path, parser, monkeypatch
):
    """The same figure framed as VITON's photos are, and small in a larger photo: framed,
    it is dressed exactly as without the second look; small, the parser looks again at a
    window around its upper body, and only that window of the photo changes."""
    from clothes_extractor import dress
    from clothes_extractor.runtime import dressing
    from clothes_extractor.runtime.fitting import fit_window

    figure = Image.open(ROOT / "examples" / "photos" / TRYON_PERSONS[0]).convert("RGB")
    small = Image.new("RGB", (figure.width * 2, figure.height * 2), (240, 240, 240))
    small.paste(figure, (figure.width // 2, figure.height // 2))
    _, _, garment = synth_sample(0, seed=5, size=(256, 192))
    with new_session(tiny_tryon_path, "cpu") as tryon:
        dresser = Dresser(tryon, parser)
        framed_plane, small_plane = (parsed.window for parsed in dresser.parse([figure, small]))
        assert framed_plane == pytest.approx(fit_window((0, 0, *figure.size), parser.contract.size, 0.0))
        x0, y0, x1, y1 = small_plane
        assert 0 <= x0 and x1 <= small.width and y1 - y0 < 0.7 * small.height  # a window inside the photo
        framed, zoomed = dress([figure, small], [garment, garment], tryon=tryon, parser=parser)
        monkeypatch.setattr(dressing, "upper_body_window", lambda *args, **kwargs: None)
        before = dress(figure, garment, tryon=tryon, parser=parser)
    assert np.array_equal(np.asarray(framed), np.asarray(before))
    changed = np.any(np.asarray(zoomed) != np.asarray(small), axis=2)
    ys, xs = np.nonzero(changed)
    assert changed.sum() > 500 and x0 - 1 <= xs.min() and xs.max() <= x1 and y0 - 1 <= ys.min() and ys.max() <= y1


def test_a_person_in_a_wide_photo_is_dressed_in_a_window_around_them(tiny_tryon_path, parser):
    """A photo wider than the try-on's frame, letterboxed whole, shows its person small (on
    VITON persons centred in a frame twice as wide, reconstruction SSIM 0.844 -> 0.818):
    the person's own window is dressed, as a full-body shot's is."""
    from clothes_extractor.runtime.fitting import fit_window

    figure = Image.open(ROOT / "examples" / "photos" / TRYON_PERSONS[0]).convert("RGB")
    wide = Image.new("RGB", (figure.width * 2, figure.height), figure.getpixel((0, 0)))
    wide.paste(figure, (figure.width // 2, 0))
    with new_session(tiny_tryon_path, "cpu") as tryon:
        window, framed = (parsed.window for parsed in Dresser(tryon, parser).parse([wide, figure]))
    whole = fit_window((0, 0, *wide.size), parser.contract.size, 0.0)
    assert framed == pytest.approx(fit_window((0, 0, *figure.size), parser.contract.size, 0.0))  # as before
    x0, y0, x1, y1 = window
    assert y1 - y0 < 0.7 * (whole[3] - whole[1])  # not the whole photo letterboxed: the person's window
    assert figure.width // 2 - 10 < (x0 + x1) / 2 < figure.width * 3 // 2 + 10 and x1 - x0 < 1.2 * figure.width


def test_a_person_and_a_garment_typed_as_arguments_are_refused_with_the_command_to_type(tmp_path):
    """``tryon me.jpg shirt.png -o out.png`` said click's "Missing option '--person'" until the
    57th stop; options' values (``-o -``, ``--person=X``) and counted flags (``-v``) are no arguments."""
    from click.testing import CliRunner

    from clothes_extractor.cli import cli

    person, garment = ROOT / "examples" / "photos" / "figure-6.jpg", ROOT / "examples" / "photos" / "figure-3.jpg"
    done = CliRunner().invoke(cli, ["tryon", str(person), str(garment), "-o", str(tmp_path / "out.png")])
    assert done.exit_code == 2, done.output
    assert f"tryon takes its images as options, not as arguments ({person} {garment})" in done.output
    assert "clothes-extractor tryon --person PERSON --garment GARMENT -o OUT" in done.output
    assert not (tmp_path / "out.png").exists()
    args = ["tryon", "-v", "--person", str(person), f"--garment-from={garment}", "-o", "-", "--dry-run"]
    done = CliRunner().invoke(cli, args)
    assert done.exit_code == 2 and "--dry-run writes no image: leave out -o -" in done.output  # (parsed past -v, -o -)
