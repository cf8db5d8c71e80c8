"""``tryon --watch`` (and ``dress_folder(watch=...)``): a hot folder of persons (or garments). The
pairs there now, then the pairs of each photo that comes or changes once it is written whole,
until Ctrl-C or SIGTERM, which finish the pairs in flight and end as a job ends. A person or a
garment written again under its old name is read again: never the pixels, the refusal or the
catalog image of the file it replaced."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from clothes_extractor import dress_folder, new_session
from clothes_extractor.cli import cli
from clothes_extractor.errors import InputError
from conftest import ROOT, TRYON_PERSONS, report_lines, start_cli, watched_until_mended

FIGURES = ROOT / "examples" / "photos"
HOUR_AGO = time.time() - 3600


@pytest.fixture(scope="module")
def models():
    with new_session("tryon", "cpu") as tryon, new_session("segmenter", "cpu") as parser:
        yield {"tryon": tryon, "parser": parser}


def _written(path: Path, source: Path | bytes, minutes: int = 0) -> Path:
    """``path`` written with ``source``'s bytes, its time long ago (settled: a watch takes it at its next walk)."""
    path.write_bytes(source if isinstance(source, bytes) else source.read_bytes())
    when = HOUR_AGO + 60 * minutes
    os.utime(path, (when, when))
    return path


def _until(condition, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_a_person_found_unusable_is_read_again_once_written_again(models, tryon_folders, tmp_path):
    """The job remembers the persons (and garments) it found unusable, so that their other pairs
    read nothing: by the file as its pair's job found it, so a photo written again under that
    name (a watch gives its pairs again) is read again, not refused for what it replaced."""
    from clothes_extractor.runtime.dress_jobs import DressJob, run_dressing
    from clothes_extractor.runtime.dressing import Dresser
    from clothes_extractor.runtime.records import input_state

    persons, garments = tryon_folders
    person, garment, results = tmp_path / "studio.jpg", garments / "g0.png", []
    Image.new("RGB", (192, 256), (90, 120, 150)).save(person)  # a wall: no one to dress
    os.utime(person, (HOUR_AGO, HOUR_AGO))

    def jobs():
        yield DressJob(person, garment, tmp_path / "out" / "a.png", stamp=input_state(person, garment)[0])
        while not results:  # (a watch's None: none ready now; the batch is dressed meanwhile)
            yield None
            time.sleep(0.02)
        _written(person, persons / TRYON_PERSONS[0], minutes=1)  # the person, shot again under its name
        yield DressJob(person, garment, tmp_path / "out" / "a.png", stamp=input_state(person, garment)[0])
        yield DressJob(person, garment, tmp_path / "out" / "b.png", stamp=input_state(person, garment)[0])

    dresser = Dresser(models["tryon"], models["parser"])
    summary = run_dressing(dresser, jobs(), on_result=results.append, workers=2, watched=True)
    assert [result.status for result in results] == ["error", "ok", "ok"], results
    assert "found no upper-body clothing to replace" in results[0].error
    assert (summary.ok, summary.failed, summary.recovered) == (2, 0, 1)  # a.png counted by its last try
    assert Image.open(tmp_path / "out" / "a.png").size == Image.open(persons / TRYON_PERSONS[0]).size


def test_dress_folder_watch_dresses_new_persons_and_redoes_all_when_the_garment_photo_changes(
    models, tryon_folders, tmp_path
):
    """Garments from photos, watched: a person that comes is dressed; the garment photo shot again
    under its name has its catalog image made again, and every pair is dressed anew in it (the same
    pixels as a job started on the new photo), not in the catalog image of the photo it replaced."""
    persons, _ = tryon_folders
    hot, worn = tmp_path / "hot", tmp_path / "worn.jpg"
    hot.mkdir()
    _written(hot / TRYON_PERSONS[0], persons / TRYON_PERSONS[0])
    _written(worn, FIGURES / "figure-3.jpg")
    stop, results, totals, ended = threading.Event(), [], [], {}
    with new_session("generator", "cpu", outputs=["garment"]) as generator:

        def run() -> None:
            ended["summary"] = dress_folder(
                hot, worn, tmp_path / "out", **models, generator=generator, garment_from_photo=True, watch=stop,
                on_start=totals.append, on_result=results.append, workers=2,
            )  # fmt: skip

        worker = threading.Thread(target=run)
        worker.start()
        try:
            _until(lambda: len(results) == 1)
            _written(hot / TRYON_PERSONS[1], persons / TRYON_PERSONS[1])  # a person comes
            _until(lambda: len(results) == 2)
            first = {name: np.asarray(Image.open(tmp_path / "out" / name)) for name in os.listdir(tmp_path / "out")}
            _written(worn, FIGURES / "figure-6.jpg", minutes=1)  # the garment photo shot again
            _until(lambda: len(results) == 4)
            time.sleep(2.5)  # (a walk more: nothing is given twice)
        finally:
            stop.set()
            worker.join(timeout=60)
        assert not worker.is_alive()
        summary = ended["summary"]
        assert [r.status for r in results] == ["ok"] * 4 and totals == [1], results
        assert (summary.ok, summary.failed, summary.stopped) == (4, 0, None)
        fresh = dress_folder(hot, worn, tmp_path / "fresh", **models, generator=generator, garment_from_photo=True)
    assert fresh.ok == 2 and sorted(first) == sorted(os.listdir(tmp_path / "fresh"))
    for name, before in first.items():
        now = np.asarray(Image.open(tmp_path / "out" / name))
        assert np.array_equal(now, np.asarray(Image.open(tmp_path / "fresh" / name))), name
        assert not np.array_equal(now, before), name  # dressed anew, in the new photo's garment
    with pytest.raises(InputError, match="watch watches a folder"):
        dress_folder(hot / TRYON_PERSONS[0], worn, tmp_path / "o2", **models, watch=stop)


def test_every_person_in_every_garment_watched_both_folders(models, tryon_folders, tmp_path):
    """``all_pairs`` watched: a garment that comes is dressed on every person there, a person that
    comes in every garment there; nothing is dressed twice."""
    persons, garments = tryon_folders
    people, clothes = tmp_path / "people", tmp_path / "clothes"
    people.mkdir()
    clothes.mkdir()
    _written(people / TRYON_PERSONS[0], persons / TRYON_PERSONS[0])
    _written(clothes / "g0.png", garments / "g0.png")
    stop, results, ended = threading.Event(), [], {}

    def run() -> None:
        ended["summary"] = dress_folder(
            people, clothes, tmp_path / "out", **models, all_pairs=True, watch=stop, on_result=results.append
        )

    worker = threading.Thread(target=run)
    worker.start()
    try:
        _until(lambda: len(results) == 1)
        _written(clothes / "g1.png", garments / "g1.png")  # a garment comes: on the one person
        _until(lambda: len(results) == 2)
        _written(people / TRYON_PERSONS[1], persons / TRYON_PERSONS[1])  # a person comes: in both garments
        _until(lambda: len(results) == 4)
        time.sleep(2.5)  # (a walk more: nothing is given twice)
    finally:
        stop.set()
        worker.join(timeout=60)
    assert not worker.is_alive() and [r.status for r in results] == ["ok"] * 4, results
    first, second = (Path(name).stem for name in TRYON_PERSONS[:2])
    assert sorted(os.listdir(tmp_path / "out")) == sorted(
        f"{person}__{garment}.png" for person in (first, second) for garment in ("g0", "g1")
    )
    assert ended["summary"].ok == 4


def test_a_watched_folder_of_persons_that_goes_is_waited_for_not_failed(tryon_folders, tmp_path, caplog):
    from clothes_extractor.runtime.pairs import Pairs
    from clothes_extractor.runtime.watch import Watch, pair_job, watched_pairs

    persons, garments = tryon_folders
    hot, away, garment = tmp_path / "hot", tmp_path / "away", garments / "g0.png"
    hot.mkdir()
    _written(hot / "a.jpg", persons / TRYON_PERSONS[0])
    os.utime(garment, (HOUR_AGO, HOUR_AGO))
    watch = Watch(watched_pairs(Pairs(hot, garment), tmp_path / "out", "png"), poll_s=0.0, describe=pair_job)
    jobs = watch.jobs()

    def next_walk() -> list[str]:
        passes, given = watch.passes, []
        for job in jobs:
            if job is not None:
                given.append(f"{Path(job.person).name} {job.status if hasattr(job, 'status') else 'to dress'}")
            elif watch.passes > passes:
                return given
        return given

    assert next_walk() == ["a.jpg to dress"]
    hot.rename(away)
    with caplog.at_level(logging.WARNING, logger="clothes_extractor.runtime.watch"):
        assert next_walk() == [] and next_walk() == []  # (not the folder's error at every walk)
        away.rename(hot)
        _written(hot / "b.jpg", persons / TRYON_PERSONS[1])
        assert next_walk() == ["b.jpg to dress"]
    assert [record.getMessage().split(" ", 2)[1:] for record in caplog.records] == [
        ["is", "gone (a share unmounted, the folder moved or removed?): the watch waits for it to come back"],
        ["is", "back: the watch takes its photos again"],
    ]
    watch.stop.set()


def test_tryon_watch_dresses_the_persons_that_come_and_ends_on_sigterm(tryon_folders, tmp_path):
    persons, garments = tryon_folders
    hot, out, report, err = tmp_path / "hot", tmp_path / "out", tmp_path / "r.jsonl", tmp_path / "err.txt"
    hot.mkdir()
    _written(hot / "a.jpg", persons / TRYON_PERSONS[0])  # there before the watch
    args = ["tryon", "--person", hot, "--garment", garments / "g0.png", "-o", out, "--watch", "--report", report]
    process = start_cli(args, err)
    try:
        report_lines(report, 1, process)
        _written(hot / "b.jpg", b"an upload cut off")  # taken, fails...
        report_lines(report, 2, process)
        _written(hot / "b.jpg", persons / TRYON_PERSONS[1], minutes=1)  # ...and finished: dressed
        _written(hot / "c.jpg", persons / TRYON_PERSONS[2])
        lines = report_lines(report, 4, process)
        time.sleep(2.5)  # (a walk more: nothing is given twice)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        process.kill()
    stderr = err.read_text()
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert process.returncode == 0, stderr  # every pair's last try succeeded
    assert [(Path(r["person"]).name, r["status"]) for r in lines[:2]] == [("a.jpg", "ok"), ("b.jpg", "error")]
    assert sorted((Path(r["person"]).name, r["status"]) for r in lines[2:]) == [("b.jpg", "ok"), ("c.jpg", "ok")]
    assert len(lines) == 4 and lines[1]["error_of"] == "person"
    assert "dressing 1 pair(s), then the pairs of each new or changed photo as it comes" in stderr
    assert "(--watch tries it again once its photo is written again or its permissions change)" in stderr
    assert f"{hot / 'b.jpg'} + {garments / 'g0.png'}: dressed now, changed since its error" in stderr
    assert "stopping the watch: the pairs in flight are finished first" in stderr
    assert "watched for" in stderr and "3 dressed, 0 skipped (already done), 0 failed" in stderr
    assert "failed at first, done once written again: 1" in stderr
    assert sorted(os.listdir(out)) == ["a__g0.png", "b__g0.png", "c__g0.png"]  # nothing half-written
    Image.open(out / "b__g0.png").load()


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--dry-run"], "--dry-run says what one run would do: leave out --watch"),
        (["--pairs", "PAIRS"], "--pairs's list is taken once"),
        (["-o", "one.png"], "-o names one image: --watch writes to a folder"),
        (["-o", "-"], "-o - (standard output) takes one pair: --watch writes to a folder"),
        (["--person", "PERSON"], "is one: give --person FOLDER"),
    ],
)
def test_tryon_watch_refuses_what_has_no_folder_to_watch_or_no_end(tryon_folders, tmp_path, extra, said):
    persons, garments = tryon_folders
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(f"{TRYON_PERSONS[0]} g0.png\n")
    values = {"PAIRS": pairs, "PERSON": persons / TRYON_PERSONS[0]}
    extra = [str(values.get(item, item)) for item in extra]
    person = [] if "--person" in extra else ["--person", str(persons)]
    garment = str(garments) if "--pairs" in extra else str(garments / "g0.png")
    output = [] if "-o" in extra else ["-o", str(tmp_path / "out")]
    result = CliRunner().invoke(cli, ["tryon", *person, "--garment", garment, *output, "--watch", *extra])
    assert result.exit_code == 2 and said in result.output, result.output
    assert not (tmp_path / "out").exists()


def test_a_watched_person_that_cannot_be_read_is_dressed_once_its_permissions_are_mended(tryon_folders, tmp_path):
    """The pair is given again (its person's status-change time moved), and the person is read
    again: a file known unusable is known by its status-change time too (``DressJob.person_read``)."""
    persons, garments = tryon_folders
    hot, out, report, err = tmp_path / "hot", tmp_path / "out", tmp_path / "r.jsonl", tmp_path / "err.txt"
    hot.mkdir()
    _written(hot / "a.jpg", persons / TRYON_PERSONS[0])
    _written(hot / "b.jpg", persons / TRYON_PERSONS[1])  # (an upload written by another account, say)
    args = ["tryon", "--person", hot, "--garment", garments / "g0.png", "-o", out, "--watch", "--report", report]
    first, lines, code = watched_until_mended(args, hot / "b.jpg", report, err, failing=2)
    stderr = err.read_text()
    assert sorted((Path(r["person"]).name, r["status"]) for r in first) == [("a.jpg", "ok"), ("b.jpg", "error")]
    locked = next(r for r in first if r["status"] == "error")
    assert locked["error_of"] == "person" and "Permission denied" in locked["error"], locked
    assert (Path(lines[2]["person"]).name, lines[2]["status"]) == ("b.jpg", "ok")
    assert code == 0, stderr  # every pair's last try succeeded
    assert f"{hot / 'b.jpg'} + {garments / 'g0.png'}: dressed now, changed since its error" in stderr
    assert sorted(os.listdir(out)) == ["a__g0.png", "b__g0.png"]
