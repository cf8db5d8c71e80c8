"""``extract --watch``: how long after a photo lands in the hot folder its garment is written, and
what an idle watch over a large folder costs; ``--tryon GARMENT``: ``tryon --watch``, how long
after a person photo lands there it is written dressed in GARMENT.

A photo copied in (``cp``: written now, so it waits for the next walk to see it whole) and one
moved in (``mv`` of a finished file: an old modification time, taken at the first walk that sees
it) are dropped one at a time, ``--every`` seconds apart, into a folder that ``extract --watch``
(the bundled models, defaults) watches; each one's latency is from the end of its drop to its
report line (written as its garment is). Then the ``runtime.watch.Watch`` of a folder of
``--idle`` empty photo files runs for ``--idle-s`` seconds with nothing coming: its walk time,
the wait after each walk and the CPU it took.

    python benchmarks/watch_latency.py PHOTO_DIR --count 20 --every 3 --idle 100000 --idle-s 60
    python benchmarks/watch_latency.py PHOTO_DIR --count 20 --every 3 --idle 0 --tryon CATALOG_IMAGE

Absolute times drift on a shared machine; the walks' share of a core is the number to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def _lines(report: Path) -> list[dict]:
    return [json.loads(line) for line in report.read_text().splitlines()] if report.exists() else []


def _latencies(
    photos: list[Path], every: float, work: Path, garment: Path | None = None
) -> tuple[dict[str, list[float]], str]:
    hot, out, report, staging = work / "hot", work / "out", work / "r.jsonl", work / "staging"
    for folder in (hot, staging):
        folder.mkdir()
    command = ["extract", hot] if garment is None else ["tryon", "--person", hot, "--garment", garment]
    key = "input" if garment is None else "person"  # (the report's field that names the photo dropped)
    process = subprocess.Popen(
        [sys.executable, "-m", "clothes_extractor", *command, "-o", out, "--watch", "--report", report],
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(8)  # (the models open)
    dropped: dict[str, tuple[str, float]] = {}
    seen: dict[str, float] = {}  # each photo's report line: when it was first seen

    def follow() -> None:
        while len(seen) < len(photos) and process.poll() is None:
            for line in _lines(report):
                seen.setdefault(line[key], time.monotonic())
            time.sleep(0.02)

    following = threading.Thread(target=follow, daemon=True)
    following.start()
    for index, photo in enumerate(photos):
        how = "copied" if index % 2 == 0 else "moved"
        name = f"{index:03d}{photo.suffix}"
        if how == "copied":
            shutil.copy(photo, hot / name)
        else:  # a finished file, a minute old, moved in (an atomic rename, as rsync and most uploads end)
            shutil.copy(photo, staging / name)
            os.utime(staging / name, (time.time() - 60, time.time() - 60))
            os.rename(staging / name, hot / name)
        dropped[str(hot / name)] = (how, time.monotonic())
        time.sleep(every)
    following.join(timeout=120)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    summary = next((line for line in stderr.splitlines() if line.startswith("watched for")), stderr[-500:])
    latencies: dict[str, list[float]] = {"copied": [], "moved": []}
    for line in _lines(report):
        how, at = dropped[line[key]]
        assert line["status"] == "ok", line
        latencies[how].append(seen[line[key]] - at)
    return latencies, summary


def _idle(count: int, seconds: float, work: Path) -> str:
    from clothes_extractor.runtime.jobs import iter_jobs
    from clothes_extractor.runtime.watch import Watch

    hot = work / "idle"
    hot.mkdir()
    for i in range(count):
        (hot / f"{i:07d}.jpg").touch()
    watch = Watch(lambda: iter_jobs([hot], work / "idle-out", "png"))
    jobs = watch.jobs()
    while watch.passes < 2:  # the first two give every photo (written just now: at the second)
        next(jobs)
    walks, cpu, started = [], time.process_time(), time.monotonic()
    while time.monotonic() - started < seconds:
        passes = watch.passes
        job = next(jobs)
        assert job is None
        if watch.passes > passes:
            walks.append(watch.walk_s)
    wall, used = time.monotonic() - started, time.process_time() - cpu
    return (
        f"idle watch over {count:,} photos already given, {wall:.0f} s: {len(walks)} walks of "
        f"{statistics.median(walks):.2f} s (median), each followed by {watch.wait_s:.1f} s; "
        f"CPU {used:.1f} s = {100 * used / wall:.0f}% of a core"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", type=Path)
    parser.add_argument("--count", type=int, default=20, help="photos dropped in, one at a time")
    parser.add_argument("--every", type=float, default=3.0, help="seconds between two drops")
    parser.add_argument("--idle", type=int, default=100_000, help="photo files of the idle watch's folder (0: none)")
    parser.add_argument("--idle-s", type=float, default=60.0)
    parser.add_argument("--tryon", type=Path, metavar="GARMENT", help="tryon --watch: the photos are persons")
    given = parser.parse_args()
    photos = sorted(p for p in given.photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[: given.count]
    with tempfile.TemporaryDirectory(prefix="watch-latency-") as work:
        latencies, summary = _latencies(photos, given.every, Path(work), given.tryon)
        what = f"tryon --garment {given.tryon.name}: " if given.tryon else ""
        print(f"{what}{len(photos)} photos dropped {given.every} s apart into a watched folder; {summary}")
        for how, values in latencies.items():
            if values:
                values.sort()
                middle = statistics.median(values)
                made = "dressed photo" if given.tryon else "garment"
                print(
                    f"  {how:6s} ({len(values)}): from its drop to its {made}: median {middle:.2f} s, "
                    f"max {values[-1]:.2f} s, min {values[0]:.2f} s"
                )
        if given.idle:
            print(_idle(given.idle, given.idle_s, Path(work)))


if __name__ == "__main__":
    main()
