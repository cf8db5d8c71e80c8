"""``evaluate --resolution native``: every generator scored at the catalog image's own size."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from clothes_extractor.data.synth import write_synthetic
from clothes_extractor.eval.changes import PhotoChange
from clothes_extractor.eval.datasets import load_fitted, load_samples
from clothes_extractor.eval.evaluate import evaluate_model
from clothes_extractor.eval.metrics import image_metrics, iou
from clothes_extractor.models import model_for
from clothes_extractor.runtime import ModelSession
from conftest import TINY_SIZE

CATALOG = (256, 192)  # the synthetic catalog images' size: 4x the tiny models'


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn")
    write_synthetic(root, 4, seed=5, size=CATALOG)
    return load_samples(root, "all")


def _upsampled(array: np.ndarray, method) -> np.ndarray:
    plane = array[..., 0] if array.shape[-1] == 1 else array
    out = np.asarray(Image.fromarray(plane).resize(CATALOG[::-1], method))
    return out.reshape(CATALOG + array.shape[2:])


def test_a_model_size_generator_is_scored_on_its_output_upsampled_to_the_catalog_size(tiny_model_path, samples):
    """A 64x48 U-Net at native resolution: its output brought up (bicubic) to the catalog
    image's 256x192 and scored there, as a user who wants catalog size would get it; at model
    resolution, against the catalog image brought down to 64x48 instead."""
    model = ModelSession(tiny_model_path, "cpu")
    native = evaluate_model(model, samples, resolution="native", batch_size=3)
    small = evaluate_model(model, samples, batch_size=3)
    assert native.samples == small.samples == 4 and not native.failures
    for sample, scored in zip(samples, native.per_sample, strict=True):
        item = load_fitted(sample, model.contract, native=True)
        assert item["image"].shape[:2] == TINY_SIZE and item["target"].shape[:2] == CATALOG
        output = model.run(image=item["image"][None], mask=item["mask"][None])["garment"][0]
        expected = image_metrics(_upsampled(output, Image.Resampling.BICUBIC)[None], item["target"][None])
        for name, value in expected.items():
            assert scored[name] == pytest.approx(float(value[0]), abs=1e-9), name
    assert native.metrics["ssim"] != pytest.approx(small.metrics["ssim"], abs=1e-4)


def test_a_catalog_resolution_generator_answers_at_the_catalog_size(tiny_flow_path, samples):
    """The warping generator needs no upsampling: it answers at 256x192 itself, garment and
    silhouette, and is scored on exactly that."""
    model = ModelSession(tiny_flow_path, "cpu")
    result = evaluate_model(model, samples[:2], resolution="native")
    for sample, scored in zip(samples[:2], result.per_sample, strict=True):
        item = load_fitted(sample, model.contract, native=True)
        outputs = model.run(**{spec.name: item[spec.name][None] for spec in model.contract.inputs})
        assert outputs["garment"].shape[1:3] == outputs["alpha"].shape[1:3] == CATALOG
        expected = image_metrics(outputs["garment"], item["target"][None])
        assert scored["ssim"] == pytest.approx(float(expected["ssim"][0]))
        assert scored["alpha_iou"] == pytest.approx(float(iou(outputs["alpha"], item["alpha"][None])[0]))


def test_a_model_size_silhouette_is_upsampled_with_its_garment(tmp_path):
    """The bundled U-Net's 256x192 silhouette, scored against a 512x384 catalog silhouette,
    is brought up with its garment (bilinear)."""
    path = model_for("generator", gpu=False)
    if path is None:
        pytest.skip("this install bundles no generator")
    write_synthetic(tmp_path, 2, seed=6, size=(512, 384))
    big = load_samples(tmp_path, "all")
    model = ModelSession(path, "cpu")
    result = evaluate_model(model, big, resolution="native")
    for sample, scored in zip(big, result.per_sample, strict=True):
        item = load_fitted(sample, model.contract, native=True)
        alpha = model.run(image=item["image"][None], mask=item["mask"][None])["alpha"][0]
        assert alpha.shape[:2] == (256, 192) and item["alpha"].shape[:2] == (512, 384)
        up = np.asarray(Image.fromarray(alpha[..., 0]).resize((384, 512), Image.Resampling.BILINEAR))[..., None]
        assert scored["alpha_iou"] == pytest.approx(float(iou(up[None], item["alpha"][None])[0]), abs=1e-9)


@pytest.mark.parametrize(
    "change", [PhotoChange(grayscale=True), PhotoChange(light=(1.2, 1.0, 0.6)), PhotoChange(True, (0.5, 0.5, 0.5))]
)
def test_changed_photos_score_as_a_changed_copy_of_the_data(tiny_model_path, tmp_path, change):
    """``--grayscale`` / ``--light`` score a model as if every photo (and, black and white,
    every catalog image) had been changed in its file: the same per-pair scores as on such a
    copy (lossless PNGs), at the model's size (a generator) and as extract runs a segmenter."""
    root, copy = tmp_path / "data", tmp_path / "changed"
    write_synthetic(root, 4, seed=5, size=CATALOG)
    for path in root.rglob("*.*"):
        out = copy / path.relative_to(root)
        out.parent.mkdir(parents=True, exist_ok=True)
        if path.parent.name == "photo":
            image = np.asarray(Image.open(path).convert("RGB")).astype(np.float32)
            if change.light:
                image = np.floor(np.clip(image * np.float32(change.light), 0, 255))
            changed = Image.fromarray(image.astype(np.uint8))
            (changed.convert("L") if change.grayscale else changed).save(out.with_suffix(".png"))
        elif path.parent.name == "garment" and change.grayscale:
            Image.open(path).convert("L").save(out.with_suffix(".png"))
        else:
            out.write_bytes(path.read_bytes())
    original, changed = load_samples(root, "all"), load_samples(copy, "all")
    for model, resolution, metric in (
        (ModelSession(tiny_model_path, "cpu"), "model", "ssim"),
        (ModelSession(model_for("segmenter", gpu=False), "cpu"), "native", "iou"),
    ):
        scored = evaluate_model(model, original, resolution=resolution, change=change)
        expected = evaluate_model(model, changed, resolution=resolution)
        plain = evaluate_model(model, original, resolution=resolution)
        assert scored.samples == 4 and not scored.failures
        assert [s[metric] for s in scored.per_sample] == pytest.approx([s[metric] for s in expected.per_sample])
        assert [s[metric] for s in scored.per_sample] != pytest.approx([s[metric] for s in plain.per_sample])


def test_light_is_parsed_and_described():
    assert PhotoChange.parse_light("0.5") == (0.5, 0.5, 0.5)
    assert PhotoChange(True, PhotoChange.parse_light("1.15,1,0.7")).describe() == "light x1.15,1,0.7, black and white"
    assert PhotoChange(light=(0.5, 0.5, 0.5)).describe() == "light x0.5" and not PhotoChange()
    for bad in ("1,2", "0", "-1,1,1", "dark", ""):
        with pytest.raises(ValueError, match="is not GAIN or R,G,B"):
            PhotoChange.parse_light(bad)


def test_the_unpaired_sheet_shows_the_persons_in_the_changed_light(tmp_path):
    """``evaluate --light 0.5 --unpaired-sheet``: the sheet's persons are in the light the
    scores were measured in (it drew them as they are); the catalog garments keep theirs."""
    from clothes_extractor.eval.evaluate import unpaired_sheet
    from conftest import dress_code_folder

    samples = load_samples(dress_code_folder(tmp_path / "dc", count=3, size=(128, 96)).parent, "all")
    tryon = ModelSession(model_for("tryon", gpu=False), "cpu")
    dark = PhotoChange(light=(0.5, 0.5, 0.5))
    plain = np.asarray(unpaired_sheet(tryon, samples, rows=2, garments=2)).astype(np.float32)
    changed = np.asarray(unpaired_sheet(tryon, samples, rows=2, garments=2, change=dark)).astype(np.float32)
    assert plain.shape == changed.shape
    width = plain.shape[1] // 5  # person | garment, output | garment, output
    first = [
        load_fitted(samples[0], tryon.contract)["person"],
        load_fitted(samples[0], tryon.contract, change=dark)["person"],
    ]
    person = (slice(0, first[0].shape[0]), slice(0, width))
    assert abs(plain[person].mean() - first[0].mean()) < 2 and abs(changed[person].mean() - first[1].mean()) < 2
    assert changed[person].mean() < 0.6 * plain[person].mean()
    garment = (slice(None), slice(width, 2 * width))
    np.testing.assert_array_equal(changed[garment], plain[garment])


def test_the_pairs_are_scored_in_their_order_whatever_batch_they_ran_in(tiny_model_path, tmp_path):
    """Pairs of other sizes run in batches of their own (native resolution: the second pair's
    catalog image is twice as large); their scores, and the sheet's rows, keep the pairs' order."""
    write_synthetic(tmp_path, 4, seed=5, size=CATALOG)
    second = tmp_path / "garment" / "000001.jpg"
    Image.open(second).resize((384, 512)).save(second)
    samples = load_samples(tmp_path, "all")
    result = evaluate_model(ModelSession(tiny_model_path, "cpu"), samples, resolution="native", sheet_rows=4)
    assert [scored["sample"] for scored in result.per_sample] == [sample.name for sample in samples]
    alone = evaluate_model(ModelSession(tiny_model_path, "cpu"), samples[1:2], resolution="native", sheet_rows=1)
    row = alone.sheet.height - 4  # a row and the gap above it (contact_sheet: 4 px gaps)
    assert result.sheet.height == 4 * row + 4
    second = np.asarray(result.sheet)[row : 2 * row + 4]  # input | mask | output | target
    assert np.array_equal(second, np.asarray(alone.sheet))


def test_a_class_in_neither_map_is_null_in_the_json_and_its_mean_says_how_many_pairs_it_is_over(tmp_path):
    """A parser's per-class IoU of a pair that has the class in neither map is no number: the
    ``--json`` file holds it as null (``NaN``, as Python writes it, is no JSON: a browser or
    ``jq`` refuses the whole file), and the class's mean says it is over fewer pairs."""
    import json

    from conftest import dress_code_folder, run_cli

    segmenter = model_for("segmenter", gpu=False)
    if segmenter is None:
        pytest.skip("this install bundles no segmenter")
    folder = dress_code_folder(tmp_path, 3)  # (no "other upper" in their label maps)
    out = tmp_path / "scores.json"
    done = run_cli("evaluate", "--model", "segmenter", "--data", folder, "--json", out)
    assert done.returncode == 0, done.stderr

    def no_nan(constant: str):
        raise AssertionError(f"{constant} in the JSON file")

    scores = json.loads(out.read_text(), parse_constant=no_nan)
    assert scores["fewer_samples"] and "iou_upper" not in scores["fewer_samples"]  # (in every map: over all)
    for name, counted in scores["fewer_samples"].items():
        assert sum(row[name] is not None for row in scores["per_sample"]) == counted
        line = next(line for line in done.stdout.splitlines() if line.split()[0] == name)
        assert line.endswith(f"(over {counted} of the 3 pairs)"), done.stdout


def test_an_evaluations_json_writes_a_score_that_is_no_number_as_null():
    from clothes_extractor.eval.evaluate import Evaluation

    rows = [{"sample": "a", "iou": 0.5, "iou_legs": float("nan")}, {"sample": "b", "iou": 0.7, "iou_legs": 0.2}]
    result = Evaluation("segmenter", 2, {"iou": 0.6, "iou_legs": 0.2}, rows, [], None, {"iou": 2, "iou_legs": 1})
    payload = json.loads(json.dumps(result.to_json(), allow_nan=False))
    assert [row["iou_legs"] for row in payload["per_sample"]] == [None, 0.2] and payload["fewer_samples"] == {
        "iou_legs": 1
    }
    assert np.isnan(rows[0]["iou_legs"])  # (the evaluation's own rows as they were: held_out reads them)
