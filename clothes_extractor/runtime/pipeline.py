"""The folder job: the stages of ``stages`` for every photo, bounded in flight.

    prepare (workers) -> [segment (model) -> look, then fit (workers)] -> infer (model) -> write (workers)
                                [... a closer look's crop (workers) -> second look (model) -> fit (workers)]

Workers are threads or processes (``ExtractOptions.processes``; processes where there are
enough cores for the Python work between decodes to matter, since threads share one GIL);
the calling process holds the model sessions and forms the batches, and every other step is
a worker's (what the segmenter's look decides of a photo too: ``look_then``). What crosses to
worker processes is pickled in the calling process, under the GIL its batching needs, so it
crosses a batch at a time, a task per worker (``workers.submit_each``), its arrays in shared
memory (``arena``), and a photo without its decoded pixels (``read_lightly``: a worker decodes
it again). Photos are admitted only while fewer than ``batch_size * 2 + workers`` are anywhere
in flight, so memory stays flat however large the folder. A bad photo becomes an ``error``
result and the job goes on; the photos in a worker process that dies (``workers.Workers``)
are tried again, each alone (``retry_alone``; one it wrote before is written:
``resume.written_anyway``); an output with this run's signature is ``skipped`` (resume). A
full disk stops the job (``ExtractionSummary.stopped``), as does the caller's ``cancel``
event (``extract_folder``'s cancel button). A job source that waits for its photos (a feed
fetching them: ``api.feed``) gives None while it has none ready: the work in flight moves
on meanwhile, Ctrl-C and a cancel are heard, and after ``IDLE_S`` its partial batches run, so
the photos it has are written while a slow server holds up the next.

It is long because the job reads top to bottom in one class, its interrupts, full disks and
worker deaths included; what a stage does to a photo lives in ``stages``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from concurrent.futures import FIRST_COMPLETED, Executor, wait
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from ..errors import ClothesExtractorError, DiskFull, InputError, WorkerDied, WorkersKeepDying
from .files import remove_stale_partials
from .jobs import ExtractJob
from .options import ExtractOptions, make_plan
from .resume import Skipped, before_write, prepare_or_skip, written_anyway
from .session import ModelSession
from .signals import deferred_signals
from .stages import (
    ExtractionSummary,
    FileResult,
    FirstLook,
    NeedsMask,
    Prepared,
    SegmentedMask,
    describe_error,
    finished,
    for_look,
    look_then,
    parse,
    second_look,
    write,
)
from .workers import Retries, Share, Workers, call, read_lightly, slot_bytes

log = logging.getLogger(__name__)

WAIT_S = 0.1  # the longest a pending Ctrl-C (or a cancel) waits for its check while the workers are busy
# A job source with no job ready this long: its partial batches run (it may have more later). It is
# the job's bottleneck then (a slow server, a hot folder between walks): a partial batch costs no
# photos/s, and each photo waits less (1.0 s until the 65th stop: a photo moved into a watched folder
# took a median 2.4 s to its garment, now 1.5 s: benchmarks/results/cpu-2core-round2/watch-latency.txt).
IDLE_S = 0.25
CANCELLED = "cancelled"  # ExtractionSummary.stopped of a run whose ``cancel`` event was set


class _Cancelled(Exception):
    """Raised at a check when the run's ``cancel`` event is set; ends in ``summary.stopped``."""


class Extraction:
    """One run of the folder job; ``run`` reads top to bottom, each step is a method.
    (``gpudecode.GpuExtraction`` reads and decodes the photos its own way, then the same.)"""

    read = staticmethod(prepare_or_skip)  # the worker's first stage
    cancel: threading.Event | None = None  # set (from any thread): stop at the next check

    def __init__(
        self,
        generator: ModelSession,
        segmenter: ModelSession | None,
        options: ExtractOptions,
        emit: Callable[[FileResult], None],
        clock: Any = None,
    ):
        self.generator, self.segmenter, self.options, self.emit = generator, segmenter, options, emit
        self.plan, self.clock = make_plan(generator, segmenter, options), clock
        self.limit = options.batch_size * 2 + options.workers
        # reads go to worker processes a few at a time (``flush_reads``): a batch's in a task per worker
        self.to_read: list[tuple[ExtractJob, tuple]] = []
        self.read_chunk = -(-options.batch_size // options.workers) if options.use_processes else 1
        self.reading: deque[tuple[ExtractJob, Share]] = deque()
        self.unmasked: list[NeedsMask] = []
        # batches at their first look, or fitted after their closer looks: their photos, each one's work
        self.looking: deque[tuple[list[NeedsMask], list[Share]]] = deque()
        self.batches: dict[tuple, list[Prepared]] = {}
        self.writing: deque[tuple[Prepared, Share, tuple | None]] = deque()  # (its output before it: ``send_writes``)
        self.workers = Workers(options, slot_bytes(generator, segmenter), self.limit + options.workers)  # + spare
        self.folders: set[Path] = set()  # of the outputs: swept if a worker died mid-write (``run``)
        self.device_pool: Executor | None = None  # photos on a device are worked on there (``gpudecode``)
        self.routes: Counter = Counter()  # where photos were decoded, and why (a GPU extraction's)
        self.retries = Retries()  # photos of a pool whose worker process died (``retry_alone``)
        self.dropped: list[str] = []  # the photos in flight when the job stopped (``abandon``)
        self.taken: ExtractJob | None = None  # the job taken from the source while room is made for it

    # -- the run ---------------------------------------------------------------------------

    def run(self, jobs: Iterable[ExtractJob | None]) -> None:
        # Ctrl-C / SIGTERM land at the checks, never inside a wait that holds futures' locks.
        with deferred_signals() as signals:
            try:
                idle_since = None  # when the job source began to have no job ready (None)
                for job in jobs:
                    if job is None:  # none ready yet (a fetch on its way): the work in flight moves on
                        idle_since = idle_since or time.monotonic()
                        self.flush_reads()
                        self.step(block=False, finishing=time.monotonic() - idle_since >= IDLE_S)
                        self.check(signals)
                        continue
                    idle_since, self.taken = None, job  # (taken, not yet admitted: ``abandon`` counts it)
                    while self.in_flight() >= self.limit:
                        self.step(block=True)
                        self.check(signals)
                    self.admit(job)
                    self.taken = None
                    self.step(block=False)
                    self.check(signals)
                    if self.retries:
                        self.retry_alone(signals)
                self.retry_alone(signals)  # (the last photos finish first)
            except BaseException:
                self.abandon()
                raise
            finally:
                self.workers.shutdown()
                for folder in self.folders if self.workers.broke else ():  # a worker died: mid-write?
                    remove_stale_partials(folder)
            signals.check()  # one that came while the last work finished

    def finish(self, signals: Any) -> None:
        """Every photo in flight to its end (partial batches run)."""
        while self.in_flight():
            self.step(block=True, finishing=True)
            self.check(signals)

    def retry_alone(self, signals: Any) -> None:
        """The photos that were in a worker process's pool when it died, once more, each alone once
        the others in flight are done: a photo that kills its worker (a decoder that crashes on
        it, more memory than is free) then fails alone, and the others are extracted."""
        self.finish(signals)
        while self.retries:
            self.admit(self.retries.next())
            self.finish(signals)

    def check(self, signals: Any) -> None:
        signals.check()
        if self.cancel is not None and self.cancel.is_set():
            raise _Cancelled

    def in_flight(self) -> int:
        waiting = sum(len(batch) for batch in self.batches.values()) + sum(len(items) for items, _ in self.looking)
        return len(self.to_read) + len(self.reading) + len(self.unmasked) + waiting + len(self.writing)

    def admit(self, job: ExtractJob) -> None:
        if job.error is not None:
            self.emit(FileResult(str(job.photo), "error", None, job.error, None))
            return
        self.folders.add(job.output.parent)
        self.queue_read(job, self.read, job, self.plan, self.options.overwrite)

    def queue_read(self, job: ExtractJob, read: Callable[..., Any], *args: Any) -> None:
        """``read(*args)`` on a worker, sent in one task with the next few (``read_chunk``, or at the next wait)."""
        self.to_read.append((job, (read, *args)))
        if len(self.to_read) >= self.read_chunk:
            self.flush_reads()

    def flush_reads(self) -> None:
        if not self.to_read:
            return
        queued, self.to_read = self.to_read, []
        through = read_lightly if self.options.use_processes else self.timed("read", call)
        shares = self.workers.send(through, [read for _, read in queued], None, 1)
        self.reading.extend(zip((job for job, _ in queued), shares, strict=True))

    def step(self, block: bool, finishing: bool = False) -> None:
        """Move every finished piece of work one stage on. ``block``: first wait until some
        work finishes; ``finishing``: no more jobs come, so partial batches run too."""
        if block:
            self.flush_reads()
            # Results are collected in order, so only the oldest of each queue can move the job
            # on: waiting on any future would spin while a later one is done and the head is not.
            heads = [queue[0][1] for queue in (self.reading, self.writing) if queue]
            if self.looking:  # a look of the oldest batch still being made (all made: one that is)
                looks = self.looking[0][1]
                heads.append(next((f for f in looks if not f.done()), looks[0]))
            if self._ready_batch(self._partials_run(finishing)) or any(f.done() for f in heads):
                pass
            elif heads:
                wait([share.task for share in heads], timeout=WAIT_S, return_when=FIRST_COMPLETED)
            elif self.batches and not self.unmasked:
                # Only partial batches of different output sizes hold the room: run the largest.
                key = max(self.batches, key=lambda k: len(self.batches[k]))
                self.infer(self.batches.pop(key))
        self.collect_reads()
        if self.unmasked and (len(self.unmasked) >= self.options.batch_size or not self.reading):
            self.segment()
        self.collect_looks()
        self.run_batches(self._partials_run(finishing))
        self.collect_writes()

    # -- the stages --------------------------------------------------------------------------

    def collect_reads(self) -> None:
        while self.reading and self.reading[0][1].done():
            job, future = self.reading.popleft()
            try:
                item = future.result()
            except Exception as exc:  # noqa: BLE001 - a bad photo is reported, the job goes on
                self.fail(job, exc, job.mask.describe() if job.mask.kind != "auto" else None)
                continue
            self.route(job, item)

    def route(self, job: ExtractJob, item: Any) -> None:
        if isinstance(item, Skipped):
            self.emit(FileResult(str(job.photo), "skipped", str(job.output), None, None))
        elif isinstance(item, NeedsMask):
            self.unmasked.append(item)
        else:
            self.batches.setdefault(item.batch_key, []).append(item)

    def segment(self) -> None:
        """The segmenter's first look at a batch; what it decides of each photo is a worker's work
        (``look_then``: fitted there at once, or its closer look's crop made; ``collect_looks``)."""
        items, self.unmasked = self.unmasked, []
        try:
            parsed = self.timed("segment", parse)(items, self.segmenter)
        except Exception as exc:  # noqa: BLE001 - reported per photo; the next batch may work
            self.segmentation_failed(items, range(len(items)), exc)
            return
        light, contract = self.options.use_processes, self.segmenter.contract
        calls = [(for_look(item, p[2], light), *p, contract, self.plan) for item, p in zip(items, parsed, strict=True)]
        self.looking.append((items, self.send("read", look_then, calls, items)))

    def collect_looks(self) -> None:
        """Each batch whose looks (or fits: ``finished``) are all back, in order: fitted photos on to
        their batches (or, cut out, to be written), closer looks' crops through the second look."""
        while self.looking and all(f.done() for f in self.looking[0][1]):
            items, shares = self.looking.popleft()
            looks, crops, cut_out = [], [], []
            for item, share in zip(items, shares, strict=True):
                error = share.exception()  # that photo's (its worker died, say); the others go on
                look, then = (None, error) if error is not None else share.result()
                if look is None:
                    cut_out += self.fitted(item.job, then)
                else:
                    crops.append(then)
                looks.append(look)
            self.send_writes(cut_out)
            look = FirstLook.of(looks)
            if not look.zooms:
                continue
            try:
                masks = self.timed("segment", second_look)(look, crops, self.segmenter)
            except Exception as exc:  # noqa: BLE001 - reported per photo; the next batch may work
                self.segmentation_failed(items, look.closer, exc)
                continue
            self.finish_segmented(items, masks, look.closer)

    def segmentation_failed(self, items: list[NeedsMask], indices: Iterable[int], exc: Exception) -> None:
        log.debug("segmentation failed", exc_info=exc)
        for index in indices:
            self.fail(items[index].job, InputError(f"segmentation failed: {describe_error(exc)}"), "segmenter")

    def finish_segmented(self, items: list[NeedsMask], masks: list, indices: Iterable[int]) -> None:
        """``finished`` for each of ``items[indices]`` with its mask; one with an error instead fails."""
        found, calls = [], []
        for index in indices:
            item, mask = items[index], masks[index]
            if isinstance(mask, SegmentedMask):
                found.append(item)
                calls.append((item.for_worker(self.options.use_processes), mask, self.plan))
            else:
                self.fail(item.job, mask, "segmenter")
        if found:
            self.looking.append((found, self.send("read", finished, calls, found)))

    def send(self, stage: str, function: Callable[..., Any], calls: list[tuple], items: list | None = None) -> list:
        """``function(*call)`` for each call on the workers, a batch's in a task per worker process;
        given the calls' photos (``items``), a photo decoded on a GPU is worked on where it lies."""
        pools = [None if item.on_host else self.device_pool for item in items] if items else None
        return self.workers.send(self.timed(stage, function), calls, pools, self.options.workers)

    def fitted(self, job: ExtractJob, item: Prepared | Exception) -> list[tuple]:
        """A fitted photo on to its batch; a garment shown alone, cut out already, has nothing to
        generate: its ``write`` call is returned (to be sent with the others)."""
        if isinstance(item, Exception):
            self.fail(job, item, "segmenter")
        elif item.ready is not None:
            return [(item.for_write(), item.ready, self.plan)]
        else:
            self.batches.setdefault(item.batch_key, []).append(item)
        return []

    def _partials_run(self, finishing: bool) -> bool:
        """Whether partial batches run now: no more jobs come and no photo is on its way to one.
        (A blocking step that took a partial batch for ready while they may not run spun, holding
        the GIL that the pool's threads need to hand the results over: the tail of every job.)"""
        return finishing and not (self.to_read or self.reading or self.unmasked or self.looking)

    def _ready_batch(self, partial_too: bool) -> bool:
        return any(len(b) >= self.options.batch_size or (partial_too and b) for b in self.batches.values())

    def run_batches(self, partial_too: bool) -> None:
        for key in list(self.batches):
            batch = self.batches[key]
            while len(batch) >= self.options.batch_size or (partial_too and batch):
                current, batch[:] = batch[: self.options.batch_size], batch[self.options.batch_size :]
                self.infer(current)
            if not batch:
                del self.batches[key]

    def infer(self, batch: list[Prepared]) -> None:
        try:
            feeds = {name: np.stack([p.inputs[name] for p in batch]) for name in batch[0].inputs}
            out = self.timed("infer", self.generator.run)(**feeds)
        except Exception as exc:  # noqa: BLE001 - reported per photo; the next batch may work
            log.debug("inference failed", exc_info=True)
            for p in batch:
                self.fail(p.job, InputError(f"inference failed: {describe_error(exc)}"), p.mask_source)
            return
        self.send_writes([(p.for_write(), {k: v[i] for k, v in out.items()}, self.plan) for i, p in enumerate(batch)])

    def send_writes(self, calls: list[tuple]) -> None:
        befores = [before_write(item.job, self.options.overwrite) for item, *_ in calls]  # before any is done
        self.writing.extend(zip((c[0] for c in calls), self.send("write", write, calls), befores, strict=True))

    def collect_writes(self) -> None:
        while self.writing and self.writing[0][1].done():
            # Reported before it leaves ``writing``: an interrupt in between makes ``abandon``
            # report it (once more at worst), never drops a written file from the report.
            result = self.report_write(*self.writing[0])
            self.writing.popleft()
            if result is not None:
                self.workers.worked()
                if result.stops_job:
                    raise DiskFull(result.error)

    def report_write(self, item: Prepared, work: Share, before: tuple | None) -> FileResult | None:
        """A write's result, reported (``written_anyway``'s if its worker process died); None: the photo failed."""
        try:
            result = work.result()
        except Exception as exc:  # noqa: BLE001 - that photo's (its worker died: ``Workers``)
            result = written_anyway(item, self.plan, before) if isinstance(exc, WorkerDied) else None
            if result is None:
                self.fail(item.job, exc, None)
                return None
        self.emit(result)
        return result

    # -- bookkeeping -------------------------------------------------------------------------

    def fail(self, job: ExtractJob, exc: BaseException, source: str | None) -> None:
        exc = self.retries.failed(job, exc)
        if exc is None:  # its worker process died: it is tried again alone (``retry_alone``)
            return
        if not isinstance(exc, ClothesExtractorError):
            log.debug("%s failed", job.photo, exc_info=exc)
        self.emit(FileResult(str(job.photo), "error", None, describe_error(exc), source))
        if isinstance(exc, DiskFull):  # saving its mask (--save-masks)
            raise exc

    def abandon(self) -> None:
        """On an interrupt, a full disk or a cancel: drop the photos in flight (``dropped``: their
        paths), let the writes in progress finish (each output is complete or absent) and report them."""
        for future in [f for _, f in self.reading] + [f for _, shares in self.looking for f in shares]:
            future.cancel()
        in_flight = [job for job in (self.taken,) if job is not None]
        in_flight += [job for job, _ in self.to_read] + [job for job, _ in self.reading]
        in_flight += [item.job for item in self.unmasked] + [item.job for items, _ in self.looking for item in items]
        in_flight += [item.job for batch in self.batches.values() for item in batch]
        self.dropped = list(dict.fromkeys(str(job.photo) for job in in_flight))
        for job in self.retries.abandoned():  # not tried again: reported as they failed
            self.emit(FileResult(str(job.photo), "error", None, str(WorkerDied()), None))
        for item, future, before in self.writing:
            if future.cancel():  # (its write had not begun)
                self.dropped.append(str(item.job.photo))
            else:
                try:
                    self.report_write(item, future, before)
                except BaseException:  # noqa: BLE001 - a second interrupt: the write's own cleanup ran
                    pass
        self.writing.clear()

    def timed(self, stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
        if self.clock is None or self.options.use_processes:
            return function  # a process pool pickles the function: only plain module functions
        return self.clock.timed(stage, function)


def run_extraction(
    generator: ModelSession,
    jobs: Iterable[ExtractJob | None],
    options: ExtractOptions,
    on_result: Callable[[FileResult], None] | None = None,
    segmenter: ModelSession | None = None,
    clock: Any = None,
    decoder: Any = None,
    cancel: threading.Event | None = None,
    watched: bool = False,
) -> ExtractionSummary:
    """Extract every job's garment; ``on_result`` sees each file's result as it is final.

    Photos without a mask go through ``segmenter`` when there is one. ``on_result`` is
    always called from the calling thread. On ``KeyboardInterrupt`` the photos in flight
    are dropped, the writes in progress finish (each output is either complete or
    absent), and the interrupt propagates; on a full disk the same, but ``summary.stopped``
    says why instead (the results so far were reported; the rest were not tried). ``clock``
    (``bench.e2e.StageClock``), when given, adds up the seconds of each stage: read,
    segment, infer, write. ``decoder`` (``gpudecode.GpuDecoder``): photos decoded on the
    GPU; ``summary.decoded`` says how many. ``cancel``: once it is set (from any thread), the
    run stops as on a full disk, within about ``WAIT_S``, and ``summary.stopped`` is ``CANCELLED``.
    ``jobs`` may give None where it has no job ready yet (it waits for one: give None every
    ``WAIT_S`` or so while it does): the photos in flight go on, and are all written once it has
    had none for ``IDLE_S``. ``watched``: ``jobs`` may give a photo again (``runtime.watch``), and
    the summary counts each by its last try (``ExtractionSummary.by_last_try``).
    """
    generator.require_task("generator")
    if segmenter is not None:
        segmenter.require_task("segmenter")
    summary, started = ExtractionSummary(by_last_try=watched), time.perf_counter()

    def emit(result: FileResult) -> None:
        summary.add(result)
        if on_result is not None:
            on_result(result)

    extraction = (Extraction if decoder is None else decoder.extraction)(generator, segmenter, options, emit, clock)
    extraction.cancel = cancel
    try:
        extraction.run(jobs)
    except (DiskFull, WorkersKeepDying) as exc:
        summary.stopped = str(exc)
    except _Cancelled:
        summary.stopped = CANCELLED
    finally:
        summary.seconds = time.perf_counter() - started
        summary.decoded, summary.crossed = extraction.routes, extraction.workers.crossed
        summary.retried, summary.dropped = extraction.retries.count, extraction.dropped
    return summary
