"""Peak memory of ``extract`` against the size of the folder (a benchmark: nothing is asserted).

    python benchmarks/folder_memory.py PHOTOS_DIR --sizes 504,65536,262144 [--per-folder N]
        [--out RESULT.json] [-- EXTRACT OPTIONS]

Users run ``extract`` on folders of up to millions of photos, so its memory must not grow
with the folder. Running a million photos through the models takes hours on a small machine,
so each folder here is PHOTOS_DIR's first ``--real`` photos plus hard links to them under
other names up to the size asked for, and the outputs of the linked names are already there
(hard links to a real output: same model, same settings, so ``extract`` skips them as done).
Each run therefore walks, plans and reports the whole folder and runs the models on
``--real`` photos; what grows with the folder is the bookkeeping: the list of jobs, the
scan, the skips. ``--per-folder N`` puts the links in subfolders of N (``extract
--recursive``), the layout of a large catalogue; without it they share one folder, whose
names ``extract`` holds while it walks it. For each size: peak RSS (``/usr/bin/time``),
wall time, and extract's summary line. Hard links cost no disk space; the folders are made
under ``--work`` (a temporary folder by default) and removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_folder(folder: Path, out: Path, photos: list[Path], seed_out: Path, size: int, per_folder: int) -> None:
    """``photos`` under their names, then links to them as ``link-<i>.jpg`` up to ``size``
    (``per_folder`` > 0: in subfolders of that many); in ``out``, the linked names' outputs:
    links to the real photos' outputs in ``seed_out`` (same bytes, same signature), so
    extract finds them done."""
    folder.mkdir(parents=True)
    out.mkdir(parents=True)
    for photo in photos:
        os.link(photo, folder / photo.name)
    for i in range(size - len(photos)):
        source = photos[i % len(photos)]
        sub = f"d{i // per_folder:05d}/" if per_folder else ""
        if sub and i % per_folder == 0:
            (folder / sub).mkdir()
            (out / sub).mkdir()
        os.link(source, folder / f"{sub}link-{i:07d}.jpg")
        os.link(seed_out / f"{source.stem}.png", out / f"{sub}link-{i:07d}.png")


def run_extract(folder: Path, out: Path, extra: list[str]) -> dict:
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "clothes_extractor", "extract", str(folder)]
    command += ["-o", str(out), "--provider", "cpu", *extra]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"extract failed ({done.returncode}):\n{done.stderr[-3000:]}")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    summary = [line for line in done.stderr.splitlines() if line.startswith("done in")]
    return {"wall_s": round(wall, 1), "peak_rss_mb": int(rss.group(1)) / 1024 if rss else None, "summary": summary[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", type=Path, help="a folder of real photos (VITON's val/image, say)")
    parser.add_argument("--sizes", default="504,65536,262144", help="folder sizes, comma-separated")
    parser.add_argument("--per-folder", type=int, default=0, help="links in subfolders of this many (0: one folder)")
    parser.add_argument("--real", type=int, default=504, help="photos that go through the models in each run")
    parser.add_argument("--work", type=Path, default=None, help="where to make the folders (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=None, help="write the results here as JSON")
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)  # extract's options: all after --
    args = parser.parse_args(argv[:split])
    args.extract_args = argv[split + 1 :]
    photos = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[: args.real]
    if len(photos) < args.real:
        raise SystemExit(f"{args.photos} has {len(photos)} photos, --real asks for {args.real}")
    sizes = [int(s) for s in args.sizes.split(",")]
    if min(sizes) < len(photos):
        raise SystemExit(f"every size must be at least --real ({len(photos)})")
    work = Path(tempfile.mkdtemp(prefix="ce-folder-memory-", dir=args.work))
    rows = []
    try:
        seed, seed_out = work / "seed", work / "seed-out"
        seed.mkdir()
        for photo in photos:
            os.link(photo, seed / photo.name)
        run_extract(seed, seed_out, args.extract_args)  # the outputs the linked names get
        for size in sizes:
            folder, out = work / f"in-{size}", work / f"out-{size}"
            build_folder(folder, out, photos, seed_out, size, args.per_folder)
            extra = [*args.extract_args, *(["--recursive"] if args.per_folder else [])]
            row = {"photos": size, "per_folder": args.per_folder or size, "through_the_models": len(photos)}
            row.update(run_extract(folder, out, extra))
            print(json.dumps(row), flush=True)
            rows.append(row)
            shutil.rmtree(folder)
            shutil.rmtree(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.out:
        result = {"extract_args": args.extract_args, "per_folder": args.per_folder, "rows": rows}
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
