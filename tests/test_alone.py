"""A garment photographed alone (a flat lay, a catalog image) is cut out of the photo and
framed, not generated (``runtime.alone``): the rule on the parser head's answer and masks made
here, the cut-out on a drawn photo, then ``extract`` with the bundled parser on the synthetic
catalog images and on photos of people, and ``tryon`` given a photo of a person as the garment."""

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from clothes_extractor import dress, extract_garment, new_session
from clothes_extractor.data.synth import synth_sample, write_synthetic
from clothes_extractor.errors import NothingToDressError
from clothes_extractor.runtime.alone import ALONE_AT, cut_out, shown_alone, shows_person
from clothes_extractor.runtime.backdrop import backdrop_silhouette
from clothes_extractor.runtime.fitting import letterbox_for
from clothes_extractor.runtime.session import ModelSession
from clothes_extractor.runtime.silhouette import garment_silhouette
from clothes_extractor.tasks import PARSER_CLASSES
from conftest import DRESSCODE_SAMPLE, TRYON_PERSONS, VITON_VAL, cp_vton_subset, run_cli


def test_the_parser_head_says_a_garment_is_shown_alone_unless_the_frame_cuts_it():
    garment = np.zeros((256, 192), bool)
    garment[40:200, 30:160] = True
    assert shown_alone(255, garment) and shown_alone(ALONE_AT, garment)
    assert not shown_alone(ALONE_AT - 1, garment)  # the head says worn
    assert not shown_alone(None, garment)  # a parser without the head never says so
    assert not shown_alone(255, np.zeros_like(garment))  # no garment: not a garment alone
    garment[40:256, 30:160] = True  # down to the frame's foot: a torso crop of a worn top (130 of 892 edge pixels)
    assert not shown_alone(255, garment)
    garment[250:256, 30:160], garment[250:256, 30:40] = False, True  # a sleeve on 10 of them (1.1%): inside the frame
    assert shown_alone(255, garment)


def test_the_cut_out_frames_the_garment_as_a_catalog_image_and_keeps_its_pixels():
    photo = Image.new("RGB", (800, 600), (40, 90, 160))  # a blue table
    draw = ImageDraw.Draw(photo)
    for y in range(100, 500, 20):  # a striped garment, 300 x 400, off centre
        draw.rectangle((300, y, 599, y + 9), fill=(230, 30, 30))
        draw.rectangle((300, y + 10, 599, y + 19), fill=(250, 250, 250))
    mask = Image.new("L", (400, 300), 0)  # the mask at half the photo's resolution
    ImageDraw.Draw(mask).rectangle((150, 50, 299, 249), fill=255)
    out = cut_out(photo, mask, (291, 88, 609, 512), (424, 318))  # a window of the frame's size: no resizing
    garment, alpha = out["garment"], out["alpha"][..., 0]
    assert garment.shape == (424, 318, 3) and alpha.shape == (424, 318)
    rows, cols = np.flatnonzero(alpha.max(1) > 127), np.flatnonzero(alpha.max(0) > 127)
    assert abs(rows[0] - 12) <= 1 and abs(rows[-1] - 411) <= 1  # the garment's 400 rows, 12 above and below
    assert abs(cols[0] - 9) <= 1 and abs(cols[-1] - 308) <= 1  # its 300 columns, centred
    assert (garment[alpha == 0] == 255).all() and (alpha == 0).mean() > 0.08  # the blue table is gone: white
    assert np.array_equal(garment[52:62, 100], np.tile([230, 30, 30], (10, 1)))  # its stripes, pixel for pixel
    assert np.array_equal(garment[62:72, 100], np.full((10, 3), 250))
    smaller = cut_out(photo.resize((400, 300)), mask, (145.5, 44, 304.5, 256), (424, 318))  # decoded at half size
    assert np.abs(smaller["alpha"].astype(int) - out["alpha"]).mean() < 3


def shown_alone_folder(folder: Path, count: int) -> Path:
    """The synthetic catalog images (drawn tops laid flat on white), the same tops on a studio's
    beige, and the synthetic figures wearing them, in one folder; returns the dataset. (On a
    saturated colour, a blue table, the parser finds little of a drawn top: the garment is
    then generated as before, or not found: the segmenter card.)"""
    data = folder.parent / "synthetic"
    write_synthetic(data, count, seed=3)
    folder.mkdir()
    for catalog in sorted((data / "garment").iterdir()):
        image = np.asarray(Image.open(catalog).convert("RGB"))
        beige = np.where(garment_silhouette(image)[..., None], image, np.array([236, 226, 208], np.uint8))
        Image.fromarray(image).save(folder / f"white-{catalog.stem}.png")
        Image.fromarray(beige.astype(np.uint8)).save(folder / f"beige-{catalog.stem}.png")
        shutil.copy(data / "photo" / catalog.name, folder / f"worn-{catalog.stem}.jpg")
    return data


def garment_box(alpha: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(alpha.max(1)), np.flatnonzero(alpha.max(0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def test_extract_cuts_out_a_garment_shown_alone_and_generates_a_worn_one(tmp_path):
    folder = tmp_path / "photos"
    data = shown_alone_folder(folder, 4)
    done = run_cli(
        "extract", folder, "-o", tmp_path / "out", "--background", "transparent", "--report", tmp_path / "r.jsonl"
    )
    assert done.returncode == 0, done.stderr
    assert "+alone" in done.stderr.splitlines()[-1]  # the summary says where the masks came from
    sources = {Path(r["input"]).name: r["mask"] for r in map(json.loads, open(tmp_path / "r.jsonl"))}
    assert len(sources) == 12
    for name, source in sources.items():
        assert source.endswith("+alone") != name.startswith("worn-"), (name, source)
    for catalog in sorted((data / "garment").iterdir()):
        truth = np.asarray(Image.open(catalog).convert("RGB"))
        silhouette = garment_silhouette(truth)
        for backdrop in ("white", "beige"):
            out = np.asarray(Image.open(tmp_path / "out" / f"{backdrop}-{catalog.stem}.png"))
            alpha = out[..., 3] >= 128
            x0, y0, x1, y1 = garment_box(alpha)
            assert min(x0, y0, out.shape[1] - x1, out.shape[0] - y1) >= 1  # framed with a margin, whole
            tx0, ty0, tx1, ty1 = garment_box(silhouette)
            size = (x1 - x0, y1 - y0)
            same = np.asarray(Image.fromarray(silhouette).crop((tx0, ty0, tx1, ty1)).resize(size)) > 0
            assert (same & alpha[y0:y1, x0:x1]).sum() / (same | alpha[y0:y1, x0:x1]).sum() > 0.9
            colours = np.asarray(Image.fromarray(truth).crop((tx0, ty0, tx1, ty1)).resize(size, Image.BICUBIC))
            inside = same & alpha[y0:y1, x0:x1]
            error = np.abs(out[y0:y1, x0:x1, :3].astype(int) - colours)[inside].mean()
            assert error < 12, (catalog.name, backdrop, error)  # its own pixels: stripes, checks and dots kept


def test_tryon_refuses_a_photo_of_someone_wearing_it_as_the_garment(tryon_folders, tmp_path):
    persons, garments = tryon_folders
    person, worn = persons / TRYON_PERSONS[0], persons / TRYON_PERSONS[1]
    done = run_cli("tryon", "--person", person, "--garment", worn, "-o", tmp_path / "a.jpg", "--provider", "cpu")
    assert done.returncode == 1 and "looks like a photo of someone wearing the garment" in done.stderr
    assert "--garment-from" in done.stderr and not (tmp_path / "a.jpg").exists()
    done = run_cli("tryon", "--person", person, "--garment", garments / "g0.png", "-o", tmp_path / "b.jpg")
    assert done.returncode == 0, done.stderr


def test_tryon_refuses_a_garment_alone_given_as_the_person(tryon_folders, tmp_path):
    """A catalog image or a flat lay in the persons' folder (the arguments swapped, a stray
    product shot) is no person to dress: reported for its pair, nothing written for it (it was
    "dressed": its top repainted in the garment, exit 0), the persons beside it dressed."""
    persons, garments = tryon_folders
    catalog = synth_sample(1, seed=3, size=(512, 384))[2]
    catalog.save(persons / "catalog.png")
    pixels = np.asarray(catalog)
    lay = np.where(garment_silhouette(pixels)[..., None], pixels, np.array([236, 226, 208], np.uint8))
    Image.fromarray(lay.astype(np.uint8)).save(persons / "flat-lay.jpg", quality=95)
    out = tmp_path / "out"
    done = run_cli("tryon", "--person", persons, "--garment", garments / "g0.png", "-o", out, "--provider", "cpu")
    assert done.returncode == 1
    assert "3 dressed" in done.stderr and "2 failed" in done.stderr, done.stderr
    for name in ("catalog.png", "flat-lay.jpg"):
        assert f"{persons / name} + {garments / 'g0.png'}: the person photo shows a garment alone" in done.stderr
    assert sorted(path.name for path in out.iterdir()) == sorted(f"{Path(n).stem}__g0.png" for n in TRYON_PERSONS)
    with pytest.raises(NothingToDressError, match="a catalog image or a flat lay is the garment to dress them in"):
        dress(catalog, garments / "g0.png")


def test_one_photo_through_the_api_is_cut_out_as_extract_cuts_it(tiny_flow_path, tmp_path):
    catalog, out = tmp_path / "catalog.png", tmp_path / "cli.png"
    synth_sample(0, seed=3)[2].save(catalog)
    done = run_cli("extract", catalog, "-o", out, "--model", tiny_flow_path, "--background", "transparent")
    assert done.returncode == 0, done.stderr
    with ModelSession(tiny_flow_path, "cpu") as generator, new_session("segmenter", "cpu") as segmenter:
        garment = extract_garment(catalog, generator=generator, segmenter=segmenter, background="transparent")
    assert garment.mode == "RGBA" and np.array_equal(np.asarray(garment), np.asarray(Image.open(out)))
    # the drawn top's own pixels, opaque (the untrained warping generator gives no opaque pixel): its dots and ground
    pixels = np.asarray(garment)
    opaque = pixels[..., 3] == 255
    assert opaque.mean() > 0.3 and len(np.unique(pixels[..., :3][opaque], axis=0)) < 400


def test_a_parse_that_shows_the_person_wearing_the_garment_is_no_garment_alone():
    """A parse of a garment alone gives bits of it to a person's classes (a hem to lower clothes,
    a collar to hair, a print to a face) at its top or near it; legs below the top, a parse
    that goes on far below it, a top drawn head to shoe, or a head above it are a person's."""
    names = PARSER_CLASSES
    labels = np.zeros((256, 192), np.uint8)
    labels[60:180, 40:150] = names.index("upper")  # a top alone, 120 rows
    labels[100:120, 80:110] = names.index("face")  # a face printed on it: the top is 12,600 pixels
    labels[50:60, 80:110] = names.index("hair")  # its collar given to hair, above it
    labels[180:190, 40:150] = names.index("lower")  # its hem given to lower clothes
    labels[185:190, 40:50] = names.index("legs")  # and a bit of that to legs: 50 pixels, 0.4%
    garment = labels == names.index("upper")
    assert not shows_person(garment, labels, names)
    assert not shows_person(garment, None, names)  # a segmenter with no parse: only the top's shape tells
    assert not shows_person(garment, labels, ())  # nor one whose classes are not named
    legs = labels.copy()
    legs[240:250, 60:90] = names.index("legs")  # shoes below it: 300 pixels, 2.4%
    assert not shows_person(garment, legs, names)  # under the line: a stray bit
    legs[240:250, 100:130] = names.index("legs")  # two shoes: 600, 4.8%
    assert shows_person(garment, legs, names)
    lower = labels.copy()
    lower[190:253, 50:140] = names.index("lower")  # trousers: the parse rows 50 to 252, 1.7 times the top's height
    assert not shows_person(garment, lower, names)
    lower = np.pad(lower, ((0, 64), (0, 0)))  # a taller frame: trousers on to row 314, 2.2 times the top's height
    lower[252:315, 50:140] = names.index("lower")
    assert shows_person(np.pad(garment, ((0, 64), (0, 0))), lower, names)
    tall = np.zeros_like(labels)
    tall[10:250, 50:160] = names.index("upper")  # 240 rows by 110 columns: a long top, 2.2 times as tall as wide
    assert not shows_person(tall == names.index("upper"), tall, names)
    tall[10:250, 50:70] = 0  # 90 columns: 2.7 times, a person the parser calls a top head to shoe
    assert shows_person(tall == names.index("upper"), tall, names)
    assert shows_person(tall == names.index("upper"), None, names)  # the top's own shape tells
    head = labels.copy()
    head[30:40, 80:110] = names.index("face")  # a face above the collar: with it 600 pixels above the top, 4.8%
    assert not shows_person(garment, head, names)
    head[40, 80:110] = names.index("face")  # 630, 5%: the head of the person wearing it (a dim photo the
    assert shows_person(garment, head, names)  # alone head takes for a garment alone)


def test_a_garment_on_a_busy_backdrop_is_told_from_it():
    rng = np.random.default_rng(0)
    h, w = 256, 192
    x = np.arange(w)[None, :, None]
    grain = np.where((x // 7) % 2 == 0, [150, 105, 60], [120, 80, 45]) + rng.integers(-6, 7, (h, w, 3))  # planks
    truth = np.zeros((h, w), bool)
    truth[60:220, 50:142] = True  # the body
    truth[60:110, 20:172] = True  # and the sleeves
    photo = np.where(truth[..., None], [30, 60, 150], grain).astype(np.uint8)
    parser = truth.copy()
    parser[60:110, 20:50] = False  # the parser missed a sleeve
    found = backdrop_silhouette(photo, parser)
    assert found is not None and (found & truth).sum() / (found | truth).sum() > 0.99  # the sleeve back, no plank
    wooden = np.where(truth[..., None], [135, 92, 52], grain).astype(np.uint8)  # a garment the planks' colour
    assert backdrop_silhouette(wooden, parser) is None  # the backdrop runs into it: generated, not cut out


@pytest.mark.skipif(not DRESSCODE_SAMPLE.is_dir(), reason=f"{DRESSCODE_SAMPLE} is absent")
def test_a_full_length_studio_photo_is_not_cut_out_as_a_garment_alone(tmp_path):
    """Dress Code's ten full-length photos, cut at the top, padded at the sides and mirrored as
    a user's would be (80 photos): the garments are generated as worn, not the person cut out
    whole (the head takes a narrow top in a tall frame for a garment alone on 89 of 240 such
    photos; with neither the closer look at a narrow top nor the parse asked, ``extract`` cut
    out 56 of the 240 whole with the fourth-stage parser; the bundled one, without the parse
    asked, cut out 10, 7 of them among these 80; now 1 of the 240, none of these: the segmenter
    card, "Full-length photos")."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in sorted(DRESSCODE_SAMPLE.glob("*/images/*_0.jpg")):
        photo = Image.open(path).convert("RGB")
        w, h = photo.size
        for cut, pad, mirrored in itertools.product((0.05, 0.15), (0, 0.4), (False, True)):
            shown = photo.crop((0, int(cut * h), w, h))
            canvas = Image.new("RGB", (int(w * (1 + pad)), shown.height), shown.getpixel((2, 2)))
            canvas.paste(shown, (int(w * pad / 2), 0))
            canvas = ImageOps.mirror(canvas) if mirrored else canvas
            canvas.save(folder / f"{path.stem}-{cut}-{pad}-{mirrored:d}.jpg", quality=95)
    done = run_cli("extract", folder, "-o", tmp_path / "out", "--report", tmp_path / "r.jsonl")
    assert done.returncode == 0, done.stderr
    sources = {Path(r["input"]).name: r["mask"] for r in map(json.loads, open(tmp_path / "r.jsonl"))}
    assert len(sources) == 80 and [name for name, source in sources.items() if "alone" in source] == []


@pytest.mark.skipif(not VITON_VAL.is_file(), reason=f"{VITON_VAL} is absent")
def test_a_white_top_on_white_the_closer_look_loses_is_still_cut_out(tmp_path):
    """Two narrow white sleeveless tops on white (VITON validation catalog images): their top
    is under half the frame's width, so they get the second look, where the parser finds none
    of them; the head says alone at both looks, so the first look's garment stands and is cut
    out (with the closer look's plane, tried first, both were "no garment found")."""
    import tarfile

    folder = tmp_path / "photos"
    with tarfile.open(VITON_VAL) as tar:
        for name in ("001485_1.jpg", "004099_1.jpg"):
            (folder / name).parent.mkdir(exist_ok=True)
            (folder / name).write_bytes(tar.extractfile(f"val/cloth/{name}").read())
    done = run_cli("extract", folder, "-o", tmp_path / "out", "--report", tmp_path / "r.jsonl")
    assert done.returncode == 0, done.stderr
    assert sorted(r["mask"] for r in map(json.loads, open(tmp_path / "r.jsonl"))) == ["segmenter+alone"] * 2


def test_a_garment_shown_alone_in_a_large_photo_is_cut_out_at_its_own_resolution(tmp_path):
    """The bundled generator draws at 256x192; a garment shown alone is not drawn but cut out,
    so it comes at the photo's own resolution (on extract's 64-row grid, up to 1024x768):
    a 1024x768 catalog image keeps its print at that size. ``output_size="model"`` gives
    256x192, as a drawn garment comes."""
    _, _, catalog = synth_sample(1, seed=3, size=(256, 192))
    shape = garment_silhouette(np.asarray(catalog.convert("RGB")))
    shape = Image.fromarray(shape).resize((768, 1024), Image.Resampling.NEAREST)
    stripes = np.full((1024, 768, 3), 255, np.uint8)
    stripes[(np.arange(1024) // 3) % 2 == 0] = (200, 40, 60)  # a print finer than 256x192 can hold
    large = Image.composite(Image.fromarray(stripes), Image.new("RGB", (768, 1024), "white"), shape)
    with new_session("generator", "cpu") as generator, new_session("segmenter", "cpu") as segmenter:
        found = extract_garment(large, generator=generator, segmenter=segmenter, background="transparent")
        small = extract_garment(large, generator=generator, segmenter=segmenter, output_size="model")
    assert small.size == (192, 256)
    assert found.width * 4 == found.height * 3 and found.height % 64 == 0 and 768 <= found.height <= 1024
    truth = np.asarray(large.convert("RGB"))
    silhouette = garment_silhouette(truth)
    tx0, ty0, tx1, ty1 = garment_box(silhouette)
    on_white = Image.alpha_composite(Image.new("RGBA", found.size, "white"), found)
    out, alpha = np.asarray(on_white.convert("RGB")), np.asarray(found)[..., 3] >= 128
    x0, y0, x1, y1 = garment_box(alpha)
    assert abs((x1 - x0) / (tx1 - tx0) - (y1 - y0) / (ty1 - ty0)) < 0.02  # its shape, not stretched
    ours = out[y0:y1, x0:x1][alpha[y0:y1, x0:x1]].mean(axis=0)
    theirs = truth[silhouette].mean(axis=0)
    assert np.abs(ours - theirs).max() < 12  # the photo's own colours (its stripes resampled: not pixel for pixel)

    def detail(image: np.ndarray) -> float:
        gy, gx = np.gradient(image.astype(float).mean(axis=2))
        return float(np.hypot(gx, gy).mean())

    upsampled = np.asarray(small.convert("RGB").resize(found.size, Image.Resampling.BICUBIC))
    assert detail(out) > 1.5 * detail(upsampled)  # the print at the photo's resolution, not 256x192 enlarged


@pytest.mark.skipif(not VITON_VAL.is_file(), reason=f"{VITON_VAL} is absent")
def test_a_dim_photo_of_someone_wearing_a_top_is_not_cut_out_as_a_garment_alone(tmp_path):
    """Two stops darker (``evaluate --light 0.25``), the parser's alone head takes several of
    the first validation photos for garments alone (741 of the split's 1,528; a stop darker,
    12): ``extract`` cut the person out whole, face and trousers with the top. Their parse
    shows the head above the top (``alone.HEAD_ABOVE``): worn, the garment is generated."""
    root = cp_vton_subset(tmp_path / "viton", count=12)
    folder = tmp_path / "dim"
    folder.mkdir()
    for photo in sorted((root / "val" / "image").glob("*.jpg")):
        lit = np.floor(np.asarray(Image.open(photo).convert("RGB")).astype(np.float32) * 0.25).astype(np.uint8)
        Image.fromarray(lit).save(folder / f"{photo.stem}.png")
    with new_session("segmenter", "cpu") as parser:
        planes = [letterbox_for(Image.open(p), parser.contract.size, parser.contract.fit)[0] for p in folder.iterdir()]
        said = parser.run(image=np.stack(planes))["alone"][:, 0, 0, 0]
    assert (said >= ALONE_AT).sum() >= 3  # what the head says of them
    done = run_cli("extract", folder, "-o", tmp_path / "out", "--report", tmp_path / "r.jsonl")
    assert done.returncode == 0, done.stderr
    sources = [json.loads(line)["mask"] for line in open(tmp_path / "r.jsonl")]
    assert len(sources) == 12 and not [source for source in sources if source.endswith("+alone")], sources
