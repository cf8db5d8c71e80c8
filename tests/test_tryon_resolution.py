"""Try-on at the person's own resolution: the grid, the composition mask and the rendered
image come from the network at its 256x192; the grid samples the catalog garment at the
photo's resolution inside the served graph (``ServedTryOn``), so a 1024x768 photo gets the
garment's stripes and prints at 1024x768, not a 256x192 drawing upsampled.

The bundled try-on and parser are real trained models; where a test needs files of both
kinds (before and after the photo-resolution inputs), a tiny random network is exported
both ways.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from clothes_extractor import dress, new_session
from clothes_extractor.eval.synthetic import synthetic_feeds
from clothes_extractor.runtime.dressing import Dresser
from conftest import DRESSCODE_SAMPLE, ROOT, TINY_SIZE, TRYON_PERSONS, run_cli


def _striped_shirt(size: tuple[int, int]) -> Image.Image:
    """A catalog shirt on white, (w, h) ``size``, with stripes 3 pixels apart: a print that a
    256x192 drawing of it, upsampled, cannot hold."""
    w, h = size
    stripes = np.full((h, w, 3), 255, np.uint8)
    stripes[(np.arange(h) // 3) % 2 == 0] = (30, 40, 160)
    shirt = Image.new("L", size, 0)
    outline = [(0.2, 0.15), (0.8, 0.15), (0.95, 0.35), (0.8, 0.4), (0.78, 0.9), (0.22, 0.9), (0.2, 0.4), (0.05, 0.35)]
    ImageDraw.Draw(shirt).polygon([(x * w, y * h) for x, y in outline], fill=255)
    return Image.composite(Image.fromarray(stripes), Image.new("RGB", size, "white"), shirt)


def _detail(image: np.ndarray, where: np.ndarray) -> float:
    """Mean gradient magnitude of ``image`` (grey) over the pixels ``where``."""
    grey = image.astype(np.float64).mean(axis=2)
    gy, gx = np.gradient(grey)
    return float(np.hypot(gx, gy)[where].mean())


def test_a_large_photo_gets_the_garments_stripes_at_its_own_resolution():
    """A person photo at 1024x768 dressed in a finely striped catalog shirt at 1024x768: at
    the photo's resolution the dressed top keeps stripes the model-size path blurs away,
    and only the person's window is the photo's size either way."""
    person = Image.open(ROOT / "examples" / "photos" / TRYON_PERSONS[1]).convert("RGB")
    person = person.resize((768, 1024), Image.Resampling.NEAREST)
    shirt = _striped_shirt((768, 1024))
    with new_session("tryon", "cpu") as tryon, new_session("segmenter", "cpu") as parser:
        assert tryon.contract.catalog_resolution  # the bundled try-on answers at the photo's resolution
        at_photo = np.asarray(dress(person, shirt, tryon=tryon, parser=parser))
        at_model = np.asarray(dress(person, shirt, tryon=tryon, parser=parser, resolution="model"))
    assert at_photo.shape == at_model.shape == (1024, 768, 3)
    dressed = np.any(at_model != np.asarray(person), axis=2) & np.any(at_photo != np.asarray(person), axis=2)
    assert dressed.mean() > 0.05  # a top's worth of the photo was dressed anew
    assert _detail(at_photo, dressed) > 1.5 * _detail(at_model, dressed)


def test_a_garment_photographed_alone_dresses_a_large_photo_at_its_own_resolution(tmp_path):
    """``--garment-from`` a flat lay (a striped top on a beige table, 1024x768): stage one cuts
    the garment out at its own resolution for a dresser at the photo's resolution, so the
    dressed top keeps the stripes the catalog image itself gives (stage one at 256x192 lost
    them); the command line and the folder job make the same pixels as the function."""
    from clothes_extractor import dress_folder
    from clothes_extractor.data.synth import synth_sample
    from clothes_extractor.runtime.silhouette import garment_silhouette

    catalog = np.asarray(synth_sample(5, seed=3, size=(1024, 768))[2])  # stripes repeating every 11 pixels
    lay = np.where(garment_silhouette(catalog)[..., None], catalog, np.array([236, 226, 208], np.uint8))
    person, lay_file = tmp_path / "person.png", tmp_path / "lay.png"
    Image.open(ROOT / "examples" / "photos" / TRYON_PERSONS[1]).convert("RGB").resize(
        (768, 1024), Image.Resampling.NEAREST
    ).save(person)
    Image.fromarray(lay.astype(np.uint8)).save(lay_file)
    with new_session("tryon", "cpu") as tryon, new_session("segmenter", "cpu") as parser:
        models = {"tryon": tryon, "parser": parser}
        from_lay = np.asarray(dress(person, lay_file, garment_from_photo=True, **models))
        at_model = np.asarray(dress(person, lay_file, garment_from_photo=True, resolution="model", **models))
        direct = np.asarray(dress(person, Image.fromarray(catalog), **models))
        folder = dress_folder(person, lay_file, tmp_path / "folder", garment_from_photo=True, **models)
    assert folder.ok == 1 and folder.failed == 0
    photo = np.asarray(Image.open(person))
    dressed = np.any(from_lay != photo, axis=2) & np.any(at_model != photo, axis=2)
    assert dressed.mean() > 0.05
    assert _detail(from_lay, dressed) > 0.8 * _detail(direct, dressed)  # the catalog image's own stripes
    assert _detail(from_lay, dressed) > 1.5 * _detail(at_model, dressed)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "folder" / "person__lay.png")), from_lay)
    done = run_cli("tryon", "--person", person, "--garment-from", lay_file, "-o", tmp_path / "cli.png")
    assert done.returncode == 0, done.stderr
    assert np.array_equal(np.asarray(Image.open(tmp_path / "cli.png")), from_lay)


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    """The same tiny random try-on network exported as a file from before the photo-resolution
    inputs (its contract without them) and as one with them."""
    torch = pytest.importorskip("torch")
    from clothes_extractor.export import onnx_export
    from clothes_extractor.train.tryon import TryOnConfig, TryOnGenerator

    torch.manual_seed(1)
    model = TryOnGenerator(TryOnConfig(height=TINY_SIZE[0], width=TINY_SIZE[1], ngf=4, levels=3, top=4))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d) and module.out_channels in (2, 4):  # grid moves, heads draw
                module.weight.normal_(0, 0.05)
                if module.bias is not None:  # (zero biases would be one weight in the file: not read back by name)
                    module.bias.normal_(0, 0.01)
    folder = tmp_path_factory.mktemp("tryon-files")
    new = folder / "new.onnx"
    onnx_export.export_model(model.eval(), new)
    build = onnx_export.build_contract

    def before(*args, **kwargs):
        return dataclasses.replace(build(*args, **kwargs), catalog_resolution=False, max_output=None)

    old = folder / "old.onnx"
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(onnx_export, "build_contract", before)
    try:
        onnx_export.export_model(model.eval(), old)
    finally:
        monkeypatch.undo()
    return old, new


def _binary(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Seeded feeds with a region of 0 and 255 only, as the parser's region is (a soft edge
    blends the person photo at the photo's resolution, and the painted one at the model's)."""
    return {**feeds, "region": np.where(feeds["region"] > 127, 255, 0).astype(np.uint8)}


def test_at_the_model_size_a_photo_resolution_file_draws_what_the_file_before_it_drew(tiny_files):
    old, new = tiny_files
    with new_session(old, "cpu") as before, new_session(new, "cpu") as after:
        assert not before.contract.catalog_resolution and after.contract.catalog_resolution
        assert [s.name for s in after.contract.inputs][-2:] == ["photo", "garment_photo"]
        feeds = _binary(synthetic_feeds(after.contract, 3, seed=2))
        drawn = after.run(**feeds)["image"]
        assert np.array_equal(drawn, before.run(**{k: feeds[k] for k in feeds if "photo" not in k})["image"])
        big = (4 * TINY_SIZE[0], 4 * TINY_SIZE[1])
        larger = after.run(**synthetic_feeds(after.contract, 3, seed=2, photo_size=big))
    assert larger["image"].shape == (3, *big, 3)


def test_a_file_from_before_still_dresses_at_its_model_size(tiny_files):
    """An older try-on file (no photo inputs) dresses as ``resolution="model"`` does with the
    same network in a new file: the same pixels."""
    old, new = tiny_files
    person = Image.open(ROOT / "examples" / "photos" / TRYON_PERSONS[0]).convert("RGB").resize((384, 512))
    shirt = _striped_shirt((192, 256))
    with new_session("segmenter", "cpu") as parser:
        with new_session(old, "cpu") as tryon:
            before = dress(person, shirt, tryon=tryon, parser=parser)
        with new_session(new, "cpu") as tryon:
            at_model = dress(person, shirt, tryon=tryon, parser=parser, resolution="model")
            at_photo = dress(person, shirt, tryon=tryon, parser=parser)
    assert np.array_equal(np.asarray(before), np.asarray(at_model))
    assert not np.array_equal(np.asarray(at_photo), np.asarray(at_model))


def test_a_served_model_is_exported_again_with_the_photo_inputs(tiny_files, tmp_path):
    """``export OLD.onnx``: the network read back from an older file, written with this
    version's wrapper; at the model size it draws what the old file drew."""
    from click.testing import CliRunner

    from clothes_extractor.cli import cli

    old, _ = tiny_files
    done = CliRunner().invoke(cli, ["export", str(old), "-o", str(tmp_path / "again.onnx")])
    assert done.exit_code == 0, done.output
    assert "photo at" in done.output  # checked at another resolution too
    with new_session(old, "cpu") as before, new_session(tmp_path / "again.onnx", "cpu") as again:
        assert again.contract.catalog_resolution
        feeds = _binary(synthetic_feeds(again.contract, 2, seed=3))
        base = {k: v for k, v in feeds.items() if "photo" not in k}
        assert np.array_equal(again.run(**feeds)["image"], before.run(**base)["image"])


def test_tryon_resolution_on_the_command_line_and_a_rerun(tiny_files, tmp_path):
    """``tryon --resolution model``: another picture of a large photo than the default, and
    outputs of one resolution are not taken for done by a run at the other."""
    _, new = tiny_files
    person = tmp_path / "person.png"
    Image.open(ROOT / "examples" / "photos" / TRYON_PERSONS[0]).convert("RGB").resize((384, 512)).save(person)
    shirt = tmp_path / "shirt.png"
    _striped_shirt((192, 256)).save(shirt)
    out = tmp_path / "out"
    common = ("tryon", "--person", person, "--garment", shirt, "--model", new, "-o")
    done = run_cli(*common, out / "photo")
    assert done.returncode == 0, done.stderr
    done = run_cli(*common, out / "model", "--resolution", "model")
    assert done.returncode == 0, done.stderr
    name = "person__shirt.png"
    photo_made, model_made = (np.asarray(Image.open(out / kind / name)) for kind in ("photo", "model"))
    assert not np.array_equal(photo_made, model_made)
    again = run_cli(*common, out / "model", "--resolution", "model")
    assert "1 skipped" in again.stderr
    other = run_cli(*common, out / "model")  # the default, photo resolution: not done yet there
    assert other.returncode == 0 and "1 dressed" in other.stderr and "0 skipped" in other.stderr
    assert np.array_equal(np.asarray(Image.open(out / "model" / name)), np.asarray(Image.open(out / "photo" / name)))
    refused = run_cli(*common, out / "x", "--resolution", "huge")
    assert refused.returncode == 2 and "'photo', 'model'" in refused.stderr


def test_a_dresser_takes_only_the_resolutions_it_knows():
    with pytest.raises(ValueError, match="resolution must be 'photo' or 'model'"):
        Dresser(None, None, resolution="native")  # type: ignore[arg-type]


@pytest.mark.skipif(not DRESSCODE_SAMPLE.is_dir(), reason=f"{DRESSCODE_SAMPLE} is absent")
def test_evaluate_scores_a_try_on_at_the_persons_own_resolution(tiny_files, tmp_path):
    """``evaluate --resolution native``: each pair scored in the person's window at its own
    resolution (as ``tryon`` dresses it): a photo-resolution file answers there, an older
    one's output is upsampled and pasted through its region, as ``tryon`` pastes it."""
    old, new = tiny_files
    scores = {}
    for name, path in (("old", old), ("new", new)):
        for resolution in ("model", "native"):
            out = tmp_path / f"{name}-{resolution}.json"
            done = run_cli("evaluate", "--model", path, "--data", DRESSCODE_SAMPLE, "--resolution", resolution,
                           "--json", out)  # fmt: skip
            assert done.returncode == 0, done.stderr
            upsampled = f"native: the {TINY_SIZE[0]}x{TINY_SIZE[1]} output upsampled" in done.stdout
            assert upsampled == (name == "old" and resolution == "native"), done.stdout
            scores[name, resolution] = [row["ssim"] for row in json.loads(out.read_text())["per_sample"]]
    assert scores["old", "model"] == pytest.approx(scores["new", "model"], abs=1e-6)  # the same network
    assert len(scores["new", "native"]) == 10 and scores["new", "native"] != scores["new", "model"]
    # (a tiny random network: outside its region both are the photo's own pixels, inside they differ)
    assert scores["old", "native"] != scores["new", "native"]
