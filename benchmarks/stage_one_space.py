"""`tryon --garment-from FOLDER` as a user runs it, watched from outside: wall time, the time
to the first output, the peak size of its temporary folder (stage one's catalog images, in
TMPDIR) and peak RSS (GNU time).

    python benchmarks/stage_one_space.py LABEL PERSON WORN_FOLDER [--code DIR]

``--code`` runs another checkout of the project (its PYTHONPATH), to compare two commits in
one session. Prints one line; results: benchmarks/results/cpu-2core-round2/tryon-stage-one-space.txt.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def folder_size(folder: Path) -> int:
    size = 0
    for root, _, names in os.walk(folder):
        for name in names:
            try:
                size += os.stat(os.path.join(root, name)).st_size
            except OSError:  # (removed while we look)
                pass
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("label")
    parser.add_argument("person", type=Path)
    parser.add_argument("worn", type=Path, help="a folder of photos of garments being worn")
    parser.add_argument("--code", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stage-one-space-") as work:
        tmp, out = Path(work) / "tmp", Path(work) / "out"
        tmp.mkdir()
        env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(args.code)}
        command = ["/usr/bin/time", "-f", "maxrss %M KB", sys.executable, "-m", "clothes_extractor", "tryon"]
        command += ["--person", str(args.person), "--garment-from", str(args.worn), "-o", str(out), "--provider", "cpu"]
        started, first, peak = time.monotonic(), None, 0
        # (cwd: not this checkout, which `python -m` would put before --code on the path)
        process = subprocess.Popen(command, env=env, cwd=work, stderr=subprocess.PIPE, text=True)
        while process.poll() is None:
            peak = max(peak, folder_size(tmp))
            if first is None and out.is_dir() and any(path.suffix == ".png" for path in out.iterdir()):
                first = time.monotonic() - started
            time.sleep(0.5)
        wall = time.monotonic() - started
        lines = [line for line in process.stderr.read().splitlines() if line.startswith(("done in", "maxrss"))]
        shutil.rmtree(out, ignore_errors=True)
    print(
        f"{args.label}: wall {wall:.1f} s, first output after {first or 0:.1f} s, peak TMPDIR {peak / 1e6:.1f} MB, "
        f"{'; '.join(lines)}"
    )


if __name__ == "__main__":
    main()
