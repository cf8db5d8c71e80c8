"""Try-on's folder job (``tryon``, ``api.dress_folder``): each (person, garment, output)
job dressed with the folder job's guarantees: every output complete or absent, skipped when
these models wrote it already, each bad pair reported and the rest carried on, a full
disk or a cancel stopping the job.

    read    (threads)      the next batch's person photos and garments, each one once:
                           decode, the parser's first look (``Dresser.person``), the
                           garment fitted and checked (``Dresser.garment``, ``refusal``),
                           beside this batch's model run; nothing more for a pair whose
                           garment or person is known to be unusable (``dress_reads``)
    dress   (this thread)  ``Dresser.draw_pairs``: parse, fit and the try-on model, a batch
                           at a time
    write   (threads)      paste into the full-resolution photo, encode, write: Pillow lets
                           go of the GIL in its resize and encoders, so these overlap the
                           next batch's model run and each other; results are reported in
                           order, in this thread
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ..errors import DiskFull, InputError, OutputError
from .dress_reads import BatchRead, Read, Unusable
from .dressing import Dresser, Fitted, Garment, Person, paste
from .files import write_atomic
from .images import encode_image
from .limits import check_batch_size
from .options import default_workers
from .pipeline import CANCELLED, IDLE_S
from .records import CONTENT, with_digest
from .session import trim_memory
from .signature import check_replaceable, read_signature
from .stages import JobTally, describe_error, output_format, signed_by, with_inputs

Files = tuple[bytes | None, bytes | None]  # a pair's person and garment files' bytes as its batch read them


@dataclass(frozen=True)
class DressJob:
    """Dress the person of ``person`` in the catalog garment of ``garment``; write ``output``.
    ``photo``: the garment photo stage one made ``garment`` of (a temporary file), which the
    results name instead."""

    person: Path
    garment: Path
    output: Path
    photo: Path | None = None
    # the size and modification time of the person and garment files (``records.input_state``); once they
    # are read, with the digest of their bytes (``with_content``)
    stamp: str | None = None
    changed: tuple[int, ...] = ()  # the status-change time (ns) of each of those files then (``records.input_state``)

    @property
    def inputs(self) -> tuple[Path, Path]:
        """The files ``stamp`` records: the person photo and the garment (the photo stage one made it of)."""
        return self.person, self.photo or self.garment

    @property
    def person_read(self) -> Read:
        """The person photo as a batch reads it (``dress_reads``): its path, its size and time, and
        its status-change time."""
        return self.person, self._stamps()[0], self._changes()[0]

    @property
    def garment_read(self) -> Read:
        """The garment (a catalog image stage one made: its photo's size and times) as a batch reads it."""
        return self.garment, self._stamps()[1], self._changes()[1]

    def _changes(self) -> tuple[int, ...]:
        return self.changed if len(self.changed) == 2 else (0, 0)

    def _stamps(self) -> list[str]:
        stamps = (self.stamp or "").partition(CONTENT)[0].split(",")
        return stamps if len(stamps) == 2 else ["", ""]  # (none: a file that could not be looked up)

    def with_content(self, person: bytes | None = None, garment: bytes | None = None) -> DressJob:
        """This job with its ``stamp`` completed by the digest of its inputs' bytes (``person``,
        ``garment``: as its batch read them; a garment photo's, which stage one read, and those
        not given, read now: ``records.with_digest``), for its output's record; as it is without a stamp."""
        read = (person, garment if self.photo is None else None)
        return dataclasses.replace(self, stamp=with_digest(self.stamp, self.inputs, read))


@dataclass(frozen=True)
class DressResult:
    person: str
    garment: str
    status: str  # ok | error | skipped (| pending: a dry run's, to do)
    output: str
    error: str | None = None
    size: tuple[int, int] | None = None  # (height, width) written
    error_of: str | None = None  # "person" or "garment": the one input the error is about, where it is one
    # the catalog image stage one made of a garment photo (``--garment-from``), while the pair's window
    # lasts: a temporary file, so never in a report (``to_json``)
    catalog: str | None = None

    @classmethod
    def of(cls, job: DressJob, status: str, error: str | None = None, size=None, error_of=None) -> "DressResult":
        catalog = str(job.garment) if job.photo is not None else None
        garment = str(job.photo or job.garment)
        return cls(str(job.person), garment, status, str(job.output), error, size, error_of, catalog)

    def to_json(self) -> dict:
        return {name: value for name, value in dataclasses.asdict(self).items() if name != "catalog"}


@dataclass
class DressingSummary(JobTally):
    """What a try-on folder job did, from its ``DressResult``s (``stopped``: before its last pair;
    ``by_last_try``: a watch's, where a pair whose person or garment is written again comes again)."""

    def add(self, result: DressResult) -> None:
        self.count(result.status, (result.person, result.garment))


def _finished(job: DressJob, signature: str, fmt: str) -> bool:
    """Whether these models (``signature``) already wrote the output; ``OutputError`` for someone else's file there."""
    if not os.path.exists(job.output):  # (False where its name cannot be looked up: too long; the write says why)
        return False
    if signed_by(read_signature(job.output, fmt), signature, job.stamp, job.inputs):  # (one changed: redone)
        return True
    check_replaceable(job.output)
    return False


def decided(job: DressJob, signature: str, overwrite: bool) -> DressResult | None:
    """A job's result known before any work: ``skipped`` (these models wrote its output) or
    ``error`` (no output format; a file there that this tool did not write); None: to dress."""
    try:
        done = not overwrite and _finished(job, signature, output_format(job.output))
    except (InputError, OutputError) as exc:
        return DressResult.of(job, "error", describe_error(exc))
    return DressResult.of(job, "skipped") if done else None


def preview_dressing(
    dresser: Dresser, jobs: Iterable[DressJob | DressResult], overwrite: bool = False
) -> Iterator[DressResult]:
    """What ``run_dressing`` would do with each job, decoding and writing nothing (``tryon
    --dry-run``): ``pending`` (to dress), ``skipped`` or ``error``, as ``decided``; a result
    among ``jobs`` as it is."""
    for job in jobs:
        if isinstance(job, DressResult):
            yield job
        else:
            yield decided(job, dresser.signature, overwrite) or DressResult.of(job, "pending")


def run_dressing(
    dresser: Dresser,
    jobs: Iterable[DressJob | DressResult | None],
    *,
    batch_size: int = 8,
    overwrite: bool = False,
    quality: int = 95,
    on_result: Callable[[DressResult], None] | None = None,
    cancel: threading.Event | None = None,
    workers: int | None = None,
    watched: bool = False,
    tally: DressingSummary | None = None,
) -> DressingSummary:
    """Dress every job's person; ``on_result`` sees each pair's result as it is final, in
    this thread. ``jobs`` is read as the job goes (a generator: ``pairs.dress_jobs``); a
    result among them (a pair refused before any work) is reported as it comes. A None among
    them (``watched``: a watch's, ``runtime.watch``, between its walks) says none is ready now:
    once none has been for ``IDLE_S`` the pairs gathered are dressed as a short batch, and the
    pairs read are dressed and written; the summary counts a pair given again by its last try.
    ``tally``: the summary to count into (a job of several runs: ``stage_one.dress_from_photos``).

    An output these models already wrote (its signature) is skipped unless ``overwrite``.
    ``workers`` threads (default: one per core, at most 16) read the next batch (a garment
    used by many of its pairs decoded and fitted once) while the model dresses this one, and
    as many paste, encode and write. On ``KeyboardInterrupt`` the pairs not yet written are
    dropped, the writes in progress finish and are reported (every written file is complete
    and in the report), and the interrupt propagates. A full disk stops the job after the
    writes in flight, and ``summary.stopped`` says why. ``cancel``: once it is set (from any
    thread), the job stops after the pairs in flight (at most two batches being written; the
    batch being read is not dressed) and ``summary.stopped`` is ``CANCELLED``. A run that
    ends gives back the CPU memory the two models' arenas and the C heap hold (``trim_memory``).
    """
    check_batch_size(batch_size)
    summary = tally if tally is not None else DressingSummary(by_last_try=watched)
    started = time.perf_counter()

    def emit(result: DressResult) -> None:
        summary.add(result)
        if on_result is not None:
            on_result(result)

    def cancelled() -> bool:
        return cancel is not None and cancel.is_set()

    workers = workers or default_workers()
    readers = ThreadPoolExecutor(workers, thread_name_prefix="dress-read")
    writers = _Writers(workers, 2 * batch_size, dresser.signature, quality, emit)
    try:
        batches = _batches(jobs, batch_size, dresser.signature, overwrite, emit, cancelled)
        if not _dress_all(dresser, batches, readers, writers, emit, cancelled, Unusable()):
            summary.stopped = CANCELLED
        writers.drain()
        trim_memory([dresser.tryon, dresser.parser])  # (what comes next may be another model: stage one)
    except DiskFull as exc:  # every pair after it would fail the same way
        summary.stopped = str(exc)
    finally:
        readers.shutdown(wait=True, cancel_futures=True)
        writers.close()
        summary.seconds = time.perf_counter() - started
    return summary


def _dress_all(
    dresser: Dresser,
    batches: Iterator[list[DressJob]],
    readers: ThreadPoolExecutor,
    writers: _Writers,
    emit: Callable[[DressResult], None],
    cancelled: Callable[[], bool],
    unusable: Unusable,
) -> bool:
    """Read each batch while the one before is dressed; False if cancelled with pairs left
    (the batch being read and the jobs not gathered yet are not tried)."""
    reading: BatchRead | None = None
    try:
        for batch in batches:
            if not batch:  # none ready (a watch, between walks): the batch read is dressed, its results said
                if reading is not None:
                    if cancelled():
                        return False
                    _dress(dresser, reading, writers, emit, unusable)
                    reading = None
                writers.drain()
                continue
            ahead = BatchRead(readers, dresser, batch, reading, unusable)
            if reading is not None:
                if cancelled():
                    return False
                _dress(dresser, reading, writers, emit, unusable)
            reading = ahead
    except _Cancelled:
        return False
    if reading is not None:
        if cancelled():
            return False
        _dress(dresser, reading, writers, emit, unusable)
    return True


def _batches(
    jobs: Iterable[DressJob | DressResult | None],
    batch_size: int,
    signature: str,
    overwrite: bool,
    emit: Callable[[DressResult], None],
    cancelled: Callable[[], bool],
) -> Iterator[list[DressJob]]:
    """The jobs left to dress, ``batch_size`` at a time; the others' results (``decided``)
    emitted as they are met. ``_Cancelled`` once ``cancelled()`` with jobs left. While ``jobs``
    has none ready (None), an empty batch; the jobs gathered, once none has been ready for ``IDLE_S``."""
    pending: list[DressJob] = []
    idle_since = None
    for job in jobs:
        if cancelled():
            raise _Cancelled
        if job is None:
            idle_since = idle_since or time.monotonic()
            if not pending:
                yield []
            elif time.monotonic() - idle_since >= IDLE_S:
                yield pending
                pending = []
            continue
        idle_since = None
        known = job if isinstance(job, DressResult) else decided(job, signature, overwrite)
        if known is not None:
            emit(known)
            continue
        pending.append(job)
        if len(pending) == batch_size:
            yield pending
            pending = []
    if pending and cancelled():
        raise _Cancelled
    if pending:
        yield pending


class _Cancelled(Exception):
    """The caller's ``cancel`` was set with pairs left to dress."""


def _dress(
    dresser: Dresser, read: BatchRead, writers: _Writers, emit: Callable[[DressResult], None], unusable: Unusable
) -> None:
    """Dress a batch that was read; its unreadable pairs reported first (a bad garment for
    every pair that uses it), one bad pair never stopping the job; the inputs found unusable
    noted in ``unusable``."""
    ready: list[tuple[DressJob, tuple[Person, Garment], Files]] = []
    for job, reads in zip(read.jobs, read.reads, strict=True):
        values = []
        for future in reads:  # (garment, person), each with its file's bytes, up to the first that failed
            try:
                values.append(future.result())
            except Exception as exc:  # noqa: BLE001 - one bad pair never stops the job
                error_of = read.input_of(job, future)
                unusable.note(getattr(job, f"{error_of}_read"), describe_error(exc))
                emit(DressResult.of(job, "error", describe_error(exc), error_of=error_of))
                break
        else:
            (garment, garment_data), (person, person_data) = values
            ready.append((job, (person, garment), (person_data, garment_data)))
    if not ready:
        return
    for (job, _, files), drawn in zip(ready, dresser.draw_pairs([pair for _, pair, _ in ready]), strict=True):
        if isinstance(drawn, InputError):  # (the person's: its garment passed ``refusal`` when read)
            unusable.note(job.person_read, describe_error(drawn))
            emit(DressResult.of(job, "error", describe_error(drawn), error_of="person"))
        else:
            writers.submit(job, files, *drawn)
    writers.drain(keep=writers.limit)


class _Writers:
    """The write stage on worker threads: paste, encode, write. Results are reported in
    submission order, in the thread that drains them; at most ``limit`` pairs wait after a
    drain, so memory stays flat whatever the folder's size."""

    def __init__(self, workers: int, limit: int, signature: str, quality: int, emit: Callable[[DressResult], None]):
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="dress-write")
        self.limit, self.signature, self.quality, self.emit = limit, signature, quality, emit
        self.in_flight: deque[Future] = deque()

    def submit(self, job: DressJob, files: Files, fitted: Fitted, image: np.ndarray) -> None:
        """``job``'s dressed person to write; ``files``: its person's and garment's bytes as read."""
        self.in_flight.append(self.pool.submit(self._write, job, files, fitted, image))

    def _write(
        self, job: DressJob, files: Files, fitted: Fitted, image: np.ndarray
    ) -> tuple[DressResult, DiskFull | None]:
        try:
            job = job.with_content(*files)  # (its output's record: the digest of the bytes its batch read)
            dressed = paste(fitted, image)
            signature = with_inputs(self.signature, job.stamp)
            data = encode_image(np.asarray(dressed), output_format(job.output), self.quality, signature=signature)
            write_atomic(job.output, data)  # (its folder made there)
        except Exception as exc:  # noqa: BLE001 - a bad output fails this pair, the job reports it
            return DressResult.of(job, "error", describe_error(exc)), exc if isinstance(exc, DiskFull) else None
        return DressResult.of(job, "ok", size=(dressed.height, dressed.width)), None

    def drain(self, keep: int = 0) -> None:
        """Report the oldest results until at most ``keep`` are in flight, and those finished
        already; after a full disk, every one in flight is reported and ``DiskFull`` raised."""
        full = None
        while self.in_flight and (len(self.in_flight) > keep or full is not None or self.in_flight[0].done()):
            # Emitted before it leaves ``in_flight`` (as the extract pipeline's writes): an
            # interrupt while waiting or in between makes ``close`` report it (once more at
            # worst), never drops a written file from the report.
            result, disk_full = self.in_flight[0].result()
            self.emit(result)
            self.in_flight.popleft()
            full = full or disk_full
        if full is not None:
            raise full

    def close(self) -> None:
        """Let the writes in progress finish (complete files) and report them; drop those not
        started (an interrupt: every file written is in the report)."""
        self.pool.shutdown(wait=True, cancel_futures=True)
        while self.in_flight:
            future = self.in_flight.popleft()
            if not future.cancelled():
                self.emit(future.result()[0])
