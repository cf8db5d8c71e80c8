"""How many times a folder job reads each photo file, and what that costs: bytes read per byte
of photo, and photos/s, with each file read once (``images.read_whole``: its digest and every
decode from those bytes) and read again at each stage (``WHOLE_READ_MAX = 0``: the digest, the
segmenter's decode, ``finish``'s; how every photo was read before the 74th stop of round 2).

On a local disk the reads again come from the page cache and cost little; on a network folder
or an object store mounted as one (mountpoint-s3, gcsfuse, goofys: each read is a fetch of the
object), each is a trip, which this counts and does not time.

    python benchmarks/photo_reads.py PHOTO_DIR --count 200 --repeats 3
    python benchmarks/photo_reads.py PERSON_DIR --tryon GARMENT --count 200   # tryon's folder job

The job runs in this process (worker threads: ``/proc/self/io`` counts their reads), with the
bundled models, the photos' garments found by the segmenter (``--tryon``: each photo dressed in
GARMENT, which counts among the bytes read and not among the photos'); the two settings take
turns, a warm-up job first. Compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path


def _read_bytes() -> int:
    """Bytes this process has read (``rchar``: every read call, the page cache's included)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise SystemExit("/proc/self/io has no rchar: Linux only")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", type=Path, help="a folder of photos, copied round-robin to --count files")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--tryon", type=Path, help="a catalog garment: time tryon's folder job instead")
    args = parser.parse_args()

    from clothes_extractor.api.folders import dress_folder
    from clothes_extractor.models import model_for
    from clothes_extractor.runtime import images
    from clothes_extractor.runtime.jobs import find_jobs
    from clothes_extractor.runtime.options import ExtractOptions
    from clothes_extractor.runtime.pipeline import run_extraction
    from clothes_extractor.runtime.session import ModelSession

    sources = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in images.IMAGE_SUFFIXES)
    if not sources:
        raise SystemExit(f"no photos in {args.photos}")
    generator = ModelSession(model_for("generator", gpu=False), "cpu")
    segmenter = ModelSession(model_for("segmenter", gpu=False), "cpu")
    tryon = ModelSession(model_for("tryon", gpu=False), "cpu") if args.tryon else None
    options = ExtractOptions(batch_size=args.batch_size, processes=False)
    once = images.WHOLE_READ_MAX
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "photos"
        folder.mkdir()
        for i in range(args.count):
            shutil.copy(sources[i % len(sources)], folder / f"{i:05d}{sources[i % len(sources)].suffix}")
        photo_bytes = sum(p.stat().st_size for p in folder.iterdir())

        def job(most: int, name: str) -> tuple[float, int, int]:
            images.WHOLE_READ_MAX = most
            results: list = []
            read, started = _read_bytes(), time.perf_counter()
            if tryon is not None:
                models = {"tryon": tryon, "parser": segmenter, "batch_size": args.batch_size}
                dress_folder(folder, args.tryon, Path(scratch) / name, **models, on_result=results.append)
            else:
                jobs = find_jobs([folder], Path(scratch) / name, "png")
                run_extraction(generator, jobs, options, results.append, segmenter)
            seconds, read = time.perf_counter() - started, _read_bytes() - read
            shutil.rmtree(Path(scratch) / name)
            return seconds, read, sum(r.status == "ok" for r in results)

        job(once, "warm-up")
        rows: dict[str, list[tuple[float, int, int]]] = {"read once": [], "read at each stage": []}
        for repeat in range(args.repeats):
            rows["read once"].append(job(once, f"once-{repeat}"))
            rows["read at each stage"].append(job(0, f"again-{repeat}"))
        images.WHOLE_READ_MAX = once

    print(f"{args.count} photos ({photo_bytes / args.count / 1024:.0f} KB each on average), batch {args.batch_size},")
    what = f"tryon in {args.tryon.name} ({args.tryon.stat().st_size / 1024:.0f} KB)" if args.tryon else "extract"
    print(f"{what}, worker threads, the bundled models on the CPU, {args.repeats} jobs each, taking turns")
    print("| photo files | photos/s (each job) | bytes read / photo bytes | garments |")
    print("|---|---|---|---|")
    for name, jobs in rows.items():
        rates = " / ".join(f"{args.count / seconds:.1f}" for seconds, _, _ in jobs)
        read = " / ".join(f"{read / photo_bytes:.2f}" for _, read, _ in jobs)
        print(f"| {name} | {rates} | {read} | {jobs[0][2]} |")


if __name__ == "__main__":
    main()
