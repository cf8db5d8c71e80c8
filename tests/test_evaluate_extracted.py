"""``evaluate --masks segmenter``: a generator scored as ``extract`` runs it, on the masks the
segmenter finds (``eval.extracted``): each pair's scores are those of the garment the Python
API (``extract_garment``, extract's stages) gives for its photo, against its catalog image; a
try-on as ``tryon`` runs it (``eval.dressed``): those of the photo ``dress`` gives, against the photo."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from clothes_extractor import dress, extract_garment
from clothes_extractor.data.synth import write_synthetic
from clothes_extractor.errors import InputError
from clothes_extractor.eval.changes import PhotoChange
from clothes_extractor.eval.datasets import load_samples
from clothes_extractor.eval.dressed import window_in
from clothes_extractor.eval.evaluate import evaluate_model
from clothes_extractor.eval.extracted import NO_GARMENT
from clothes_extractor.eval.metrics import image_metrics
from clothes_extractor.models import model_for
from clothes_extractor.runtime import ModelSession
from clothes_extractor.runtime.dressing import Dresser
from clothes_extractor.runtime.fitting import letterbox
from clothes_extractor.runtime.images import load_garment, load_person
from conftest import far_figure, run_cli

CATALOG = (256, 192)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Five synthetic pairs; the second's photo is its catalog image (a garment shown alone)
    and the last's a blank frame (no garment in it)."""
    root = tmp_path_factory.mktemp("syn")
    write_synthetic(root, 5, seed=5, size=CATALOG)
    shutil.copy(root / "garment" / "000001.jpg", root / "photo" / "000001.jpg")
    Image.new("RGB", CATALOG[::-1], (235, 235, 235)).save(root / "photo" / "000004.jpg")
    return root


@pytest.fixture(scope="module")
def sessions(tiny_model_path, segmenter_path):
    with ModelSession(tiny_model_path, "cpu") as generator, ModelSession(segmenter_path, "cpu") as segmenter:
        yield generator, segmenter


@pytest.mark.parametrize("resolution", ["model", "native"])
def test_each_pair_scores_as_the_garment_extract_gives_for_its_photo(data, sessions, resolution):
    generator, segmenter = sessions
    samples = load_samples(data, "all")
    result = evaluate_model(generator, samples, resolution=resolution, segmenter=segmenter, batch_size=3)
    assert result.samples == 4 and [f["sample"] for f in result.failures] == [str(samples[4].photo)]
    assert result.failures[0]["error"] == NO_GARMENT  # never scored as if a garment had been made
    size = CATALOG if resolution == "native" else generator.contract.size
    assert "alpha_iou" not in result.metrics  # a generator with no silhouette: none for its cut-out either
    scores = {scored["sample"]: scored for scored in result.per_sample}
    for sample in samples[:4]:
        scored = scores[sample.name]
        garment = extract_garment(sample.photo, generator=generator, segmenter=segmenter, output_size=size)
        target, _ = letterbox(Image.open(sample.garment).convert("RGB"), size, (255, 255, 255))
        expected = image_metrics(np.asarray(garment)[None], target[None])
        for name, value in expected.items():
            assert scored[name] == pytest.approx(float(value[0]), abs=1e-9), (sample.name, name)
    assert [scores[s.name]["alone"] for s in samples[:4]] == [0, 1, 0, 0]  # the catalog image: cut out
    on_labels = evaluate_model(generator, samples[:4], resolution=resolution)
    assert [s["ssim"] for s in on_labels.per_sample] != pytest.approx([scores[s.name]["ssim"] for s in samples[:4]])


def test_the_mask_used_is_scored_as_the_segmenter_is_scored_as_extract_runs_it(data, sessions):
    """``mask_iou``: the IoU of the mask extract used, the one ``evaluate --model segmenter
    --resolution native`` scores (a pair without a garment: 0 there, failed here)."""
    generator, segmenter = sessions
    samples = load_samples(data, "all")
    used = evaluate_model(generator, samples, segmenter=segmenter)
    found = evaluate_model(segmenter, samples, resolution="native")
    mask_iou = {s["sample"]: s["mask_iou"] for s in used.per_sample}
    scored = found.per_sample[:4]
    assert [mask_iou[s["sample"]] for s in scored] == pytest.approx([s["iou"] for s in scored])
    assert found.per_sample[4]["iou"] == 0 and 0.7 < used.metrics["mask_iou"] < 1


def test_a_changed_photo_is_segmented_and_fitted_changed(tmp_path, sessions):
    """``--grayscale`` with the segmenter's masks: the scores of a black-and-white copy of the
    data (lossless), whose masks the segmenter found in the black-and-white photos."""
    generator, segmenter = sessions
    root, copy = tmp_path / "data", tmp_path / "grey"
    write_synthetic(root, 3, seed=8, size=CATALOG)
    for path in root.rglob("*.*"):
        out = copy / path.relative_to(root)
        out.parent.mkdir(parents=True, exist_ok=True)
        if path.parent.name in ("photo", "garment"):
            Image.open(path).convert("L").save(out.with_suffix(".png"))
        else:
            out.write_bytes(path.read_bytes())
    change = PhotoChange(grayscale=True)
    scored = evaluate_model(generator, load_samples(root, "all"), segmenter=segmenter, change=change)
    expected = evaluate_model(generator, load_samples(copy, "all"), segmenter=segmenter)
    plain = evaluate_model(generator, load_samples(root, "all"), segmenter=segmenter)
    assert scored.samples == 3 and not scored.failures
    for metric in ("ssim", "mask_iou"):
        assert [s[metric] for s in scored.per_sample] == pytest.approx([s[metric] for s in expected.per_sample])
    assert [s["ssim"] for s in scored.per_sample] != pytest.approx([s["ssim"] for s in plain.per_sample])


def test_evaluate_masks_segmenter_on_the_command_line(data, tiny_model_path, segmenter_path, tmp_path):
    out = tmp_path / "scores.json"
    done = run_cli(
        "evaluate", "--model", tiny_model_path, "--data", data, "--segmenter", segmenter_path, "-o", out,
        "--sheet", tmp_path / "sheet.png", "--sheet-rows", "2",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr  # the blank photo: no garment, reported
    assert f"as extract runs it: masks by {segmenter_path.name}" in done.stdout
    assert "mask_iou" in done.stdout and "000004.jpg: the segmenter finds no garment" in done.stderr
    scores = json.loads(out.read_text())
    assert scores["masks"] == "segmenter" and scores["segmenter"] == str(segmenter_path)
    assert scores["samples"] == 4 and all("mask_iou" in row for row in scores["per_sample"])
    assert Image.open(tmp_path / "sheet.png").size[1] > 2 * 64
    for args, words in (
        (("--masks", "labels", "--segmenter", segmenter_path), "--segmenter finds the masks of --masks segmenter"),
        (("--model", segmenter_path, "--masks", "segmenter"), "a segmenter runs as extract runs it with --resolution"),
    ):
        refused = run_cli("evaluate", "--data", data, *args)
        assert refused.returncode == 2 and words in refused.stderr, refused.stderr
    labels = run_cli("evaluate", "--model", tiny_model_path, "--data", data, "--limit", "4", "-o", out)
    assert labels.returncode == 0 and json.loads(out.read_text())["masks"] == "labels", labels.stderr
    if model_for("tryon", gpu=False) is not None:  # a try-on: the parser's regions
        dressed = run_cli("evaluate", "--model", "tryon", "--data", data, "--masks", "segmenter", "--limit", "1")
        assert dressed.returncode == 0, dressed.stderr
        assert "as tryon runs it: regions by segmenter-fp32.onnx" in dressed.stdout


def test_a_try_on_scores_as_the_photo_tryon_dresses(tmp_path, segmenter_path):
    """Each person dressed in their own garment as ``tryon --resolution photo|model`` dresses
    them (the parser finds the region: these pairs have no parse map to score on), scored
    against the photo in the window the try-on dressed (a far figure's: a part of its frame); a
    photo with no one to dress is the pair ``tryon`` refuses, reported."""
    path = model_for("tryon", gpu=False)
    if path is None:
        pytest.skip("this install bundles no try-on model")
    write_synthetic(tmp_path, 3, seed=5, size=(512, 384))
    far_figure(tmp_path / "photo", "000001.jpg")  # a figure in a quarter of a 1024x768 frame
    Image.new("RGB", (384, 512), (235, 235, 235)).save(tmp_path / "photo" / "000002.jpg")
    write_synthetic(tmp_path / "more", 4, seed=6, size=(512, 384))  # a fourth pair: its catalog image blank
    shutil.copy(tmp_path / "more" / "photo" / "000003.jpg", tmp_path / "photo" / "000003.jpg")
    shutil.copy(tmp_path / "more" / "mask" / "000003.png", tmp_path / "mask" / "000003.png")
    Image.new("RGB", (384, 512), (255, 255, 255)).save(tmp_path / "garment" / "000003.jpg")
    samples = load_samples(tmp_path, "all")
    ssim = {}
    with ModelSession(path, "cpu") as tryon, ModelSession(segmenter_path, "cpu") as parser:
        with pytest.raises(InputError, match="scored on pairs with a human parsing"):
            evaluate_model(tryon, samples)
        for resolution, dresses_at in (("model", "model"), ("native", "photo")):
            result = evaluate_model(tryon, samples, resolution=resolution, segmenter=parser)
            assert result.samples == 2 and [f["sample"] for f in result.failures] == [str(s.photo) for s in samples[2:]]
            assert "found no upper-body clothing to replace" in result.failures[0]["error"]  # the person's
            refused = f"{samples[3].garment}: found no garment in the garment image"  # the catalog image's, named
            assert result.failures[1]["error"].startswith(refused), result.failures[1]
            dresser = Dresser(tryon, parser, resolution=dresses_at)
            for sample, scored in zip(samples, result.per_sample, strict=False):
                dressed = np.asarray(
                    dress(sample.photo, sample.garment, tryon=tryon, parser=parser, resolution=dresses_at)
                )
                photo = np.asarray(Image.open(sample.photo).convert("RGB"))
                assert dressed.shape == photo.shape and scored["sample"] == sample.name
                pair = (load_person(sample.photo), load_garment(sample.garment))
                x0, y0, x1, y1 = window_in(dresser.draw_pairs([pair])[0][0].window, photo.shape)
                if sample.name == "000001":  # the far figure: its window, not its empty frame
                    assert (x1 - x0) * (y1 - y0) < 0.5 * photo.shape[0] * photo.shape[1]
                expected = image_metrics(dressed[None, y0:y1, x0:x1], photo[None, y0:y1, x0:x1])
                for name, value in expected.items():
                    assert scored[name] == pytest.approx(float(value[0]), abs=1e-9), (sample.name, name)
            ssim[resolution] = [scored["ssim"] for scored in result.per_sample]
    assert ssim["model"] != pytest.approx(ssim["native"])  # (dressed at another resolution)


def test_pairs_without_masks_score_as_the_same_pairs_with_them(tmp_path, sessions, tiny_model_path):
    """A shop's photos and catalog images with no masks (photo/ + garment/): scored as extract
    runs them, each pair as the same pair with a mask is (the segmenter's masks either way),
    without ``mask_iou``; on their own masks, refused with what to do instead. ``evaluate``
    scores them so unasked."""
    generator, segmenter = sessions
    for name in ("triplets", "pairs"):
        write_synthetic(tmp_path / name, 3, seed=5, size=CATALOG)
    shutil.rmtree(tmp_path / "pairs" / "mask")
    pairs = load_samples(tmp_path / "pairs", "all")
    with pytest.raises(InputError, match=r"the pairs of .*pairs have no masks.*\(evaluate --masks segmenter\)$"):
        evaluate_model(generator, pairs)
    with pytest.raises(InputError, match=r"a segmenter is scored against them: add them \(mask/\)$"):
        evaluate_model(segmenter, pairs)
    scored = evaluate_model(generator, pairs, segmenter=segmenter)
    masked = evaluate_model(generator, load_samples(tmp_path / "triplets", "all"), segmenter=segmenter)
    assert scored.samples == masked.samples == 3 and not scored.failures
    assert "mask_iou" not in scored.metrics and "mask_iou" in masked.metrics and "zoomed" in scored.metrics
    for name in ("ssim", "gmsd", "sharpness"):
        assert [s[name] for s in scored.per_sample] == [s[name] for s in masked.per_sample]
    done = run_cli("evaluate", "--model", tiny_model_path, "--data", tmp_path / "pairs")
    assert done.returncode == 0 and "as extract runs it: masks by segmenter-fp32.onnx" in done.stdout, done.stderr
    assert f"ssim       {scored.metrics['ssim']:.4f}" in done.stdout


def test_a_pair_without_its_mask_file_is_scored_as_extract_runs_it_without_its_mask_iou(tmp_path, sessions):
    """The segmenter's masks are what ``--masks segmenter`` scores with; a pair's own mask is only
    what its ``mask_iou`` compares them with. A pair whose mask file is missing is scored all the
    same (as the same pair with it), its ``mask_iou`` left out and the mean said to be over the others;
    scored on its own masks, it cannot be, and is reported."""
    generator, segmenter = sessions
    for name in ("whole", "gap"):
        write_synthetic(tmp_path / name, 3, seed=5, size=CATALOG)
    (tmp_path / "gap" / "mask" / "000001.png").unlink()
    whole = evaluate_model(generator, load_samples(tmp_path / "whole", "all"), segmenter=segmenter)
    gap = evaluate_model(generator, load_samples(tmp_path / "gap", "all"), segmenter=segmenter)
    assert gap.samples == 3 and not gap.failures
    assert [s["ssim"] for s in gap.per_sample] == [s["ssim"] for s in whole.per_sample]
    assert np.isnan(gap.per_sample[1]["mask_iou"]) and gap.fewer() == {"mask_iou": 2}
    kept = [whole.per_sample[i]["mask_iou"] for i in (0, 2)]
    assert gap.metrics["mask_iou"] == pytest.approx(sum(kept) / 2) and whole.fewer() == {}
    done = run_cli("evaluate", "--model", generator.path, "--data", tmp_path / "gap", "--masks", "segmenter")
    assert done.returncode == 0 and "(over 2 of the 3 pairs)" in done.stdout, done.stderr
    assert "000001.jpg: its mask_iou is left out: the garment mask of 000001.jpg is missing" in done.stderr
    labels = evaluate_model(generator, load_samples(tmp_path / "gap", "all"))
    assert labels.samples == 2 and "the garment mask of 000001.jpg is missing" in labels.failures[0]["error"]
