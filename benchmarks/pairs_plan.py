"""The plan of a ``tryon --pairs FILE`` job alone (no model, no files): a pairs file of N lines
is written to a temporary folder, then read and checked (``read_pairs``), counted
(``Pairs.count``, the progress bar's total) and turned into jobs (``dress_jobs``), timed, with
the process's peak RSS. A benchmark, not a test.

    python benchmarks/pairs_plan.py [--lines 1000000]

Run it with another checkout first on ``PYTHONPATH`` (from outside this one) to compare.
Results: benchmarks/results/cpu-2core-round2/tryon-plan-memory.txt.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from clothes_extractor.runtime.pairs import Pairs, dress_jobs, read_pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        listing = Path(temp) / "pairs.txt"
        with open(listing, "w") as lines:
            for index in range(args.lines):
                lines.write(f"person_{index:07d}.jpg garment_{index % 5000:05d}.jpg\n")
        persons, garments = Path(temp) / "persons", Path(temp) / "garments"
        started = time.perf_counter()
        pairs, _ = read_pairs(listing, persons, garments)
        read = time.perf_counter() - started
        planned = Pairs(persons, garments, listing=pairs)
        started = time.perf_counter()
        planned.count()
        counted = time.perf_counter() - started
        started = time.perf_counter()
        jobs = sum(1 for _ in dress_jobs(planned, Path(temp) / "out", "png"))
        dressed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(
        f"{args.lines} lines: read_pairs {read:.1f} s, count {counted:.1f} s, dress_jobs {dressed:.1f} s "
        f"({jobs} jobs), peak RSS {peak} MB"
    )


if __name__ == "__main__":
    main()
