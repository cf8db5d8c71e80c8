"""``extract --urls-from`` against a slow image server: photos/s by ``--fetches``.

A far CDN, or a shop's own server, may take a second to answer each image. The feed fetches
``--fetches`` images at once (8 unless told), so such a server bounds the job at about
``fetches / latency`` photos/s whatever the hardware. This serves a folder of photos on
loopback, each answer held back ``--latency`` seconds, and times the same feed extracted
with each ``--fetches`` (each into a new folder), beside the folder extracted from disk.

    python benchmarks/feed_latency.py PHOTO_DIR --count 200 --latency 1.0 --fetches 8,32

Compare the ratios of one run: absolute photos/s on a shared machine drift.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


class _Slow(http.server.SimpleHTTPRequestHandler):
    latency_s = 1.0

    def do_GET(self):  # noqa: N802 - http.server's name
        time.sleep(self.latency_s)
        super().do_GET()

    def log_message(self, *args):
        pass


def _extract(args: list[str]) -> str:
    """The job's summary line (``done in ...``)."""
    done = subprocess.run([sys.executable, "-m", "clothes_extractor", "extract", *args], capture_output=True, text=True)
    line = next((line for line in done.stderr.splitlines() if line.startswith("done in")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"extract failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", type=Path)
    parser.add_argument("--count", type=int, default=200, help="the first COUNT photos of the folder, by name")
    parser.add_argument("--latency", type=float, default=1.0, help="seconds the server holds each answer back")
    parser.add_argument("--fetches", default="8,32", help="the --fetches values to time, comma-separated")
    given = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="feed-latency-") as work:
        site, out = Path(work) / "site", Path(work) / "out"
        site.mkdir()
        names = sorted(p.name for p in given.photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        for name in names[: given.count]:
            shutil.copy(given.photos / name, site / name)
        handler = type("Slow", (_Slow,), {"latency_s": given.latency})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(site)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        feed = Path(work) / "feed.txt"
        feed.write_text("".join(f"{url}/{name}\n" for name in sorted(p.name for p in site.iterdir())))
        print(f"{len(names[: given.count])} photos of {given.photos}, the server answering after {given.latency} s")
        rates = {}
        for run in ["disk", *(f"fetches {n}" for n in given.fetches.split(","))]:
            shutil.rmtree(out, ignore_errors=True)
            if run == "disk":
                line = _extract([str(site), "-o", str(out)])
            else:
                line = _extract(["--urls-from", str(feed), "-o", str(out), "--fetches", run.split()[1]])
            rates[run] = float(re.search(r"\(([\d.]+) photos/s\)", line).group(1))
            print(f"{run:>11}: {line}", flush=True)
        server.shutdown()
    for run, rate in rates.items():
        print(f"{run:>11}: {rate / rates['disk']:.2f}x the folder on disk")


if __name__ == "__main__":
    main()
