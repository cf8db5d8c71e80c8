"""``serve``'s memory after a burst of requests, with and without ``--idle-trim-s`` (a
benchmark, not a test: nothing here is asserted).

    python benchmarks/serve_idle_memory.py PERSONS_DIR CATALOG_DIR [--clients 16] [--out RESULT.json]

For each setting (``--idle-trim-s 0``: memory kept for the next burst, as before; and a
short quiet spell) one server is started and measured from outside (its resident memory,
``/proc/PID/status``, Linux): at the start, after a burst of POST /extract from
``--clients`` threads (photos of PERSONS_DIR, the bundled segmenter finding each mask),
after a quiet spell, after a burst of POST /tryon (the same photos dressed in the catalog
images of CATALOG_DIR), after a quiet spell again; then the latency of a few single
requests after the quiet (the first one grows the trimmed memory again).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from serve_load import images_in, load, post, start


def resident_mb(pid: int) -> dict[str, float]:
    """The process's resident memory now and at its peak, MB."""
    found = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found["now" if key == "VmRSS" else "peak"] = int(value.split()[0]) / 1024
    return found


def measure(trim_s: float, quiet_s: float, persons: list[dict], pairs: list[dict], clients: int, limit: int) -> dict:
    process, url = start(["--provider", "cpu", "--idle-trim-s", str(trim_s)])
    try:
        record: dict = {"idle_trim_s": trim_s, "start": resident_mb(process.pid)}
        record["extract_burst"] = load(url, persons, clients, 600, limit, "?output_size=model")
        record["after_extract_burst"] = resident_mb(process.pid)
        time.sleep(quiet_s)
        record["quiet"] = resident_mb(process.pid)
        record["tryon_burst"] = load(url, pairs, clients, 600, limit // 2, "")
        record["after_tryon_burst"] = resident_mb(process.pid)
        time.sleep(quiet_s)
        record["quiet_after_tryon"] = resident_mb(process.pid)
        singles = [post(url, persons[k], "?output_size=model")[1] * 1000 for k in range(5)]
        record["single_extract_ms_after_quiet"] = singles  # [0]: the first after the quiet spell
        record["after_singles"] = resident_mb(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("persons", type=Path)
    parser.add_argument("catalog", type=Path)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=256, help="POST /extract per burst (/tryon: half)")
    parser.add_argument("--trim-s", type=float, default=5.0, help="--idle-trim-s of the trimming server")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    photos = images_in(args.persons)
    garments = images_in(args.catalog)
    persons = [{"photo": photo} for photo in photos]
    pairs = [{"person": photo, "garment": garments[i % len(garments)]} for i, photo in enumerate(photos)]
    results = []
    for trim_s in (0.0, args.trim_s):
        results.append(measure(trim_s, args.trim_s + 5, persons, pairs, args.clients, args.requests))
        print(json.dumps(results[-1]), file=sys.stderr)
    from clothes_extractor.bench.fingerprint import machine_fingerprint

    record = {
        "benchmark": "serve-idle-memory",
        "fingerprint": machine_fingerprint(None),
        "clients": args.clients,
        "photos": len(photos),
        "results": results,
    }
    if args.out:
        args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
