"""Planning a ``--files-from`` list with a nested ``--masks`` folder: folder by folder, and in
an order that jumps between folders (front/1, side/1, front/2, ...: a list in product order
over one folder per view). Times ``iter_jobs`` alone (no model) on empty files it makes in a
temporary folder: a benchmark, not a test.

    python benchmarks/masks_jumping_list.py [--per-folder 20000] [--seconds 60]

Run it with another checkout first on ``PYTHONPATH`` (from outside this one) to compare.
Results: benchmarks/results/cpu-2core-round2/masks-jumping-list.txt.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from clothes_extractor.runtime.jobs import MaskIndex, iter_jobs

VIEWS = ("front", "side")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-folder", type=int, default=20_000, help="photos (and masks) in each view's folder")
    parser.add_argument("--seconds", type=float, default=60.0, help="stop an order after this long")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        names = [f"{n:06d}" for n in range(args.per_folder)]
        for view in VIEWS:
            for top, suffix in (("in", "jpg"), ("masks", "png")):
                (root / top / view).mkdir(parents=True)
                for name in names:
                    (root / top / view / f"{name}.{suffix}").touch()
        orders = {
            "folder by folder": [f"{view}/{name}.jpg" for view in VIEWS for name in names],
            "jumping": [f"{view}/{name}.jpg" for name in names for view in VIEWS],
        }
        for label, lines in orders.items():
            listing = root / f"{label.replace(' ', '-')}.txt"
            listing.write_text("\n".join(lines) + "\n")
            started, planned, with_mask = time.perf_counter(), 0, 0
            jobs = iter_jobs([root / "in"], root / "out", "png", MaskIndex(root / "masks"), listing=listing)
            for job in jobs:
                planned += 1
                with_mask += job.mask.kind == "file"
                if time.perf_counter() - started > args.seconds:
                    break
            took = time.perf_counter() - started
            print(
                f"{label:>16}: {planned} of {len(lines)} photos planned in {took:.2f} s "
                f"({planned / took:,.0f} photos/s), {with_mask} with their mask"
            )


if __name__ == "__main__":
    main()
