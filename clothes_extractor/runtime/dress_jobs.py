"""Try-on's folder job (``tryon``, ``api.dress_folder``): each (person, garment, output)
job dressed with the folder job's guarantees: every output complete or absent, skipped when
this model pair wrote it already, each bad pair reported and the rest carried on, a full
disk or a cancel stopping the job.

    decode  (this thread)  the batch's person photos and garments, each garment once
    dress   (this thread)  ``Dresser.draw_pairs``: parse, fit and the try-on model, a batch
                           at a time
    write   (threads)      paste into the full-resolution photo, encode, write: Pillow lets
                           go of the GIL in its resize and encoders, so these overlap the
                           next batch's model run and each other; results are reported in
                           order, in this thread
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from PIL import Image

from ..errors import DiskFull, InputError, OutputError
from .dressing import Dresser, Fitted, load_garment, load_person, paste
from .files import write_atomic
from .images import encode_image
from .options import default_workers
from .pipeline import CANCELLED
from .signature import check_replaceable, read_signature
from .stages import describe_error, output_format


@dataclass(frozen=True)
class DressJob:
    """Dress the person of ``person`` in the catalog garment of ``garment``; write ``output``.
    ``photo``: the garment photo stage one made ``garment`` of (a temporary file), which the
    results name instead."""

    person: Path
    garment: Path
    output: Path
    photo: Path | None = None


@dataclass(frozen=True)
class DressResult:
    person: str
    garment: str
    status: str  # ok | error | skipped (| pending: a dry run's, to do)
    output: str
    error: str | None = None
    size: tuple[int, int] | None = None  # (height, width) written

    @classmethod
    def of(cls, job: DressJob, status: str, error: str | None = None, size=None) -> "DressResult":
        return cls(str(job.person), str(job.photo or job.garment), status, str(job.output), error, size)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class DressingSummary:
    ok: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    stopped: str | None = None  # why the job stopped before its last pair: a full disk's error, or CANCELLED

    def add(self, result: DressResult) -> None:
        if result.status == "ok":
            self.ok += 1
        elif result.status == "skipped":
            self.skipped += 1
        else:
            self.failed += 1


def _finished(job: DressJob, signature: str, fmt: str) -> bool:
    """Whether this model pair already wrote the output; ``OutputError`` for someone else's file there."""
    if not job.output.exists():
        return False
    if read_signature(job.output, fmt) == signature:
        return True
    check_replaceable(job.output)
    return False


def _decided(job: DressJob, signature: str, overwrite: bool) -> DressResult | None:
    """A job's result known before any work: ``skipped`` (this model pair wrote its output) or
    ``error`` (no output format; a file there that this tool did not write); None: to dress."""
    try:
        done = not overwrite and _finished(job, signature, output_format(job.output))
    except (InputError, OutputError) as exc:
        return DressResult.of(job, "error", describe_error(exc))
    return DressResult.of(job, "skipped") if done else None


def sort_out(
    dresser: Dresser, jobs: Iterable[DressJob], overwrite: bool = False
) -> tuple[list[DressJob], list[DressResult]]:
    """The jobs left to dress, and the results of the others, known before any work
    (``skipped``: done; ``error``: a file there that this tool did not write): a rerun of a
    job whose garments come from photos extracts only the garments of the pairs left."""
    todo, known = [], []
    for job in jobs:
        decided = _decided(job, dresser.signature, overwrite)
        if decided is None:
            todo.append(job)
        else:
            known.append(decided)
    return todo, known


def preview_dressing(dresser: Dresser, jobs: Iterable[DressJob], overwrite: bool = False) -> Iterator[DressResult]:
    """What ``run_dressing`` would do with each job, decoding and writing nothing (``tryon
    --dry-run``): ``pending`` (to dress), ``skipped`` or ``error``, as ``_decided``."""
    for job in jobs:
        yield _decided(job, dresser.signature, overwrite) or DressResult.of(job, "pending")


def run_dressing(
    dresser: Dresser,
    jobs: Iterable[DressJob],
    *,
    batch_size: int = 8,
    overwrite: bool = False,
    quality: int = 95,
    on_result: Callable[[DressResult], None] | None = None,
    cancel: threading.Event | None = None,
    known: Iterable[DressResult] = (),
    workers: int | None = None,
) -> DressingSummary:
    """Dress every job's person; ``on_result`` sees each pair's result as it is final, in
    this thread.

    An output this model pair already wrote (its signature) is skipped unless ``overwrite``.
    A garment used by many pairs is decoded once per batch; ``workers`` threads (default:
    one per core, at most 16) paste, encode and write. On ``KeyboardInterrupt`` the pairs
    not yet written are dropped, the writes in progress finish and are reported (every
    written file is complete and in the report), and the interrupt propagates. A full disk
    stops the job after the writes in flight, and ``summary.stopped`` says why. ``cancel``:
    once it is set (from any thread), the job stops after the pairs in flight (at most two
    batches) and ``summary.stopped`` is ``CANCELLED``. ``known``: results decided before
    the run (``sort_out``), reported and counted first.
    """
    summary = DressingSummary()
    started = time.perf_counter()

    def emit(result: DressResult) -> None:
        summary.add(result)
        if on_result is not None:
            on_result(result)

    for result in known:
        emit(result)
    writers = _Writers(workers or default_workers(), 2 * batch_size, dresser.signature, quality, emit)
    pending: list[DressJob] = []
    try:
        for job in jobs:
            if cancel is not None and cancel.is_set():  # the pairs gathered for the next batch are not tried
                summary.stopped = CANCELLED
                break
            decided = _decided(job, dresser.signature, overwrite)
            if decided is not None:
                emit(decided)
                continue
            pending.append(job)
            if len(pending) == batch_size:
                _run_batch(dresser, pending, writers, emit)
                pending = []
        else:
            if pending and cancel is not None and cancel.is_set():
                summary.stopped = CANCELLED
            elif pending:
                _run_batch(dresser, pending, writers, emit)
        writers.drain()
    except DiskFull as exc:  # every pair after it would fail the same way
        summary.stopped = str(exc)
    finally:
        writers.close()
        summary.seconds = time.perf_counter() - started
    return summary


def _run_batch(dresser: Dresser, jobs: list[DressJob], writers: _Writers, emit: Callable[[DressResult], None]) -> None:
    persons: list[tuple[DressJob, Image.Image]] = []
    garments: dict[Path, Image.Image | BaseException] = {}
    for job in jobs:
        try:
            if job.garment not in garments:
                try:
                    garments[job.garment] = load_garment(job.garment)
                except Exception as exc:  # noqa: BLE001 - reported for every pair that uses it
                    garments[job.garment] = exc
            garment = garments[job.garment]
            if isinstance(garment, BaseException):
                raise garment
            persons.append((job, load_person(job.person)))
        except Exception as exc:  # noqa: BLE001 - one bad pair never stops the job
            emit(DressResult.of(job, "error", describe_error(exc)))
    if not persons:
        return
    pairs = [(photo, garments[job.garment]) for job, photo in persons]
    for (job, _), drawn in zip(persons, dresser.draw_pairs(pairs), strict=True):  # type: ignore[arg-type]
        if isinstance(drawn, InputError):
            emit(DressResult.of(job, "error", describe_error(drawn)))
        else:
            writers.submit(job, *drawn)
    writers.drain(keep=writers.limit)


class _Writers:
    """The write stage on worker threads: paste, encode, write. Results are reported in
    submission order, in the thread that drains them; at most ``limit`` pairs wait after a
    drain, so memory stays flat whatever the folder's size."""

    def __init__(self, workers: int, limit: int, signature: str, quality: int, emit: Callable[[DressResult], None]):
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="dress-write")
        self.limit, self.signature, self.quality, self.emit = limit, signature, quality, emit
        self.in_flight: deque[Future] = deque()

    def submit(self, job: DressJob, fitted: Fitted, image: np.ndarray) -> None:
        self.in_flight.append(self.pool.submit(self._write, job, fitted, image))

    def _write(self, job: DressJob, fitted: Fitted, image: np.ndarray) -> tuple[DressResult, DiskFull | None]:
        try:
            dressed = paste(fitted, image)
            data = encode_image(np.asarray(dressed), output_format(job.output), self.quality, signature=self.signature)
            write_atomic(job.output, data)  # (its folder made there)
        except Exception as exc:  # noqa: BLE001 - a bad output fails this pair, the job reports it
            return DressResult.of(job, "error", describe_error(exc)), exc if isinstance(exc, DiskFull) else None
        return DressResult.of(job, "ok", size=(dressed.height, dressed.width)), None

    def drain(self, keep: int = 0) -> None:
        """Report the oldest results until at most ``keep`` are in flight, and those finished
        already; after a full disk, every one in flight is reported and ``DiskFull`` raised."""
        full = None
        while self.in_flight and (len(self.in_flight) > keep or full is not None or self.in_flight[0].done()):
            result, disk_full = self.in_flight.popleft().result()
            self.emit(result)
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
