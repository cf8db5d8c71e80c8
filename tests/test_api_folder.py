"""``extract_folder``: the folder job from Python, as a desktop app runs it (in a worker thread,
with a cancel button and a progress callback), giving the files ``extract`` writes."""

from __future__ import annotations

import threading

import pytest
from PIL import Image

from clothes_extractor import dress_folder, extract_folder, new_session
from clothes_extractor.errors import InputError, OutputError
from conftest import person_photo, run_cli


@pytest.fixture
def folder(tmp_path):
    """12 photos in two subfolders, their masks, and one file that is no image."""
    photos, masks = tmp_path / "photos", tmp_path / "masks"
    for i in range(12):
        rel = f"s{i % 2}/p{i:02d}"
        for root in (photos, masks):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
        photo, mask = person_photo(i)
        photo.save(photos / f"{rel}.jpg", quality=90)
        mask.save(masks / f"{rel}.png")
    (photos / "s0" / "broken.jpg").write_bytes(b"not a jpeg")
    return photos, masks


def test_the_files_are_extracts_and_a_bad_photo_is_a_result(tiny_model_path, folder, tmp_path, caplog):
    photos, masks = folder
    results, totals = [], []
    with new_session(tiny_model_path, "cpu") as generator:
        summary = extract_folder(
            photos, tmp_path / "api", generator=generator, masks=masks, save_masks=tmp_path / "api-masks",
            recursive=True, decode="gpu", on_start=totals.append, on_result=results.append,
        )  # fmt: skip
    assert (summary.ok, summary.failed, summary.stopped) == (12, 1, None) and totals == [len(results)] == [13]
    assert [r.input for r in results if r.status == "error"] == [str(photos / "s0" / "broken.jpg")]
    assert "photos decode on the host: the models run on cpu" in caplog.text  # decode="gpu" without CUDA
    done = run_cli("extract", photos, "-r", "--masks", masks, "-o", tmp_path / "cli", "--model", tiny_model_path,
                   "--save-masks", tmp_path / "cli-masks")  # fmt: skip
    assert done.returncode == 1, done.stderr  # (the broken photo)
    for api, cli in (("api", "cli"), ("api-masks", "cli-masks")):
        written = sorted(p.relative_to(tmp_path / api) for p in (tmp_path / api).rglob("*.png"))
        assert written == sorted(p.relative_to(tmp_path / cli) for p in (tmp_path / cli).rglob("*.png"))
        assert len(written) == 12
        assert all((tmp_path / api / p).read_bytes() == (tmp_path / cli / p).read_bytes() for p in written)


def test_cancel_from_another_thread_stops_and_a_rerun_resumes(tiny_model_path, folder, tmp_path):
    photos, masks = folder
    out, cancel, results, outcome = tmp_path / "out", threading.Event(), [], {}

    def on_result(result):
        results.append(result)
        if len(results) == 3:  # the app's cancel button, pressed in its own thread (set before this returns)
            button = threading.Thread(target=cancel.set)
            button.start()
            button.join()

    def job():  # a worker thread, as an app runs it (no signal handlers can be set there)
        with new_session(tiny_model_path, "cpu") as generator:
            outcome["summary"] = extract_folder(
                photos, out, generator=generator, masks=masks, recursive=True, batch_size=2, workers=1,
                on_result=on_result, cancel=cancel,
            )  # fmt: skip

    worker = threading.Thread(target=job)
    worker.start()
    worker.join(timeout=120)
    summary = outcome["summary"]
    assert summary.stopped == "cancelled" and 3 <= len(results) < 13, (summary, len(results))
    written = sorted(out.rglob("*.*"))
    assert not [p for p in written if p.name.startswith(".")]
    assert len(written) == summary.ok == sum(r.status == "ok" for r in results)
    for path in written:
        with Image.open(path) as image:
            image.load()
    with new_session(tiny_model_path, "cpu") as generator:
        again = extract_folder(photos, out, generator=generator, masks=masks, recursive=True)
    assert (again.skipped, again.ok + again.skipped, again.stopped) == (summary.ok, 12, None)


def test_settings_that_cannot_work_are_refused_before_any_photo(tiny_model_path, folder, tmp_path):
    photos, _ = folder
    with new_session(tiny_model_path, "cpu") as generator:
        cases = [
            (dict(output=photos), OutputError, "is the input folder"),
            (dict(output_format="gif"), ValueError, "output_format is one of png, jpg, webp"),
            (dict(output_format="jpg", background="transparent"), ValueError, "JPEG has no transparency"),
            (dict(shard="3/2"), ValueError, "shard takes K/N"),
            (dict(inputs=[photos, photos / "s0"], files_from=tmp_path / "l.txt"), InputError, "only input"),
            (dict(files_from=tmp_path / "l.txt"), InputError, "cannot read the list files_from="),
            # (the command line's ceiling: a batch of 100000 had the system kill the process without a word)
            (dict(batch_size=100_000), ValueError, r"batch size must be a whole number from 1 to 1024 .*got 100000"),
            (dict(batch_size=2.5), ValueError, "batch size must be a whole number"),
        ]
        for given, error, says in cases:
            arguments = {"inputs": photos, "output": tmp_path / "out", **given}
            with pytest.raises(error, match=says):
                extract_folder(arguments.pop("inputs"), arguments.pop("output"), generator=generator, **arguments)
    assert not (tmp_path / "out").exists()


def test_a_uri_is_refused_where_a_local_folder_is_meant(tmp_path, monkeypatch):
    """As a path, s3://bucket/out is the local folder s3:/bucket/out: the garments went there."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    calls = [
        (lambda: extract_folder("in", "s3://bucket/out"), "output s3://bucket/out is a URI"),
        (lambda: extract_folder(["in", "gs://bucket/p.jpg"], "out"), "input gs://bucket/p.jpg is a URI"),
        (lambda: dress_folder("in", "in", "s3://bucket/dressed"), "output s3://bucket/dressed is a URI"),
    ]
    for call, says in calls:
        with pytest.raises(OutputError, match=f"{says}: this reads and writes local files and folders"):
            call()
    assert [p.name for p in tmp_path.iterdir()] == ["in"]
