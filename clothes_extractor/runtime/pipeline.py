"""The folder job: reader threads -> batches -> one session -> writer threads.

Readers decode photos and masks and fit them to the model; the calling thread gathers
batches and runs the model while the readers already work on the next photos; writers
encode and write each result atomically. Only a bounded number of photos is in flight
at any time, so memory stays flat however large the folder. A bad photo becomes an
``error`` result and the job goes on.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from ..errors import ClothesExtractorError, InputError
from .contract import ModelContract
from .fitting import decode_scale_for, fit_to_model, mask_box
from .images import OUTPUT_FORMATS, encode_image, load_mask, load_parse_mask, load_photo, write_atomic
from .jobs import ExtractJob, MaskSource
from .session import ModelSession

log = logging.getLogger(__name__)


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


@dataclass(frozen=True)
class ExtractOptions:
    batch_size: int = 8
    workers: int = field(default_factory=default_workers)
    fmt: str = "png"
    quality: int = 95
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.fmt not in OUTPUT_FORMATS:
            raise ValueError(f"format must be one of {', '.join(OUTPUT_FORMATS)}, got {self.fmt!r}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"quality must be 1-100, got {self.quality}")


@dataclass(frozen=True)
class FileResult:
    input: str
    status: str  # ok | error | skipped
    output: str | None = None
    error: str | None = None
    mask: str | None = None  # which mask source was used

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class ExtractionSummary:
    ok: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return self.ok + self.skipped + self.failed

    def add(self, result: FileResult) -> None:
        if result.status == "ok":
            self.ok += 1
        elif result.status == "skipped":
            self.skipped += 1
        else:
            self.failed += 1


@dataclass(frozen=True)
class PreparedPhoto:
    job: ExtractJob
    image: np.ndarray  # uint8 [H, W, 3]
    mask: np.ndarray  # uint8 [H, W, 1]
    mask_source: MaskSource


def prepare_photo(job: ExtractJob, contract: ModelContract) -> PreparedPhoto:
    """Decode one photo and its mask and fit both to the model (runs in a reader thread)."""
    source = job.mask
    mask = None
    if source.kind == "file":
        mask = load_mask(source.path)
    elif source.kind == "parse":
        if not source.path.is_file():
            raise InputError(f"no parse map for this photo: {source.path} is missing")
        mask = load_parse_mask(source.path)
    decode_scale = None
    box = mask_box(np.asarray(mask), contract.fit.mask_threshold) if mask is not None else None
    if box is not None:
        # Decode no larger than the model input needs (JPEG draft mode).
        def decode_scale(shown: tuple[int, int]) -> float:
            return decode_scale_for(box, mask.size, shown, contract.size, contract.fit)

    photo, alpha = load_photo(job.photo, decode_scale)
    if mask is None:
        if alpha is None:
            raise InputError(
                "no garment mask: pass --masks DIR with a mask of the same name, use a "
                "VITON-HD/CP-VTON dataset folder with parse maps, or give the photo an alpha "
                "channel that cuts out the garment"
            )
        mask, source = alpha, MaskSource("alpha")
        box = None
    fitted = fit_to_model(photo, mask, contract.size, contract.fit, box)
    return PreparedPhoto(job, fitted.image, fitted.mask, source)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ClothesExtractorError):
        return str(exc)
    return f"unexpected {type(exc).__name__}: {exc}"


def _write_result(job: ExtractJob, garment: np.ndarray, source: MaskSource, options: ExtractOptions) -> FileResult:
    try:
        write_atomic(job.output, encode_image(garment, options.fmt, options.quality))
    except Exception as exc:  # noqa: BLE001 - one bad output must not stop the folder
        log.debug("writing %s failed", job.output, exc_info=True)
        return FileResult(str(job.photo), "error", str(job.output), _describe(exc), source.describe())
    return FileResult(str(job.photo), "ok", str(job.output), None, source.describe())


def run_extraction(
    model: ModelSession,
    jobs: Iterable[ExtractJob],
    options: ExtractOptions,
    on_result: Callable[[FileResult], None] | None = None,
) -> ExtractionSummary:
    """Extract every job's garment; ``on_result`` sees each file's result as it is final.

    ``on_result`` is always called from the calling thread. On ``KeyboardInterrupt`` the
    photos in flight are dropped, the writes in progress finish (each output is either
    complete or absent), and the interrupt propagates.
    """
    summary = ExtractionSummary()
    started = time.perf_counter()
    contract = model.contract

    def emit(result: FileResult) -> None:
        summary.add(result)
        if on_result is not None:
            on_result(result)

    # Photos decoded ahead, and results waiting to be written: each bounded by this.
    in_flight = options.batch_size * 2 + options.workers
    readers = ThreadPoolExecutor(options.workers, thread_name_prefix="ce-read")
    writers = ThreadPoolExecutor(options.workers, thread_name_prefix="ce-write")
    reads: deque[tuple[ExtractJob, Future]] = deque()
    writes: deque[Future] = deque()
    pending = iter(jobs)

    def refill() -> None:
        while len(reads) < in_flight:
            job = next(pending, None)
            if job is None:
                return
            if job.error is not None:
                emit(FileResult(str(job.photo), "error", None, job.error, None))
            elif not options.overwrite and job.output.exists():
                emit(FileResult(str(job.photo), "skipped", str(job.output), None, None))
            else:
                reads.append((job, readers.submit(prepare_photo, job, contract)))

    def drain_writes(block_above: int) -> None:
        while writes and (writes[0].done() or len(writes) > block_above):
            emit(writes.popleft().result())

    def flush(batch: list[PreparedPhoto]) -> None:
        if not batch:
            return
        try:
            garments = model.run(image=np.stack([p.image for p in batch]), mask=np.stack([p.mask for p in batch]))
        except Exception as exc:  # noqa: BLE001 - reported per photo; the next batch may work
            log.debug("inference failed", exc_info=True)
            for p in batch:
                message = f"inference failed: {_describe(exc)}"
                emit(FileResult(str(p.job.photo), "error", None, message, p.mask_source.describe()))
            return
        for p, garment in zip(batch, garments, strict=True):
            writes.append(writers.submit(_write_result, p.job, garment, p.mask_source, options))
        drain_writes(in_flight)

    try:
        refill()
        batch: list[PreparedPhoto] = []
        while reads:
            job, future = reads.popleft()
            refill()
            try:
                batch.append(future.result())
            except Exception as exc:  # noqa: BLE001 - a bad photo is reported, the job goes on
                if not isinstance(exc, ClothesExtractorError):
                    log.debug("reading %s failed", job.photo, exc_info=True)
                source = job.mask.describe() if job.mask.kind != "alpha" else None
                emit(FileResult(str(job.photo), "error", None, _describe(exc), source))
            if len(batch) == options.batch_size:
                flush(batch)
                batch = []
            drain_writes(in_flight)
        flush(batch)
        drain_writes(0)
    except BaseException:
        for _, future in reads:
            future.cancel()
        readers.shutdown(wait=True, cancel_futures=True)
        writers.shutdown(wait=True)  # writes in progress complete; none is left half-done
        for future in writes:
            if not future.cancelled():
                emit(future.result())
        raise
    finally:
        readers.shutdown(wait=True)
        writers.shutdown(wait=True)
        summary.seconds = time.perf_counter() - started
    return summary
