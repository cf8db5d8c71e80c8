"""``extract --watch``'s memory as photos keep coming: the photos of PHOTO_DIR (504 by default)
moved into a watched folder 56 at a time, each batch once the one before is written, and the
watching process's resident memory after each (Linux: /proc). A watch runs for days: it must
stay flat.

    python benchmarks/watch_memory.py PHOTO_DIR [--count 504] [--step 56]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _resident_mb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmRSS"))


def _written(report: Path) -> int:
    return sum(1 for _ in report.open()) if report.exists() else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", type=Path)
    parser.add_argument("--count", type=int, default=504)
    parser.add_argument("--step", type=int, default=56, help="photos moved in at a time")
    given = parser.parse_args()
    photos = sorted(p for p in given.photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[: given.count]
    work = Path(tempfile.mkdtemp(prefix="watch-memory-"))
    hot, staging, report = work / "hot", work / "staging", work / "r.jsonl"
    hot.mkdir()
    staging.mkdir()
    command = [sys.executable, "-m", "clothes_extractor", "extract", hot, "-o", work / "out", "--watch"]
    process = subprocess.Popen([*map(str, command), "--report", str(report)], stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(8)
        print(f"started: RSS {_resident_mb(process.pid)} MB")
        for start in range(0, len(photos), given.step):
            for photo in photos[start : start + given.step]:  # finished files, moved in (a rename)
                shutil.copy(photo, staging / photo.name)
                os.utime(staging / photo.name, (time.time() - 60, time.time() - 60))
                os.rename(staging / photo.name, hot / photo.name)
            while _written(report) < min(start + given.step, len(photos)):
                time.sleep(0.2)
            print(f"{_written(report)} written: RSS {_resident_mb(process.pid)} MB")
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        print(stderr.strip().splitlines()[-1])
    finally:
        process.kill()
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
