"""Dynamic batching: concurrent requests' inputs gathered into one model run.

A thread takes the first waiting item, then whatever else arrives within ``max_wait_ms``
(or until ``max_batch`` items), runs them as one batch and answers each item's future.
A failing batch fails its items with the reason; the thread goes on. A full queue
(``max_queue``) refuses new items at once, so a flooded server answers 503 instead of
growing without bound. With ``idle``, the thread calls it once a run is followed by
``idle_after_s`` seconds without an item (``serve`` gives its models' memory back so), in
the thread that runs the batches, so it never runs beside one of them.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, Sequence

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """The batcher has ``max_queue`` items waiting already."""


class Batcher:
    def __init__(
        self,
        run: Callable[[Sequence[Any]], Sequence[Any]],
        max_batch: int = 8,
        max_wait_ms: float = 5.0,
        max_queue: int = 256,
        name: str = "batcher",
        idle: Callable[[], None] | None = None,
        idle_after_s: float = 30.0,
    ):
        """``name``: what ``/metrics`` calls it (its thread is ``<name>-batcher``)."""
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if idle is not None and idle_after_s <= 0:
            raise ValueError(f"idle_after_s must be > 0, got {idle_after_s}")
        self.run, self.max_batch, self.max_wait, self.name = run, max_batch, max_wait_ms / 1000.0, name
        self.idle, self.idle_after = idle, idle_after_s
        self.idles = 0  # how many times ``idle`` was called (observable, as ``batches``)
        self._queue: queue.Queue[tuple[Any, Future] | None] = queue.Queue(max_queue)
        self.batches = 0  # how many model runs so far (the batching is observable)
        self.items = 0
        self._thread = threading.Thread(target=self._loop, name=f"{name}-batcher", daemon=True)
        self._thread.start()

    def submit(self, item: Any) -> Future:
        future: Future = Future()
        try:
            self._queue.put_nowait((item, future))
        except queue.Full:
            raise QueueFull(f"{self._queue.maxsize} requests are waiting already") from None
        return future

    @property
    def waiting(self) -> int:
        """Items waiting for a run now."""
        return self._queue.qsize()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _gather(self, first: tuple[Any, Future]) -> tuple[list[tuple[Any, Future]], bool]:
        batch, deadline = [first], time.monotonic() + self.max_wait
        while len(batch) < self.max_batch:
            left = deadline - time.monotonic()
            try:
                entry = self._queue.get(timeout=max(left, 0)) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if entry is None:
                return batch, True
            batch.append(entry)
        return batch, False

    def _loop(self) -> None:
        ran = False  # a batch has run since ``idle`` was last called
        while True:
            try:
                first = self._queue.get(timeout=self.idle_after if ran and self.idle else None)
            except queue.Empty:
                self._quiet()
                ran = False
                continue
            if first is None:
                return
            batch, closing = self._gather(first)
            live = [(item, future) for item, future in batch if future.set_running_or_notify_cancel()]
            if live:
                self._run(live)
                ran = True
            if closing:
                return

    def _quiet(self) -> None:
        self.idles += 1
        try:
            self.idle()
        except Exception:  # noqa: BLE001 - a failed clean-up must not stop the batches
            log.warning("%s: the clean-up after a quiet spell failed", self.name, exc_info=True)

    def _run(self, batch: list[tuple[Any, Future]]) -> None:
        self.batches += 1
        self.items += len(batch)
        try:
            results = self.run([item for item, _ in batch])
        except Exception as exc:  # noqa: BLE001 - every item of the batch gets the reason
            log.debug("batch of %d failed", len(batch), exc_info=True)
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
