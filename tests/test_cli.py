"""The command line, run as a user runs it: a fresh process where torch cannot be imported."""

import functools
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clothes_extractor.models import model_for
from clothes_extractor.runtime.images import SIGNATURE_KEY
from conftest import (
    ROOT,
    TINY_SIZE,
    VITON_HD_SAMPLE,
    VITON_VAL,
    answer,
    cli_env,
    cp_vton_subset,
    cut_out,
    person_photo,
    run_cli,
    serving,
)

COMMANDS = [
    ["extract"],
    ["tryon"],
    ["serve"],
    ["info"],
    ["export"],
    ["train"],
    ["evaluate"],
    ["data"],
    ["data", "synth"],
    ["data", "downsample"],
    ["bench"],
    ["bench", "compare"],
]


def read_report(path: Path) -> dict[str, dict]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for line in lines:
        assert {"input", "status", "output", "error"} <= set(line)
    return {Path(line["input"]).name: line for line in lines}


def test_runtime_and_cli_import_without_torch():
    code = (
        "import sys, clothes_extractor.runtime, clothes_extractor.cli, clothes_extractor.runtime.environment;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx')];"
        "assert not bad, bad"
    )
    done = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_runtime_sources_never_import_torch():
    runtime = Path(__file__).resolve().parents[1] / "clothes_extractor" / "runtime"
    for source in runtime.rglob("*.py"):
        for line in source.read_text().splitlines():
            words = line.split()
            assert not (words[:1] in (["import"], ["from"]) and words[1].split(".")[0] in ("torch", "onnx")), (
                f"{source.name} imports {words[1]}"
            )


@pytest.mark.parametrize("command", [[], *COMMANDS], ids=lambda c: " ".join(c) or "group")
def test_every_command_has_help(command):
    done = run_cli(*command, "--help")
    assert done.returncode == 0, done.stderr
    assert "Usage:" in done.stdout and len(done.stdout) > 200


def test_info_shows_versions_and_providers(tiny_model_path):
    done = run_cli("info", "--model", tiny_model_path)
    assert done.returncode == 0, done.stderr
    assert "onnxruntime:" in done.stdout and "cpu: started (cpu)" in done.stdout
    assert "bundled models: generator-fp16.onnx, generator-fp32.onnx, segmenter-fp16.onnx" in done.stdout
    assert "task: generator" in done.stdout and "height: 64" in done.stdout and "weights_sha256" in done.stdout
    bundled = json.loads(run_cli("info", "--json", "--no-probe", "--model", "segmenter").stdout)  # a task's name
    assert Path(bundled["model"]["path"]).name == "segmenter-fp32.onnx" and bundled["model"]["contract"]["task"] == (
        "segmenter"
    )
    as_json = json.loads(run_cli("info", "--json", "--no-probe").stdout)  # the whole stdout is JSON
    assert as_json["providers"]["cpu"] == "available (not probed)"
    assert as_json["onnxruntime distributions"] and "model" not in as_json and as_json["problems"] == []
    from importlib.util import find_spec

    heif = "pillow-heif " if find_spec("pillow_heif") else 'not read (pip install "clothes-extractor[heif]")'
    assert as_json["heic photos"].startswith(heif)
    from PIL import features  # (colour profiles are converted by Pillow's LittleCMS: runtime/colour.py)

    assert as_json["colour profiles"] == f"converted to sRGB (LittleCMS {features.version('littlecms2')})"
    assert re.fullmatch(
        r"\d+ cores; a CPU batch runs as \d+ streams of \d+ thread\(s\) \(--cpu-streams\)", as_json["cpu"]
    )
    if not Path("/proc/driver/nvidia/version").exists():
        assert as_json["gpus"] == "none (no NVIDIA GPU found)"
    if Path("/dev/shm").is_dir():  # where worker processes' arrays cross, and its room
        stat = os.statvfs("/dev/shm")
        said = re.fullmatch(r"(\d+\.\d) GiB free in /dev/shm \(.*at most half\)", as_json["shared memory"])
        assert said and abs(float(said[1]) - stat.f_bavail * stat.f_frsize / 2**30) < 0.5  # (other jobs use it too)


def test_info_fails_when_onnxruntime_cannot_import(tmp_path):
    # a stand-in "onnxruntime" that breaks on import, first on the path
    (tmp_path / "onnxruntime").mkdir()
    (tmp_path / "onnxruntime" / "__init__.py").write_text("raise ImportError('libonnxruntime.so: cannot open')")
    env = {**cli_env()}
    env["PYTHONPATH"] = f"{tmp_path}:{env['PYTHONPATH']}"
    done = subprocess.run(
        [sys.executable, "-m", "clothes_extractor", "info", "--json"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 1 and "onnxruntime does not import" in done.stderr
    assert json.loads(done.stdout)["onnxruntime"] is None


def test_extract_folder_with_masks(tiny_model_path, photo_folder, tmp_path):
    photos, masks = photo_folder
    out, report = tmp_path / "out", tmp_path / "report.jsonl"
    args = ["extract", photos, "-o", out, "--model", tiny_model_path, "--masks", masks, "--report", report]
    done = run_cli(*args, "--batch-size", "2", "--format", "jpg")
    assert done.returncode == 0, done.stderr
    assert "5 extracted" in done.stderr and "on cpu" in done.stderr
    assert "no photo found its mask" not in done.stderr
    assert sorted(p.name for p in out.iterdir()) == [f"p{i}.jpg" for i in range(5)]
    assert {r["status"] for r in read_report(report).values()} == {"ok"}
    again = run_cli(*args, "--format", "jpg")
    assert again.returncode == 0 and "5 skipped" in again.stderr
    assert {r["status"] for r in read_report(report).values()} == {"skipped"}
    misnamed = tmp_path / "misnamed"  # masks named otherwise than the photos: none is used, and that is said
    misnamed.mkdir()
    for mask in masks.iterdir():
        (misnamed / f"mask-{mask.name}").write_bytes(mask.read_bytes())
    slip = run_cli("extract", photos, "-o", tmp_path / "slip", "--model", tiny_model_path, "--masks", misnamed)
    done_line = next(line for line in slip.stderr.splitlines() if line.startswith("done in"))
    assert slip.returncode == 0 and "5 extracted" in done_line and " file" not in done_line, slip.stderr
    assert f"warning: no photo found its mask in --masks {misnamed}" in slip.stderr


def test_extract_cpu_streams_change_nothing_but_speed(tiny_model_path, photo_folder, tmp_path):
    photos, masks = photo_folder
    outputs = {}
    for streams in ("1", "3"):
        out = tmp_path / f"s{streams}"
        args = ["extract", photos, "-o", out, "--model", tiny_model_path, "--masks", masks, "--batch-size", "4"]
        done = run_cli(*args, "--cpu-streams", streams)
        assert done.returncode == 0, done.stderr
        assert ("in 3 streams" in done.stderr) == (streams == "3")
        outputs[streams] = {p.name: p.read_bytes() for p in out.iterdir()}
    assert len(outputs["1"]) == 5 and outputs["1"] == outputs["3"]
    done = run_cli("extract", photos, "-o", tmp_path / "x", "--model", tiny_model_path, "--cpu-streams", "0")
    assert done.returncode == 2 and "--cpu-streams" in done.stderr


def test_folder_with_bad_files_finishes_reports_and_fails(tiny_model_path, photo_folder, tmp_path):
    photos, masks = photo_folder
    (photos / "zero.jpg").write_bytes(b"")
    (photos / "garbage.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (photos / "readme.txt").write_text("ignored: not an image name")
    out, report = tmp_path / "out", tmp_path / "r.jsonl"
    done = run_cli("extract", photos, "-o", out, "--model", tiny_model_path, "--masks", masks, "--report", report)
    assert done.returncode == 1
    assert "5 extracted" in done.stderr and "2 failed" in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert f"error: photo is an empty file (0 bytes): {photos / 'zero.jpg'}" in lines  # the photo named once
    assert any(line.startswith(f"error: photo {photos / 'garbage.jpg'} ") for line in lines)
    results = read_report(report)
    assert len(results) == 7
    assert results["garbage.jpg"]["status"] == "error" and results["garbage.jpg"]["output"] is None
    assert len(list(out.iterdir())) == 5


def test_the_report_on_standard_output(tiny_model_path, photo_folder, tmp_path):
    photos, masks = photo_folder
    (photos / "garbage.jpg").write_bytes(b"\xff\xd8\xff garbage")
    command = [sys.executable, "-m", "clothes_extractor", "extract", photos, "-o", "out", "--model", tiny_model_path]
    done = subprocess.run(
        [*command, "--masks", masks, "--report", "-"], capture_output=True, text=True, env=cli_env(), cwd=tmp_path
    )
    assert done.returncode == 1 and "5 extracted" in done.stderr
    results = {Path(r["input"]).name: r["status"] for r in map(json.loads, done.stdout.splitlines())}
    assert results == {**{f"p{i}.jpg": "ok" for i in range(5)}, "garbage.jpg": "error"}  # nothing else on stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["masks", "out", "photos"]  # no file named "-"
    both = run_cli("extract", photos / "p0.jpg", "-o", "-", "--report", "-", "--model", tiny_model_path)
    assert both.returncode == 2 and "--report - and -o - would both write to standard output" in both.stderr


def test_a_dry_run_says_what_a_run_would_do_and_touches_nothing(tiny_model_path, photo_folder, tmp_path):
    photos, masks = photo_folder
    out, report = tmp_path / "out", tmp_path / "r.jsonl"
    command = ["extract", photos, "-o", out, "--model", tiny_model_path, "--masks", masks]
    first = run_cli(*command, "--dry-run", "--report", report)
    assert first.returncode == 0 and "dry run of 5 photo(s): 5 to extract, 0 already done, 0 refused" in first.stderr
    assert {r["status"] for r in read_report(report).values()} == {"pending"} and not out.exists()
    assert run_cli(*command).returncode == 0
    stale = out / ".ce-999999999-0123abcd.partial"  # a killed run's: the real run removes it, a dry run not
    stale.write_bytes(b"partial")
    Image.open(photos / "p1.jpg").save(photos / "p1.png")  # a second photo for p1's output
    (out / "p2.png").write_bytes((out / "p2.png").read_bytes()[:100])  # cut short: redone
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    again = run_cli(*command, "--dry-run", "--report", report)
    assert again.returncode == 1 and "6 photo(s): 1 to extract, 4 already done, 1 refused" in again.stderr
    assert "error: " in again.stderr and "would both be written to" in again.stderr
    assert {name: r["status"] for name, r in read_report(report).items()}["p2.jpg"] == "pending"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing written, nothing removed
    one = run_cli("extract", photos / "p3.jpg", "-o", tmp_path / "one.png", "--model", tiny_model_path,
                  "--masks", masks, "--dry-run")  # fmt: skip
    assert one.returncode == 0 and "1 to extract" in one.stderr and not (tmp_path / "one.png").exists()
    piped = run_cli("extract", photos / "p3.jpg", "-o", "-", "--model", tiny_model_path, "--dry-run")
    assert piped.returncode == 2 and "--dry-run writes no image: leave out -o -" in piped.stderr
    on_ray = run_cli(*command, "--dry-run", "--ray")
    assert on_ray.returncode == 2 and "--dry-run walks the inputs on this machine: leave out --ray" in on_ray.stderr


def test_unwritable_output_folder_fails_before_any_work(tiny_model_path, photo_folder, tmp_path):
    photos, masks = photo_folder
    (tmp_path / "file").write_text("a file, not a folder")
    done = run_cli("extract", photos, "-o", tmp_path / "file" / "out", "--model", tiny_model_path, "--masks", masks)
    assert done.returncode == 1
    assert "cannot write to the output folder" in done.stderr and "extracting" not in done.stderr


def test_a_folder_job_refuses_an_image_file_for_its_output_folder(tiny_model_path, photo_folder, tmp_path):
    """``extract photos -o garments.png`` made a folder named garments.png (tryon refused so)."""
    photos, masks = photo_folder
    model = ("--model", tiny_model_path, "--masks", masks)
    cases = [
        ((photos, "-o", tmp_path / "g.png"), f"{photos} is a folder: -o must be a folder for their garments"),
        ((photos / "p0.jpg", photos / "p1.jpg", "-o", tmp_path / "g.jpg"), "2 photos or folders are given: -o must"),
        ((photos, "-o", tmp_path / "g.gif"), "not an image file"),
        ((photos, "-o", f"file://{tmp_path / 'g.png'}"), "-o must be a folder for their garments"),
    ]
    for args, says in cases:
        done = run_cli("extract", *args, *model)
        assert done.returncode == 2 and says in done.stderr, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["masks", "photos"]  # no folder named g.png
    (tmp_path / "earlier.png").mkdir()  # a folder of that name: the job's own, as before
    done = run_cli("extract", photos, "-o", tmp_path / "earlier.png", *model)
    assert done.returncode == 0 and len(list((tmp_path / "earlier.png").iterdir())) == len(list(photos.iterdir()))


def test_an_output_name_over_255_bytes_is_reported_as_such_every_run(tiny_model_path, photo_folder, tmp_path):
    """A photo's legal 255-byte name is one byte too long as .webp: the rerun said "unexpected
    OSError" (its resume check looked the output up)."""
    photos, masks = photo_folder
    (photos / "p0.jpg").rename(photos / ("n" * 251 + ".jpg"))
    (masks / "p0.png").rename(masks / ("n" * 251 + ".png"))
    args = ("extract", photos, "-o", tmp_path / "out", "--model", tiny_model_path, "--masks", masks)
    for tally in ("4 extracted", "4 skipped"):  # the rerun resumes
        done = run_cli(*args, "--format", "webp")
        assert done.returncode == 1 and "File name too long (its name is 256 bytes)" in done.stderr, done.stderr
        assert "unexpected" not in done.stderr and tally in done.stderr and "1 failed" in done.stderr, done.stderr
    # a path the system refuses where no check of ours looked first: one line, no traceback
    long = tmp_path / ("a" * 300)
    for command in (("extract", photos, "--masks", long), ("tryon", "--person", photos, "--garment", long)):
        done = run_cli(*command, "-o", tmp_path / "o", "--model", tiny_model_path)
        assert done.returncode in (1, 2) and f"{long}: File name too long (a name in it is 300 bytes)" in done.stderr
        assert "Traceback" not in done.stderr and not (tmp_path / "o").exists(), done.stderr
    # an input is that input's failure, as one not found is: the others are extracted (it ended the job)
    done = run_cli("extract", photos, f"{long}.jpg", "-o", tmp_path / "o", "--model", tiny_model_path, "--masks", masks)
    assert done.returncode == 1 and f"error: {long}.jpg: File name too long (a name in it is 304" in done.stderr
    assert "1 failed" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert len(list((tmp_path / "o").iterdir())) == len(list(photos.iterdir()))


def test_uris_without_ray_are_refused_or_read_as_the_local_paths_they_name(tiny_model_path, photo_folder, tmp_path):
    """``-o s3://bucket/out`` without --ray wrote a local folder ``s3:/bucket/out`` (the user
    looked in the bucket); ``s3://``, ``ftp://`` inputs were "input not found"; ``file://`` is local."""
    photos, masks = photo_folder
    model = ("--model", tiny_model_path, "--masks", masks)

    def extract(*args):  # (in tmp_path: a relative "s3:" folder would be made there)
        command = [sys.executable, "-m", "clothes_extractor", "extract", *map(str, (*args, *model))]
        return subprocess.run(command, capture_output=True, text=True, env=cli_env(), cwd=tmp_path, timeout=120)

    for args, says in [
        ((photos, "-o", "s3://bucket/out"), "-o s3://bucket/out is a URI: without --ray, extract writes to a local"),
        (("gs://bucket/p0.jpg", "-o", "out"), "input gs://bucket/p0.jpg is a URI: without --ray, extract reads local"),
        (("ftp://host/p0.jpg", "-o", "g.png"), "with --ray its nodes read and write s3:// and gs://"),
        (("file://server/share/p0.jpg", "-o", "g.png"), "is a URI"),  # (another machine's file)
        ((photos, "-o", "out", "--save-masks", "s3://bucket/masks"), "'--save-masks': s3://bucket/masks is a URI"),
        ((photos, "-o", "out", "--report", "gs://bucket/r.jsonl"), "'--report': gs://bucket/r.jsonl is a URI"),
    ]:
        done = extract(*args)
        assert done.returncode == 2 and says in done.stderr, done.stderr
    tryon = [sys.executable, "-m", "clothes_extractor", "tryon", "--person", photos, "--garment", photos / "p0.jpg"]
    done = subprocess.run([*map(str, tryon), "-o", "s3://bucket/out"], capture_output=True, text=True, env=cli_env(),
                          cwd=tmp_path, timeout=120)  # fmt: skip
    assert done.returncode == 2 and "s3://bucket/out is a URI: this reads and writes local files" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["masks", "photos"]
    done = extract(f"file://{photos / 'p0.jpg'}", "-o", f"file://localhost{tmp_path / 'g.png'}")
    assert done.returncode == 0 and (tmp_path / "g.png").is_file(), done.stderr
    done = extract(photos, "-o", f"file://{tmp_path / 'out'}", "--save-masks", f"file://{tmp_path / 'saved'}")
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "out").iterdir())) == len(list((tmp_path / "saved").iterdir())) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.png", "masks", "out", "photos", "saved"]  # no "file:"


def test_a_photo_or_mask_changed_after_its_garment_was_written_is_redone(tiny_model_path, photo_folder, tmp_path):
    """A product shot again under its old name, a mask fixed by hand: the rerun skipped them
    (their outputs carried this run's signature), and the shop kept the old garment. Outputs now
    record their inputs' size and modification time, and the digest of their bytes: a photo with
    a new time and the same bytes (touched; a folder copied without its times) is not redone
    (until the 59th stop, every photo of a folder copied with ``cp -r`` was)."""
    from PIL import PngImagePlugin

    photos, masks = photo_folder
    out = tmp_path / "job" / "out"
    args = ("extract", photos, "-o", out, "--model", tiny_model_path, "--masks", masks)
    assert "5 extracted" in run_cli(*args).stderr
    shutil.copy(photos / "p4.jpg", photos / "p1.jpg")  # shot again (a copy: a new modification time)
    fixed = np.array(Image.open(masks / "p3.png"))
    fixed[0, 0] = 255 - fixed[0, 0]
    Image.fromarray(fixed).save(masks / "p3.png")  # fixed by hand
    ahead = time.time() + 3600  # only touched (a zip unpacked across time zones): the same bytes
    os.utime(photos / "p2.jpg", (ahead, ahead))
    with Image.open(out / "p0.png") as before:  # an output from before outputs recorded their inputs
        text = before.info[SIGNATURE_KEY].split(" inputs=")[0]
        info = PngImagePlugin.PngInfo()
        info.add_text(SIGNATURE_KEY, text)
        before.save(out / "p0.png", pnginfo=info)
    dry = run_cli(*args, "--dry-run")
    assert "5 photo(s): 2 to extract, 3 already done" in dry.stderr, dry.stderr
    again = run_cli(*args, "--report", tmp_path / "r.jsonl")
    assert again.returncode == 0 and "2 extracted" in again.stderr and "3 skipped" in again.stderr, again.stderr
    written = {Path(r["input"]).name for r in map(json.loads, (tmp_path / "r.jsonl").read_text().splitlines())
               if r["status"] == "ok"}  # fmt: skip
    assert written == {"p1.jpg", "p3.jpg"}
    # the photos, masks and garments copied elsewhere, every file with a new time: nothing to redo
    copy = tmp_path / "copy"
    for folder in (photos, masks, out):
        shutil.copytree(folder, copy / folder.name, copy_function=shutil.copy)
    moved = ("extract", copy / "photos", "-o", copy / "out", "--model", tiny_model_path, "--masks", copy / "masks")
    assert (copy / "photos" / "p4.jpg").stat().st_mtime_ns != (photos / "p4.jpg").stat().st_mtime_ns
    done = run_cli(*moved)
    assert "0 extracted" in done.stderr and "5 skipped" in done.stderr, done.stderr


def test_bad_model_files(photo_folder, tmp_path):
    photos, masks = photo_folder
    (tmp_path / "m.onnx").write_text("not onnx")
    done = run_cli("extract", photos, "-o", tmp_path / "out", "--model", tmp_path / "m.onnx", "--masks", masks)
    assert done.returncode == 1 and "is not an ONNX model" in done.stderr
    import zipfile

    with zipfile.ZipFile(tmp_path / "last.pt", "w") as archive:  # the container torch.save writes
        archive.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    done = run_cli("extract", photos, "-o", tmp_path / "out", "--model", tmp_path / "last.pt", "--masks", masks)
    assert done.returncode == 1 and "last.pt is not an ONNX model but a zip archive, as PyTorch saves" in done.stderr
    assert "clothes-extractor export CHECKPOINT -o MODEL.onnx makes the served model" in done.stderr


def test_without_model_or_bundled_model_says_how_to_get_one(photo_folder, tmp_path, monkeypatch):
    from click.testing import CliRunner

    import clothes_extractor.models as models
    from clothes_extractor.cli import cli

    monkeypatch.setattr(models, "MODELS_DIR", tmp_path / "no-models")  # an install without models
    photos, masks = photo_folder
    done = CliRunner().invoke(cli, ["extract", str(photos), "-o", str(tmp_path / "out"), "--masks", str(masks)])
    assert (
        done.exit_code == 1
        and "bundles no generator model" in done.output
        and "clothes-extractor export" in done.output
    )


def test_explicit_provider_never_falls_back_silently(tiny_model_path, photo_folder, tmp_path):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    photos, masks = photo_folder
    done = run_cli(
        "extract", photos, "-o", tmp_path / "o", "--model", tiny_model_path, "--masks", masks, "--provider", "cuda"
    )
    assert done.returncode == 1 and "cuda provider is not in this onnxruntime build" in done.stderr
    assert not (tmp_path / "o").exists()  # not even an empty folder


def test_subfolders_left_without_recursive_are_named(tiny_model_path, photo_folder, tmp_path):
    photos, masks = photo_folder
    (photos / "sub").mkdir()
    (photos / "p4.jpg").rename(photos / "sub" / "p4.jpg")
    args = ["--model", tiny_model_path, "--masks", masks]
    done = run_cli("extract", photos, "-o", photos / "out", *args)
    assert done.returncode == 0, done.stderr
    assert f"note: photos in subfolders are not taken without --recursive: {photos / 'sub'}\n" in done.stderr
    assert sorted(p.name for p in (photos / "out").iterdir()) == [f"p{i}.png" for i in range(4)]
    done = run_cli("extract", photos, "-o", photos / "out", "--recursive", *args)
    assert done.returncode == 0 and "note:" not in done.stderr and (photos / "out" / "sub" / "p4.png").exists()


def test_no_photos_found_says_what_is_there(tiny_model_path, tmp_path):
    """A folder of files not named as photos said only "no photos found (add --recursive ...)",
    even with no subfolder to add; now it names what it passed over, and where photos could be."""
    folder = tmp_path / "scans"
    folder.mkdir()
    done = run_cli("extract", folder, "-o", tmp_path / "o" / "deep", "--model", tiny_model_path)
    assert done.returncode == 1 and f"no photos found in {folder}\n" in done.stderr  # (no subfolder, no hint)
    assert not (tmp_path / "o").exists()  # the folders made to check -o are gone again
    (folder / "garments").mkdir()  # (a run's output folder, there from before)
    done = run_cli("extract", folder, "-o", folder / "garments", "--model", tiny_model_path)
    assert f"no photos found in {folder}\n" in done.stderr  # (the job's own output folder is not one to look in)
    (folder / "garments").rmdir()
    for name in ("a.psd", "b.psd", "c.svg", "README", ".hidden.txt"):
        (folder / name).write_bytes(b"x")
    (folder / "sub").mkdir()
    done = run_cli("extract", folder, "-o", tmp_path / "o", "--model", tiny_model_path)
    assert done.returncode == 1
    assert f"no photos found in {folder} (add --recursive to look in subfolders): the files there " in done.stderr
    assert "(2 .psd, 1 (none), 1 .svg) are not named as photos (.avif .bmp" in done.stderr  # (hidden ones left out)
    assert "a file of another format Pillow reads can be given by its path" in done.stderr


def test_a_folder_of_jpeg_2000_photos_is_taken(tiny_model_path, tmp_path):
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    person_photo(1)[0].save(photos / "p.jp2")
    done = run_cli("extract", photos, "-o", out, "--model", tiny_model_path)
    assert done.returncode == 0, done.stderr
    assert [p.name for p in out.iterdir()] == ["p.png"]


def _slow_folder(tmp_path, count=150):
    photos, masks = tmp_path / "photos", tmp_path / "masks"
    photos.mkdir()
    masks.mkdir()
    for i in range(count):
        photo, mask = person_photo(i % 7)
        photo.save(photos / f"{i:03d}.png", compress_level=0)
        mask.save(masks / f"{i:03d}.png")
    return photos, masks


def _start_and_signal(args, out, signals):
    process = subprocess.Popen(
        [sys.executable, "-m", "clothes_extractor", *map(str, args)],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if out.is_dir() and any(p.suffix == ".png" for p in out.iterdir()):
            for sig in signals:
                process.send_signal(sig)
                time.sleep(0.02)
            break
        time.sleep(0.01)
    _, stderr = process.communicate(timeout=60)
    return process.returncode, stderr


@pytest.mark.parametrize(
    ("signals", "code"),
    [([signal.SIGINT], 130), ([signal.SIGTERM], 143), ([signal.SIGINT, signal.SIGINT, signal.SIGINT], 130)],
    ids=["ctrl-c", "sigterm", "ctrl-c-thrice"],
)
def test_resume_after_an_interrupted_run(tiny_model_path, tmp_path, signals, code):
    photos, masks = _slow_folder(tmp_path)
    out, report = tmp_path / "out", tmp_path / "r.jsonl"
    args = ["extract", photos, "-o", out, "--model", tiny_model_path, "--masks", masks, "--batch-size", "1"]
    args += ["--workers", "1", "--threads"]
    returncode, stderr = _start_and_signal([*args, "--report", report], out, signals)
    finished = sorted(p for p in out.iterdir() if p.suffix == ".png")
    assert returncode == code, stderr
    assert "Traceback" not in stderr and "run the same command again to resume" in stderr
    assert 1 <= len(finished) < 150
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files
    for path in finished:
        Image.open(path).load()
    written = {json.loads(line)["output"] for line in report.read_text().splitlines()}
    assert {str(p) for p in finished} <= written  # every finished output is in the report
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr
    assert f"{150 - len(finished)} extracted" in done.stderr and f"{len(finished)} skipped" in done.stderr


def test_a_kill_leaves_a_partial_file_that_the_next_run_removes(tiny_model_path, tmp_path):
    photos, masks = _slow_folder(tmp_path, 20)
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / f".ce-{int(dead.stdout)}-deadbeef.partial").write_bytes(b"half a garment")  # what SIGKILL leaves
    done = run_cli("extract", photos, "-o", out, "--model", tiny_model_path, "--masks", masks)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == [f"{i:03d}.png" for i in range(20)]


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups are POSIX's")
def test_ctrl_c_in_a_terminal_stops_worker_processes_without_a_traceback(tiny_model_path, tmp_path):
    # A terminal's Ctrl-C goes to every process of the job (its process group), the worker
    # processes too: until the 65th stop each printed its KeyboardInterrupt traceback.
    photos, _ = _slow_folder(tmp_path)
    out = tmp_path / "out"
    args = ["extract", photos, "-o", out, "--model", tiny_model_path, "--batch-size", "1"]  # (the segmenter's masks)
    process = subprocess.Popen(
        [sys.executable, "-m", "clothes_extractor", *map(str, args), "--workers", "2", "--processes"],
        env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    deadline, ignoring = time.monotonic() + 60, None
    while time.monotonic() < deadline and process.poll() is None:
        if out.is_dir() and any(p.suffix == ".png" for p in out.iterdir()):
            ignoring = _workers_ignoring(process.pid)
            os.killpg(process.pid, signal.SIGINT)
            break
        time.sleep(0.01)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    # (a worker busy when it came raised it in its task, not seen; an idle one printed it: the
    # dispositions tell every time)
    assert ignoring is None or (ignoring and all(ignoring)), ignoring
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert "run the same command again to resume" in stderr
    finished = [p for p in out.iterdir() if p.suffix == ".png"]
    assert 1 <= len(finished) < 150 and not [p for p in out.iterdir() if p.name.startswith(".")]


def _workers_ignoring(job: int) -> list[bool] | None:
    """For each worker process of the job ``job`` leads (its process group, less the job and the
    fork server it started), whether it ignores SIGINT; None without Linux's /proc."""
    if not Path("/proc/self/status").exists():
        return None
    found = []
    for entry in Path("/proc").iterdir():
        try:
            ppid, group = map(int, (entry / "stat").read_text().rsplit(")", 1)[1].split()[1:3])
            status = (entry / "status").read_text()
        except (OSError, ValueError):
            continue
        if group == job and entry.name != str(job) and ppid != job:
            ignored = int(re.search(r"^SigIgn:\s*([0-9a-f]+)", status, re.M).group(1), 16)
            found.append(bool(ignored >> (signal.SIGINT - 1) & 1))
    return found


def test_ctrl_c_during_start_up_exits_130(tiny_model_path, tmp_path):
    # SIGINT while the command starts (imports, models loading): the interrupted exit code,
    # no traceback and no "Aborted!", nothing written. The interpreter's own start (site,
    # sitecustomize) is timed first and left alone: no program runs there yet.
    photos, masks = _slow_folder(tmp_path, 3)
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", "pass"], env=cli_env(), check=True)
    interpreter = time.monotonic() - t0
    for extra in (0.05, 0.3):
        process = subprocess.Popen(
            [sys.executable, "-m", "clothes_extractor", "extract", str(photos), "-o", str(tmp_path / "o"),
             "--model", str(tiny_model_path), "--masks", str(masks), "--overwrite"],
            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(interpreter * 1.5 + extra)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        # 0 only if it had already finished; -2 (the SIGINT status) in the instant Python is
        # still handing over to the program
        assert process.returncode in (130, 0, -2), stderr
        assert "Traceback" not in stderr and "Aborted!" not in stderr


def test_ctrl_c_after_the_command_while_python_shuts_down_leaves_no_traceback():
    # The race test_ctrl_c_during_start_up_exits_130 met now and then: the command done, a
    # SIGINT lands in logging's or another exit handler. Sent from an exit handler here.
    code = (
        "import atexit, os, signal, sys, time; sys.argv = ['clothes-extractor', '--version']; "
        "atexit.register(lambda: (os.kill(os.getpid(), signal.SIGINT), time.sleep(0.3))); "
        "from clothes_extractor.cli import main; main()"
    )
    done = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "clothes-extractor, version" in done.stdout
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr, done.stderr


def test_ctrl_c_inside_a_finalizer_is_not_lost(tiny_model_path, photo_folder, tmp_path):
    # The other race of test_ctrl_c_during_start_up_exits_130: a SIGINT that lands while the
    # progress bar's __del__ runs, as the job ends. Python "ignores" it (a traceback, the job
    # goes on); the command stops as for any Ctrl-C. Sent from a finalizer here.
    photos, masks = photo_folder
    code = (
        "import os, signal, sys, time\n"
        "from clothes_extractor.commands import common\n"
        "class Finalized:\n"
        "    def __del__(self):\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "        sum(range(10**6))\n"
        "close = common.Progress.close\n"
        "def closing(self):\n"
        "    close(self)\n"
        "    Finalized()\n"
        "    time.sleep(2)\n"
        "common.Progress.close = closing\n"
        "from clothes_extractor.cli import main\n"
        "main()\n"
    )
    args = ["extract", photos, "-o", tmp_path / "out", "--model", tiny_model_path, "--masks", masks]
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], env=cli_env(), capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 130 and "interrupted" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr, done.stderr


def test_ctrl_c_inside_a_finalizer_while_the_command_line_loads_is_not_lost():
    # The race that failed test_ctrl_c_during_start_up_exits_130 on the 61st stop: a SIGINT that
    # lands in the import system's module-lock callback while the commands' modules load ("Exception
    # ignored in: ... cb ... KeyboardInterrupt", and the job went on). Sent from a finalizer that
    # runs as a command module is looked for.
    code = (
        "import os, signal, sys\n"
        "class Finalized:\n"
        "    def __del__(self):\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "        sum(range(10**6))\n"
        "class Finder:\n"
        "    @staticmethod\n"
        "    def find_spec(name, path=None, target=None):\n"
        "        if name == 'clothes_extractor.commands.bench':\n"
        "            Finalized()\n"
        "sys.meta_path.insert(0, Finder)\n"
        "sys.argv = ['clothes-extractor', '--version']\n"
        "from clothes_extractor.__main__ import run\n"
        "run()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 130 and done.stderr == "interrupted\n", (done.returncode, done.stderr)
    assert "version" not in done.stdout


def test_a_report_that_cannot_be_written_stops_the_report_not_the_job(tiny_model_path, photo_folder, tmp_path):
    photos, masks = photo_folder
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full to simulate a full disk")
    done = run_cli("extract", photos, "-o", tmp_path / "out", "--model", tiny_model_path, "--masks", masks,
                   "--report", "/dev/full")  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "could not be written on (No space left on device)" in done.stderr and "5 extracted" in done.stderr
    assert len(list((tmp_path / "out").iterdir())) == 5


@pytest.mark.skipif(not (VITON_HD_SAMPLE / "train").is_dir(), reason=f"{VITON_HD_SAMPLE} is absent")
def test_extract_viton_hd_sample_with_parse_maps(tiny_model_path, tmp_path):
    out, report = tmp_path / "out", tmp_path / "r.jsonl"
    done = run_cli("extract", VITON_HD_SAMPLE / "train", "-o", out, "--model", tiny_model_path, "--report", report)
    assert done.returncode == 0, done.stderr
    photos = sorted(p.stem for p in (VITON_HD_SAMPLE / "train" / "image").iterdir())
    assert sorted(p.stem for p in out.iterdir()) == photos
    assert all(r["mask"].startswith("parse:") for r in read_report(report).values())
    copy = tmp_path / "copy"
    shutil.copytree(VITON_HD_SAMPLE / "train", copy)
    maps = {p.name: p.read_bytes() for p in (copy / "image-parse-v3").iterdir()}
    done = run_cli("extract", copy, "-o", copy / "image-parse-v3", "--model", tiny_model_path, "--overwrite")
    assert done.returncode == 1 and done.stderr.count("is the photo's mask: the garment would replace it") == 10
    assert {p.name: p.read_bytes() for p in (copy / "image-parse-v3").iterdir()} == maps  # the parse maps kept


@pytest.mark.skipif(not VITON_VAL.is_file(), reason=f"{VITON_VAL} is absent")
def test_extract_cp_vton_layout_from_the_viton_shard(tiny_model_path, tmp_path):
    split = cp_vton_subset(tmp_path) / "val"
    done = run_cli("extract", split, "-o", tmp_path / "out", "--model", tiny_model_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.stem for p in (tmp_path / "out").iterdir()) == sorted(p.stem for p in (split / "image").iterdir())


def test_export_command(tmp_path):
    from click.testing import CliRunner

    from clothes_extractor.cli import cli

    runner = CliRunner()
    done = runner.invoke(
        cli, ["export", "--untrained", "--size", "32x24", "--depth", "3", "--ngf", "2", "-o", str(tmp_path / "m.onnx")]
    )
    assert done.exit_code == 0, done.output
    assert "max |error|" in done.output
    assert run_cli("info", "--no-probe", "--model", tmp_path / "m.onnx").returncode == 0
    done = runner.invoke(cli, ["export", "-o", str(tmp_path / "x.onnx")])
    assert done.exit_code == 2 and "either a CHECKPOINT or --untrained" in done.output
    done = runner.invoke(cli, ["export", "--untrained", "--size", "100x24", "-o", str(tmp_path / "x.onnx")])
    assert done.exit_code == 2 and "multiples of 64" in done.output
    done = runner.invoke(cli, ["export", "--untrained", "-o", str(tmp_path / "model.txt")])
    assert done.exit_code == 2 and "an .onnx file" in done.output and not (tmp_path / "model.txt").exists()
    done = runner.invoke(cli, ["export", "--untrained", "--arch", "flow", "--size", "64x48", "--depth", "3",
                               "--ngf", "4", "-o", str(tmp_path / "f.onnx")])  # fmt: skip
    assert done.exit_code == 0 and "photo at 128x96" in done.output


def test_the_help_test_covers_every_command():
    from clothes_extractor.cli import cli

    assert set(cli.commands) == {c[0] for c in COMMANDS}


def test_one_photo_to_one_file_and_through_pipes(tiny_model_path, photo_folder, tmp_path):
    photos, masks = photo_folder
    target = tmp_path / "garment.png"
    report, sheet = tmp_path / "one.jsonl", tmp_path / "one-sheet.png"
    done = run_cli("extract", photos / "p0.jpg", "-o", target, "--model", tiny_model_path, "--masks", masks,
                   "--report", report, "--sheet", sheet)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert target.is_file() and not target.is_dir() and f"wrote {target}" in done.stderr
    assert read_report(report)["p0.jpg"]["output"] == str(target) and Image.open(sheet).height > TINY_SIZE[0]
    (photos / "broken.jpg").write_bytes(b"not a photo")
    done = run_cli("extract", photos / "broken.jpg", "-o", tmp_path / "b.png", "--model", tiny_model_path,
                   "--masks", masks, "--report", report)  # fmt: skip
    assert done.returncode == 1 and f"Error: photo {photos / 'broken.jpg'} is not an image" in done.stderr
    assert read_report(report)["broken.jpg"]["status"] == "error"  # (the report of this run)
    with Image.open(target) as image:
        assert image.format == "PNG" and image.size == (TINY_SIZE[1], TINY_SIZE[0])
    done = run_cli("extract", photos / "p0.jpg", "-o", tmp_path / "g.jpg", "--model", tiny_model_path, "--masks", masks)
    assert done.returncode == 0 and Image.open(tmp_path / "g.jpg").format == "JPEG"  # the suffix decides
    # - is standard input and output; the bytes are those of the file written above
    piped = run_cli("extract", "-", "-o", "-", "--model", tiny_model_path, "--masks", masks, "--no-segmenter",
                    stdin=(photos / "p0.jpg").read_bytes())  # fmt: skip
    assert piped.returncode != 0 and b"no garment mask" in piped.stderr  # stdin has no name to match a mask by
    (tmp_path / "cut.png").write_bytes(b"")
    rgba = Image.open(photos / "p0.jpg").convert("RGBA")
    rgba.putalpha(Image.open(masks / "p0.png"))
    rgba.save(tmp_path / "cut.png")
    piped = run_cli("extract", "-", "-o", "-", "--model", tiny_model_path, "--alpha-mask", "--no-segmenter",
                    stdin=(tmp_path / "cut.png").read_bytes())  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    import io

    assert Image.open(io.BytesIO(piped.stdout)).size == (TINY_SIZE[1], TINY_SIZE[0])
    assert Image.open(io.BytesIO(piped.stdout)).format == "PNG"
    piped = run_cli("extract", "-", "-o", "-", "--model", tiny_model_path, "--alpha-mask", "--no-segmenter",
                    "--format", "jpg", stdin=(tmp_path / "cut.png").read_bytes())  # fmt: skip
    assert piped.returncode == 0 and Image.open(io.BytesIO(piped.stdout)).format == "JPEG"  # --format for stdout
    done = run_cli("extract", photos / "p0.jpg", "-o", tmp_path / "h.jpg", "--format", "png", "--model",
                   tiny_model_path, "--masks", masks)  # fmt: skip
    assert done.returncode == 2 and "-o " in done.stderr and "is written as JPEG" in done.stderr
    assert "--format png would be ignored" in done.stderr and not (tmp_path / "h.jpg").exists()
    done = run_cli("extract", photos, photos / "p0.jpg", "-o", "-", "--model", tiny_model_path)
    assert done.returncode == 2 and "takes exactly one photo" in done.stderr
    import pty

    terminal, screen = pty.openpty()  # standard output a terminal: no image bytes written to it
    try:
        done = subprocess.run([sys.executable, "-m", "clothes_extractor", "extract", str(photos / "p0.jpg"), "-o", "-",
                               "--model", str(tiny_model_path)], stdout=screen, stderr=subprocess.PIPE, text=True,
                              env=cli_env(), timeout=120)  # fmt: skip
    finally:
        os.close(screen)
        os.close(terminal)
    assert done.returncode == 2 and "a terminal here: redirect or pipe it" in done.stderr
    done = run_cli("extract", photos / "p0.jpg", "-o", tmp_path / "p0.gif", "--model", tiny_model_path)
    assert done.returncode == 2 and ".png, .jpg or .webp" in done.stderr and not (tmp_path / "p0.gif").exists()


def test_standard_input_and_urls_are_named_as_given_and_stdin_is_never_already_done(tiny_model_path, tmp_path):
    import http.server

    cuts = tmp_path / "site"
    for i, folder in enumerate(("a", "b")):
        (cuts / folder).mkdir(parents=True)
        cut_out(i).save(cuts / folder / "photo.png")
    model = ["--model", tiny_model_path, "--alpha-mask", "--no-segmenter"]
    out, report = tmp_path / "g.png", tmp_path / "r.jsonl"
    first = run_cli("extract", "-", "-o", out, *model, stdin=(cuts / "a" / "photo.png").read_bytes())
    garment_a, pixels_a = out.read_bytes(), np.asarray(Image.open(out))
    second = run_cli("extract", "-", "-o", out, *model, stdin=(cuts / "b" / "photo.png").read_bytes())
    assert first.returncode == second.returncode == 0 and out.read_bytes() != garment_a  # not "already done"
    bad = run_cli("extract", "-", "-o", out, *model, "--report", report, stdin=b"not a photo")
    assert bad.returncode == 1 and b"Error: photo (standard input) is not an image" in bad.stderr  # (bytes: stdin)
    assert read_report(report)["-"]["error"].startswith("photo (standard input) is not an image")
    grey = io.BytesIO()
    Image.new("RGB", (48, 64), (128, 128, 128)).save(grey, "PNG")  # no alpha to take the garment from
    bare = run_cli("extract", "-", "-o", out, *model, stdin=grey.getvalue())
    assert bare.returncode == 1 and b"Error: (standard input): no garment mask" in bare.stderr  # named once, as given
    plain = run_cli("extract", "-", "-o", out, stdin=grey.getvalue())  # the bundled segmenter sees no garment
    # (--masks DIR finds masks by the photo's name: standard input has none)
    assert plain.returncode == 1 and b"save the photo as a file and give its mask: --masks DIR" in plain.stderr

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(cuts))
    with serving(handler) as url:
        done = run_cli("extract", f"{url}/a/photo.png", f"{url}/b/photo.png", "-o", tmp_path / "o", *model)
        pixels_done = np.asarray(Image.open(tmp_path / "o" / "photo.png"))
        # a URL that cannot be fetched, among several inputs, is that input's failure; the others go on
        inputs = (f"{url}/gone.png", f"{url}/b/photo.png")
        some = run_cli("extract", *inputs, "-o", tmp_path / "s", *model, "--report", report)
        # a rerun finds a URL's garment done while the image there is the same, and redoes it once it is not
        same = run_cli("extract", f"{url}/a/photo.png", "-o", tmp_path / "o" / "photo.png", *model)
        shutil.copy(cuts / "b" / "photo.png", cuts / "a" / "photo.png")  # (the shop's photo taken again)
        changed = run_cli("extract", f"{url}/a/photo.png", "-o", tmp_path / "o" / "photo.png", *model)
    assert same.returncode == 0 and "skipped (already done)" in same.stderr, same.stderr
    assert changed.returncode == 0 and "wrote" in changed.stderr, changed.stderr
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "o" / "photo.png")), pixels_a)
    assert done.returncode == 1, done.stderr  # two photos, one output name: the second is reported
    assert f"error: {url}/b/photo.png and {url}/a/photo.png would both be written to" in done.stderr
    assert np.array_equal(pixels_done, pixels_a)  # a's garment (b's download did not replace a)
    assert some.returncode == 1 and f"error: cannot fetch {url}/gone.png: File not found" in some.stderr, some.stderr
    assert "1 extracted" in some.stderr and sorted(path.name for path in (tmp_path / "s").iterdir()) == ["photo.png"]
    found = read_report(report)  # (by name)
    assert [found["gone.png"][key] for key in ("input", "status")] == [f"{url}/gone.png", "error"]
    assert [found["photo.png"][key] for key in ("input", "status")] == [f"{url}/b/photo.png", "ok"]


def test_urls_are_fetched_together_and_a_cut_download_or_a_web_page_is_that_inputs_failure(tiny_model_path, tmp_path):
    import http.server
    import threading

    photos = tmp_path / "site"
    photos.mkdir()
    for i in range(3):
        cut_out(i).save(photos / f"p{i}.png")
    (photos / "product.html").write_text("<html><body>the shop's page of the photo</body></html>")
    together = threading.Barrier(3, timeout=20)  # each answer waits until the three are asked for

    class Site(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(photos), **kwargs)

        def do_GET(self):  # noqa: N802 - http.server's name
            if self.path == "/product.html":
                return super().do_GET()
            if self.path == "/chunked.png":  # a chunked answer whose last chunk never comes
                self.protocol_version = "HTTP/1.1"
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.write(b"6\r\n\x89PNG\r\n\r\n")
                self.close_connection = True
                return
            if self.path == "/huge.png":  # 60 MB said, 6 bytes sent: refused by its length, not downloaded first
                self.send_response(200)
                self.send_header("Content-Length", str(60 * 2**20))
                self.end_headers()
                self.wfile.write(b"\x89PNG\r\n")
                return
            if self.path == "/cut.png":  # a download that stops short of its length
                self.send_response(200)
                self.send_header("Content-Length", "100000")
                self.end_headers()
                self.wfile.write(b"\x89PNG\r\n")
                return
            try:
                together.wait()
            except threading.BrokenBarrierError:
                self.send_error(503, "asked for one at a time")
                return
            super().do_GET()

    with serving(Site) as url:
        urls = [f"{url}/p{i}.png" for i in range(3)]
        model = ["--model", tiny_model_path, "--alpha-mask", "--no-segmenter"]
        more = (f"{url}/cut.png", f"{url}/product.html", f"{url}/chunked.png", f"{url}/huge.png")
        done = run_cli("extract", *urls, *more, "-o", tmp_path / "out", *model, "--report", tmp_path / "r")
    assert done.returncode == 1 and "fetching 7 URLs" in done.stderr, done.stderr
    assert f"error: cannot fetch {url}/huge.png: it is larger than 50 MB; download it yourself" in done.stderr
    again = "tried 3 times: try again later"  # (a cut download may pass: tried again)
    assert f"error: cannot fetch {url}/chunked.png: the download stopped after 6 bytes; {again}" in done.stderr
    assert f"error: cannot fetch {url}/product.html: the server answers a web page (text/html), not an image" in (
        done.stderr
    )
    assert f"error: cannot fetch {url}/cut.png: the download stopped after 6 of 100000 bytes; {again}" in done.stderr
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["p0.png", "p1.png", "p2.png"]
    assert read_report(tmp_path / "r")["cut.png"]["status"] == "error"


def test_a_url_that_answers_not_now_is_tried_again_and_one_that_will_not_is_not(tiny_model_path, tmp_path):
    """A CDN's 429 or 503 to eight downloads at once passes: tried again (after what its
    Retry-After asks), up to three times, then said; a 404 is said at once (it was said at once
    too, both)."""
    import http.server

    image = io.BytesIO()
    cut_out(0).save(image, "PNG")
    asked: dict[str, list[float]] = {}
    refusals = {"/busy.png": 1, "/limited.png": 2, "/down.png": 99, "/gone.png": 99}

    class Site(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            asked.setdefault(self.path, []).append(time.monotonic())
            if len(asked[self.path]) > refusals[self.path]:
                answer(self, 200, image.getvalue(), Content_Type="image/png")
            elif self.path == "/busy.png":
                answer(self, 503, Retry_After="2")
            else:
                answer(self, {"/limited.png": 429, "/gone.png": 404}.get(self.path, 503))

        def log_message(self, *_args):
            pass

    with serving(Site) as url:
        model = ["--model", tiny_model_path, "--alpha-mask", "--no-segmenter"]
        done = run_cli("extract", *(f"{url}{path}" for path in refusals), "-o", tmp_path / "out", *model)
    assert done.returncode == 1, done.stderr
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["busy.png", "limited.png"]
    assert {path: len(times) for path, times in asked.items()} == {
        "/busy.png": 2, "/limited.png": 3, "/down.png": 3, "/gone.png": 1
    }  # fmt: skip
    busy = asked["/busy.png"]
    assert busy[1] - busy[0] >= 1.9  # (its Retry-After: 2 s, not the first wait's 1 s)
    assert f"error: cannot fetch {url}/down.png: Service Unavailable (HTTP 503); tried 3 times: try again later" in (
        done.stderr
    )
    assert f"error: cannot fetch {url}/gone.png: Not Found\n" in done.stderr


def test_a_urls_user_and_password_are_sent_as_basic_authentication_and_never_shown(tiny_model_path, tmp_path):
    """``https://user:pass@host/a.jpg`` (a private image store's): urllib took the user and password
    for part of the host name ("Name or service not known") and every message showed the
    password. Now: HTTP basic authentication, not passed on where a redirect leads, and the
    password is *** in the messages and the report."""
    import base64
    import http.server
    import threading

    image = io.BytesIO()
    cut_out(0).save(image, "PNG")
    seen_elsewhere: list[str | None] = []

    class Elsewhere(http.server.BaseHTTPRequestHandler):  # where a redirect leads: another host
        def do_GET(self):  # noqa: N802 - http.server's name
            seen_elsewhere.append(self.headers.get("Authorization"))
            answer(self, 404)

        def log_message(self, *_args):
            pass

    elsewhere = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)
    key = "Basic " + base64.b64encode(b"shop:s3cret pass").decode()

    class Store(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            if self.headers.get("Authorization") != key:
                answer(self, 401)
            elif self.path == "/moved.png":
                answer(self, 302, Location=f"http://127.0.0.1:{elsewhere.server_address[1]}/p.png")
            else:
                answer(self, 200, image.getvalue(), Content_Type="image/png")

        def log_message(self, *_args):
            pass

    store = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Store)
    for server in (store, elsewhere):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{store.server_address[1]}"
    report, model = tmp_path / "r.jsonl", ["--model", tiny_model_path, "--alpha-mask", "--no-segmenter"]
    urls = [
        f"http://shop:s3cret%20pass@{host}/p.png",
        f"http://shop:wrong@{host}/q.png",
        f"http://shop:s3cret%20pass@{host}/moved.png",
    ]
    try:
        done = run_cli("extract", *urls, "-o", tmp_path / "out", *model, "--report", report)
    finally:
        store.shutdown()
        elsewhere.shutdown()
    assert done.returncode == 1 and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p.png"], done.stderr
    assert f"error: cannot fetch http://shop:***@{host}/q.png: Unauthorized" in done.stderr
    assert seen_elsewhere == [None]  # (the redirect was followed, without the password)
    found = read_report(report)
    assert found["p.png"]["input"] == f"http://shop:***@{host}/p.png" and found["p.png"]["status"] == "ok"
    assert "s3cret" not in done.stderr + report.read_text() and "wrong" not in done.stderr + report.read_text()
    from clothes_extractor.api.web import shown

    assert shown("https://TOKEN@store.example/a.jpg") == "https://***@store.example/a.jpg"  # (a token as the user)
    assert shown("https://u:p@ss@store.example/a.jpg") == "https://u:***@store.example/a.jpg"


def test_a_url_is_fetched_or_refused_clearly_never_mangled(tiny_model_path, tmp_path):
    done = run_cli("extract", "http://127.0.0.1:9/photo.jpg", "-o", tmp_path / "out", "--model", tiny_model_path)
    assert done.returncode == 1 and "cannot fetch http://127.0.0.1:9/photo.jpg" in done.stderr
    assert not (tmp_path / "http:").exists()


def test_a_urls_image_is_saved_under_its_decoded_name_never_outside_its_folder():
    from clothes_extractor.api.web import MAX_NAME_BYTES, file_name

    assert file_name("https://shop.example/img/Blue%20Shirt.jpg?w=800#top") == "Blue Shirt.jpg"  # (its output's stem)
    assert file_name("https://shop.example/%E5%A4%96%E5%A5%97.jpg") == "外套.jpg"
    assert file_name("https://shop.example/a%2F..%2Fb.png") == "a_.._b.png"  # a separator it decodes to
    assert file_name("https://shop.example/a%5Cb%00.png") == "a_b_.png"
    for nameless in ("https://shop.example", "https://shop.example/", "https://shop.example/..", "http://x/%2e%2e"):
        assert file_name(nameless) == "photo", nameless
    long = file_name("https://shop.example/" + "%C3%A9" * 300 + ".jpeg")  # (600 bytes: no file system takes it)
    assert long.endswith("é.jpeg") and MAX_NAME_BYTES - 2 < len(long.encode()) <= MAX_NAME_BYTES


def test_a_url_is_sent_as_a_browser_sends_it_spaces_and_all(tiny_model_path, tmp_path):
    """A URL copied from a spreadsheet or a shop's listing, with a space or non-ASCII letters in it:
    percent-encoded as a browser does (http.client refused it: "URL can't contain control
    characters", "ordinal not in range(128)"); messages and outputs name it as it was given."""
    import http.server
    import threading

    from clothes_extractor.api.web import _request

    site = tmp_path / "site"
    (site / "new in").mkdir(parents=True)
    for i, name in enumerate(("Blue Shirt.png", "外套.png")):
        cut_out(i).save(site / "new in" / name)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/new in"
    report, model = tmp_path / "r.jsonl", ["--model", tiny_model_path, "--alpha-mask", "--no-segmenter"]
    try:
        done = run_cli("extract", f"{url}/Blue Shirt.png", f"{url}/外套.png", "-o", tmp_path / "out", *model,
                       "--report", report)  # fmt: skip
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["Blue Shirt.png", "外套.png"]
    assert sorted(line["input"] for line in read_report(report).values()) == [
        f"{url}/Blue Shirt.png",
        f"{url}/外套.png",
    ]
    sent = _request("https://user:pw@Bücher.example:8443/a b/%41.jpg?q=x y&s=ü#top")
    assert sent.full_url == "https://xn--bcher-kva.example:8443/a%20b/%41.jpg?q=x%20y&s=%C3%BC"  # (an escape kept)


def test_an_https_url_whose_certificate_is_not_trusted_says_how_to_trust_it(tiny_model_path, tmp_path):
    """A network that inspects TLS signs every site with its own authority: the fetch said
    "certificate verify failed" and no more. Now it says SSL_CERT_FILE, and with it the photo comes."""
    import http.server
    import ssl
    import threading

    if shutil.which("openssl") is None:
        pytest.skip("no openssl here to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                           "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                          capture_output=True)  # fmt: skip
    assert made.returncode == 0, made.stderr
    site = tmp_path / "site"
    site.mkdir()
    cut_out(0).save(site / "p.png")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{server.server_address[1]}/p.png"
    command = [sys.executable, "-m", "clothes_extractor", "extract", url, "--model", tiny_model_path, "--alpha-mask",
               "--no-segmenter"]  # fmt: skip
    try:
        untrusted = subprocess.run([*command, "-o", tmp_path / "a.png"], capture_output=True, text=True,
                                   env={**cli_env(), "SSL_CERT_FILE": "/nowhere.pem"}, timeout=120)  # fmt: skip
        trusted = subprocess.run([*command, "-o", tmp_path / "b.png"], capture_output=True, text=True,
                                 env={**cli_env(), "SSL_CERT_FILE": str(cert)}, timeout=120)  # fmt: skip
    finally:
        server.shutdown()
    assert untrusted.returncode == 1 and not (tmp_path / "a.png").exists()
    why = (
        "certificate: if your network has its own certificate authority, point SSL_CERT_FILE at a bundle that holds it"
    )
    assert re.search(f"cannot fetch {re.escape(url)}: self.signed {why}", untrusted.stderr), untrusted.stderr
    assert trusted.returncode == 0 and (tmp_path / "b.png").exists(), trusted.stderr


def test_a_size_option_has_a_ceiling_not_an_out_of_memory_kill(tmp_path):
    # (100000x100000 and 20000x15000 ran data synth out of memory: the system killed it, exit 137, nothing said)
    done = run_cli("data", "synth", tmp_path / "syn", "-n", "1", "--size", "9000x16")
    assert done.returncode == 2 and "'9000x16': at most 8192 pixels a side" in done.stderr, done.stderr
    assert not (tmp_path / "syn").exists()
    assert run_cli("data", "synth", tmp_path / "syn", "-n", "1", "--size", "8192x16").returncode == 0
    # a batch's photos are in memory together: a batch of 100000 over a large folder was killed the same way
    for command in (["extract", tmp_path / "syn"], ["tryon", "--person", tmp_path / "syn", "--garment", tmp_path]):
        done = run_cli(*command, "-o", tmp_path / "out", "--batch-size", "100000")
        assert done.returncode == 2 and "100000 is not in the range 1<=x<=1024" in done.stderr, done.stderr
        assert not (tmp_path / "out").exists()


def test_outputs_that_would_overwrite_inputs_and_bad_option_files_fail_first(tiny_model_path, photo_folder, tmp_path):
    photos, masks = photo_folder
    done = run_cli("extract", photos, "-o", photos, "--model", tiny_model_path, "--masks", masks)
    assert done.returncode == 1 and "is the input folder" in done.stderr
    done = run_cli("extract", photos, "-o", tmp_path / "o", "--save-masks", tmp_path / "o", "--model", tiny_model_path)
    assert done.returncode == 1 and "masks would overwrite garments" in done.stderr
    done = run_cli("extract", photos, "-o", tmp_path / "o", "--sheet", tmp_path / "sheet", "--model", tiny_model_path)
    assert done.returncode == 1 and "--sheet" in done.stderr and "must end in" in done.stderr
    done = run_cli("extract", photos, "-o", tmp_path / "o", "--model", tiny_model_path, "--background", "transparent",
                   "--format", "jpg")  # fmt: skip
    assert done.returncode == 2 and "JPEG has no transparency: use --format png or webp" in done.stderr
    one = sorted(photos.iterdir())[0]  # one photo: the output's suffix decides, so that is what to change
    done = run_cli("extract", one, "-o", tmp_path / "g.jpg", "--model", tiny_model_path, "--background", "transparent")
    assert done.returncode == 2 and "name the output g.png or .webp" in done.stderr and "--format" not in done.stderr
    done = run_cli("extract", photos, "-o", tmp_path / "o", "--model", tiny_model_path, "--background", "pinkish")
    assert done.returncode == 2 and "#RRGGBB" in done.stderr
    done = run_cli("extract", photos, "-o", tmp_path / "o", "--model", tiny_model_path, "--masks", masks,
                   "--output-size", "5000x512")  # fmt: skip
    assert done.returncode == 1 and "--output-size 5000x512: each side must be 1 to 4096 pixels" in done.stderr
    assert "extracting" not in done.stderr  # (refused before it starts)
    done = run_cli("evaluate", "--model", tiny_model_path, "--data", tmp_path, "--json", tmp_path / "r.txt")
    assert done.returncode == 1 and "must end in .json" in done.stderr
    done = run_cli("evaluate", "--model", tiny_model_path, "--data", photos, "--sheet", tmp_path / "s.png",
                   "--sheet-rows", "0")  # fmt: skip
    assert done.returncode == 2 and "--sheet-rows 0 and no --worst N would show nothing" in done.stderr
    done = run_cli("evaluate", "--model", tiny_model_path, "--data", photos, "--sheet", photos / "s.png")
    assert done.returncode == 2 and f"--sheet {photos / 's.png'} is in the input folder" in done.stderr
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


def test_a_size_the_generator_does_not_draw_at_is_said(tiny_model_path, photo_folder, tmp_path):
    """``--output-size`` with a generator that draws at 64x48: its garments resized, and one line says so."""
    photos, masks = photo_folder
    done = run_cli("extract", photos, "-o", tmp_path / "o", "--model", tiny_model_path, "--masks", masks,
                   "--output-size", "128")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "draws garments at 64x48: they are resized to 128x96 (bicubic" in done.stderr
    assert {Image.open(p).size for p in (tmp_path / "o").iterdir()} == {(96, 128)}
    done = run_cli("extract", photos, "-o", tmp_path / "m", "--model", tiny_model_path, "--masks", masks,
                   "--output-size", "64x48")  # fmt: skip
    assert done.returncode == 0 and "resized" not in done.stderr
    assert {Image.open(p).size for p in (tmp_path / "m").iterdir()} == {(48, 64)}
    done = run_cli("extract", photos / "p0.jpg", "--masks", masks, "-o", tmp_path / "one.png",
                   "--model", tiny_model_path, "--output-size", "128x96")  # fmt: skip
    assert done.returncode == 0 and "they are resized to 128x96" in done.stderr
    assert Image.open(tmp_path / "one.png").size == (96, 128)


def test_a_photo_is_never_written_over(tiny_model_path, photo_folder, tmp_path):
    photos, masks = photo_folder
    shots = tmp_path / "shots"
    shots.mkdir()
    Image.open(photos / "p0.jpg").save(shots / "p0.png")
    shutil.copy(photos / "p1.jpg", shots / "p1.jpg")
    before = {p.name: p.read_bytes() for p in shots.iterdir()}
    model = ["--model", tiny_model_path, "--masks", masks]
    done = run_cli("extract", shots / "p0.png", "-o", shots / "p0.png", *model)
    assert done.returncode == 2 and "is the photo itself" in done.stderr
    done = run_cli("extract", shots / "p0.png", "-o", shots / "p0-garment.png", *model)  # beside it: fine
    assert done.returncode == 0, done.stderr
    (shots / "p0-garment.png").unlink()
    done = run_cli("extract", shots / "p0.png", "-o", tmp_path / "g.png", "--save-masks", shots, *model)
    assert done.returncode == 2 and "--save-masks would write" in done.stderr and not (tmp_path / "g.png").exists()
    done = run_cli("extract", shots, "-o", tmp_path / "o", "--save-masks", shots, *model)
    assert done.returncode == 1 and "is the input folder" in done.stderr
    kept = {p.name: p.read_bytes() for p in masks.iterdir()}
    done = run_cli("extract", shots / "p0.png", "-o", masks / "p0.png", "--overwrite", *model)
    assert done.returncode == 2 and "is the photo's mask: the garment would replace it" in done.stderr
    done = run_cli("extract", shots, "-o", masks, "--overwrite", *model)
    assert done.returncode == 1 and "is the --masks folder: garments would replace the masks" in done.stderr
    assert {p.name: p.read_bytes() for p in masks.iterdir()} == kept
    assert {p.name: p.read_bytes() for p in shots.iterdir()} == before
    done = run_cli("extract", shots / "p0.png", shots / "p1.jpg", "-o", shots, *model)  # into their own folder
    assert done.returncode == 1 and "p0.png is the photo itself" in done.stderr and "1 extracted" in done.stderr
    assert {p.name: p.read_bytes() for p in shots.iterdir() if p.name != "p1.png"} == before


def test_a_report_or_a_sheet_never_replaces_a_photo_or_a_garment(tiny_model_path, photo_folder, tmp_path):
    photos, masks = photo_folder
    model = ["--model", tiny_model_path, "--masks", masks]
    (tmp_path / "notes.txt").write_text("my notes\n")
    before = {p: p.read_bytes() for p in [*photos.iterdir(), tmp_path / "notes.txt"]}
    for inputs, option, path, message in [
        ([photos / "p0.jpg", photos / "p1.jpg"], "--report", photos / "p1.jpg", "is one of the photos"),
        ([photos], "--report", photos / "p1.jpg", "is in the input folder"),
        ([photos], "--sheet", photos / "sheet.png", "is in the input folder"),  # the next run's photo
        ([photos], "--report", tmp_path / "notes.txt", "exists and is not a JSON Lines report: it is kept"),
        ([photos], "--report", tmp_path / "r.png", "names an image; the report is JSON Lines"),
    ]:
        done = run_cli("extract", *inputs, "-o", tmp_path / "o", option, path, *model)
        assert done.returncode == 2 and f"{option} {path} {message}" in done.stderr, done.stderr
    assert {p: p.read_bytes() for p in before} == before and not (photos / "sheet.png").exists()
    done = run_cli("extract", photos, "-o", tmp_path / "o", "--report", tmp_path / "o" / "r.jsonl", *model)
    assert done.returncode == 0 and len(read_report(tmp_path / "o" / "r.jsonl")) == 5
    garment = (tmp_path / "o" / "p0.png").read_bytes()
    done = run_cli("extract", photos, "-o", tmp_path / "o", "--sheet", tmp_path / "o" / "p0.png", "--overwrite", *model)
    assert done.returncode == 1 and "is a garment this tool wrote: it is kept, and no sheet was written" in done.stderr
    assert (tmp_path / "o" / "p0.png").read_bytes() == garment  # (redone with the same pixels and signature)


def test_verbose_goes_after_the_subcommand_too(tiny_model_path, photo_folder, tmp_path):
    photos, masks = photo_folder
    done = run_cli("extract", photos, "-o", tmp_path / "o", "--model", tiny_model_path, "--masks", masks, "-vv")
    assert done.returncode == 0 and "DEBUG" in done.stderr


def test_progress_lines_without_a_terminal(tiny_model_path, photo_folder, tmp_path, monkeypatch):
    from clothes_extractor.commands import common

    monkeypatch.setattr(common.Progress.__init__, "__defaults__", (0.0,))  # a line for every photo
    from click.testing import CliRunner

    from clothes_extractor.cli import cli

    photos, masks = photo_folder
    done = CliRunner().invoke(cli, ["extract", str(photos), "-o", str(tmp_path / "o"), "--model", str(tiny_model_path),
                                    "--masks", str(masks)])  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "extract: 5/5 photos (100%)" in done.output


def test_a_warning_while_the_progress_bar_runs_is_a_line_of_its_own_above_it(monkeypatch):
    """On a terminal, a warning logged while the bar runs (``fetches``: a server stopped
    answering) is written on a line of its own and the bar drawn again below it; it was written
    straight after the bar, on its line (``extract:  10%|#  | 1/10 [00:01<...]WARNING ...``)."""
    import logging

    from clothes_extractor.commands import common

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter(common.LOG_FORMAT))
    logging.getLogger().addHandler(console)
    before = list(logging.getLogger().handlers)
    try:
        progress = common.Progress(10, "photo", "extract")
        progress.update()
        logging.getLogger("clothes_extractor.api.fetches").warning("cdn.example did not answer 3 fetches in a row")
        progress.update()
        progress.close()
        after = list(logging.getLogger().handlers)  # (the terminal's handler back)
        logging.getLogger("clothes_extractor.api.fetches").warning("after the bar")
    finally:
        logging.getLogger().removeHandler(console)
    written = terminal.getvalue()
    line = re.search(r"(?:^|[\r\n])([^\r\n]*)WARNING clothes_extractor\.api\.fetches: cdn\.example", written)
    assert line is not None and line.group(1).strip() == "", repr(written)  # (nothing of the bar before it)
    assert "2/10" in written.split("did not answer 3 fetches in a row")[1], repr(written)  # (the bar below it)
    assert written.endswith("WARNING clothes_extractor.api.fetches: after the bar\n"), repr(written)
    assert after == before, (after, before)


def test_model_options_take_a_bundled_model_by_task_name_as_evaluate_does(tmp_path):
    """``--model generator``, ``--segmenter segmenter``, ``tryon --model tryon --parser segmenter``:
    a task's name where no file has it is the bundled model (``evaluate --model generator`` took
    it; ``extract`` said "model file not found: generator")."""
    if model_for("segmenter", gpu=False) is None or model_for("tryon", gpu=False) is None:
        pytest.skip("this install bundles no segmenter or try-on model")
    photo = ROOT / "examples" / "photos" / "figure-5.jpg"
    named = run_cli("extract", photo, "-o", tmp_path / "named.png", "--model", "generator", "--segmenter", "segmenter")
    plain = run_cli("extract", photo, "-o", tmp_path / "plain.png")
    assert named.returncode == 0 and plain.returncode == 0, named.stderr
    named_pixels, plain_pixels = (np.asarray(Image.open(tmp_path / f"{name}.png")) for name in ("named", "plain"))
    assert np.array_equal(named_pixels, plain_pixels)
    person = ROOT / "examples" / "photos" / "figure-6.jpg"
    dressed = run_cli("tryon", "--person", person, "--garment", tmp_path / "plain.png", "-o", tmp_path / "d.png",
                      "--model", "tryon", "--parser", "segmenter")  # fmt: skip
    assert dressed.returncode == 0, dressed.stderr
    missing = run_cli("extract", photo, "-o", tmp_path / "x.png", "--model", "generatr")
    assert missing.returncode == 1 and "model file not found: generatr" in missing.stderr
