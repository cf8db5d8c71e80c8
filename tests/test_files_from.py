"""``extract FOLDER --files-from LIST``: only the photos a list names, their outputs mirroring
their paths under FOLDER; every entry that cannot be a photo there is reported with its line,
and the job goes on.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

from PIL import Image

from clothes_extractor.runtime.jobs import count_jobs, iter_jobs
from clothes_extractor.runtime.shards import Shard
from conftest import cli_env, dress_code_folder, person_photo, run_cli


def _folder(root: Path) -> Path:
    """photos/a/p0.jpg, a/p1.jpg, b/p2.jpg, b/twin.jpg + b/twin.png, b/caf<0xe9>.jpg, notes.txt"""
    folder = root / "photos"
    for rel, seed in (("a/p0.jpg", 0), ("a/p1.jpg", 1), ("b/p2.jpg", 2), ("b/twin.jpg", 3), ("b/twin.png", 3)):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        person_photo(seed)[0].save(folder / rel)
    person_photo(4)[0].save(os.fsdecode(bytes(folder / "b") + b"/caf\xe9.jpg"))  # a name that is no UTF-8
    (folder / "notes.txt").write_text("not a photo")
    return folder


def test_a_list_gives_its_photos_and_says_what_each_bad_line_is(tmp_path):
    folder = _folder(tmp_path)
    listing = tmp_path / "list.txt"
    listing.write_bytes(
        b"\xef\xbb\xbfa/p1.jpg\r\n# a comment\n\n"  # a byte-order mark, CRLF, comments and blank lines
        + os.fsencode(str(folder.absolute() / "b" / "p2.jpg")) + b"\n"  # absolute, inside the folder
        + b"b/caf\xe9.jpg\n./a/../a/p0.jpg\nb/twin.jpg\nb/twin.png\na/p1.jpg\n"
        + b"../photos2/x.jpg\n/etc/hostname\nb/missing.jpg\nb\nnotes.txt\n"
    )  # fmt: skip
    out = tmp_path / "out"
    jobs = list(iter_jobs([folder], out, "png", listing=listing))
    assert count_jobs([folder], out, listing=listing) == len(jobs) == 12
    good = [(str(job.photo.relative_to(folder)), str(job.output.relative_to(out))) for job in jobs if not job.error]
    assert good == [
        ("a/p1.jpg", "a/p1.png"),
        ("b/p2.jpg", "b/p2.png"),
        (os.fsdecode(b"b/caf\xe9.jpg"), os.fsdecode(b"b/caf\xe9.png")),
        ("a/p0.jpg", "a/p0.png"),
        ("b/twin.jpg", "b/twin.png"),
    ]
    errors = [job.error for job in jobs if job.error]
    expected = [
        "twin.jpg would both be written to",  # b/twin.png: its output is b/twin.jpg's
        "a/p1.jpg comes twice: it is extracted once",
        "(line 10 of ",  # ../photos2/x.jpg
        "(line 11 of ",  # /etc/hostname
        "b/missing.jpg (line 12 of",
        "(line 13 of ",  # b: a folder
        "notes.txt (line 14 of",
    ]
    assert len(errors) == len(expected) and all(e in error for e, error in zip(expected, errors, strict=True)), errors
    assert "is not inside" in errors[2] and "is not inside" in errors[3] and "not found" in errors[4]
    assert "is a folder" in errors[5] and "not a photo file's name" in errors[6]

    inside = folder / "garments"  # -o inside the folder: a list made by `find` after a run names its garments
    (inside / "a").mkdir(parents=True)
    person_photo(5)[0].save(inside / "a" / "p0.png")
    (tmp_path / "found.txt").write_text("a/p0.jpg\ngarments/a/p0.png\n")
    mine = list(iter_jobs([folder], inside, "png", listing=tmp_path / "found.txt"))
    assert mine[0].error is None and "is in this job's outputs or --masks: not a photo" in mine[1].error

    shares = [list(iter_jobs([folder], out, "png", shard=Shard(k, 3), listing=listing)) for k in range(3)]
    assert sorted(str(j.photo) for share in shares for j in share) == sorted(str(j.photo) for j in jobs)
    assert [count_jobs([folder], out, shard=Shard(k, 3), listing=listing) for k in range(3)] == list(map(len, shares))


def test_a_listed_dataset_photo_gets_its_label_map_as_the_walk_gives_it(tmp_path):
    folder = dress_code_folder(tmp_path, count=2)
    listing = tmp_path / "list.txt"
    listing.write_text("images/000001_0.jpg\n")
    (job,) = iter_jobs([folder], tmp_path / "out", "png", listing=listing)
    assert job.error is None and job.output == tmp_path / "out" / "000001_0.png"
    assert job.mask.kind == "labels" and job.mask.path == folder / "label_maps" / "000001_4.png"


def test_the_command_reads_the_list_from_a_file_or_standard_input(tiny_model_path, tmp_path):
    folder = _folder(tmp_path)
    masks = tmp_path / "masks"
    for rel in ("a/p0", "b/p2"):
        (masks / rel).parent.mkdir(parents=True, exist_ok=True)
        person_photo(int(rel[-1]))[1].save(masks / f"{rel}.png")
    out, report = tmp_path / "out", tmp_path / "report.jsonl"
    args = ("extract", folder, "-o", out, "--model", tiny_model_path, "--masks", masks, "--no-segmenter")
    done = run_cli(*args, "--files-from", "-", "--report", report, stdin=b"b/p2.jpg\na/p0.jpg\nb/nope.jpg\n")
    assert done.returncode == 1, done.stderr
    results = {Path(r["input"]).name: r for r in map(json.loads, report.read_text().splitlines())}
    assert results["p2.jpg"]["status"] == results["p0.jpg"]["status"] == "ok"
    assert results["p2.jpg"]["mask"].startswith("file:") and "(line 3 of" in results["nope.jpg"]["error"]
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.png")) == ["a/p0.png", "b/p2.png"]
    with Image.open(out / "a" / "p0.png") as garment:
        assert garment.size == (48, 64)

    listing = tmp_path / "list.txt"
    listing.write_text("a/p0.jpg\nb/p2.jpg\n")
    again = run_cli(*args, "--files-from", listing)
    assert again.returncode == 0 and "0 extracted" in again.stderr and "2 skipped" in again.stderr, again.stderr
    refusals = [
        ((folder, folder / "a", "--files-from", listing), "give that folder as the only INPUT"),
        ((folder, "--files-from", tmp_path / "none.txt"), "cannot read --files-from"),
        ((folder, "--files-from", "-", "--ray"), "give --files-from a file on a shared path"),
        # given twice, a list or a mask folder click would keep the last of, in silence (until the 55th stop)
        ((folder, "--files-from", listing, "--files-from", "-"), "'--files-from': given 2 times"),
        ((folder, "--masks", masks, "--masks", masks / "a"), "'--masks': given 2 times"),
        (("--files-from", listing), "give the folder too: clothes-extractor extract FOLDER --files-from LIST"),
    ]
    for extra, says in refusals:
        refused = run_cli("extract", *extra, "-o", out, "--model", tiny_model_path, stdin=b"")
        assert refused.returncode == 2 and says in refused.stderr.decode(), refused.stderr
    (tmp_path / "empty.txt").write_text("# nothing yet\n\n")
    empty = run_cli("extract", folder, "-o", out, "--files-from", tmp_path / "empty.txt", "--model", tiny_model_path)
    assert empty.returncode == 1 and "names no photo" in empty.stderr, empty.stderr


def test_standard_input_that_is_a_terminal_is_refused_not_waited_on(tmp_path):
    folder = _folder(tmp_path)
    terminal, keyboard = pty.openpty()
    try:
        for args, says in (
            (["extract", "-", "-o", str(tmp_path / "g.png")], "extract - -o garment.png < photo.jpg"),
            (["extract", str(folder), "--files-from", "-", "-o", str(tmp_path / "o")], "--files-from - -o OUT"),
            (["tryon", "--person", str(folder), "--garment", "-", "-o", str(tmp_path / "t")], "tryon --garment - ..."),
        ):
            done = subprocess.run([sys.executable, "-m", "clothes_extractor", *args], stdin=keyboard,
                                  capture_output=True, text=True, env=cli_env(), timeout=60)  # fmt: skip
            assert done.returncode == 2 and "standard input, which is a terminal here" in done.stderr, done.stderr
            assert says in done.stderr, done.stderr
    finally:
        os.close(keyboard)
        os.close(terminal)
