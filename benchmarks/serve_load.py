"""Load test of ``clothes-extractor serve``: N concurrent clients on loopback, with and without
dynamic batching, in one run (a benchmark, not a test: nothing here is asserted on time).

    python benchmarks/serve_load.py PHOTOS_DIR [--clients 16] [--seconds 30] [--out RESULT.json]
    python benchmarks/serve_load.py PERSONS_DIR --route tryon --garments CATALOG_DIR [...]

For each setting (``--max-batch 1``: one request per model run; ``--max-batch 8``: batched)
a server is started, warmed up, and then ``--clients`` threads post photos from PHOTOS_DIR
in turn for ``--seconds`` (at most ``--requests`` in all); with ``--route tryon``, each
person photo with a catalog garment of ``--garments`` in turn. Every response must be a
valid image (decoded here); the result has requests/s, p50/p90/p99 latency, errors, and the
ratio of the batched rate to the one-at-a-time rate, measured in the same run.
"""

from __future__ import annotations

import argparse
import io
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(args: list[str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "clothes_extractor", "serve", "--port", str(port), *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1):
                return process, url
        except OSError:
            if process.poll() is not None:
                raise SystemExit(process.stderr.read()) from None
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the server did not start")


def body_of(fields: dict[str, bytes]) -> tuple[bytes, str]:
    boundary = "ce-load-boundary"
    body = b""
    for name, data in fields.items():
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}"\r\n\r\n'.encode()
        body += data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def post(url: str, fields: dict[str, bytes], query: str) -> tuple[bool, float, str]:
    body, content_type = body_of(fields)
    route = "/tryon" if "person" in fields else "/extract"
    request = urllib.request.Request(f"{url}{route}{query}", data=body, headers={"Content-Type": content_type})
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            data = answer.read()
        Image.open(io.BytesIO(data)).load()  # every response a valid image
        return True, time.perf_counter() - t0, ""
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return False, time.perf_counter() - t0, str(exc)[:200]


def load(url: str, photos: list[dict[str, bytes]], clients: int, seconds: float, limit: int, query: str) -> dict:
    for photo in photos[: clients * 2]:  # warm-up: sessions, thread pools, first batches
        post(url, photo, query)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    count = [0]
    deadline = time.perf_counter() + seconds

    def client(index: int) -> None:
        k = index
        while time.perf_counter() < deadline:
            with lock:
                if count[0] >= limit:
                    return
                count[0] += 1
            ok, seconds_taken, error = post(url, photos[k % len(photos)], query)
            k += clients
            with lock:
                (latencies if ok else errors).append(seconds_taken if ok else error)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - t0
    with urllib.request.urlopen(f"{url}/info") as answer:
        info = json.load(answer)
    batches = info["tryon_batches"] if "person" in photos[0] else info["batches"]
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "requests": len(latencies) + len(errors),
        "ok": len(latencies),
        "errors": len(errors),
        "error_samples": errors[:5],
        "seconds": wall,
        "requests_per_s": len(latencies) / wall if wall else 0.0,
        "latency_ms": {"p50": quantiles[49] * 1000, "p90": quantiles[89] * 1000, "p99": quantiles[98] * 1000},
        "model_runs": batches["tryon" if "person" in photos[0] else "generator"],
        "requests_served": batches["requests"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", type=Path)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--requests", type=int, default=2000, help="at most this many per setting")
    parser.add_argument("--batched", type=int, default=8, help="--max-batch of the batched server")
    parser.add_argument("--route", choices=("extract", "tryon"), default="extract")
    parser.add_argument("--garments", type=Path, help="catalog images for --route tryon")
    parser.add_argument("--query", help="query string of every request (extract: ?output_size=model)")
    parser.add_argument("--provider", default="cpu")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    photos = [{"photo": data} for data in images_in(args.photos)]
    if args.route == "tryon":
        if args.garments is None:
            raise SystemExit("--route tryon needs --garments DIR (catalog images)")
        garments = images_in(args.garments)
        photos = [{"person": p["photo"], "garment": garments[i % len(garments)]} for i, p in enumerate(photos)]
    query = args.query if args.query is not None else ("?output_size=model" if args.route == "extract" else "")
    results = {}
    for name, batch in (("one-at-a-time", 1), ("batched", args.batched)):
        process, url = start(["--provider", args.provider, "--max-batch", str(batch), "--max-wait-ms", "10"])
        try:
            results[name] = {
                "max_batch": batch,
                **load(url, photos, args.clients, args.seconds, args.requests, query),
            }
        finally:
            process.terminate()
            process.wait(timeout=30)
        print(name, json.dumps(results[name]), file=sys.stderr)
    from clothes_extractor.bench.fingerprint import machine_fingerprint

    record = {
        "benchmark": "serve-load",
        "fingerprint": machine_fingerprint(None),
        "clients": args.clients,
        "photos": len(photos),
        "route": args.route,
        "query": query,
        "provider": args.provider,
        "results": results,
        "batched_vs_one_at_a_time": results["batched"]["requests_per_s"]
        / max(results["one-at-a-time"]["requests_per_s"], 1e-9),
    }
    print(json.dumps(record, indent=2))
    if args.out:
        args.out.write_text(json.dumps(record, indent=2) + "\n")


def images_in(folder: Path) -> list[bytes]:
    found = [p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    if not found:
        raise SystemExit(f"no photos in {folder}")
    return found


if __name__ == "__main__":
    main()
