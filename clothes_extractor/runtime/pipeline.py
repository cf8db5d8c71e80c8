"""The folder job: reader threads -> batches -> sessions -> writer threads.

Readers decode photos and masks and fit them to the generator; the calling thread
gathers batches and runs the model while the readers already work on the next photos;
writers encode and write each result atomically. A photo with no mask from any source
goes through the segmenter first: batched like the generator, then fitted by a reader.
Only a bounded number of photos is in flight at any time, so memory stays flat however
large the folder. A bad photo becomes an ``error`` result and the job goes on.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
from PIL import Image

from ..errors import ClothesExtractorError, InputError
from .contract import ModelContract
from .fitting import Box, decode_scale_for, fit_to_model, letterbox, mask_box
from .images import OUTPUT_FORMATS, encode_image, load_mask, load_parse_mask, load_photo, write_atomic
from .jobs import ExtractJob, MaskSource
from .session import ModelSession

log = logging.getLogger(__name__)

# A photo that will be segmented is decoded at this many times the segmenter's input
# size (JPEG draft mode), so that a garment spanning a third of the photo still reaches
# the generator at full resolution.
SEGMENTED_DECODE_FACTOR = 3.0
NO_MASK_HELP = (
    "no garment mask: pass --masks DIR with a mask of the same name, use a VITON-HD/CP-VTON "
    "dataset folder with parse maps, give the photo an alpha channel that cuts out the "
    "garment, or use a segmenter model (--segmenter)"
)


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
    saved_mask: str | None = None  # where the mask was saved (--save-masks)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class ExtractionSummary:
    ok: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0

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


@dataclass(frozen=True)
class NeedsMask:
    """A decoded photo with no mask, waiting for its turn in a segmenter batch."""

    job: ExtractJob
    photo: Image.Image
    image: np.ndarray  # the whole photo letterboxed to the segmenter's input, uint8 [h, w, 3]
    window: Box  # the part of the photo's plane that ``image`` shows


def _save_mask(job: ExtractJob, mask: Image.Image) -> None:
    if job.mask_output is not None:
        write_atomic(job.mask_output, encode_image(np.asarray(mask), "png"))


def read_photo(
    job: ExtractJob, contract: ModelContract, segmenter: ModelContract | None = None
) -> PreparedPhoto | NeedsMask:
    """Decode one photo and its mask and fit both to the generator (in a reader thread).

    Without a mask from a file, a parse map or the photo's alpha channel, the photo is
    returned letterboxed for the ``segmenter`` (or an ``InputError`` if there is none).
    """
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

    elif mask is None and segmenter is not None:

        def decode_scale(shown: tuple[int, int]) -> float:
            fits = max(segmenter.height / shown[1], segmenter.width / shown[0])
            return min(1.0, SEGMENTED_DECODE_FACTOR * fits)

    photo, alpha = load_photo(job.photo, decode_scale)
    if mask is None:
        if alpha is None:
            if segmenter is None:
                raise InputError(NO_MASK_HELP)
            image, window = letterbox(photo, segmenter.size, segmenter.fit.pad_rgb)
            return NeedsMask(job, photo, image, window)
        mask, source = alpha, MaskSource("alpha")
        box = None
    fitted = fit_to_model(photo, mask, contract.size, contract.fit, box)
    _save_mask(job, mask)
    return PreparedPhoto(job, fitted.image, fitted.mask, source)


def mask_from_segmenter(output: np.ndarray, window: Box, photo_size: tuple[int, int]) -> Image.Image:
    """The part of a letterboxed segmenter output [h, w, 1] that covers the photo, as an L image.

    It keeps the segmenter's resolution; ``fit_to_model`` maps it onto the photo.
    """
    h, w = output.shape[:2]
    x0, y0, x1, y1 = window
    sx, sy = w / (x1 - x0), h / (y1 - y0)
    box = (-x0 * sx, -y0 * sy, (photo_size[0] - x0) * sx, (photo_size[1] - y0) * sy)
    size = (max(1, round(box[2] - box[0])), max(1, round(box[3] - box[1])))
    return Image.fromarray(output[:, :, 0], "L").resize(size, Image.Resampling.BILINEAR, box=box)


def finish_segmented(item: NeedsMask, output: np.ndarray, contract: ModelContract) -> PreparedPhoto:
    """Fit a segmented photo and its predicted mask to the generator (in a reader thread)."""
    mask = mask_from_segmenter(output, item.window, item.photo.size)
    box = mask_box(np.asarray(mask), contract.fit.mask_threshold)
    if box is None:
        raise InputError("the segmenter found no garment in this photo; give it a mask with --masks DIR")
    fitted = fit_to_model(item.photo, mask, contract.size, contract.fit, box)
    _save_mask(item.job, mask)
    return PreparedPhoto(item.job, fitted.image, fitted.mask, MaskSource("segmenter"))


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
    saved = str(job.mask_output) if job.mask_output is not None else None
    return FileResult(str(job.photo), "ok", str(job.output), None, source.describe(), saved)


def run_extraction(
    model: ModelSession,
    jobs: Iterable[ExtractJob],
    options: ExtractOptions,
    on_result: Callable[[FileResult], None] | None = None,
    segmenter: ModelSession | None = None,
    clock: Any = None,
) -> ExtractionSummary:
    """Extract every job's garment; ``on_result`` sees each file's result as it is final.

    Photos without a mask go through ``segmenter`` when there is one. ``on_result`` is
    always called from the calling thread. On ``KeyboardInterrupt`` the photos in flight
    are dropped, the writes in progress finish (each output is either complete or
    absent), and the interrupt propagates. ``clock`` (``bench.runner.StageClock``), when
    given, adds up the seconds of each stage: read, segment, infer, write.
    """
    model.require_task("generator")
    if segmenter is not None:
        segmenter.require_task("segmenter")
    summary = ExtractionSummary()
    started = time.perf_counter()
    contract = model.contract
    segmenter_contract = segmenter.contract if segmenter is not None else None

    def emit(result: FileResult) -> None:
        summary.add(result)
        if on_result is not None:
            on_result(result)

    def fail(job: ExtractJob, exc: BaseException, source: str | None) -> None:
        if not isinstance(exc, ClothesExtractorError):
            log.debug("preparing %s failed", job.photo, exc_info=True)
        emit(FileResult(str(job.photo), "error", None, _describe(exc), source))

    def timed(stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
        return clock.timed(stage, function) if clock is not None else function

    # Photos decoded ahead, and results waiting to be written: each bounded by this.
    in_flight = options.batch_size * 2 + options.workers
    readers = ThreadPoolExecutor(options.workers, thread_name_prefix="ce-read")
    writers = ThreadPoolExecutor(options.workers, thread_name_prefix="ce-write")
    reads: deque[tuple[ExtractJob, Future]] = deque()
    unmasked: list[NeedsMask] = []  # waiting for a segmenter batch
    segmented: deque[tuple[ExtractJob, Future]] = deque()  # being fitted after segmentation
    writes: deque[Future] = deque()
    batch: list[PreparedPhoto] = []
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
                reads.append((job, readers.submit(timed("read", read_photo), job, contract, segmenter_contract)))

    def drain_writes(block_above: int) -> None:
        while writes and (writes[0].done() or len(writes) > block_above):
            emit(writes.popleft().result())

    def segment() -> None:
        try:
            masks = timed("segment", segmenter.run)(image=np.stack([item.image for item in unmasked]))
        except Exception as exc:  # noqa: BLE001 - reported per photo; the next batch may work
            log.debug("segmentation failed", exc_info=True)
            for item in unmasked:
                message = f"segmentation failed: {_describe(exc)}"
                emit(FileResult(str(item.job.photo), "error", None, message, "segmenter"))
        else:
            for item, mask in zip(unmasked, masks, strict=True):
                segmented.append((item.job, readers.submit(timed("read", finish_segmented), item, mask, contract)))
        unmasked.clear()

    def collect_segmented(block: bool) -> None:
        while segmented and (block or segmented[0][1].done()):
            job, future = segmented.popleft()
            try:
                batch.append(future.result())
            except Exception as exc:  # noqa: BLE001 - a bad photo is reported, the job goes on
                fail(job, exc, "segmenter")
            flush_full()

    def flush_full() -> None:
        if len(batch) >= options.batch_size:
            flush()

    def flush() -> None:
        if not batch:
            return
        current = batch[:]
        batch.clear()
        try:
            images, masks = np.stack([p.image for p in current]), np.stack([p.mask for p in current])
            garments = timed("infer", model.run)(image=images, mask=masks)
        except Exception as exc:  # noqa: BLE001 - reported per photo; the next batch may work
            log.debug("inference failed", exc_info=True)
            for p in current:
                message = f"inference failed: {_describe(exc)}"
                emit(FileResult(str(p.job.photo), "error", None, message, p.mask_source.describe()))
            return
        for p, garment in zip(current, garments, strict=True):
            writes.append(writers.submit(timed("write", _write_result), p.job, garment, p.mask_source, options))
        drain_writes(in_flight)

    try:
        refill()
        while reads or unmasked or segmented:
            if reads:
                job, future = reads.popleft()
                refill()
                try:
                    item = future.result()
                except Exception as exc:  # noqa: BLE001 - a bad photo is reported, the job goes on
                    fail(job, exc, job.mask.describe() if job.mask.kind != "alpha" else None)
                else:
                    (unmasked if isinstance(item, NeedsMask) else batch).append(item)
            if unmasked and (len(unmasked) >= options.batch_size or not reads):
                segment()
            collect_segmented(block=not reads)
            flush_full()
            drain_writes(in_flight)
        flush()
        drain_writes(0)
    except BaseException:
        for _, future in (*reads, *segmented):
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
