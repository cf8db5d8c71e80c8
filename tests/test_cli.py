"""The command line, run as a user runs it: a fresh process where torch cannot be imported."""

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from conftest import VITON_HD_SAMPLE, VITON_VAL, cli_env, cp_vton_subset, person_photo, run_cli

COMMANDS = [
    ["extract"],
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
    assert "task: generator" in done.stdout and "height: 64" in done.stdout
    as_json = json.loads(run_cli("info", "--json", "--no-probe").stdout)
    assert as_json["providers"]["cpu"] == "available (not probed)"
    assert as_json["onnxruntime distributions"] and "model" not in as_json
    assert as_json["tensorrt engines"].startswith(("tensorrt ", "not installed: pip install"))
    assert re.fullmatch(
        r"\d+ cores; a CPU batch runs as \d+ streams of \d+ thread\(s\) \(--cpu-streams\)", as_json["cpu"]
    )


def test_extract_folder_with_masks(tiny_model_path, photo_folder, tmp_path):
    photos, masks = photo_folder
    out, report = tmp_path / "out", tmp_path / "report.jsonl"
    args = ["extract", photos, "-o", out, "--model", tiny_model_path, "--masks", masks, "--report", report]
    done = run_cli(*args, "--batch-size", "2", "--format", "jpg")
    assert done.returncode == 0, done.stderr
    assert "5 extracted" in done.stderr and "on cpu" in done.stderr
    assert sorted(p.name for p in out.iterdir()) == [f"p{i}.jpg" for i in range(5)]
    assert {r["status"] for r in read_report(report).values()} == {"ok"}
    again = run_cli(*args, "--format", "jpg")
    assert again.returncode == 0 and "5 skipped" in again.stderr
    assert {r["status"] for r in read_report(report).values()} == {"skipped"}


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
    assert "zero.jpg: photo is an empty file" in done.stderr
    results = read_report(report)
    assert len(results) == 7
    assert results["garbage.jpg"]["status"] == "error" and results["garbage.jpg"]["output"] is None
    assert len(list(out.iterdir())) == 5


def test_unwritable_output_folder_fails_before_any_work(tiny_model_path, photo_folder, tmp_path):
    photos, masks = photo_folder
    (tmp_path / "file").write_text("a file, not a folder")
    done = run_cli("extract", photos, "-o", tmp_path / "file" / "out", "--model", tiny_model_path, "--masks", masks)
    assert done.returncode == 1
    assert "cannot write to the output folder" in done.stderr and "extracting" not in done.stderr


def test_bad_model_files(photo_folder, tmp_path):
    photos, masks = photo_folder
    (tmp_path / "m.onnx").write_text("not onnx")
    done = run_cli("extract", photos, "-o", tmp_path / "out", "--model", tmp_path / "m.onnx", "--masks", masks)
    assert done.returncode == 1 and "not a loadable ONNX model" in done.stderr


def test_without_model_or_bundled_model_says_how_to_get_one(photo_folder, tmp_path, monkeypatch):
    from click.testing import CliRunner

    import clothes_extractor.models as models
    from clothes_extractor.cli import cli

    monkeypatch.setattr(models, "MODELS_DIR", tmp_path / "no-models")  # an install without models
    photos, masks = photo_folder
    done = CliRunner().invoke(cli, ["extract", str(photos), "-o", str(tmp_path / "out"), "--masks", str(masks)])
    assert done.exit_code == 2 and "no --model given" in done.output and "clothes-extractor export" in done.output


def test_explicit_provider_never_falls_back_silently(tiny_model_path, photo_folder, tmp_path):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    photos, masks = photo_folder
    done = run_cli(
        "extract", photos, "-o", tmp_path / "o", "--model", tiny_model_path, "--masks", masks, "--provider", "cuda"
    )
    assert done.returncode == 1 and "cuda provider is not in this onnxruntime build" in done.stderr
    assert not list((tmp_path / "o").iterdir())


def test_no_photos_found(tiny_model_path, tmp_path):
    (tmp_path / "empty").mkdir()
    done = run_cli("extract", tmp_path / "empty", "-o", tmp_path / "o", "--model", tiny_model_path)
    assert done.returncode == 1 and "no photos found" in done.stderr and "--recursive" in done.stderr


def test_resume_after_an_interrupted_run(tiny_model_path, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    count = 150
    for i in range(count):
        photo, mask = person_photo(i % 7)
        photo.putalpha(mask)
        photo.save(photos / f"{i:03d}.png", compress_level=0)
    out = tmp_path / "out"
    args = ["extract", photos, "-o", out, "--model", tiny_model_path, "--batch-size", "1", "--workers", "1"]
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
            process.send_signal(signal.SIGINT)
            break
        time.sleep(0.01)
    _, stderr = process.communicate(timeout=60)
    finished = sorted(p for p in out.iterdir() if p.suffix == ".png")
    if process.returncode == 0:
        pytest.skip("the run finished before it could be interrupted")
    assert process.returncode == 130, stderr
    assert "run the same command again to resume" in stderr
    assert 1 <= len(finished) < count
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files
    for path in finished:
        Image.open(path).load()
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr
    assert f"{count - len(finished)} extracted" in done.stderr and f"{len(finished)} skipped" in done.stderr
    assert len(list(out.iterdir())) == count


@pytest.mark.skipif(not (VITON_HD_SAMPLE / "train").is_dir(), reason=f"{VITON_HD_SAMPLE} is absent")
def test_extract_viton_hd_sample_with_parse_maps(tiny_model_path, tmp_path):
    out, report = tmp_path / "out", tmp_path / "r.jsonl"
    done = run_cli("extract", VITON_HD_SAMPLE / "train", "-o", out, "--model", tiny_model_path, "--report", report)
    assert done.returncode == 0, done.stderr
    photos = sorted(p.stem for p in (VITON_HD_SAMPLE / "train" / "image").iterdir())
    assert sorted(p.stem for p in out.iterdir()) == photos
    assert all(r["mask"].startswith("parse:") for r in read_report(report).values())


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


def test_the_help_test_covers_every_command():
    from clothes_extractor.cli import cli

    assert set(cli.commands) == {c[0] for c in COMMANDS}
