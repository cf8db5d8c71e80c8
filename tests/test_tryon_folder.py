"""Try-on's folder job as its users run it, on the bundled try-on model and parser:
``dress_folder`` from Python (the pixels of ``dress``, a rerun that skips what is done, pairs
from a list, a cancel button, shards, garments taken from photos, bad inputs reported and the
job going on), the stages under it (the next batch read while one is dressed, a photo's first
look fitted once) and the ``tryon`` command's own (an output folder that is an input, a rerun
of ``--garment-from``, a report another run writes, Ctrl-C)."""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clothes_extractor import dress, dress_folder, new_session
from clothes_extractor.errors import InputError, OutputError
from clothes_extractor.models import model_for
from clothes_extractor.runtime.images import SIGNATURE_KEY
from clothes_extractor.runtime.records import content_digest
from conftest import ROOT, TRYON_PERSONS, cli_env, opened_files, peak_memory, run_cli


@pytest.fixture(scope="module")
def models():
    with new_session("tryon", "cpu") as tryon, new_session("segmenter", "cpu") as parser:
        yield {"tryon": tryon, "parser": parser}


def files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


def test_every_person_in_one_garment_with_the_pixels_of_dress_and_a_rerun(models, tryon_folders, tmp_path):
    persons, garments = tryon_folders
    out, seen, totals, threads = tmp_path / "out", [], [], set()

    def on_result(result) -> None:  # the pairs are written on worker threads, reported in this one
        threads.add(threading.current_thread())
        seen.append(result)

    summary = dress_folder(persons, garments / "g0.png", out, **models, on_start=totals.append, on_result=on_result)
    assert threads == {threading.current_thread()}
    assert (summary.ok, summary.skipped, summary.failed, summary.stopped) == (3, 0, 0, None)
    assert totals == [3] and sorted(result.status for result in seen) == ["ok"] * 3
    assert files(out) == [f"{Path(name).stem}__g0.png" for name in TRYON_PERSONS]
    for name in TRYON_PERSONS:
        expected = dress(persons / name, garments / "g0.png", **models)
        written = Image.open(out / f"{Path(name).stem}__g0.png")
        assert written.size == Image.open(persons / name).size
        assert np.array_equal(np.asarray(written.convert("RGB")), np.asarray(expected))
    again = dress_folder(persons, garments / "g0.png", out, **models)
    assert (again.ok, again.skipped, again.failed) == (0, 3, 0)


def test_pairs_from_a_list_with_a_missing_photo_reported_and_the_rest_dressed(models, tryon_folders, tmp_path):
    persons, garments = tryon_folders
    out, seen = tmp_path / "out", []
    listing = [
        ("figure-2.jpg", "g0.png"),
        ("figure-3.jpg", "g1.png"),
        ("nobody.jpg", "g0.png"),
        ("figure-2.jpg", "g0.png"),
    ]
    summary = dress_folder(persons, garments, out, pairs=listing, **models, output_format="jpg", on_result=seen.append)
    assert (summary.ok, summary.failed) == (2, 1)
    assert files(out) == ["figure-2__g0.jpg", "figure-3__g1.jpg"]
    (error,) = [result for result in seen if result.status == "error"]
    assert error.person == str(persons / "nobody.jpg") and "not found" in error.error
    pairs_file = tmp_path / "pairs.txt"
    pairs_file.write_text("# who wears what\nfigure-6.jpg g1.png\n")
    summary = dress_folder(persons, garments, out, pairs=pairs_file, **models, output_format="jpg")
    assert summary.ok == 1 and "figure-6__g1.jpg" in files(out)


def test_settings_that_cannot_work_are_refused_before_any_pair(models, tryon_folders, tmp_path):
    persons, garments = tryon_folders
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="both folders: give pairs="):
        dress_folder(persons, garments, out, **models)
    with pytest.raises(ValueError, match="pairs= names files in folders"):
        dress_folder(persons, garments / "g0.png", out, pairs=[("figure-2.jpg", "g0.png")], **models)
    with pytest.raises(InputError, match=r"pairs\[1\]: expected \(person, garment\), got 'figure-3.jpg'"):
        dress_folder(persons, garments, out, pairs=[("figure-2.jpg", "g0.png"), "figure-3.jpg"], **models)
    with pytest.raises(InputError, match="person not found"):
        dress_folder(tmp_path / "nobody", garments / "g0.png", out, **models)
    with pytest.raises(ValueError, match="output_format"):
        dress_folder(persons, garments / "g0.png", out, output_format="gif", **models)
    with pytest.raises(ValueError, match="workers must be >= 1"):
        dress_folder(persons, garments / "g0.png", out, workers=0, **models)
    with pytest.raises(ValueError, match="batch size must be a whole number from 1 to 1024"):
        dress_folder(persons, garments / "g0.png", out, batch_size=5000, **models)
    with pytest.raises(OutputError, match="is the person folder"):
        dress_folder(persons, garments / "g0.png", persons, **models)
    assert not out.exists() and files(persons) == sorted(TRYON_PERSONS)


def test_an_output_name_too_long_is_reported_on_every_run(models, tryon_folders, tmp_path):
    """A person's 254-byte name + ``__g0.png``: the rerun's resume check raised ``OSError: File
    name too long`` out of the job (a traceback from the command) until the 58th stop."""
    persons, garments = tryon_folders
    (persons / TRYON_PERSONS[0]).rename(persons / ("p" * 250 + ".jpg"))
    seen: list = []
    for _ in range(2):
        summary = dress_folder(persons, garments / "g0.png", tmp_path / "out", **models, on_result=seen.append)
        assert summary.failed == 1 and summary.ok + summary.skipped == 2
    failed = [result.error for result in seen if result.status == "error"]
    assert len(failed) == 2 and all("File name too long (its name is 258 bytes)" in error for error in failed), failed


def test_a_person_photo_changed_since_is_dressed_again(models, tryon_folders, tmp_path):
    """A person photographed again under the old name: a rerun kept the old result (its
    signature was this run's) until the 58th stop; outputs record their inputs now, and the
    digest of their bytes: one only touched (a new time, the same bytes) is not dressed again."""
    persons, garments = tryon_folders
    runs = []
    ahead = time.time() + 60
    touch = functools.partial(os.utime, persons / TRYON_PERSONS[1], (ahead, ahead))
    shoot_again = functools.partial(shutil.copy, persons / TRYON_PERSONS[2], persons / TRYON_PERSONS[0])
    for change in (None, None, touch, shoot_again):
        if change is not None:
            change()
        summary = dress_folder(persons, garments / "g0.png", tmp_path / "out", **models)
        runs.append((summary.ok, summary.skipped, summary.failed))
    assert runs == [(3, 0, 0), (0, 3, 0), (0, 3, 0), (1, 2, 0)]


def test_tryon_refuses_an_output_folder_that_is_an_input_folder(tryon_folders):
    persons, garments = tryon_folders
    result = run_cli("tryon", "--person", str(garments / "g0.png"), "--garment", str(garments), "-o", str(garments))
    assert result.returncode == 1, result.stderr
    assert "is the garment folder" in result.stderr and files(garments) == ["g0.png", "g1.png"]


def test_a_cancel_stops_after_the_pairs_in_flight_and_a_rerun_resumes(models, tryon_folders, tmp_path):
    persons, garments = tryon_folders
    for copy in range(3):  # 12 persons: more than the two batches in flight
        for name in TRYON_PERSONS:
            shutil.copy(persons / name, persons / f"{copy}-{name}")
    out, cancel = tmp_path / "out", threading.Event()
    done = []

    def on_result(result) -> None:
        done.append(result)
        cancel.set()  # the button, pressed when the first pair is written

    summary = dress_folder(
        persons, garments / "g1.png", out, **models, batch_size=1, on_result=on_result, cancel=cancel
    )
    assert summary.stopped == "cancelled" and summary.failed == 0
    assert 1 <= summary.ok <= 3 and len(done) == summary.ok  # the first, and the two in flight after it
    assert files(out) == sorted(Path(result.output).name for result in done)
    rest = dress_folder(persons, garments / "g1.png", out, **models)
    assert (rest.ok, rest.skipped, rest.stopped) == (12 - summary.ok, summary.ok, None) and len(files(out)) == 12


def test_each_person_and_garment_file_is_read_once_and_the_record_holds_their_digest(models, tryon_folders, tmp_path):
    """A batch reads each person photo and its garment once (``images.read_whole``), and each
    pair's record holds the digest of those bytes (its writer's ``DressJob.with_content``): before,
    every pair read its person again, and its garment again, for the digest."""
    persons, garments = tryon_folders
    out, person_files = tmp_path / "out", sorted(os.path.realpath(p) for p in persons.iterdir())
    garment = os.path.realpath(garments / "g0.png")
    summary = None

    def job():
        nonlocal summary
        summary = dress_folder(persons, garments / "g0.png", out, **models, batch_size=2, workers=2)

    opened = opened_files(job)
    assert summary is not None and (summary.ok, summary.failed) == (3, 0)
    assert sorted(path for path in opened if path in person_files) == person_files  # each once
    assert opened.count(garment) == 1  # once for the job (the batch after takes it from the batch before)
    for person in persons.iterdir():
        written = Image.open(out / f"{person.stem}__g0.png").info[SIGNATURE_KEY]
        assert written.endswith(f"+{content_digest([person, garments / 'g0.png'])}")
        os.utime(person)  # touched: new times, the same bytes
    rerun = dress_folder(persons, garments / "g0.png", out, **models)
    assert (rerun.ok, rerun.skipped) == (0, 3)  # (by the digest)


def test_the_next_batch_is_read_while_this_one_is_dressed(models, tryon_folders, tmp_path, monkeypatch):
    from clothes_extractor.runtime import dress_reads
    from clothes_extractor.runtime.dress_jobs import DressJob, run_dressing
    from clothes_extractor.runtime.dressing import Dresser

    persons, garments = tryon_folders
    read, seen_when_drawn = [], []
    load_person = dress_reads.load_person
    monkeypatch.setattr(
        dress_reads, "load_person", lambda path, data: read.append(path.name) or load_person(path, data)
    )
    dresser = Dresser(models["tryon"], models["parser"])
    draw_pairs = dresser.draw_pairs

    def draw_pairs_seen(pairs):  # (a batch of one): waits a moment for the next photo's read to start
        deadline = time.monotonic() + 3
        while len(read) <= len(seen_when_drawn) + 1 < len(TRYON_PERSONS) and time.monotonic() < deadline:
            time.sleep(0.01)
        seen_when_drawn.append(len(read))
        return draw_pairs(pairs)

    dresser.draw_pairs = draw_pairs_seen
    jobs = [DressJob(persons / name, garments / "g0.png", tmp_path / f"{name}.png") for name in TRYON_PERSONS]
    summary = run_dressing(dresser, jobs, batch_size=1, workers=2)
    assert summary.ok == 3 and sorted(read) == sorted(TRYON_PERSONS)
    assert seen_when_drawn == [2, 3, 3]  # the first pair drawn with the second being read, and so on


@pytest.mark.parametrize("garment", ["blank", "undecodable"])
def test_a_garment_that_dresses_no_one_is_read_once_not_once_a_person(
    garment, models, tryon_folders, tmp_path, monkeypatch
):
    """One bad garment for a folder of persons: every pair reported with its reason, and the
    persons after the first two batches neither decoded nor parsed (a million persons in a blank
    garment decoded and parsed a million photos, to report the same thing a million times)."""
    from clothes_extractor.runtime import dress_reads
    from clothes_extractor.runtime.dressing import Dresser

    persons, _ = tryon_folders
    for copy in range(1, 6):  # 18 persons
        for name in TRYON_PERSONS:
            shutil.copy(persons / name, persons / f"c{copy}-{name}")
    bad = tmp_path / "garment.png"
    if garment == "blank":
        Image.new("RGB", (192, 256), "white").save(bad)
    else:
        bad.write_bytes(b"not an image")
    read, parsed = [], []
    load_person, parse = dress_reads.load_person, Dresser.parse
    monkeypatch.setattr(
        dress_reads, "load_person", lambda path, data: read.append(path.name) or load_person(path, data)
    )
    monkeypatch.setattr(Dresser, "parse", lambda self, photos: parsed.extend(photos) or parse(self, photos))
    results = []
    summary = dress_folder(persons, bad, tmp_path / "out", **models, batch_size=2, workers=2, on_result=results.append)
    assert (summary.ok, summary.failed) == (0, 18) and not (tmp_path / "out").exists()
    why = "0.0% of it is not background" if garment == "blank" else "is not an image in a format Pillow can read"
    assert all(why in result.error for result in results), results[0].error
    assert {result.error_of for result in results} == {"garment"}  # (the garment's fault, whichever person)
    assert len(read) <= 4 and parsed == []  # (the first two batches are read before the garment is known)


def test_one_person_in_a_folder_of_garments_is_read_and_parsed_once_a_batch(
    models, tryon_folders, tmp_path, monkeypatch
):
    from clothes_extractor.data.synth import synth_sample
    from clothes_extractor.runtime import dress_reads
    from clothes_extractor.runtime.dressing import Dresser

    persons, garments = tryon_folders
    for index in range(2, 6):
        synth_sample(index, seed=5, size=(256, 192))[2].save(garments / f"g{index}.png")
    read, parsed = [], []
    load_person, parse = dress_reads.load_person, Dresser.parse
    monkeypatch.setattr(
        dress_reads, "load_person", lambda path, data: read.append(path.name) or load_person(path, data)
    )
    monkeypatch.setattr(Dresser, "parse", lambda self, photos: parsed.extend(photos) or parse(self, photos))
    person, out = persons / TRYON_PERSONS[0], tmp_path / "out"
    summary = dress_folder(person, garments, out, **models, batch_size=4, workers=2)
    assert (summary.ok, summary.failed) == (6, 0)
    assert read == [TRYON_PERSONS[0]] and len(parsed) == 2  # (6 pairs in batches of 4: one parse a batch)
    monkeypatch.undo()
    for index in range(6):
        expected = dress(person, garments / f"g{index}.png", **models)
        written = Image.open(out / f"{person.stem}__g{index}.png").convert("RGB")
        assert np.array_equal(np.asarray(written), np.asarray(expected)), index


def test_a_person_with_nothing_to_dress_reads_two_batches_of_garments_not_all(
    models, tryon_folders, tmp_path, monkeypatch
):
    """The garment side's rule, for a person: one with no top to dress anew (found when its
    first batch is drawn) for a folder of garments has the garments after two batches neither
    decoded nor parsed; a bad garment a pairs listing comes back to later is not read again."""
    from clothes_extractor.data.synth import synth_sample
    from clothes_extractor.runtime.dress_jobs import DressJob, run_dressing
    from clothes_extractor.runtime.dressing import Dresser

    _, garments = tryon_folders
    for index in range(2, 16):
        synth_sample(index, seed=5, size=(256, 192))[2].save(garments / f"g{index}.png")
    wall = tmp_path / "wall.png"
    Image.new("RGB", (192, 256), (90, 120, 150)).save(wall)  # a wall: no one to dress
    read = []  # the garments fitted: "blank" or "drawn"
    fit = Dresser.garment
    seen = lambda image: "blank" if np.asarray(image).min() == 255 else "drawn"  # noqa: E731
    monkeypatch.setattr(Dresser, "garment", lambda self, image: read.append(seen(image)) or fit(self, image))
    results = []
    summary = dress_folder(
        wall, garments, tmp_path / "out", **models, batch_size=2, workers=2, on_result=results.append
    )
    assert (summary.ok, summary.failed) == (0, 16) and {result.error_of for result in results} == {"person"}
    assert all("found no upper-body clothing to replace" in result.error for result in results)
    assert len(read) <= 4, read  # (the first two batches are read before the person is known)
    person = tryon_folders[0] / TRYON_PERSONS[0]
    blank = tmp_path / "blank.png"
    Image.new("RGB", (192, 256), "white").save(blank)
    jobs = [
        DressJob(person, garment, tmp_path / f"l{i}.png")
        for i, garment in enumerate([blank] + [garments / "g0.png"] * 4 + [blank] * 3)
    ]
    read.clear()
    summary = run_dressing(Dresser(models["tryon"], models["parser"]), jobs, batch_size=2, workers=2)
    assert (summary.ok, summary.failed) == (4, 4) and read.count("blank") == 1, read  # (batches 1, 3 and 4)


def test_ctrl_c_while_waiting_on_a_write_still_reports_it(models, tryon_folders, tmp_path, monkeypatch):
    """Ctrl-C lands where the job waits for the oldest write to finish: that write completes
    and is reported (the next batch is read by then, so the wait is where the job spends
    its time on a fast model)."""
    from clothes_extractor.runtime import dress_jobs
    from clothes_extractor.runtime.dress_jobs import DressJob, run_dressing
    from clothes_extractor.runtime.dressing import Dresser

    persons, garments = tryon_folders
    go_on, writing, write_atomic = threading.Event(), threading.Event(), dress_jobs.write_atomic

    def held_write(path, data):  # the write in progress when Ctrl-C comes
        writing.set()
        go_on.wait(30)
        write_atomic(path, data)

    monkeypatch.setattr(dress_jobs, "write_atomic", held_write)
    main = threading.get_ident()

    def press_ctrl_c() -> None:
        writing.wait(30)
        time.sleep(0.2)  # the job is waiting on that write by now
        signal.pthread_kill(main, signal.SIGINT)
        time.sleep(0.2)
        go_on.set()

    presser = threading.Thread(target=press_ctrl_c)
    presser.start()
    (person,) = TRYON_PERSONS[:1]
    jobs = [DressJob(persons / person, garments / "g0.png", tmp_path / "out" / "one.png")]
    seen = []
    with pytest.raises(KeyboardInterrupt):
        run_dressing(Dresser(models["tryon"], models["parser"]), jobs, on_result=seen.append, workers=1)
    presser.join()
    assert files(tmp_path / "out") == ["one.png"] and [result.status for result in seen] == ["ok"]


def test_a_photos_first_look_is_the_try_on_input_it_would_have_fitted(models, tryon_folders):
    """The bundled parser and try-on model share their frame: a photo with no second look is
    fitted to the try-on by its letterbox for the parser, made once (the same array as
    fitting the photo anew); a full-body photo's second look is fitted anew."""
    from clothes_extractor.runtime.dressing import Dresser

    persons, garments = tryon_folders
    dresser = Dresser(models["tryon"], models["parser"])
    framed = Image.open(persons / TRYON_PERSONS[0]).convert("RGB")
    small = Image.new("RGB", (framed.width * 3, framed.height * 3), (240, 240, 240))
    small.paste(framed, (framed.width, framed.height))  # a full-body framing: the parser looks again
    garment = dresser.garment(Image.open(garments / "g0.png").convert("RGB"))
    for photo, reused in ((framed, True), (small, False)):
        person = dresser.person(photo)
        (parsed,) = dresser.parse([person])
        prepared, anew = dresser.fit(person, parsed, garment), dresser.fit(photo, parsed, garment)
        assert (prepared.inputs["person"] is person.plane) == reused
        for name in anew.inputs:
            assert np.array_equal(prepared.inputs[name], anew.inputs[name]), name
        assert prepared.window == pytest.approx(anew.window) and prepared.photo is photo


def test_a_tree_of_persons_with_r_mirrors_its_subfolders_and_never_walks_the_output(models, tryon_folders, tmp_path):
    persons, garments = tryon_folders
    for sub in ("a", "b/c"):  # the same names again in subfolders: outputs of their own there
        (persons / sub).mkdir(parents=True)
        shutil.copy(persons / TRYON_PERSONS[0], persons / sub / TRYON_PERSONS[0])
    top = [f"{Path(name).stem}__g0.png" for name in TRYON_PERSONS]
    expected = sorted(top + [f"{sub}/{Path(TRYON_PERSONS[0]).stem}__g0.png" for sub in ("a", "b/c")])

    def written(folder: Path) -> list[str]:
        return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*.png"))

    halves = []
    for share in ("1/2", "2/2"):  # shards split by the output's path: the same name in two folders too
        command = ("tryon", "--person", persons, "--garment", garments / "g0.png", "-r", "--provider", "cpu")
        done = run_cli(*command, "-o", tmp_path / "shards", "--shard", share)
        assert done.returncode == 0, done.stderr
        halves.append(len(written(tmp_path / "shards")))
    assert 0 < halves[0] < halves[1] == 5 and written(tmp_path / "shards") == expected
    flat = dress_folder(persons, garments / "g0.png", tmp_path / "flat", **models)
    assert flat.ok == 3 and written(tmp_path / "flat") == sorted(top)  # without recursive, the top only
    dry = run_cli("tryon", "--person", persons, "--garment", garments / "g0.png", "-o", tmp_path / "dry", "--dry-run")
    assert dry.returncode == 0 and "dry run of 3 pair(s)" in dry.stderr  # and the subfolders are named:
    assert f"note: photos in subfolders are not taken without --recursive: {persons / 'a'} and 1 more\n" in dry.stderr
    out = persons / "dressed"  # inside the tree it walks
    summary = dress_folder(persons, garments / "g0.png", out, recursive=True, **models)
    assert (summary.ok, summary.failed) == (5, 0) and written(out) == expected
    again = dress_folder(persons, garments / "g0.png", out, recursive=True, **models)
    assert (again.ok, again.skipped) == (0, 5)  # the dressed photos under the tree are not persons
    refused = run_cli("tryon", "--person", persons, "--garment", garments, "-r", "--pairs", __file__, "-o", out)
    assert refused.returncode == 2 and "-r walks a folder, --pairs names the files" in refused.stderr
    with pytest.raises(OutputError, match="is the person folder"):  # the tree's top itself: refused, not walked
        dress_folder(persons, garments / "g0.png", persons, recursive=True, **models)
    with pytest.raises(ValueError, match="recursive walks a folder, pairs= names"):
        dress_folder(persons, garments, out, pairs=[("figure-2.jpg", "g0.png")], recursive=True, **models)


def test_the_plan_of_a_folder_job_holds_one_folder_not_every_pair(tmp_path):
    """A tree of persons (3,000 in 60 folders, ``-r``) in one garment is walked as the job
    goes, as extract's photos are: planning it (the pairs, their outputs, the claims on
    them) holds about one folder's names; a list of the same jobs grows with the tree."""
    from clothes_extractor.runtime.pairs import Pairs, Tree, dress_jobs

    persons = tmp_path / "persons"
    for folder in range(60):
        (persons / f"f{folder:02d}").mkdir(parents=True)
        for index in range(50):
            (persons / f"f{folder:02d}" / f"p{index:02d}.jpg").touch()  # the plan never opens them
    garment = tmp_path / "g.png"
    garment.touch()
    tree = Tree.of(persons, garment, recursive=True)

    def streamed() -> None:
        pairs = Pairs(persons, garment, tree=tree)
        assert pairs.count() == (3000, 3000)
        assert sum(1 for _ in dress_jobs(pairs, tmp_path / "out", "png")) == 3000

    def listed() -> None:
        assert len(list(dress_jobs(Pairs(persons, garment, tree=tree), tmp_path / "out", "png"))) == 3000

    streamed()  # once untraced (pathlib interns names the first time it meets them)
    walked, kept = peak_memory(streamed), peak_memory(listed)
    assert walked * 10 < kept, (walked, kept)


PAIRS_MEMORY = """
import json, sys, tracemalloc
from pathlib import Path
from clothes_extractor.runtime.pairs import Pairs, read_pairs

listing, persons, garments = Path(sys.argv[1]), Path("persons"), Path("garments")
list(read_pairs(listing, persons, garments)[0])  # once untraced: pathlib interns the names it meets
tracemalloc.start()
pairs, repeats = read_pairs(listing, persons, garments)
listed = tracemalloc.get_traced_memory()[0]  # what the checked listing holds
tracemalloc.stop()
assert repeats == 1 and Pairs(persons, garments, listing=pairs).count() == (10_000, 10_000)
tracemalloc.start()
as_list = list(pairs)
held = tracemalloc.get_traced_memory()[0]
tracemalloc.stop()
print(json.dumps({"listing": listed, "list": held, "pairs": len(as_list)}))
"""


def test_a_pairs_file_is_read_again_as_the_job_goes_not_held(tmp_path):
    """A pairs file (a million lines took 1.1 GB held as a list, and 30 s to read): checked,
    counted and walked by reading it again each time, each pair once (a pass holds a 16-byte
    digest of each pair it met); the listing itself holds nothing per pair. Measured in a
    process of its own (a test worker's other threads allocate meanwhile)."""
    from clothes_extractor.runtime.pairs import Pairs, dress_jobs, read_pairs

    persons, garments = tmp_path / "persons", tmp_path / "garments"
    names = [f"person-{index:05d}.jpg garment-{index % 100:03d}.png" for index in range(10_000)]
    listing = tmp_path / "pairs.txt"
    listing.write_text("# who wears what\n" + "\n".join(names) + f"\n\n./{names[7]}\n")  # (a repeat)
    done = subprocess.run([sys.executable, "-c", PAIRS_MEMORY, listing], capture_output=True, text=True, env=cli_env())
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["pairs"] == 10_000 and found["listing"] * 50 < found["list"], found
    jobs = list(
        dress_jobs(Pairs(persons, garments, listing=read_pairs(listing, persons, garments)[0]), tmp_path, "png")
    )
    assert [(job.person.name, job.garment.name) for job in jobs[:2]] == [
        ("person-00000.jpg", "garment-000.png"),
        ("person-00001.jpg", "garment-001.png"),
    ]  # the file's order, the repeat dressed once
    assert len(jobs) == 10_000
    # a line that names no pair is refused before any work, naming it, as before
    listing.write_text("\n".join(names[:5]) + "\nperson-9.jpg\n")
    with pytest.raises(InputError, match=r"pairs.txt, line 6: expected 'PERSON GARMENT', got 'person-9.jpg'"):
        read_pairs(listing, persons, garments)


def test_two_shards_dress_every_pair_once(models, tryon_folders, tmp_path):
    persons, garments = tryon_folders
    written = []
    for share in ("1/2", "2/2"):
        folder = tmp_path / share.replace("/", "of")
        summary = dress_folder(persons, garments / "g0.png", folder, **models, shard=share, workers=1)
        assert summary.failed == 0 and summary.ok == len(files(folder))
        written += files(folder)
    assert sorted(written) == [f"{Path(name).stem}__g0.png" for name in TRYON_PERSONS]
    with pytest.raises(ValueError, match="shard"):
        dress_folder(persons, garments / "g0.png", tmp_path / "x", **models, shard="3/2")


def test_garments_from_photos_and_a_bad_photo_reported(models, tryon_folders, tmp_path):
    persons, _ = tryon_folders
    (persons / "broken.jpg").write_bytes(b"not a jpeg")
    person, seen = ROOT / "examples" / "photos" / "figure-3.jpg", []
    with new_session("generator", "cpu", outputs=["garment"]) as generator:
        summary = dress_folder(
            person,
            persons,
            tmp_path / "out",
            garment_from_photo=True,
            generator=generator,
            **models,
            on_result=seen.append,
        )
        expected = dress(person, persons / "figure-6.jpg", garment_from_photo=True, generator=generator, **models)
        # a done pair's photo, unreadable now but of the same size and time (unchanged, by what a
        # rerun looks at): a rerun never reads it
        done_photo = persons / "figure-6.jpg"
        kept, digest = done_photo.stat(), content_digest([person, done_photo])
        done_photo.write_bytes(b"\0" * kept.st_size)
        os.utime(done_photo, ns=(kept.st_atime_ns, kept.st_mtime_ns))
        rerun = dress_folder(person, persons, tmp_path / "out", garment_from_photo=True, generator=generator, **models)
    assert (rerun.ok, rerun.skipped, rerun.failed) == (0, 3, 1)  # (broken.jpg: stage one tried again, and failed)
    assert (summary.ok, summary.failed) == (3, 1)
    (error,) = [result for result in seen if result.status == "error"]
    assert error.garment == str(persons / "broken.jpg") and error.error.startswith("garment photo:")
    # each result names the garment photo, not stage one's temporary catalog image
    assert sorted(result.garment for result in seen) == sorted(str(path) for path in persons.iterdir())
    assert files(tmp_path / "out") == [f"figure-3__{Path(name).stem}.png" for name in TRYON_PERSONS]
    written = Image.open(tmp_path / "out" / "figure-3__figure-6.png")
    assert np.array_equal(np.asarray(written.convert("RGB")), np.asarray(expected))
    signature, _, inputs = written.info[SIGNATURE_KEY].partition(" inputs=")
    assert signature.endswith(f" generator={generator.digest[:16]}")  # (another one redoes it)
    # the person photo's and the garment photo's sizes, times and bytes (not stage one's catalog image's)
    assert inputs == ",".join(f"{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in (person, done_photo)) + f"+{digest}"


def test_stage_one_goes_a_window_of_pairs_at_a_time(models, tryon_folders, tmp_path):
    """--garment-from on a folder of garment photos: a window of pairs at a time, stage one
    extracts the window's photos, the window is dressed, and the catalog images no later pair
    needs are removed. The temporary space holds one window's images, not every photo's, and
    the first pairs come out after one window's stage one. One garment photo for a folder of
    persons is extracted once. The same bytes as in one window."""
    from clothes_extractor.runtime.dress_jobs import run_dressing
    from clothes_extractor.runtime.dressing import Dresser
    from clothes_extractor.runtime.pairs import Pairs, dress_jobs
    from clothes_extractor.runtime.stage_one import dress_from_photos, extract_garments

    persons, _ = tryon_folders
    worn = tmp_path / "worn"
    worn.mkdir()
    for index in range(5):
        shutil.copy(persons / TRYON_PERSONS[index % len(TRYON_PERSONS)], worn / f"w{index}.jpg")
    dresser, events, stage = Dresser(models["tryon"], models["parser"]), [], tmp_path / "stage"
    with new_session("generator", "cpu", outputs=["garment"]) as generator:

        def extract(photos: list[Path], into: Path):
            events.append(("extract", len(photos)))
            return extract_garments(photos, into, generator, dresser.parser)

        def run(person: Path, garment: Path, out: Path, window: int):
            dress = functools.partial(
                run_dressing, dresser, workers=1, on_result=lambda _: events.append(("dressed", held()))
            )
            jobs = dress_jobs(Pairs(person, garment), out, "png")
            return dress_from_photos(jobs, stage, extract, dress, dresser.signature, window=window)

        def held() -> int:  # the catalog images in the temporary folder
            return sum(1 for _ in stage.rglob("*.png"))

        summary = run(ROOT / "examples" / "photos" / "figure-3.jpg", worn, tmp_path / "out", window=2)
        assert (summary.ok, summary.failed, held()) == (5, 0, 1)
        assert events == [("extract", 2), ("dressed", 2), ("dressed", 2)] * 2 + [("extract", 1), ("dressed", 1)]
        events.clear()
        run(ROOT / "examples" / "photos" / "figure-3.jpg", worn, tmp_path / "whole", window=512)
        assert events[0] == ("extract", 5)
        events.clear()
        stage = tmp_path / "stage-2"
        summary = run(persons, worn / "w0.jpg", tmp_path / "persons", window=2)  # 3 persons, 1 garment photo
        assert summary.ok == 3 and events == [("extract", 1)] + [("dressed", 1)] * 3
    for name in files(tmp_path / "whole"):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    assert len(files(tmp_path / "whole")) == 5


def test_a_cancel_during_stage_one_dresses_nothing(models, tryon_folders, tmp_path):
    persons, _ = tryon_folders
    cancel, seen = threading.Event(), []
    cancel.set()  # pressed before the garments of the photos were extracted
    summary = dress_folder(
        ROOT / "examples" / "photos" / "figure-3.jpg",
        persons,
        tmp_path / "out",
        garment_from_photo=True,
        on_result=seen.append,
        cancel=cancel,
        **models,
    )
    assert summary.stopped == "cancelled" and (summary.ok, summary.failed) == (0, 0) and seen == []
    assert files(tmp_path / "out") == []


def test_a_rerun_extracts_only_the_garments_of_the_pairs_left(tryon_folders, tmp_path):
    persons, _ = tryon_folders
    garment_photos = tmp_path / "worn"
    shutil.copytree(persons, garment_photos)
    person, out = ROOT / "examples" / "photos" / "figure-2.jpg", tmp_path / "out"
    command = ("tryon", "--person", person, "--garment-from", garment_photos, "-o", out, "--provider", "cpu")
    command += ("--workers", "1")
    first = run_cli(*command)
    assert first.returncode == 0, first.stderr
    assert "extracting the garments of 3 photo(s)" in first.stderr and len(files(out)) == 3
    again = run_cli(*command)
    assert again.returncode == 0 and "extracting" not in again.stderr and "3 skipped" in again.stderr
    (out / "figure-2__figure-6.png").unlink()
    rest = run_cli(*command)
    assert rest.returncode == 0 and "extracting the garments of 1 photo(s)" in rest.stderr
    assert "1 dressed" in rest.stderr and "2 skipped" in rest.stderr and len(files(out)) == 3
    # another generator makes other garments of the photos: its rerun redoes every pair, once
    other = ("--generator", model_for("generator", gpu=True))  # the bundled fp16 file: another digest
    redone = run_cli(*command, *other)
    assert redone.returncode == 0, redone.stderr
    assert "extracting the garments of 3 photo(s) with generator-fp16.onnx" in redone.stderr
    assert "3 dressed" in redone.stderr and "0 skipped" in redone.stderr
    again = run_cli(*command, *other)
    assert again.returncode == 0 and "extracting" not in again.stderr and "3 skipped" in again.stderr


def test_ctrl_c_leaves_complete_files_in_the_report_and_a_rerun_does_the_rest(tryon_folders, tmp_path):
    persons, garments = tryon_folders
    for copy in range(10):  # 30 persons, a pair at a time: Ctrl-C comes with pairs still to do
        for name in TRYON_PERSONS:
            shutil.copy(persons / name, persons / f"{copy:02}-{name}")
    for name in TRYON_PERSONS:
        (persons / name).unlink()
    out, report = tmp_path / "out", tmp_path / "r.jsonl"
    args = ["tryon", "--person", persons, "--garment", garments / "g0.png", "-o", out, "--batch-size", "1"]
    command = [sys.executable, "-m", "clothes_extractor", *map(str, args), "--provider", "cpu"]
    process = subprocess.Popen([*command, "--report", str(report)], stderr=subprocess.PIPE, text=True, env=cli_env())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if out.is_dir() and any(path.suffix == ".png" for path in out.iterdir()):
            process.send_signal(signal.SIGINT)
            break
        time.sleep(0.01)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    finished = sorted(path for path in out.iterdir() if path.suffix == ".png")
    assert 1 <= len(finished) < 30 and not [path for path in out.iterdir() if path.name.startswith(".")]
    for path in finished:
        Image.open(path).load()
    written = {json.loads(line)["output"] for line in report.read_text().splitlines()}
    assert {str(path) for path in finished} <= written  # every finished output is in the report
    done = run_cli(*args, "--provider", "cpu")
    assert done.returncode == 0, done.stderr
    assert f"{30 - len(finished)} dressed" in done.stderr and f"{len(finished)} skipped" in done.stderr


def test_a_report_another_run_writes_is_refused_before_stage_one(tryon_folders, tmp_path):
    from clothes_extractor.commands.reports import Report

    persons, _ = tryon_folders
    shared = tmp_path / "report.jsonl"
    report = Report(shared)  # another run's, still running
    try:
        done = run_cli("tryon", "--person", persons, "--garment-from", ROOT / "examples" / "photos" / "figure-3.jpg",
                       "-o", tmp_path / "out", "--report", shared, "--provider", "cpu")  # fmt: skip
    finally:
        report.close()
    assert done.returncode == 1 and "is being written by another run right now" in done.stderr, done.stderr
    assert "extracting" not in done.stderr and files(tmp_path / "out") == []


def test_a_folder_with_no_images_says_what_it_holds(tmp_path):
    from clothes_extractor.runtime.pairs import Pairs

    persons = tmp_path / "persons"
    persons.mkdir()
    (persons / "notes.txt").touch()
    garment = tmp_path / "g.png"
    garment.touch()
    with pytest.raises(InputError, match=r"no images found in .*persons: the files there \(1 \.txt\) are not named"):
        Pairs(persons, garment).count()


def test_every_person_in_every_garment_a_garment_at_a_time(models, tryon_folders, tmp_path):
    """``all_pairs`` (``tryon --all-pairs``): two folders, every person in every garment, the pairs
    of one garment after the other (each garment read once a batch), with the pixels of ``dress``;
    a folder entry that cannot be read said once, not once a garment (a photo that cannot be
    decoded fails each of its pairs, as in any job); of two garments that would write the same
    outputs, the second said once and not dressed; a rerun skips them all."""
    persons, garments = tryon_folders
    (persons / "broken.jpg").write_bytes(b"not a photo")
    os.symlink("loop.jpg", persons / "loop.jpg")  # (a symbolic link loop: the walk cannot read it)
    shutil.copy(garments / "g1.png", garments / "g1.webp")  # (after g1.png: same outputs)
    out, seen, totals = tmp_path / "out", [], []
    summary = dress_folder(persons, garments, out, **models, all_pairs=True, on_start=totals.append,
                           on_result=seen.append, batch_size=4)  # fmt: skip
    assert (summary.ok, summary.failed) == (6, 4) and totals == [10]
    people = [Path(name).stem for name in sorted(TRYON_PERSONS)]
    assert files(out) == sorted(f"{person}__{garment}.png" for person in people for garment in ("g0", "g1"))
    dressed = [(Path(r.person).stem, Path(r.garment).stem) for r in seen if r.status == "ok"]
    assert dressed == [(person, "g0") for person in people] + [(person, "g1") for person in people]  # garment-major
    errors = {Path(r.person).name: r.error for r in seen if r.status == "error"}
    assert sorted(Path(r.person).name for r in seen if r.status == "error") == [
        "broken.jpg", "broken.jpg", "g1.webp", "loop.jpg"
    ], errors  # fmt: skip
    assert "its pairs' outputs would be those of g1.png: rename one of the two garments" in errors["g1.webp"]
    expected = dress(persons / TRYON_PERSONS[1], garments / "g1.png", **models)
    written = Image.open(out / f"{Path(TRYON_PERSONS[1]).stem}__g1.png").convert("RGB")
    assert np.array_equal(np.asarray(written), np.asarray(expected))
    again = dress_folder(persons, garments, out, **models, all_pairs=True)
    assert (again.ok, again.skipped, again.failed) == (0, 6, 4)
    for kwargs, said in (
        ({"pairs": [("figure-2.jpg", "g0.png")]}, "no pairs=, recursive="),
        ({"recursive": True}, "no pairs=, recursive="),
    ):
        with pytest.raises(ValueError, match=said):
            dress_folder(persons, garments, tmp_path / "x", **models, all_pairs=True, **kwargs)
    with pytest.raises(ValueError, match="give two folders"):
        dress_folder(persons, garments / "g0.png", tmp_path / "x", **models, all_pairs=True)
    with pytest.raises(ValueError, match=r"both folders: give pairs= to say who wears what, or all_pairs=True"):
        dress_folder(persons, garments, tmp_path / "x", **models)
    empty = tmp_path / "no-garments"
    empty.mkdir()
    with pytest.raises(InputError, match=f"no images found in {empty}"):
        dress_folder(persons, empty, tmp_path / "x", **models, all_pairs=True)
    assert not (tmp_path / "x").exists()


def test_tryon_all_pairs_on_the_command_line(tryon_folders, tmp_path):
    persons, garments = tryon_folders
    out = tmp_path / "out"
    done = run_cli("tryon", "--person", persons, "--garment", garments, "--all-pairs", "-o", out)
    assert done.returncode == 0 and "dressing 6 pair(s)" in done.stderr and len(files(out)) == 6, done.stderr
    for extra, said in (
        ((), "both folders: give --pairs FILE to say who wears what, or --all-pairs to dress every person in"),
        (("--all-pairs", "-r"), "--all-pairs takes the photos of the two folders themselves"),
        (("--all-pairs", "--pairs", __file__), "--all-pairs pairs every person with every garment, --pairs names"),
    ):
        refused = run_cli("tryon", "--person", persons, "--garment", garments, "-o", tmp_path / "x", *extra)
        assert refused.returncode == 2 and said in " ".join(refused.stderr.split()), refused.stderr
    one = run_cli("tryon", "--person", persons, "--garment", garments / "g0.png", "--all-pairs", "-o", tmp_path / "x")
    assert one.returncode == 2 and "--person and the garment must be folders" in one.stderr, one.stderr
    assert not (tmp_path / "x").exists()
