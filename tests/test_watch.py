"""``extract --watch`` (and ``extract_folder(watch=...)``): a hot folder. Its photos now, then each
photo that comes or changes once it is written whole, until Ctrl-C or SIGTERM, which finish the
photos in flight and end as a job ends; a second one stops at once."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from clothes_extractor import extract_folder, new_session
from clothes_extractor.cli import cli
from clothes_extractor.commands.watching import stopped_by_signals
from clothes_extractor.errors import InputError
from clothes_extractor.runtime.jobs import iter_jobs
from clothes_extractor.runtime.stages import ExtractionSummary, FileResult
from clothes_extractor.runtime.watch import Watch, newest_time, watched_walk
from conftest import ROOT, cli_env, person_photo, report_lines, start_cli, watched_until_mended

FIGURES = ROOT / "examples" / "photos"
HOUR_AGO = time.time() - 3600


def _old(path: Path) -> Path:
    os.utime(path, (HOUR_AGO, HOUR_AGO))
    return path


def _walk(folder: Path, out: Path):
    return lambda: iter_jobs([folder], out, "png")


def _next_walk(watch: Watch, jobs) -> list[str]:
    """The photos the next walk of ``jobs`` (``watch.jobs()``) gives."""
    passes, given = watch.passes, []
    for job in jobs:
        if job is not None:
            given.append(job.photo.name)
        elif watch.passes > passes:
            return given
    return given


def test_a_photo_is_given_once_it_stops_changing_and_again_when_it_changes(tmp_path):
    hot = tmp_path / "hot"
    hot.mkdir()
    for i in range(2):
        person_photo(i)[0].save(hot / f"old{i}.jpg")
        _old(hot / f"old{i}.jpg")
    person_photo(2)[0].save(hot / "fresh.jpg")  # written just now: it may still be being written
    watch = Watch(_walk(hot, tmp_path / "out"), poll_s=0.0, settle_s=60.0)
    jobs = watch.jobs()
    assert _next_walk(watch, jobs) == ["old0.jpg", "old1.jpg"]
    assert _next_walk(watch, jobs) == ["fresh.jpg"]  # the same size and time at the next walk: whole
    assert _next_walk(watch, jobs) == []  # none given twice
    with open(hot / "fresh.jpg", "ab") as file:  # a copy in progress: it grows between walks
        file.write(b"\0" * 100)
    assert _next_walk(watch, jobs) == []
    with open(hot / "fresh.jpg", "ab") as file:
        file.write(b"\0" * 100)
    assert _next_walk(watch, jobs) == []
    assert _next_walk(watch, jobs) == ["fresh.jpg"]  # stopped growing: given again (the job's resume decides)
    os.utime(hot / "old1.jpg", (HOUR_AGO + 60, HOUR_AGO + 60))  # touched, long ago: whole, given again
    (hot / "old0.jpg").unlink()
    assert _next_walk(watch, jobs) == ["old1.jpg"]
    assert watch.given == 5 and watch.passes >= 6
    watch.stop.set()
    assert list(jobs) == []  # the job source ends


def test_a_photo_whose_permissions_change_is_given_again(tmp_path):
    """A chmod moves a file's status-change time, not its size or time: a photo that could not be
    read is given again once its permissions are mended (the job's resume skips one done)."""
    hot = tmp_path / "hot"
    hot.mkdir()
    for name in ("a.jpg", "b.jpg"):
        person_photo(0)[0].save(hot / name)
        _old(hot / name)
    watch = Watch(_walk(hot, tmp_path / "out"), poll_s=0.0)
    jobs = watch.jobs()
    assert _next_walk(watch, jobs) == ["a.jpg", "b.jpg"]

    def stamp_of_b() -> str | None:
        return next(job.stamp for job in iter_jobs([hot], tmp_path / "out", "png") if job.photo.name == "b.jpg")

    stamp, changed = stamp_of_b(), os.stat(hot / "b.jpg").st_ctime_ns
    time.sleep(0.01)  # (a status-change time to the nanosecond where the file system keeps one, else to the tick)
    (hot / "b.jpg").chmod(0o600)
    if os.stat(hot / "b.jpg").st_ctime_ns == changed:
        pytest.skip("this file system's status-change times are too coarse to tell the chmod")
    assert stamp_of_b() == stamp  # (the record's sizes and times the same)
    assert _next_walk(watch, jobs) == ["b.jpg"]
    assert _next_walk(watch, jobs) == []
    watch.stop.set()


def test_a_watched_photo_that_cannot_be_read_is_extracted_once_its_permissions_are_mended(tiny_model_path, tmp_path):
    hot, out, report, err = tmp_path / "hot", tmp_path / "out", tmp_path / "r.jsonl", tmp_path / "err.txt"
    hot.mkdir()
    shutil.copy(FIGURES / "figure-1.jpg", hot / "locked.jpg")  # (an upload written by another account, say)
    args = ["extract", hot, "-o", out, "--model", tiny_model_path, "--watch", "--report", report]
    (line,), lines, code = watched_until_mended(args, _old(hot / "locked.jpg"), report, err, failing=1)
    stderr = err.read_text()
    assert line["status"] == "error" and "Permission denied" in line["error"], line
    assert code == 0, stderr  # its last try succeeded
    assert [r["status"] for r in lines] == ["error", "ok"]
    assert "(--watch tries it again once the file is written again or its permissions change)" in stderr
    assert f"{hot / 'locked.jpg'}: extracted now, changed since its error" in stderr
    Image.open(out / "locked.png").load()


def test_a_watched_folder_that_goes_is_said_once_and_waited_for_not_failed(tmp_path, caplog):
    """A watched folder unmounted or moved away: said once, its photos not failed at every walk
    (it was "input not found" each walk, and the job's exit code 1); back, it is walked again."""
    hot, away = tmp_path / "hot", tmp_path / "away"
    hot.mkdir()
    person_photo(0)[0].save(hot / "a.jpg")
    _old(hot / "a.jpg")
    watch = Watch(watched_walk([hot], tmp_path / "out", "png", None, False, None, None), poll_s=0.0)
    jobs = watch.jobs()
    assert _next_walk(watch, jobs) == ["a.jpg"]
    hot.rename(away)
    with caplog.at_level(logging.WARNING, logger="clothes_extractor.runtime.watch"):
        assert _next_walk(watch, jobs) == [] and _next_walk(watch, jobs) == []
        away.rename(hot)
        person_photo(1)[0].save(hot / "b.jpg")
        _old(hot / "b.jpg")
        assert _next_walk(watch, jobs) == ["b.jpg"]  # (a.jpg, the same file: not given again)
    said = [record.getMessage() for record in caplog.records]
    assert said == [
        f"{hot} is gone (a share unmounted, the folder moved or removed?): the watch waits for it to come back",
        f"{hot} is back: the watch takes its photos again",
    ]


def test_an_empty_file_waits_until_it_is_old_as_a_placeholder_would_be_filled_in(tmp_path, monkeypatch):
    hot = tmp_path / "hot"
    hot.mkdir()
    (hot / "upload.jpg").write_bytes(b"")  # an upload's placeholder: the same at every walk until it is filled in
    (hot / "stale.jpg").write_bytes(b"")
    _old(hot / "stale.jpg")  # empty for an hour: not a placeholder
    watch = Watch(_walk(hot, tmp_path / "out"), poll_s=0.0, settle_s=0.0)
    jobs = watch.jobs()
    assert _next_walk(watch, jobs) == ["stale.jpg"]  # (the job reports it: an empty file)
    assert _next_walk(watch, jobs) == [] and _next_walk(watch, jobs) == []
    monkeypatch.setattr("clothes_extractor.runtime.watch.EMPTY_SETTLE_S", 0.5)
    time.sleep(0.6)
    assert _next_walk(watch, jobs) == ["upload.jpg"]
    (hot / "upload.jpg").write_bytes(b"\xff\xd8 filled in")  # written: settled as any file
    assert _next_walk(watch, jobs) == ["upload.jpg"]


def test_a_watched_photo_that_fails_then_is_done_counts_as_done():
    summary = ExtractionSummary(by_last_try=True)
    for photo, status in [("a", "error"), ("b", "error"), ("a", "error"), ("c", "ok"), ("a", "ok"), ("b", "error")]:
        summary.add(FileResult(photo, status))
    assert (summary.ok, summary.failed, summary.recovered) == (2, 1, 1)  # b failed twice: one photo failing
    summary.add(FileResult("b", "skipped"))  # written again with the bytes of a garment done before
    assert (summary.ok, summary.skipped, summary.failed, summary.recovered) == (2, 1, 0, 2)
    once = ExtractionSummary()  # a folder job's: a photo comes once, nothing kept of it (its memory stays flat)
    for photo in ("x", "y"):
        once.add(FileResult(photo, "error"))
    assert (once.failed, once.recovered, once._failing) == (2, 0, set())


def test_a_stop_ends_the_wait_between_walks_at_once(tmp_path):
    hot = tmp_path / "hot"
    hot.mkdir()
    stop = threading.Event()
    watch = Watch(_walk(hot, tmp_path / "out"), stop, poll_s=3600.0)
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    assert set(watch.jobs()) == {None}
    assert time.monotonic() - started < 5  # not an hour
    assert newest_time("10:2000000000,5:3000000000+abcdef") == 3.0 and newest_time(None) == float("inf")


def test_the_first_signal_stops_the_watch_and_the_second_interrupts():
    stop = threading.Event()
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with stopped_by_signals(stop):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)  # (the handler runs in this thread, between two bytecodes)
            assert stop.is_set()
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_extract_watch_takes_the_photos_that_come_and_ends_on_ctrl_c(tiny_model_path, tmp_path):
    hot, out, report, err = tmp_path / "hot", tmp_path / "out", tmp_path / "r.jsonl", tmp_path / "err.txt"
    hot.mkdir()
    shutil.copy(FIGURES / "figure-1.jpg", hot)  # there before the watch
    process = start_cli(["extract", hot, "-o", out, "--model", tiny_model_path, "--watch", "--report", report], err)
    try:
        assert [r["status"] for r in report_lines(report, 1, process)] == ["ok"]
        data = (FIGURES / "figure-2.jpg").read_bytes()
        with open(hot / "figure-2.jpg", "wb") as file:  # written in two halves, a second apart
            file.write(data[: len(data) // 2])
            file.flush()
            time.sleep(1.0)
            file.write(data[len(data) // 2 :])
        (hot / "notes.jpg").write_bytes(b"not a photo")
        lines = report_lines(report, 3, process)
        time.sleep(3)  # (a walk or two more: nothing is given twice)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    finally:
        process.kill()
    stderr = err.read_text()
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert process.returncode == 1, stderr  # a photo failed: as a folder job's
    assert {(Path(r["input"]).name, r["status"]) for r in lines} == {
        ("figure-1.jpg", "ok"), ("figure-2.jpg", "ok"), ("notes.jpg", "error")
    } and len(lines) == 3  # fmt: skip
    assert "then each new or changed one as it comes" in stderr and "stopping the watch" in stderr
    assert stderr.count("notes.jpg") == 1  # said as it came, not again at the end
    assert stderr.index("notes.jpg") < stderr.index("stopping the watch")
    assert "watched for" in stderr and "2 extracted" in stderr and "1 failed" in stderr
    assert sorted(p.name for p in out.iterdir()) == ["figure-1.png", "figure-2.png"]  # nothing half-written
    Image.open(out / "figure-2.png").load()


def test_extract_watch_redoes_a_changed_photo_and_ends_cleanly_on_sigterm(tiny_model_path, tmp_path):
    hot, out, report, err = tmp_path / "hot", tmp_path / "out", tmp_path / "r.jsonl", tmp_path / "err.txt"
    hot.mkdir()
    args = ["extract", hot, "-o", out, "--model", tiny_model_path, "--watch", "--report", report]
    process = start_cli([*args, "--sheet", tmp_path / "sheet.png"], err)
    try:
        time.sleep(1)
        shutil.copy(FIGURES / "figure-3.jpg", hot / "shot.jpg")
        report_lines(report, 1, process)
        first = (out / "shot.png").read_bytes()
        os.utime(hot / "shot.jpg")  # touched: the same bytes, a new time
        report_lines(report, 2, process)
        shutil.copy(FIGURES / "figure-5.jpg", hot / "shot.jpg")  # shot again under its old name
        report_lines(report, 3, process)
        data = (FIGURES / "figure-2.jpg").read_bytes()
        (hot / "upload.jpg").write_bytes(data[: len(data) // 2])  # an upload that stalls: taken cut off
        _old(hot / "upload.jpg")
        report_lines(report, 4, process)
        (hot / "upload.jpg").write_bytes(data)  # ...and finished
        lines = report_lines(report, 5, process)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        process.kill()
    stderr = err.read_text()
    assert process.returncode == 0, stderr  # every photo's last try succeeded
    assert [r["status"] for r in lines] == ["ok", "skipped", "ok", "error", "ok"]
    assert (out / "shot.png").read_bytes() != first
    assert f"watching {hot}: extracting each new or changed one as it comes" in stderr  # (none there at the start)
    assert (
        "truncated or corrupt? (--watch tries it again once the file is written again or its permissions change)"
        in stderr
    )
    assert f"{hot / 'upload.jpg'}: extracted now, changed since its error" in stderr
    assert "watched for" in stderr and "3 extracted, 1 skipped (already done), 0 failed" in stderr
    assert "failed at first, done once written again: 1" in stderr and (tmp_path / "sheet.png").exists()
    Image.open(out / "upload.png").load()


def test_extract_folder_watch_goes_on_until_its_event_is_set(tiny_model_path, tmp_path):
    hot, out = tmp_path / "hot", tmp_path / "out"
    hot.mkdir()
    shutil.copy(FIGURES / "figure-1.jpg", hot)
    stop, results, totals, ended = threading.Event(), [], [], {}
    with new_session(tiny_model_path, "cpu") as generator:

        def run() -> None:
            ended["summary"] = extract_folder(
                hot, out, generator=generator, watch=stop, on_start=totals.append, on_result=results.append
            )

        worker = threading.Thread(target=run)
        worker.start()
        deadline = time.monotonic() + 60
        while not results and time.monotonic() < deadline:
            time.sleep(0.05)
        shutil.copy(FIGURES / "figure-4.jpg", hot)
        while len(results) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        data = (FIGURES / "figure-2.jpg").read_bytes()
        (hot / "upload.jpg").write_bytes(data[: len(data) // 2])  # an upload that stalls: taken cut off
        _old(hot / "upload.jpg")
        while len(results) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        (hot / "upload.jpg").write_bytes(data)
        while len(results) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        worker.join(timeout=30)
    assert not worker.is_alive()
    summary = ended["summary"]
    assert [r.status for r in results] == ["ok", "ok", "error", "ok"] and totals == [1]
    assert (summary.ok, summary.failed, summary.recovered, summary.stopped) == (3, 0, 1, None)
    assert sorted(p.name for p in out.iterdir()) == ["figure-1.png", "figure-4.png", "upload.png"]
    with pytest.raises(InputError, match="watch watches folders"):
        extract_folder(hot / "figure-1.jpg", tmp_path / "o2", generator=tiny_model_path, watch=stop)
    listing = tmp_path / "list.txt"
    listing.write_text("figure-1.jpg\n")
    with pytest.raises(InputError, match="leave out files_from"):
        extract_folder(hot, tmp_path / "o3", generator=tiny_model_path, files_from=listing, watch=stop)


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--dry-run"], "--dry-run says what one run would do"),
        (["--ray"], "leave out --ray"),
        (["-o", "-"], "-o - (standard output) takes"),
        (["--files-from", "LIST"], "--files-from's list is taken once"),
    ],
)
def test_watch_refuses_what_has_no_folder_to_watch(tmp_path, extra, said):
    hot = tmp_path / "hot"
    hot.mkdir()
    (tmp_path / "LIST").write_text("a.jpg\n")
    extra = [str(tmp_path / "LIST") if item == "LIST" else item for item in extra]
    args = ["extract", str(hot), "--watch", *(["-o", str(tmp_path / "out")] if "-o" not in extra else []), *extra]
    done = CliRunner().invoke(cli, args)
    assert done.exit_code == 2 and said in done.output, done.output


def test_watch_refuses_a_file_or_a_folder_not_there(tmp_path):
    photo = tmp_path / "p.jpg"
    person_photo(0)[0].save(photo)
    for given, said in ((photo, "is a file"), (tmp_path / "later", "is not found")):
        done = CliRunner().invoke(cli, ["extract", str(given), "-o", str(tmp_path / "out"), "--watch"])
        assert done.exit_code == 2 and said in done.output and "--watch watches folders" in done.output, done.output


def test_a_long_walk_is_followed_by_a_longer_wait(tmp_path):
    hot = tmp_path / "hot"
    hot.mkdir()
    for i in range(3000):  # (walked, never decoded)
        (hot / f"{i:05d}.jpg").write_bytes(b"x")
    watch = Watch(_walk(hot, tmp_path / "out"), poll_s=0.0, settle_s=0.0)
    jobs = watch.jobs()
    assert len(_next_walk(watch, jobs)) == 3000
    walked, started = watch.walk_s, time.monotonic()
    assert walked > 0.01 and watch.wait_s == pytest.approx(4 * walked)
    while watch.passes < 2:
        next(jobs)
    between = time.monotonic() - started - watch.walk_s  # (the second walk's own time left out)
    assert between >= 0.9 * 4 * walked  # a fifth of a core at most, walking


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups are POSIX's")
def test_a_terminals_ctrl_c_ends_a_watch_with_worker_processes_after_its_photos_in_flight(tiny_model_path, tmp_path):
    """Ctrl-C in a terminal reaches the worker processes too (the job's process group): they leave
    it to the watch, which finishes its photos in flight with them; stopped before the photos there
    at the start were all taken, it says how many were not."""
    hot, out, report = tmp_path / "hot", tmp_path / "out", tmp_path / "r.jsonl"
    hot.mkdir()
    for i in range(120):
        person_photo(i % 7)[0].save(hot / f"{i:03d}.png", compress_level=0)
        _old(hot / f"{i:03d}.png")
    args = ["extract", hot, "-o", out, "--model", tiny_model_path, "--watch", "--report", report, "--batch-size", "1"]
    process = subprocess.Popen(
        [sys.executable, "-m", "clothes_extractor", *map(str, args), "--workers", "2", "--processes"],
        env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        report_lines(report, 1, process)
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr and "tried again alone" not in stderr
    assert {r["status"] for r in lines} == {"ok"} and 1 <= len(lines) < 120
    assert f"{len(lines)} extracted" in stderr and f"{120 - len(lines)} not tried" in stderr, stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(Path(r["output"]).name for r in lines)


def test_a_watch_finds_the_masks_that_come_with_the_photos(tiny_model_path, tmp_path):
    """A ``--masks`` folder is read again at each walk: a photo that comes with its mask file gets
    that mask, and a mask that comes (or changes) after its photo redoes it."""
    hot, masks, out = tmp_path / "hot", tmp_path / "masks", tmp_path / "out"
    hot.mkdir()
    masks.mkdir()
    photo, mask = person_photo(0)
    photo.save(hot / "first.jpg")
    mask.save(masks / "first.png")
    stop, results = threading.Event(), []

    def run() -> None:
        extract_folder(hot, out, generator=tiny_model_path, masks=masks, watch=stop, on_result=results.append)

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + 60
        while len(results) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(results) >= count, results

    worker = threading.Thread(target=run)
    worker.start()
    try:
        wait_for(1)
        photo, mask = person_photo(1)
        mask.save(masks / "second.png")  # came after the watch read the masks folder first
        photo.save(hot / "second.jpg")
        wait_for(2)
        person_photo(2)[0].save(hot / "third.jpg")  # its mask a moment later
        wait_for(3)
        person_photo(2)[1].save(masks / "third.png")
        wait_for(4)
    finally:
        stop.set()
        worker.join(timeout=60)
    seen = [(Path(r.input).name, r.status, (r.mask or "").split(":")[0]) for r in results]
    assert seen == [
        ("first.jpg", "ok", "file"), ("second.jpg", "ok", "file"), ("third.jpg", "ok", "segmenter"),
        ("third.jpg", "ok", "file"),
    ]  # fmt: skip
