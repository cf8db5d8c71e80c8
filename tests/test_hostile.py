"""The audit's hostile folder, small: odd files of every kind, symlink loops, an unreadable
subfolder, SIGKILLs and reruns. Every good photo is written, every bad one reported with a
reason, the exit code is 1, nothing half-written or stray survives, and no traceback.

``HOSTILE_GOOD=1000 pytest tests/test_hostile.py`` runs it at the audit's size."""

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import cli_env, person_photo


def _png_header_only(path: Path, side: int) -> None:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + header + chunk(b"IEND", b""))


def hostile_folder(root: Path, good: int = 40) -> tuple[Path, Path, dict[str, str]]:
    """(photos, masks, bad file name -> a word its reason must contain)."""
    photos, masks = root / "in", root / "masks"
    (photos / "sub").mkdir(parents=True)
    masks.mkdir()
    for i in range(good):
        photo, mask = person_photo(i % 11, size=(240, 320))
        folder = photos / "sub" if i % 5 == 0 else photos
        photo.save(folder / f"g{i:03d}.jpg", quality=92)
        mask.save(masks / f"g{i:03d}.png")
    bad = {}
    (photos / "empty.jpg").write_bytes(b"")
    bad["empty.jpg"] = "empty file"
    data = (photos / "g001.jpg").read_bytes()
    (photos / "cut.jpg").write_bytes(data[: len(data) // 3])
    bad["cut.jpg"] = "truncated"
    (photos / "notes.png").write_text("hello")
    bad["notes.png"] = "not an image"
    _png_header_only(photos / "bomb.png", 20000)
    bad["bomb.png"] = "decompression-bomb"
    Image.new("RGB", (1, 1), (255, 0, 0)).save(photos / "dot.png")
    bad["dot.png"] = "too small"
    Image.new("RGB", (300, 400), (200, 200, 200)).save(photos / "nomask.png")
    bad["nomask.png"] = "no garment mask"
    person_photo(3)[0].save(photos / "emptymask.jpg")
    Image.new("L", (120, 160), 0).save(masks / "emptymask.png")
    bad["emptymask.jpg"] = "mask is empty"
    os.symlink(photos / "loop-b.jpg", photos / "loop-a.jpg")
    os.symlink(photos / "loop-a.jpg", photos / "loop-b.jpg")
    bad["loop-a.jpg"] = "symbolic link loop"
    bad["loop-b.jpg"] = "symbolic link loop"
    os.symlink(photos, photos / "sub" / "up")
    bad["up"] = "folder loop"
    (photos / ".hidden.jpg").write_bytes(data)  # skipped, not reported
    (photos / "readme.txt").write_text("not a photo name")  # skipped, not reported
    # odd but good: CMYK, 16-bit grey, a palette PNG
    rgb, mask = person_photo(4, size=(240, 320))
    rgb.convert("CMYK").save(photos / "cmyk.jpg")
    Image.fromarray((np.asarray(rgb.convert("L")).astype(np.uint16) * 257)).save(photos / "grey16.png")
    rgb.convert("P").save(photos / "palette.png")
    for name in ("cmyk", "grey16", "palette"):
        mask.save(masks / f"{name}.png")
    return photos, masks, bad


def extract(args, temp: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(_command(args), env=_env(temp), capture_output=True, text=True, timeout=300)


def extract_killed(args, out: Path, after: int, temp: Path) -> int:
    """Start ``extract`` and SIGKILL it once ``out`` holds ``after`` finished outputs (0: during
    its start-up); the number it held then. Fails where the job ended before it was killed: a
    kill that hit nothing would test nothing."""
    process = subprocess.Popen(_command(args), env=_env(temp), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while (held := _finished(out)) < after:
        assert process.poll() is None, f"the job ended (exit {process.returncode}) with {held} of {after} outputs"
        assert time.monotonic() < deadline, f"no {after} outputs in 2 minutes"
        time.sleep(0.002)
    if after == 0:
        time.sleep(0.15)  # (importing, opening the models)
    assert process.poll() is None, f"the job ended (exit {process.returncode}) before it was killed"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    return held


def _command(args) -> list[str]:
    return [sys.executable, "-m", "clothes_extractor", *map(str, args)]


def _env(temp: Path | None) -> dict[str, str]:
    return {**cli_env(), **({"TMPDIR": str(temp)} if temp else {})}


def _finished(out: Path) -> int:
    # os.walk, not rglob: the job's probe folder (hidden) may be gone by the time a walk lists it
    finished = 0
    for _, folders, names in os.walk(out):
        folders[:] = [name for name in folders if not name.startswith(".")]
        finished += sum(1 for name in names if not name.startswith("."))
    return finished


def test_a_hostile_folder_with_kills_and_reruns(tiny_model_path, tmp_path):
    photos, masks, bad = hostile_folder(tmp_path, good=int(os.environ.get("HOSTILE_GOOD", "40")))
    out, report = tmp_path / "out", tmp_path / "report.jsonl"
    args = ["extract", photos, "-o", out, "-r", "--model", tiny_model_path, "--masks", masks, "--no-segmenter"]
    args += ["--batch-size", "2", "--workers", "2", "--report", report]
    temp = tmp_path / "temp"  # the system's temporary folder, for these runs
    temp.mkdir()
    every = len(list(photos.rglob("g*.jpg"))) + 3
    # SIGKILL at several moments: start-up, the first outputs, a third and two thirds of the way
    held = [extract_killed(args, out, after, temp) for after in (0, 1, every // 3, 2 * every // 3)]
    assert held[-1] < every  # (the last kill, too, left photos to do)
    # a folder job needs no temporary folder: none left behind by the kills (onnxruntime keeps a
    # file of its own there, `.ses`, made once and reused)
    assert not [path.name for path in temp.iterdir() if path.name != ".ses"]
    done = extract(args)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    results = {Path(r["input"]).name: r for r in map(json.loads, report.read_text().splitlines())}
    good = {p.stem for p in photos.rglob("g*.jpg")} | {"cmyk", "grey16", "palette"}
    for name, word in bad.items():
        assert results[name]["status"] == "error" and word in results[name]["error"], (name, results[name])
    assert {Path(r["input"]).stem for r in results.values() if r["status"] in ("ok", "skipped")} == good
    written = {p.relative_to(out).with_suffix("").as_posix() for p in out.rglob("*") if p.is_file()}
    assert {Path(w).name for w in written} == good  # every good photo, nothing else
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no partial file left by the kills
    for path in out.rglob("*.png"):
        Image.open(path).load()
    assert ".hidden.jpg" not in results and "readme.txt" not in results


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv to drop root's read-everything capability")
def test_an_unreadable_subfolder_is_reported_by_extract(tiny_model_path, tmp_path):
    photos, masks = tmp_path / "in", tmp_path / "masks"
    (photos / "locked").mkdir(parents=True)
    masks.mkdir()
    photo, mask = person_photo(0)
    photo.save(photos / "ok.jpg")
    photo.save(photos / "locked" / "hidden.jpg")
    mask.save(masks / "ok.png")
    (photos / "locked").chmod(0)
    drop = "-dac_override,-dac_read_search"
    try:
        done = subprocess.run(
            ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}", sys.executable, "-m", "clothes_extractor",
             "extract", str(photos), "-o", str(tmp_path / "out"), "-r", "--model", str(tiny_model_path),
             "--masks", str(masks)],
            env=cli_env(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        (photos / "locked").chmod(0o755)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "locked: Permission denied" in done.stderr and "1 extracted" in done.stderr
