"""``extract --shard K/N``: one folder job split across N processes without Ray, as a SLURM
array or a Kubernetes indexed job runs it (the same inputs and ``-o`` everywhere, its own
``--report`` each). The shares must cover every photo exactly once, in any process.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from clothes_extractor.runtime.shards import Shard
from conftest import ROOT, cli_env, person_photo, run_cli


def test_a_shard_is_k_of_n():
    assert Shard.parse("2/8") == Shard(1, 8) and str(Shard.parse(" 3 / 3 ")) == "3/3"
    for bad in ("0/3", "4/3", "3", "a/b", "-1/2", "1/0", "", "1/2/3", "\u00b2/3"):  # (a superscript two)
        with pytest.raises(ValueError, match="takes K/N"):
            Shard.parse(bad)
    names = [f"sub{i % 3}/IMG_{i:04d}" for i in range(3000)]
    shares = [sum(Shard(k, 4).holds(n) for n in names) for k in range(4)]
    assert sum(shares) == 3000 and min(shares) > 600, shares  # each name in one share, and they are even


@pytest.fixture
def nested(tmp_path):
    """14 photos in two subfolders, their masks, and ``twin.jpg`` beside ``twin.png`` (one output)."""
    photos, masks = tmp_path / "photos", tmp_path / "masks"
    for i in range(14):
        folder = f"s{i % 2}"
        (photos / folder).mkdir(parents=True, exist_ok=True)
        (masks / folder).mkdir(parents=True, exist_ok=True)
        photo, mask = person_photo(i)
        photo.save(photos / folder / f"p{i:02d}.jpg", quality=90)
        mask.save(masks / folder / f"p{i:02d}.png")
    photo, mask = person_photo(99)
    for suffix in ("jpg", "png"):
        photo.save(photos / "s0" / f"twin.{suffix}")
    mask.save(masks / "s0" / "twin.png")
    return photos, masks


def _reports(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_three_shards_at_once_cover_every_photo_once(tiny_model_path, nested, tmp_path):
    photos, masks = nested
    out = tmp_path / "out"
    common = ("extract", photos, "-r", "--masks", masks, "-o", out, "--model", tiny_model_path, "--workers", "1")
    runs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "clothes_extractor",
                *map(str, common),
                "--shard",
                f"{k}/3",
                "--report",
                str(tmp_path / f"r{k}.jsonl"),
            ],
            env=cli_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in (1, 2, 3)
    ]
    stderr = [run.communicate(timeout=120)[1] for run in runs]
    codes = [run.returncode for run in runs]
    reports = [_reports(tmp_path / f"r{k}.jsonl") for k in (1, 2, 3)]
    inputs = [{r["input"] for r in report} for report in reports]
    every = {str(p) for p in photos.rglob("*.*")}
    assert set().union(*inputs) == every and sum(map(len, inputs)) == len(every) == 16, (codes, stderr)
    for k, (report, err) in enumerate(zip(reports, stderr, strict=True), 1):
        assert f"extracting {len(report)} photo(s) (shard {k}/3)" in err, err
    twins = [report for report in reports if any("twin" in r["input"] for r in report)]
    assert len(twins) == 1, (codes, stderr)  # one output name, one share: the second is refused there
    refused = [r for r in twins[0] if r["status"] == "error"]
    assert len(refused) == 1 and "would both be written to" in refused[0]["error"], refused
    assert sorted(codes) == [0, 0, 1] and len(list(out.rglob("*.png"))) == 15, (codes, stderr)

    again = run_cli(*common, "--shard", "2/3")  # another process, another hash seed: the same share
    assert f"0 extracted (0.0 photos/s), {len(reports[1])} skipped" in again.stderr, again.stderr
    dry = run_cli(*common, "--shard", "1/3", "--dry-run", "--report", "-")
    assert {r["input"] for r in map(json.loads, dry.stdout.splitlines())} == inputs[0]


def test_what_a_shard_cannot_split_is_refused(tiny_model_path, nested, tmp_path):
    photos, _ = nested
    photo = photos / "s0" / "p00.jpg"
    model = ("--model", tiny_model_path)
    cases = [
        ((photo, "-o", tmp_path / "g.png", "--shard", "1/2"), "one photo to one file is not split"),
        ((photos, "-o", tmp_path / "o", "--shard", "1/2", "--ray"), "leave out --shard with --ray"),
        (("-", "-o", tmp_path / "o", "--shard", "1/2"), "not standard input or a URL"),
        ((photos, "-o", tmp_path / "o", "--shard", "0/2"), "takes K/N"),
    ]
    for args, says in cases:
        done = run_cli("extract", *args, *model, stdin=b"")
        assert done.returncode == 2 and says in done.stderr.decode(), done.stderr
    empty = run_cli("extract", photo, "-o", tmp_path / "o", *model, "--shard", f"{1 + Shard(0, 97).holds('p00')}/97")
    assert empty.returncode == 0 and "holds none of the photos" in empty.stderr and not (tmp_path / "o").exists()


def test_tryon_shards_split_the_pairs(tmp_path):
    persons = tmp_path / "persons"
    persons.mkdir()
    for i in range(4):
        shutil.copy(ROOT / "examples" / "photos" / ("figure-2.jpg", "figure-3.jpg")[i % 2], persons / f"p{i}.jpg")
    garment = tmp_path / "garment.png"
    assert run_cli("extract", ROOT / "examples" / "photos" / "figure-3.jpg", "-o", garment).returncode == 0
    out = tmp_path / "out"
    reports = []
    for k in (1, 2):
        report = tmp_path / f"r{k}.jsonl"
        done = run_cli("tryon", "--person", persons, "--garment", garment, "-o", out, "--shard", f"{k}/2",
                       "--report", report)  # fmt: skip
        assert done.returncode == 0, done.stderr
        reports.append([json.loads(line)["person"] for line in report.read_text().splitlines()])
        assert f"dressing 2 pair(s) (shard {k}/2)" in done.stderr and len(reports[-1]) == 2, done.stderr
    assert sorted(reports[0] + reports[1]) == sorted(str(p) for p in persons.iterdir())
    assert len(list(out.iterdir())) == 4
    one = run_cli("tryon", "--person", persons / "p0.jpg", "--garment", garment, "-o", tmp_path / "x.png",
                  "--shard", "1/2")  # fmt: skip
    assert one.returncode == 2 and "one pair to one file is not split" in one.stderr, one.stderr


def test_two_runs_never_write_one_report(tiny_model_path, nested, tmp_path):
    from clothes_extractor.commands.reports import Report
    from clothes_extractor.runtime.stages import FileResult

    photos, masks = nested
    shared = tmp_path / "report.jsonl"
    report = Report(shared)  # a first shard's, still running
    try:
        report.write(FileResult("s0/p00.jpg", "ok", "out/s0/p00.png"))
        done = run_cli("extract", photos, "-r", "--masks", masks, "-o", tmp_path / "out", "--model", tiny_model_path,
                       "--shard", "2/3", "--report", shared)  # fmt: skip
        assert done.returncode == 1 and "is being written by another run right now" in done.stderr, done.stderr
        assert not (tmp_path / "out").exists()
    finally:
        report.close()
    assert [json.loads(line)["input"] for line in shared.read_text().splitlines()] == ["s0/p00.jpg"]
    again = run_cli("extract", photos, "-r", "--masks", masks, "-o", tmp_path / "out", "--model", tiny_model_path,
                    "--shard", "2/3", "--report", shared)  # fmt: skip
    mine = [json.loads(line)["input"] for line in shared.read_text().splitlines()]  # its own report, from empty
    assert mine and all(item.startswith(str(photos)) for item in mine) and "extracting" in again.stderr, mine
