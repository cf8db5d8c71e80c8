"""Validation pairs that are copies of training pairs: found by content, left out of
training, reported apart by ``evaluate``."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest
import torch

from clothes_extractor.data.synth import write_synthetic
from clothes_extractor.eval.datasets import load_samples
from clothes_extractor.eval.overlap import copies, held_out, repeats, training_split
from conftest import run_cli

FOLDERS = {"photo": "jpg", "mask": "png", "garment": "jpg"}


@pytest.fixture(scope="module")
def leaky(tmp_path_factory):
    """A root with train/ (8 triplets) and val/ (4): val 000000 is train 000003 under another
    name, val 000001 has train 000005's catalog image, val 000002 train 000006's photo with
    one byte more (not the same file), val 000003 is its own."""
    root = tmp_path_factory.mktemp("leaky")
    write_synthetic(root / "train", 8, seed=0, size=(64, 48))
    write_synthetic(root / "val", 4, seed=1, size=(64, 48))
    for folder, suffix in FOLDERS.items():
        shutil.copy(root / "train" / folder / f"000003.{suffix}", root / "val" / folder / f"000000.{suffix}")
    shutil.copy(root / "train/garment/000005.jpg", root / "val/garment/000001.jpg")
    (root / "val/photo/000002.jpg").write_bytes((root / "train/photo/000006.jpg").read_bytes() + b"\0")
    return root


def test_copies_are_found_by_content_whatever_their_names(leaky):
    train, val = load_samples(leaky, "train"), load_samples(leaky, "val")
    assert [s.name for s in val] == ["000000", "000001", "000002", "000003"]
    assert copies(val, train) == [True, True, False, False]
    assert [s.name for s, c in zip(train, copies(train, val), strict=True) if c] == ["000003", "000005"]
    assert copies(val, []) == [False] * 4


def test_training_leaves_out_the_copies_of_validation_samples(leaky, caplog):
    with caplog.at_level(logging.INFO, logger="clothes_extractor.eval.overlap"):
        train, val = training_split(leaky, 0.05, 0, True)
    assert len(val) == 4
    assert [s.name for s in train] == ["000000", "000001", "000002", "000004", "000006", "000007"]
    assert "left out 2 of 8 training samples" in caplog.text
    kept, _ = training_split(leaky, 0.05, 0, True, keep_copies=True)
    assert len(kept) == 8


def test_a_training_run_records_what_it_trained_on(leaky, tmp_path):
    from click.testing import CliRunner
    from test_train import tiny_config

    from clothes_extractor.cli import cli
    from clothes_extractor.train.loop import train

    run = train(tiny_config(leaky, tmp_path / "run", epochs=1, batch_size=2, max_steps=1))
    summary = torch.load(run / "last.pt", weights_only=True)["summary"]
    assert summary["data"]["train_samples"] == 6
    config = json.loads((run / "config.json").read_text())
    assert config["keep_val_copies"] is False
    # a checkpoint from before the option trained on the copies, and resumes on them
    state = torch.load(run / "last.pt", weights_only=True)
    del state["train_config"]["keep_val_copies"]
    torch.save(state, tmp_path / "old.pt")
    args = ["train", "--resume", str(tmp_path / "old.pt"), "--data", str(leaky), "-o", str(tmp_path / "resumed")]
    done = CliRunner().invoke(cli, [*args, "--max-steps", "2"])
    assert done.exit_code == 0, done.output
    assert torch.load(tmp_path / "resumed/last.pt", weights_only=True)["summary"]["data"]["train_samples"] == 8


def test_evaluate_reports_the_held_out_pairs_beside_the_split(leaky, tiny_model_path, tmp_path):
    report = tmp_path / "eval.json"
    done = run_cli("evaluate", "--model", tiny_model_path, "--data", leaky, "--provider", "cpu", "--json", report)
    assert done.returncode == 0, done.stderr
    assert "2 of these pairs are copies of training pairs" in done.stdout and "held out" in done.stdout
    result = json.loads(report.read_text())
    assert result["seen_in_training"] == 2 and result["held_out"]["samples"] == 2
    seen = {row["sample"]: row["seen_in_training"] for row in result["per_sample"]}
    assert seen == {"000000": True, "000001": True, "000002": False, "000003": False}
    others = [row["ssim"] for row in result["per_sample"] if not row["seen_in_training"]]
    assert result["held_out"]["metrics"]["ssim"] == pytest.approx(np.mean(others))
    # --held-out scores those two alone, with the same scores
    only = run_cli("evaluate", "--model", tiny_model_path, "--data", leaky, "--held-out", "--json", tmp_path / "h.json")
    assert only.returncode == 0, only.stderr
    assert "(val, 2 held-out pairs" in only.stdout
    scored = json.loads((tmp_path / "h.json").read_text())
    assert [row["sample"] for row in scored["per_sample"]] == ["000002", "000003"]
    assert scored["metrics"]["ssim"] == pytest.approx(result["held_out"]["metrics"]["ssim"])
    gray = run_cli("evaluate", "--model", tiny_model_path, "--data", leaky, "--held-out", "--grayscale",
                   "--json", tmp_path / "g.json")  # fmt: skip
    assert gray.returncode == 0 and "(val, 2 held-out pairs, cpu, model, black and white)" in gray.stdout
    scored_gray = json.loads((tmp_path / "g.json").read_text())
    assert scored_gray["grayscale"] is True and scored["grayscale"] is False
    assert scored_gray["metrics"]["ssim"] != pytest.approx(scored["metrics"]["ssim"])
    dark = run_cli("evaluate", "--model", tiny_model_path, "--data", leaky, "--held-out", "--light", "0.5",
                   "--json", tmp_path / "d.json")  # fmt: skip
    assert dark.returncode == 0 and "(val, 2 held-out pairs, cpu, model, light x0.5)" in dark.stdout
    assert json.loads((tmp_path / "d.json").read_text())["light"] == [0.5, 0.5, 0.5] and scored["light"] is None
    bad = run_cli("evaluate", "--model", tiny_model_path, "--data", leaky, "--light", "warm")
    assert bad.returncode == 2 and "'warm' is not GAIN or R,G,B" in bad.stderr
    # a split folder given directly has no training split to compare with
    alone = run_cli("evaluate", "--model", tiny_model_path, "--data", leaky / "val", "--json", tmp_path / "a.json")
    assert alone.returncode == 0, alone.stderr
    assert "held_out" not in json.loads((tmp_path / "a.json").read_text()) and "held out" not in alone.stdout
    clean = run_cli("evaluate", "--model", tiny_model_path, "--data", leaky, "--split", "train")
    assert clean.returncode == 0 and "copies" not in clean.stdout  # nothing to compare a training split with
    write_synthetic(tmp_path / "clean/train", 4, seed=0, size=(64, 48))
    write_synthetic(tmp_path / "clean/val", 2, seed=1, size=(64, 48))
    none = run_cli("evaluate", "--model", tiny_model_path, "--data", tmp_path / "clean")
    assert none.returncode == 0 and "none of these pairs is a copy of a training pair" in none.stdout
    refused = run_cli("evaluate", "--model", tiny_model_path, "--data", leaky / "val", "--held-out")
    assert refused.returncode == 2 and "--held-out needs a validation split and a training split" in refused.stderr


def test_held_out_means_skip_what_a_pair_does_not_have():
    rows = [
        {"sample": "a", "iou": 0.5, "iou_legs": float("nan")},
        {"sample": "b", "iou": 0.7, "iou_legs": 0.2},
        {"sample": "c", "iou": 0.1, "iou_legs": 0.9},
    ]
    assert held_out(rows, {"c"}) == {"samples": 2, "metrics": {"iou": pytest.approx(0.6), "iou_legs": 0.2}}
    assert held_out(rows, {"a", "b", "c"}) == {"samples": 0, "metrics": {}}


def test_data_overlap_reports_the_splits_and_writes_the_held_out_pairs(leaky, tmp_path):
    train = load_samples(leaky, "train")
    assert repeats(train) == 0 and repeats(train + train[:3]) == 3  # the same files again
    pairs = tmp_path / "held-out.txt"
    done = run_cli("data", "overlap", leaky, "--held-out-pairs", pairs)
    assert done.returncode == 0, done.stderr
    assert "train: 8 samples, 8 distinct photos" in done.stdout and "val: 4 samples, 4 distinct photos" in done.stdout
    assert "2 of the 4 validation samples are copies of training samples" in done.stdout
    assert pairs.read_text() == "000002.jpg 000002.jpg\n000003.jpg 000003.jpg\n"


def test_data_overlap_writes_the_training_pairs_a_model_has_not_seen(tmp_path):
    """--unseen-by lists what a first model (a renderer) learned from: 000000 and 000001;
    000004 has 000001's catalog image under its own name, so only 000002, 000003 and 000005
    are new to it."""
    root = tmp_path / "data"
    write_synthetic(root / "train", 6, seed=4, size=(64, 48))
    write_synthetic(root / "val", 2, seed=5, size=(64, 48))
    shutil.copy(root / "train/garment/000001.jpg", root / "train/garment/000004.jpg")
    learned = tmp_path / "learned.txt"
    learned.write_text("000000.jpg 000000.jpg\n000001.jpg 000001.jpg\n")
    out = tmp_path / "unseen.txt"
    done = run_cli("data", "overlap", root, "--unseen-by", learned, "--unseen-pairs", out)
    assert done.returncode == 0, done.stderr
    assert "2 training pairs learned" in done.stdout and "of the other 4, 1 are copies of them" in done.stdout
    assert out.read_text() == "000002.jpg 000002.jpg\n000003.jpg 000003.jpg\n000005.jpg 000005.jpg\n"
    alone = run_cli("data", "overlap", root, "--unseen-by", learned)
    assert alone.returncode == 2 and "go together" in alone.stderr
    learned.write_text("999999.jpg 999999.jpg\n")
    wrong = run_cli("data", "overlap", root, "--unseen-by", learned, "--unseen-pairs", out)
    assert wrong.returncode == 2 and "none of its photos" in wrong.stderr


def test_data_overlap_never_writes_over_its_inputs(tmp_path):
    # Each refused before any work, the inputs unchanged: the --unseen-by file as
    # --unseen-pairs, one file for both outputs, a pairs file the dataset reads.
    root = tmp_path / "data"
    write_synthetic(root / "train", 4, seed=4, size=(64, 48))
    write_synthetic(root / "val", 2, seed=5, size=(64, 48))
    learned = tmp_path / "learned.txt"
    learned.write_text("000000.jpg 000000.jpg\n")
    (root / "val_pairs.txt").write_text("000000.jpg 000001.jpg\n")
    cases = {
        "is the --unseen-by file": ["--unseen-by", learned, "--unseen-pairs", tmp_path / "." / "learned.txt"],
        "name the same file": [
            "--unseen-by",
            learned,
            "--unseen-pairs",
            tmp_path / "a.txt",
            "--held-out-pairs",
            tmp_path / "a.txt",
        ],  # fmt: skip
        "is a pairs file of": ["--held-out-pairs", root / "val_pairs.txt"],
    }
    for message, options in cases.items():
        done = run_cli("data", "overlap", root, *options)
        assert done.returncode == 2 and message in done.stderr, done.stderr
    assert learned.read_text() == "000000.jpg 000000.jpg\n"
    assert (root / "val_pairs.txt").read_text() == "000000.jpg 000001.jpg\n"
    assert not (tmp_path / "a.txt").exists()
    # a new pairs file inside a split folder would change the dataset too (Dress Code reads pairs.txt)
    new = run_cli("data", "overlap", root / "train", "--held-out-pairs", root / "train" / "pairs.txt")
    assert new.returncode == 2 and "is a pairs file of" in new.stderr and not (root / "train/pairs.txt").exists()
