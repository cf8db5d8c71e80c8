"""A full disk, for real: a tmpfs of a few hundred kilobytes mounted as the output folder.

Every photo after the disk fills would fail the same way, so a folder job stops there
(exit 1, saying why and how many it did not try), leaves only complete files, and a rerun
once there is space resumes, skipping what was written. Mounting needs root (or
CAP_SYS_ADMIN); elsewhere these tests skip.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from clothes_extractor.errors import DiskFull
from clothes_extractor.runtime.files import write_atomic
from conftest import ROOT, cli_env, person_photo, run_cli


@pytest.fixture
def small_disk(tmp_path):
    """Mounts a tmpfs at a folder; ``resize(bytes)`` changes its size. Unmounted afterwards."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()

    def resize(size: int, first: bool = False) -> None:
        options = f"size={size}" if first else f"remount,size={size}"
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)], capture_output=True, text=True
        )
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip() or done.returncode}")

    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    resize(64 * 1024, first=True)
    yield mount_point, resize
    subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def _outputs(folder: Path) -> list[Path]:
    files = sorted(folder.iterdir()) if folder.is_dir() else []
    assert not [f.name for f in files if f.name.startswith(".ce-")], "a partial file was left behind"
    for path in files:
        with Image.open(path) as image:
            image.load()  # whole: a truncated file raises here
    return files


def test_write_atomic_says_the_disk_is_full_and_leaves_nothing(small_disk):
    disk, _ = small_disk
    with pytest.raises(DiskFull, match="No space left"):
        write_atomic(disk / "big.bin", b"x" * (256 * 1024))
    assert list(disk.iterdir()) == []


def test_extract_stops_at_a_full_disk_and_resumes(small_disk, tmp_path):
    disk, resize = small_disk
    photos, masks = tmp_path / "photos", tmp_path / "masks"
    photos.mkdir()
    masks.mkdir()
    for i in range(14):
        photo, mask = person_photo(i, size=(192, 256))
        photo.save(photos / f"p{i:02d}.jpg", quality=90)
        mask.save(masks / f"p{i:02d}.png")
    one = tmp_path / "one.png"
    assert run_cli("extract", photos / "p00.jpg", "--masks", masks, "-o", one).returncode == 0
    resize(one.stat().st_size * 3)  # room for two or three garments
    report = tmp_path / "report.jsonl"
    args = ("extract", photos, "--masks", masks, "-o", disk / "out", "--batch-size", "2", "--workers", "1")
    done = run_cli(*args, "--report", report)
    assert done.returncode == 1, done.stderr
    assert "No space left on device" in done.stderr and "Free some space there" in done.stderr, done.stderr
    summary = next(line for line in done.stderr.splitlines() if line.startswith("stopped after"))
    written = _outputs(disk / "out")
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    ok = sorted(Path(r["output"]).name for r in lines if r["status"] == "ok")
    assert 1 <= len(written) and [f.name for f in written] == ok
    # every photo is in the report: those not tried too (until the 65th stop, only those tried)
    assert sorted(Path(r["input"]).name for r in lines) == [f"p{i:02d}.jpg" for i in range(14)]
    not_tried = [r for r in lines if (r["error"] or "").startswith("not tried: the job stopped (cannot write")]
    assert all("No space left" in r["error"] for r in lines if r["status"] == "error")
    untried = len(not_tried)
    assert untried > 0 and f"{len(ok)} extracted" in summary and f"{untried} not tried" in summary, summary
    assert {r["status"] for r in not_tried} == {"error"} and "run the same command again" in not_tried[0]["error"]

    resize(64 * 2**20)
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    assert f"{14 - len(ok)} extracted" in again.stderr and f"{len(ok)} skipped" in again.stderr, again.stderr
    assert len(_outputs(disk / "out")) == 14


def test_tryon_stops_at_a_full_disk(small_disk, tmp_path):
    disk, resize = small_disk
    persons = tmp_path / "persons"
    persons.mkdir()
    for i in range(12):  # the job stops with two batches of two in flight: the last ones are not tried
        shutil.copy(ROOT / "examples" / "photos" / ("figure-2.jpg", "figure-3.jpg")[i % 2], persons / f"p{i:02}.jpg")
    garment = ROOT / "examples" / "photos" / "figure-2.jpg"
    catalog = tmp_path / "garment.png"
    assert run_cli("extract", garment, "-o", catalog).returncode == 0
    one = tmp_path / "one.jpg"
    assert run_cli("tryon", "--person", persons / "p00.jpg", "--garment", catalog, "-o", one).returncode == 0
    resize(int(one.stat().st_size * 2.5))
    done = run_cli(
        "tryon", "--person", persons, "--garment", catalog, "-o", disk / "out", "--format", "jpg", "--batch-size", "2"
    )
    assert done.returncode == 1, done.stderr
    assert "the job stopped: cannot write" in done.stderr and "No space left on device" in done.stderr, done.stderr
    summary = next(line for line in done.stderr.splitlines() if line.startswith("stopped after"))
    written = _outputs(disk / "out")
    failed = int(re.search(r"(\d+) failed", summary).group(1))  # the writes in flight when the disk filled
    untried = int(re.search(r"(\d+) not tried", summary).group(1))  # at most two batches were in flight
    assert f"{len(written)} dressed" in summary and failed >= 1 and untried >= 2, summary
    assert len(written) + failed + untried == 12, summary


def test_tryon_garment_from_stops_when_stage_one_fills_its_disk(small_disk, tmp_path):
    # --garment-from writes each garment photo's catalog image to a temporary folder (TMPDIR):
    # a full disk there stops the job before its window is dressed, saying where, and a rerun
    # with room resumes
    disk, _ = small_disk
    worn = tmp_path / "worn"
    worn.mkdir()
    for i in range(4):
        shutil.copy(ROOT / "examples" / "photos" / ("figure-3.jpg", "figure-6.jpg")[i % 2], worn / f"w{i}.jpg")
    args = ["tryon", "--person", ROOT / "examples" / "photos" / "figure-2.jpg", "--garment-from", worn]
    args += ["-o", tmp_path / "out", "--provider", "cpu"]
    command = [sys.executable, "-m", "clothes_extractor", *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, env={**cli_env(), "TMPDIR": str(disk)})
    assert done.returncode == 1, done.stderr
    assert "the job stopped: stage one (the garments of the --garment-from photos): cannot write" in done.stderr
    assert "No space left on device" in done.stderr and "0 dressed" in done.stderr, done.stderr
    assert _outputs(tmp_path / "out") == [] and not list(disk.glob("clothes-extractor-*"))  # (its temporary folder)
    again = run_cli(*args)
    assert again.returncode == 0 and "4 dressed" in again.stderr, again.stderr
