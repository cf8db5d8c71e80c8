"""``GET /metrics`` on a real server: what a Prometheus scrape reads after real requests."""

import json
import re
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from test_serve import encoded, post, start, stop

from conftest import person_photo

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
parser = pytest.importorskip("prometheus_client.parser", reason="the [serve] extra is not installed")

pytestmark = pytest.mark.xdist_group("serve")


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """Every sample of ``url``/metrics, parsed by Prometheus's own parser: {(name, labels): value}."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain; version=")
        text = answer.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in parser.text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_requests_batches_and_errors_are_counted(tiny_flow_path):
    process, url = start("--model", tiny_flow_path, "--no-segmenter", "--max-wait-ms", "50")
    try:
        photo, mask = person_photo(2)
        fields = {"photo": ("p.jpg", encoded(photo)), "mask": ("m.png", encoded(mask, "PNG"))}
        with ThreadPoolExecutor(6) as pool:  # concurrent: batched
            statuses = list(pool.map(lambda _: post(url, fields)[0], range(6)))
        assert statuses == [200] * 6
        assert post(url, {"photo": ("p.jpg", b"not an image")})[0] == 400
        assert post(url, fields, "?format=bmp")[0] == 400
        assert post(url, fields, route="/tryon")[0] == 501  # (no segmenter: no try-on)
        with urllib.request.urlopen(f"{url}/info", timeout=10) as answer:
            batches = json.load(answer)["batches"]  # the batcher's own counts
        before = scrape(url)
        for _ in range(3):
            urllib.request.urlopen(f"{url}/health", timeout=10).close()
        seen = scrape(url)
    finally:
        log = stop(process)
    assert '"POST /extract' not in log  # no access log unless asked for

    def value(name, **labels):
        return seen.get((name, tuple(sorted(labels.items()))))

    assert value("clothes_extractor_requests_total", route="/extract", status="200") == 6
    assert value("clothes_extractor_requests_total", route="/extract", status="400") == 2
    assert value("clothes_extractor_requests_total", route="/tryon", status="501") == 1
    health = ("clothes_extractor_requests_total", (("route", "other"), ("status", "200")))
    assert seen[health] - before[health] == 3 + 1  # /health, and the scrape before it
    assert value("clothes_extractor_request_seconds_count", route="/extract") == 8
    assert value("clothes_extractor_request_seconds_bucket", route="/extract", le="+Inf") == 8
    assert value("clothes_extractor_request_seconds_sum", route="/extract") > 0
    assert value("clothes_extractor_requests_in_flight", route="/extract") == 0
    # the batcher's own counts: six items (the bad ones never reached it), in its runs
    assert value("clothes_extractor_batched_items_total", batcher="generator") == batches["requests"] == 6
    assert value("clothes_extractor_model_runs_total", batcher="generator") == batches["generator"] >= 1
    assert value("clothes_extractor_queue_items", batcher="generator") == 0
    assert value("clothes_extractor_memory_trims_total", batcher="generator") == 0  # (after 30 s quiet, by default)
    assert not any(labels and dict(labels).get("batcher") in ("segmenter", "tryon") for _, labels in seen)


def test_the_access_log_has_a_line_per_request(tiny_flow_path):
    process, url = start("--model", tiny_flow_path, "--no-segmenter", "--access-log")
    try:
        photo, mask = person_photo(2)
        fields = {"photo": ("p.jpg", encoded(photo)), "mask": ("m.png", encoded(mask, "PNG"))}
        status, body, _ = post(url, fields, "?format=webp")
        assert status == 200
        assert post(url, {"photo": ("p.jpg", b"not an image")})[0] == 400
    finally:
        log = stop(process)
    line = r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z 127\.0\.0\.1 "POST /extract(\?format=webp)?" (\d{3}) (\d+) [\d.]+ms'
    requests = [m.groups() for m in re.finditer(line, log)]
    assert requests == [("?format=webp", "200", str(len(body))), (None, "400", requests[1][2])], log
    assert re.search(r'"GET /health" 200 ', log)  # (start's wait for it; the page, /info and the rest too)


def test_a_quiet_server_gives_its_models_memory_back_and_answers_the_same(tiny_flow_path):
    # --idle-trim-s: once a batcher has run and then no request came for that long, its
    # models' memory goes back (ModelSession.trim, malloc_trim), once per quiet spell
    process, url = start("--model", tiny_flow_path, "--no-segmenter", "--idle-trim-s", "0.5")
    key = ("clothes_extractor_memory_trims_total", (("batcher", "generator"),))

    def trims_reach(count: int) -> bool:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and scrape(url)[key] < count:
            time.sleep(0.1)
        return scrape(url)[key] == count

    try:
        photo, mask = person_photo(2)
        fields = {"photo": ("p.jpg", encoded(photo)), "mask": ("m.png", encoded(mask, "PNG"))}
        time.sleep(1)
        assert scrape(url)[key] == 0  # quiet, but nothing ran yet
        status, before, _ = post(url, fields)
        assert status == 200
        assert trims_reach(1)
        time.sleep(1.5)
        assert scrape(url)[key] == 1  # still quiet: once, not every half second
        status, after, _ = post(url, fields)
        assert status == 200
        assert trims_reach(2)
        with urllib.request.urlopen(f"{url}/info", timeout=10) as answer:
            assert json.load(answer)["settings"]["idle_trim_s"] == 0.5
    finally:
        stop(process)
    assert after == before  # the trimmed model answers as it did
