"""``GET /metrics``: the server's counters in Prometheus's text format, for whoever runs it
(a Prometheus scrape, a Kubernetes autoscaler, a dashboard).

    clothes_extractor_requests_total{route, status}      requests answered, by status code
    clothes_extractor_request_seconds{route}              how long they took (histogram)
    clothes_extractor_requests_in_flight{route}           being answered now
    clothes_extractor_model_runs_total{batcher}           model runs (batches) of each batcher
    clothes_extractor_batched_items_total{batcher}        items those runs took: / runs = mean batch
    clothes_extractor_queue_items{batcher}                items waiting for a run now
    clothes_extractor_memory_trims_total{batcher}         times its models' memory went back after a quiet spell

Only the API's own routes are counted by route (POST /extract, POST /tryon); anything
else (the page, /info, CORS preflights, a scanner's 404s) is ``other``, so a stream of odd
paths cannot grow the series without bound. Each app has its own registry: two servers in
one process do not mix. ``serve --access-log`` writes a line per request (``_access_line``)
to standard error, from the same wrapper that counts them.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Callable, Iterable

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .access import API_ROUTES, route_of
from .batcher import Batcher

# ``serve --access-log``: a line per request, at INFO (off unless that logger is enabled)
ACCESS = logging.getLogger("clothes_extractor.access")
SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class _Batchers:
    """A collector that reads the batchers' counters when scraped (the batchers stay unaware)."""

    def __init__(self, batchers: Callable[[], Iterable[Batcher]]):
        self.batchers = batchers

    def collect(self):
        runs = CounterMetricFamily("clothes_extractor_model_runs", "Model runs (batches)", labels=["batcher"])
        items = CounterMetricFamily("clothes_extractor_batched_items", "Items the model runs took", labels=["batcher"])
        waiting = GaugeMetricFamily(
            "clothes_extractor_queue_items", "Items waiting for a model run", labels=["batcher"]
        )
        trims = CounterMetricFamily(
            "clothes_extractor_memory_trims",
            "Times the models' memory went back after a quiet spell",
            labels=["batcher"],
        )
        for batcher in self.batchers():
            runs.add_metric([batcher.name], batcher.batches)
            items.add_metric([batcher.name], batcher.items)
            waiting.add_metric([batcher.name], batcher.waiting)
            trims.add_metric([batcher.name], batcher.idles)
        return [runs, items, waiting, trims]


class _Observing:
    """ASGI middleware: each HTTP request's route, status and time into the metrics, and with
    an access log, a line for it (a plain ASGI wrapper: the request body streams through
    untouched, as the routes read it)."""

    def __init__(self, app, answered: Counter, seconds: Histogram, in_flight: Gauge):
        self.app, self.answered, self.seconds, self.in_flight = app, answered, seconds, in_flight

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = route_of(scope)
        route = path if path in API_ROUTES and scope["method"] == "POST" else "other"
        status, sent = 500, 0  # (500: what the client gets if the app raises before answering)

        async def sending(message):
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        started = time.perf_counter()
        self.in_flight.labels(route).inc()
        try:
            await self.app(scope, receive, sending)
        finally:
            took = time.perf_counter() - started
            self.in_flight.labels(route).dec()
            self.seconds.labels(route).observe(took)
            self.answered.labels(route, str(status)).inc()
            if ACCESS.isEnabledFor(logging.INFO):
                ACCESS.info(_access_line(scope, status, sent, took))


def _access_line(scope, status: int, sent: int, took: float) -> str:
    """``2026-12-01T07:00:00.123Z 127.0.0.1 "POST /extract?format=png" 200 48213 143.2ms``"""
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    client = scope["client"][0] if scope.get("client") else "-"
    query = scope.get("query_string", b"").decode("latin-1")
    target = scope.get("raw_path", scope["path"].encode()).decode("latin-1") + (f"?{query}" if query else "")
    return f'{now} {client} "{scope["method"]} {target}" {status} {sent} {took * 1000:.1f}ms'


def add_metrics(app: FastAPI, batchers: Callable[[], Iterable[Batcher]]) -> None:
    """Count every request of ``app`` and serve ``GET /metrics``; ``batchers``: the batchers to report."""
    registry = CollectorRegistry(auto_describe=True)
    answered = Counter("clothes_extractor_requests", "Requests answered", ["route", "status"], registry=registry)
    seconds = Histogram(
        "clothes_extractor_request_seconds", "Time to answer", ["route"], buckets=SECONDS, registry=registry
    )
    in_flight = Gauge("clothes_extractor_requests_in_flight", "Requests being answered", ["route"], registry=registry)
    registry.register(_Batchers(batchers))

    app.add_middleware(_Observing, answered=answered, seconds=seconds, in_flight=in_flight)

    @app.get("/metrics", include_in_schema=False)
    async def metrics():
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
