"""Try-on serving: dress persons in catalog garments (numpy, Pillow, onnxruntime only).

    parse    (parser)  each person photo, letterboxed -> a class per pixel; the region to
                       dress anew is its upper clothes and arms. Where the person's upper
                       body is small in the photo (a full-body shot), a second look at a
                       window framed as the try-on's training photos are (head to thigh)
    fit      (numpy)   the person letterboxed (or that window) to the try-on model, the
                       region, the catalog garment letterboxed on white and its silhouette
    dress    (model)   a batch of fitted pairs -> dressed persons at the model size
    paste    (Pillow)  the dressed region scaled back into the full-resolution photo: the
                       face, hair, legs and background keep every original pixel

``run_dressing`` runs them for a list of pairs with the folder job's guarantees (every
output complete or absent, skipped when already done, each bad pair reported and the rest
carried on); ``api.dress`` and ``clothes-extractor tryon`` call it. A person on whom the
parser finds no top and no arms, or a garment image with nothing on its background,
is an error for that pair: nothing is invented.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
from PIL import Image

from ..errors import DiskFull, InputError, ModelError, NothingToDressError, OutputError
from .files import write_atomic
from .fitting import Box, crop_photo, fit_window, letterbox
from .images import encode_image, load_photo
from .pipeline import CANCELLED
from .session import ModelSession
from .signature import check_replaceable, read_signature
from .stages import describe_error, output_format
from .tryon import REGION_NAMES, fit_garment, fit_labels, fit_person, region_from_labels, upper_body_window

# Less than this share of the person frame in the region: no top to replace on this photo.
MIN_REGION_SHARE = 0.01
# Less than this share of the garment frame off-white: the garment image shows no garment.
MIN_GARMENT_SHARE = 0.01
NO_PERSON = (
    "found no upper-body clothing or arms on the person (the parser sees {share:.1%} of the frame); "
    "use a photo of a person facing the camera, upper body visible"
)
NO_GARMENT = (
    "found no garment in the garment image ({share:.1%} of it is not background): it must be a "
    "catalog image, the garment on white, transparent or a plain backdrop (for a photo of someone wearing it: {how})"
)
FROM_PHOTO = "--garment-from, or garment_from_photo=True"  # how a caller dresses in the garment of a photo


@dataclass(frozen=True)
class DressJob:
    """Dress the person of ``person`` in the catalog garment of ``garment``; write ``output``."""

    person: Path
    garment: Path
    output: Path


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
        return cls(str(job.person), str(job.garment), status, str(job.output), error, size)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Fitted:
    """One pair, ready for the model, and what pasting its result back needs."""

    photo: Image.Image
    window: Box  # the person photo's window that fills the model frame (photo pixels)
    inputs: dict[str, np.ndarray]


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


def load_person(path: Path) -> Image.Image:
    return load_photo(path, role="person photo")[0]  # a cut-out comes composited on white


def load_garment(path: Path) -> Image.Image:
    return load_photo(path, role="garment image")[0]


class Dresser:
    """A try-on model and the parser that finds what it dresses anew, with the fitting of both."""

    def __init__(self, tryon: ModelSession, parser: ModelSession, from_photo: str = FROM_PHOTO):
        tryon.require_task("tryon")
        parser.require_task("segmenter")
        names = parser.contract.labels
        if not all(name in names for name in REGION_NAMES):
            raise ModelError(
                f"{parser.path.name} is a garment segmenter without the parser's classes; try-on needs a "
                f"parser (classes {', '.join(REGION_NAMES)}): the bundled segmenter is one"
            )
        self.tryon, self.parser = tryon, parser
        self.from_photo = from_photo  # (said where a garment image shows no garment)
        self.size = tryon.contract.size
        self.signature = f"tryon={tryon.digest[:16]} parser={parser.digest[:16]}"

    def parse(self, photos: Sequence[Image.Image]) -> list[tuple[Image.Image, Box]]:
        """Each photo's class map (mode L, the parser's class indices) over the plane the
        parser saw, and the window of the photo that plane shows: the whole photo,
        letterboxed, or where its person's upper body is small in it (a full-body shot), a
        second look at a window framed as the try-on's training photos are."""
        contract = self.parser.contract
        parsed = self._parse([letterbox(photo, contract.size, contract.fit.pad_rgb) for photo in photos])
        zoom = {}
        for i, (photo, (classes, plane)) in enumerate(zip(photos, parsed, strict=True)):
            window = upper_body_window(classes, plane, photo.size, contract.size, contract.labels)
            if window is not None:
                zoom[i] = window
        if zoom:
            crops = [
                (crop_photo(photos[i], window, contract.size, contract.fit.pad_rgb), window)
                for i, window in zoom.items()
            ]
            for i, again in zip(zoom, self._parse(crops), strict=True):
                parsed[i] = again
        return parsed

    def _parse(self, fitted: list[tuple[np.ndarray, Box]]) -> list[tuple[Image.Image, Box]]:
        labels = self.parser.run(image=np.stack([array for array, _ in fitted]))["labels"]
        return [(Image.fromarray(labels[i, :, :, 0], "L"), window) for i, (_, window) in enumerate(fitted)]

    def fit(
        self, photo: Image.Image, parsed: tuple[Image.Image, Box], garment: tuple[np.ndarray, np.ndarray]
    ) -> Fitted:
        """The model inputs of one pair, ``garment`` fitted already (``fit_garment(image,
        self.size)``, once for all the pairs it dresses); ``InputError`` when there is nothing
        to dress or no garment."""
        whole = fit_window((0.0, 0.0, float(photo.width), float(photo.height)), self.parser.contract.size, 0.0)
        zoomed = not np.allclose(parsed[1], whole, atol=1e-6)  # a second look: that window, at the try-on's aspect
        person, window = fit_person(photo, self.size, fit_window(parsed[1], self.size, 0.0) if zoomed else None)
        labels = labels_in_frame(parsed, photo.size, window, self.size)
        names = self.parser.contract.labels
        found = np.isin(labels, [names.index(name) for name in REGION_NAMES])
        share = _share_inside(found, window, photo.size, self.size)
        if share < MIN_REGION_SHARE:
            raise NothingToDressError(NO_PERSON.format(share=share))
        garment_image, garment_mask = garment
        garment_share = float(np.mean(garment_mask > 127))
        if garment_share < MIN_GARMENT_SHARE:
            raise NothingToDressError(NO_GARMENT.format(share=garment_share, how=self.from_photo))
        inputs = {
            "person": person,
            "region": region_from_labels(labels, names),
            "garment": garment_image,
            "garment_mask": garment_mask,
        }
        return Fitted(photo, window, inputs)

    def dress(self, batch: Sequence[Fitted]) -> list[Image.Image]:
        """The dressed persons of a batch of fitted pairs, each at its photo's size."""
        feeds = {name: np.stack([item.inputs[name] for item in batch]) for name in batch[0].inputs}
        images = self.tryon.run(**feeds)["image"]
        return [paste(item, images[i]) for i, item in enumerate(batch)]

    def dress_pairs(self, pairs: Sequence[tuple[Image.Image, Image.Image]]) -> list[Image.Image | InputError]:
        """Each (person photo, catalog garment) pair dressed, at the photo's size, in one
        parser run (two for second looks) and one try-on run; in place of a pair with nothing
        to dress anew or no garment, the ``InputError`` that says so."""
        parsed = self.parse([person for person, _ in pairs])
        results: list[Image.Image | InputError | None] = [None] * len(pairs)
        fitted: dict[int, Fitted] = {}
        garments: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # a garment of many pairs is fitted once
        for index, ((person, garment), labels) in enumerate(zip(pairs, parsed, strict=True)):
            if id(garment) not in garments:
                garments[id(garment)] = fit_garment(garment, self.size)
            try:
                fitted[index] = self.fit(person, labels, garments[id(garment)])
            except InputError as exc:
                results[index] = exc
        if fitted:
            for index, dressed in zip(fitted, self.dress(list(fitted.values())), strict=True):
                results[index] = dressed
        return results  # type: ignore[return-value]


def labels_in_frame(
    parsed: tuple[Image.Image, Box], photo_size: tuple[int, int], window: Box, size: tuple[int, int]
) -> np.ndarray:
    """A parser's class map (over the plane showing ``parsed[1]`` of the photo) in the frame
    that shows ``window`` at ``size`` (h, w): [h, w] class indices."""
    classes, parsed_window = parsed
    if np.allclose(parsed_window, window, atol=1e-6):  # the same plane (the same aspect): rescale it
        return np.asarray(classes.resize(size[::-1], Image.Resampling.NEAREST))
    on_photo = _window_to_photo(classes, parsed_window, photo_size, Image.Resampling.NEAREST)
    return fit_labels(on_photo, photo_size, size)


def _window_to_photo(image: Image.Image, window: Box, photo_size: tuple[int, int], resample) -> Image.Image:
    """A model-frame image (``window`` of the photo fills it) cropped and scaled to the photo;
    where the window is inside the photo (a zoomed look), the rest of the photo is 0."""
    x0, y0, x1, y1 = window
    sx, sy = image.width / (x1 - x0), image.height / (y1 - y0)
    # the photo pixels the window covers whole (all of them for a letterboxed photo)
    left, top = max(0, math.ceil(x0)), max(0, math.ceil(y0))
    right, bottom = min(photo_size[0], math.floor(x1)), min(photo_size[1], math.floor(y1))
    box = ((left - x0) * sx, (top - y0) * sy, (right - x0) * sx, (bottom - y0) * sy)
    part = image.resize((right - left, bottom - top), resample, box=box)
    if (left, top, right, bottom) == (0, 0, *photo_size):
        return part
    canvas = Image.new(image.mode, photo_size, 0)
    canvas.paste(part, (left, top))
    return canvas


def _share_inside(found: np.ndarray, window: Box, photo_size: tuple[int, int], size: tuple[int, int]) -> float:
    """``found``'s share of the part of the model frame the photo covers (not its padding)."""
    x0, y0, x1, y1 = window
    h, w = size
    left, top = max(0, round(-x0 * w / (x1 - x0))), max(0, round(-y0 * h / (y1 - y0)))
    right = min(w, round((photo_size[0] - x0) * w / (x1 - x0)))
    bottom = min(h, round((photo_size[1] - y0) * h / (y1 - y0)))
    inside = found[top:bottom, left:right]
    return float(inside.mean()) if inside.size else 0.0


def paste(item: Fitted, image: np.ndarray) -> Image.Image:
    """The model's dressed person pasted into the original photo through the (soft) region."""
    photo = item.photo
    dressed = _window_to_photo(Image.fromarray(image), item.window, photo.size, Image.Resampling.BICUBIC)
    region = Image.fromarray(item.inputs["region"][:, :, 0], "L")
    alpha = _window_to_photo(region, item.window, photo.size, Image.Resampling.BILINEAR)
    return Image.composite(dressed, photo, alpha)


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
) -> DressingSummary:
    """Dress every job's person; ``on_result`` sees each pair's result as it is final.

    An output this model pair already wrote (its signature) is skipped unless ``overwrite``.
    A garment used by many pairs is decoded once per batch. On ``KeyboardInterrupt`` the
    batch in flight is dropped (every written file is complete) and the interrupt propagates.
    A full disk stops the job the same way, and ``summary.stopped`` says why. ``cancel``:
    once it is set (from any thread), the job stops after the batch in flight, as on a full
    disk, and ``summary.stopped`` is ``CANCELLED``. ``known``: results decided before the
    run (``sort_out``), reported and counted first.
    """
    summary = DressingSummary()
    started = time.perf_counter()

    def emit(result: DressResult) -> None:
        summary.add(result)
        if on_result is not None:
            on_result(result)

    for result in known:
        emit(result)
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
                _run_batch(dresser, pending, quality, emit)
                pending = []
        else:
            if pending and cancel is not None and cancel.is_set():
                summary.stopped = CANCELLED
            elif pending:
                _run_batch(dresser, pending, quality, emit)
    except DiskFull as exc:  # every pair after it would fail the same way
        summary.stopped = str(exc)
    finally:
        summary.seconds = time.perf_counter() - started
    return summary


def _run_batch(dresser: Dresser, jobs: list[DressJob], quality: int, emit: Callable[[DressResult], None]) -> None:
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
    for (job, _), dressed in zip(persons, dresser.dress_pairs(pairs), strict=True):  # type: ignore[arg-type]
        if isinstance(dressed, InputError):
            emit(DressResult.of(job, "error", describe_error(dressed)))
            continue
        try:
            fmt = output_format(job.output)
            data = encode_image(np.asarray(dressed), fmt, quality, signature=dresser.signature)
            write_atomic(job.output, data)  # (its folder made there)
        except Exception as exc:  # noqa: BLE001 - a bad output fails this pair, the job reports it
            emit(DressResult.of(job, "error", describe_error(exc)))
            if isinstance(exc, DiskFull):
                raise
            continue
        emit(DressResult.of(job, "ok", size=(dressed.height, dressed.width)))
