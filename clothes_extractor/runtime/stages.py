"""The stages of ``extract``, one function each, on picklable data.

    prepare  (worker)  read the photo file (once: its digest and, on worker threads, every
                       decode of it are of those bytes), decode it and its mask, fit both to
                       the generator; a photo with no mask is letterboxed for the segmenter instead
    segment  (model)   a batch of photos -> garment masks, with a zoomed second look at
                       garments that fill little of the frame; "no garment found" is an answer
    finish   (worker)  decode the segmented photo again at the scale its crop needs, fit
    infer    (model)   a batch of fitted photos -> garments (and silhouettes)
    write    (worker)  background, encode, atomic write

``pipeline.run_extraction`` runs them for a folder, the single-photo API and ``serve`` call
them for one photo, the Ray job calls them inside Ray tasks: one implementation. Workers get
a ``Plan`` (the models' contracts and the output settings), never a model session.

The module is long because every stage of the one implementation lives here, and ``segment``
reads best whole: its two looks, the several-people rule and the garment shown alone
(``alone``) decide one mask together.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from ..errors import ClothesExtractorError, DiskFull, InputError, NoGarmentError, NoMaskError, path_error
from .alone import ALONE_AT, SILHOUETTE_SCALE, alone_plane, framed, framing, shows_person
from .contract import ModelContract
from .files import write_atomic
from .fill import LAID, on_white
from .fitting import (
    Box,
    box_in,
    check_mask_shape,
    check_photo_size,
    crop_resize,
    decode_scale_for,
    fit_to_model,
    fit_window,
    letterbox_for,
    letterbox_part,
    mask_box,
    output_size_for,
    paste_box,
    photo_window,
    shown_box,
    within,
)
from .images import (
    OUTPUT_FORMATS,
    apply_background,
    encode_image,
    load_mask,
    load_photo,
    on_canvas,
    read_whole,
)
from .jobs import ExtractJob
from .labelmaps import load_label_mask
from .matte import settled
from .people import MIN_GARMENT_SHARE, garment_found, keep_columns, main_person
from .records import CONTENT, content_digest
from .walk import MaskSource

log = logging.getLogger(__name__)

NO_MASK_HELP = (
    "no garment mask: pass --masks DIR with a mask of the same name, use a dataset folder with "
    "parse maps, use --alpha-mask for a cut-out whose alpha is the garment, or use a segmenter "
    "model (--segmenter)"
)
# A photo that goes to the segmenter is also kept letterboxed at DETAIL_FACTOR x its input
# size: a garment that fills little of the frame (a full-body shot) gets a second, zoomed
# look from it, without decoding the photo again.
INPUTS = "inputs="  # the signature's word for the inputs an output was made from (``records.input_state``)
DETAIL_FACTOR = 3
ZOOM_BELOW = 0.5  # a garment box under this share of the frame's height and width gets the zoomed look
ZOOM_MARGIN = 0.25


@dataclass(frozen=True)
class Plan:
    """What the workers need to prepare and write photos: contracts and output settings.

    ``output_size``: "auto", "model" or (height, width), see ``fitting.output_size_for`` (and
    ``page``: a garment drawn at another size is resized to the one asked for). ``canvas``: the
    (height, width) asked for where it is not the model's aspect (a marketplace's square): the
    garment at ``output_size``, the largest of the model's aspect inside it, is centred on it.
    ``fill``: the share of the page (``canvas``, else ``output_size``) the garment's box is
    brought to, centred (``fill.placer``), or None: as the generator frames it. ``background``:
    "white", "transparent" or an (r, g, b) colour (the last two need a model with a silhouette
    output). ``signature_of`` a job's mask is stored in its output; a
    rerun skips an output only if it carries the same one (the same models, the same settings).
    """

    generator: ModelContract
    segmenter: ModelContract | None = None
    output_size: str | tuple[int, int] = "auto"
    background: str | tuple[int, int, int] = "white"
    quality: int = 95
    alpha_mask: bool = False
    signature: str = ""  # the generator's digest, the size and the background
    segmenter_digest: str = ""  # the segmenter's, where the run has one
    canvas: tuple[int, int] | None = None
    fill: float | None = None

    def signature_of(self, mask: MaskSource, stamp: str | None = None) -> str:
        """The signature of an output whose mask comes from ``mask``: the run's, and the
        segmenter's digest where the segmenter finds the mask (kind "auto"; its masks, and which
        photos show a garment alone, decide the output), so that a new segmenter redoes those;
        and ``stamp``, the photo's and mask file's (``records.input_state``), where there is one."""
        signature = self.signature
        if mask.kind == "auto" and self.segmenter_digest:
            signature = f"{signature} segmenter={self.segmenter_digest}"
        return with_inputs(signature, stamp)

    def wrote(self, signature: str | None, mask: MaskSource, stamp: str | None, inputs: Sequence[Path] = ()) -> bool:
        """Whether an output's ``signature`` is this run's for a job of ``mask`` whose input files
        (``inputs``) are as ``stamp`` says now (``signed_by``)."""
        return signed_by(signature, self.signature_of(mask), stamp, inputs)

    @property
    def resizes_drawn(self) -> bool:
        """A size was asked for that the generator does not draw at (it has no catalog resolution):
        the garments it draws are resized to it, those shown alone are cut out at it."""
        size, contract = self.output_size, self.generator
        return isinstance(size, tuple) and not contract.catalog_resolution and size != contract.size

    def page(self, outputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """One garment's outputs (``garment`` on white, ``alpha``) as they are written: (RGB, alpha or
        None) on the background, at the size asked for (one a generator drew at its model size brought
        up to it: ``images.apply_background``); a drawn one on a white page (filled, or of another
        aspect) laid on it by its silhouette where the session read it (``fill.on_white``)."""
        size = self.output_size if isinstance(self.output_size, tuple) else None
        garment, alpha = outputs["garment"], outputs.get("alpha")
        paged = self.fill is not None or self.canvas is not None
        if self.background == "white" and paged and alpha is not None and LAID not in outputs:
            garment = on_white(*settled(garment, alpha))  # (its haze would show the drawn frame on the page's white)
        if self.fill is not None:  # (the page is filled as asked: no canvas around it)
            return apply_background(garment, alpha, self.background, self.canvas or size, self.fill)
        rgb, alpha = apply_background(garment, alpha, self.background, size)
        return (rgb, alpha) if self.canvas is None else on_canvas(rgb, alpha, self.canvas, self.background)

    def encoded(
        self, outputs: dict[str, np.ndarray], fmt: str, mask: MaskSource, stamp: str | None = None
    ) -> tuple[bytes, tuple[int, int]]:
        """One garment's file as it is written (``page``, encoded as ``fmt`` with the signature
        of an output whose mask came from ``mask``, inputs ``stamp``), and its (height, width)."""
        rgb, alpha = self.page(outputs)
        data = encode_image(rgb, fmt, self.quality, alpha=alpha, signature=self.signature_of(mask, stamp))
        return data, (rgb.shape[0], rgb.shape[1])


def with_inputs(signature: str, stamp: str | None) -> str:
    """``signature`` with the record of the inputs an output is made from (``records.input_state``)."""
    return signature if stamp is None else f"{signature} {INPUTS}{stamp}"


def signed_by(signature: str | None, expected: str, stamp: str | None, inputs: Sequence[Path] = ()) -> bool:
    """Whether an output's ``signature`` is ``expected`` (these models and settings) for input
    files (``inputs``) that are as ``stamp`` says now: the same sizes and times, or, where their
    times changed and their bytes did not (copied, touched), the same digest of their bytes. One
    written before outputs recorded their inputs (2026-12-05), or where the inputs cannot be
    looked up now, is judged by ``expected`` alone; one recorded without a digest (before the
    59th stop), by the sizes and times."""
    if signature is None:
        return False
    written, recorded, digest = signed_parts(signature)
    if written != expected:
        return False
    if not recorded or stamp is None:
        return True
    if recorded == stamp.partition(CONTENT)[0]:
        return True
    return bool(digest and inputs) and content_digest(inputs) == digest


def signed_parts(signature: str) -> tuple[str, str, str]:
    """An output's signature (``with_inputs``) in its parts: the models' and settings', the sizes
    and times of the inputs it was made from (``records.input_state``; "" for none recorded), and
    the digest of their bytes (``CONTENT``; "" for none)."""
    written, _, recorded = signature.partition(f" {INPUTS}")
    recorded, _, digest = recorded.partition(CONTENT)
    return written, recorded, digest


@dataclass
class Prepared:
    """A photo fitted to the generator, waiting for its batch."""

    job: ExtractJob
    inputs: dict[str, np.ndarray]  # image, mask (model size) and, catalog resolution, photo
    mask_source: str
    saved_mask: str | None = None
    ready: dict[str, np.ndarray] | None = None  # a garment shown alone: cut out (``alone``), for ``write``

    @property
    def batch_key(self) -> tuple:
        """Photos with the same key can share a batch (the same output size)."""
        return tuple(self.inputs["photo"].shape) if "photo" in self.inputs else ()

    def for_write(self) -> Prepared:
        """This item as ``write`` takes it, beside its outputs: without the model's inputs (a
        catalog photo among them, 2.4 MB at 1024x768) and its cut-out (given as the outputs),
        which a worker process was sent pickled for nothing."""
        return dataclasses.replace(self, inputs={}, ready=None)


@dataclass
class NeedsMask:
    """A decoded photo with no mask, letterboxed for the segmenter."""

    job: ExtractJob
    image: np.ndarray  # uint8 [h, w, 3] at the segmenter's size (empty: ``for_worker``)
    photo: Any  # as decoded (Pillow: no larger than the detail letterbox needs; or on a device); None: ``light``
    window: Box  # the photo's plane the letterboxes show, in displayed photo pixels
    photo_size: tuple[int, int]  # displayed (width, height)
    fill: tuple[int, int, int]  # the letterbox's padding (``fitting.letterbox_for``), for a zoom's as well
    # the photo file's bytes as ``prepare`` read them (``images.read_whole``), which a closer look and
    # ``finish`` on threads decode again, not the file; None: a file too large to hold, a trip between
    # processes (``light``: the file is read again), or a photo on a device
    data: bytes | None = None

    def light(self) -> NeedsMask:
        """This item without its decoded photo on the host (2.4 MB at 1024x768), for a trip
        between processes: ``finish`` decodes the photo again at the scale its garment window
        needs, a closer look (``zoomed``) as ``for_segmenter`` did, from its file (its bytes do not
        cross either: the calling process's pipe is a GPU job's narrow part). A photo on a device stays."""
        return dataclasses.replace(self, photo=None, data=None) if self.on_host else self

    def for_worker(self, process: bool = True) -> NeedsMask:
        """This item as a worker takes it for ``finish`` or a closer look's crop (``closer_crop``):
        without its decoded photo (``finish`` decodes it at the scale its garment window needs) and
        the letterbox the segmenter has seen (147 KB more for a worker process, at 256x192); a
        worker ``process`` takes it ``light``, its file's bytes left behind too."""
        item = self.light() if process or not self.on_host else dataclasses.replace(self, photo=None)
        return dataclasses.replace(item, image=np.zeros((0, 0, 3), np.uint8))

    @property
    def on_host(self) -> bool:
        """False for a photo decoded on a device: it is fitted where it lies, not in a worker
        (a photo left behind by ``light`` is on the host: its file)."""
        return self.photo is None or isinstance(self.photo, Image.Image)

    def zoomed(self, zoom: Box, segmenter: ModelContract) -> np.ndarray:
        """``zoom``, a window of the same letterbox at ``DETAIL_FACTOR`` x the segmenter's size,
        resized to the segmenter's size: a closer look's input. Only the part of that letterbox
        the resize reads is made (``letterbox_part``; the whole one, the largest image of the
        stage, took the calling process 13 ms at 1024x768, the part 1.4-7.6 by its size)."""
        size = detail_size(segmenter)
        x0, y0, x1, y1 = zoom
        reach = math.ceil(max((x1 - x0) / segmenter.width, (y1 - y0) / segmenter.height, 1.0)) + 2  # filter's
        part = (
            min(max(math.floor(x0) - reach, 0), size[1] - 1),
            min(max(math.floor(y0) - reach, 0), size[0] - 1),
            max(min(math.ceil(x1) + reach, size[1]), 1),
            max(min(math.ceil(y1) + reach, size[0]), 1),
        )
        photo = self.photo
        if photo is None:  # left behind by ``light``: decoded again, as it was (or an InputError if it changed)
            photo, shown = decode_for_segmenter(self.job, segmenter, self.data)
            if shown != self.photo_size:
                raise InputError(
                    f"{self.job.photo} changed while it was read ({shown[0]}x{shown[1]} now, "
                    f"{self.photo_size[0]}x{self.photo_size[1]} before); run the job again for it"
                )
        region = Image.fromarray(letterbox_part(photo, size, self.fill, part))
        shifted = (x0 - part[0], y0 - part[1], x1 - part[0], y1 - part[1])
        return np.asarray(crop_resize(region, shifted, segmenter.size, self.fill))


def detail_size(segmenter: ModelContract) -> tuple[int, int]:
    """(h, w) of the letterbox a zoomed second look cuts its region from."""
    return segmenter.height * DETAIL_FACTOR, segmenter.width * DETAIL_FACTOR


@dataclass(frozen=True)
class CloserMask:
    """A closer look's mask [h, w] over ``zoom``, a window of the detail letterbox (``detail``:
    its (h, w)), kept within ``view`` (one view among several) or to ``columns`` (the person
    chosen among several), in detail pixels both. ``plane`` pastes it into that letterbox where it
    is used (``finish``, in a worker): the calling process sends a ninth of the plane's bytes."""

    mask: np.ndarray
    zoom: Box
    detail: tuple[int, int]
    view: Box | None = None
    columns: tuple[int, int] | None = None

    def plane(self) -> np.ndarray:
        plane = paste_box(self.mask, self.zoom, self.detail)
        if self.view is not None:
            return within(plane, self.view)
        return plane if self.columns is None else keep_columns(plane, self.columns)


@dataclass
class SegmentedMask:
    """A segmenter's mask over a letterbox plane that covers ``window`` of the photo."""

    plane: np.ndarray  # uint8 [h, w], 255 = garment, as the first look found it
    window: Box
    closer: CloserMask | None = None  # a closer look's, which replaces ``plane`` (``garment_plane``)
    people: bool = False  # the photo shows several people apart: the garment of one (``people.main_person``)
    alone: bool = False  # the garment is shown alone, no person wears it: cut out (``alone.alone_plane``)
    apart: np.ndarray | None = None  # ...and the other garments of an outfit laid out with it (bool), left out
    band: Box | None = None  # ...and the plane's band holding it, one of several views (``silhouette.one_view``)

    @property
    def zoomed(self) -> bool:
        return self.closer is not None

    def garment_plane(self) -> np.ndarray:
        """The garment's plane: the closer look's where there was one (pasted now), else ``plane``."""
        return self.plane if self.closer is None else self.closer.plane()


@dataclass(frozen=True)
class FileResult:
    input: str
    status: str  # ok | error | skipped (| pending: a dry run's, to do)
    output: str | None = None
    error: str | None = None
    mask: str | None = None  # which mask source was used
    saved_mask: str | None = None  # where the mask was saved (--save-masks)
    size: tuple[int, int] | None = None  # (height, width) written
    stops_job: bool = False  # the disk is full (``DiskFull``): the folder job cannot go on; not in the report

    def to_json(self) -> dict:
        record = dataclasses.asdict(self)
        del record["stops_job"]
        return record


@dataclass
class JobTally:
    """How a folder job's files ended: ``ExtractionSummary``, and try-on's ``DressingSummary``.
    ``by_last_try``: a job that may give a file again (a watch: written again) counts each by its
    last try, ``failed`` those whose last try failed, ``recovered`` those that failed, then were done."""

    ok: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    # why the job stopped before its last file: a full disk, workers that kept dying, or pipeline.CANCELLED
    stopped: str | None = None
    by_last_try: bool = False
    recovered: int = 0
    _failing: FailingPhotos = field(default_factory=lambda: FailingPhotos(), repr=False)  # by_last_try's

    def count(self, status: str, key: Any = None) -> None:
        """One more file ended with ``status``; ``key`` (its input: a job given again has the same)
        where the tally is ``by_last_try``."""
        if self.by_last_try:
            change = self._failing.change(key, status == "error")
            if status == "error" and not change:
                return  # (failed again: counted once)
            if change < 0:
                self.failed -= 1
                self.recovered += 1
        if status == "ok":
            self.ok += 1
        elif status == "skipped":
            self.skipped += 1
        else:
            self.failed += 1


class FailingPhotos(set):
    """The files whose last try failed (their keys' hashes), of a job that may give a file again
    (a watch: written again): ``JobTally(by_last_try=True)``'s, and the command line's."""

    def change(self, key: Any, failed: bool) -> int:
        """How many more files fail where the try of ``key`` ``failed`` (or not): 1 (a new failure),
        -1 (one that failed is done now), 0 (a failing file's failure again; a file's first success)."""
        photo = hash(key)
        if failed:
            if photo in self:
                return 0
            self.add(photo)
            return 1
        if photo not in self:
            return 0
        self.remove(photo)
        return -1


@dataclass
class ExtractionSummary(JobTally):
    """What a folder job did (``pipeline.run_extraction``, the Ray job), from its ``FileResult``s."""

    masks: Counter = field(default_factory=Counter)  # where the masks of the written garments came from
    decoded: Counter = field(default_factory=Counter)  # with a GPU decoder: "gpu" or "host: why"
    crossed: Counter = field(default_factory=Counter)  # worker processes' tasks: "shared memory" or "pickled"
    retried: int = 0  # photos tried again, alone, after a worker process died with them in its pool
    dropped: list = field(default_factory=list)  # a stopped job's photos in flight then: not tried (paths)

    def add(self, result: FileResult) -> None:
        self.count(result.status, result.input)
        if result.status == "ok":
            self.masks[(result.mask or "?").split(":")[0]] += 1


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, ClothesExtractorError):
        return str(exc)
    if isinstance(exc, OSError) and exc.filename is not None:  # what the system said of a path (EIO, a stale NFS file)
        return path_error(exc)
    return f"unexpected {type(exc).__name__}: {exc}"


def output_format(path: Path) -> str:
    """The output format a path's suffix names (the one place the format is decided)."""
    suffix = path.suffix.lower().lstrip(".")
    fmt = {"jpeg": "jpg", "jpe": "jpg"}.get(suffix, suffix)
    if fmt not in OUTPUT_FORMATS:
        raise InputError(f"{path}: the output must end in .png, .jpg or .webp")
    return fmt


def _save_mask(job: ExtractJob, mask: Image.Image) -> str | None:
    if job.mask_output is None:
        return None
    if not job.mask_saved_already:  # the mark lets a rerun replace it (signature.check_replaceable)
        write_atomic(job.mask_output, encode_image(np.asarray(mask), "png", signature="mask"))
    return str(job.mask_output)


def known_mask(job: ExtractJob) -> Image.Image | None:
    """The garment mask a job's files give (``--masks`` file, parse or label map), or None."""
    source = job.mask
    if source.kind == "file":
        return load_mask(source.path)
    if source.kind in ("parse", "labels"):
        if not source.path.is_file():
            raise InputError(f"no parse map for this photo: {source.path} is missing")
        return load_label_mask(source.kind, source.path)
    return None


def fit_photo(
    job: ExtractJob,
    mask: Image.Image,
    source: str,
    plan: Plan,
    photo: Image.Image | None = None,
    alone: bool = False,
    apart: Image.Image | None = None,
    band: Box | None = None,
    data: bytes | None = None,
) -> Prepared:
    """Decode ``job``'s photo at the scale its garment window needs and fit it with ``mask``.

    ``mask`` covers the whole photo at any resolution. ``photo``: already decoded at full size.
    ``alone``: the garment is shown alone: decoded at ``alone.SILHOUETTE_SCALE`` times the
    output's resolution, cut out and framed (``alone.framed``), not fitted; ``apart`` (L like
    ``mask``, or None): the other garments of an outfit laid out with it, left out of the cut-out;
    ``band`` (photo pixels, or None): the part of the photo holding it, one of several views.
    ``data``: the photo file's bytes, read already (``images.read_whole``), decoded instead of the file.
    """
    contract = plan.generator
    box = mask_box(np.asarray(mask), contract.fit.mask_threshold, detached=not alone)  # (worn: specks apart left out)
    if box is None and source.startswith("segmenter"):  # (a mask gone in resizing: not the user's to mend)
        raise NoGarmentError()
    if box is None:
        raise InputError(
            f"the garment mask is empty: no pixel is >= {contract.fit.mask_threshold}. Masks must be "
            "white (255) on the garment and black (0) elsewhere"
        )
    sizes: dict[str, tuple[int, int]] = {}
    fit = framing(contract) if alone else contract.fit

    def decode_scale(shown: tuple[int, int]) -> float:
        check_photo_size(shown, job.photo)
        if job.mask.kind != "auto":  # a file's mask; the segmenter's and the alpha fit by making
            check_mask_shape(mask.size, shown)
        window = photo_window(box, mask.size, shown, contract.size, fit)
        sizes["output"] = output_size_for(window[3] - window[1], contract, plan.output_size, own_pixels=alone)
        return min(1.0, decode_scale_for(window, sizes["output"]) * (SILHOUETTE_SCALE if alone else 1))

    if photo is None:
        photo, _ = load_photo(job.photo, decode_scale, data=data)
    else:
        decode_scale(photo.size)
    if alone:  # framed as a catalog image frames a garment, in the photo's own pixels (as decoded)
        mask, ready = framed(photo, mask, box, contract, sizes["output"], apart, band)
        return Prepared(job, {}, source, _save_mask(job, mask), ready=ready)
    output_size = sizes["output"] if contract.catalog_resolution else None
    fitted = fit_to_model(photo, mask, contract.size, contract.fit, box, output_size)
    inputs = {"image": fitted.image, "mask": fitted.mask}
    if fitted.photo is not None:
        inputs["photo"] = fitted.photo
    return Prepared(job, inputs, source, _save_mask(job, mask))


def prepare(job: ExtractJob, plan: Plan, data: bytes | None = None) -> Prepared | NeedsMask:
    """Decode one photo and its mask and fit both to the generator (in a worker).

    Without a mask from a file or a label map (or the photo's alpha, with ``alpha_mask``),
    the photo comes back letterboxed for the segmenter, or as an ``InputError`` if there is none.
    ``data``: the photo file's bytes, read already (``images.read_whole``; else read here).
    """
    if data is None:  # (its digest and decodes from these bytes, not the file again: NeedsMask.data)
        data = read_whole(job.photo)
    job = job.with_content(data)  # (its output's record: the digest of the bytes read here)
    mask = known_mask(job)
    if mask is not None:
        return fit_photo(job, mask, job.mask.describe(), plan, data=data)
    segmenter = plan.segmenter
    if plan.alpha_mask:
        photo, alpha = load_photo(job.photo, data=data)
        if alpha is not None:
            return fit_photo(job, alpha, "alpha", plan, photo)
    if segmenter is None:
        # a broken or tiny photo is reported as such, before the missing mask
        load_photo(job.photo, lambda shown: check_photo_size(shown, job.photo) or 1.0, data=data)
        raise NoMaskError(NO_MASK_HELP)
    return for_segmenter(job, segmenter, data=data)


def decode_for_segmenter(
    job: ExtractJob, segmenter: ModelContract, data: bytes | None = None
) -> tuple[Image.Image, tuple[int, int]]:
    """``job``'s photo decoded no larger than its detail letterbox needs (an alpha channel
    composited on white), and its displayed (width, height); ``data``: its file's bytes, read already."""
    detail = detail_size(segmenter)
    seen: dict[str, tuple[int, int]] = {}

    def decode_scale(shown: tuple[int, int]) -> float:
        check_photo_size(shown, job.photo)
        seen["size"] = shown
        return min(1.0, max(detail[0] / shown[1], detail[1] / shown[0]))

    photo, _ = load_photo(job.photo, decode_scale, data=data)
    return photo, seen["size"]


def for_segmenter(job: ExtractJob, segmenter: ModelContract, photo: Any = None, data: bytes | None = None) -> NeedsMask:
    """Decode ``job``'s photo (no larger than its detail letterbox needs) and letterbox it
    for ``segment`` at the segmenter's size; the photo is kept for a zoom's detail letterbox, and
    ``data``, its file's bytes read already (``prepare``), for ``finish`` and a closer look to
    decode. ``photo``: already decoded at full size (on a device: ``gpudecode``)."""
    if photo is None:
        photo, shown = decode_for_segmenter(job, segmenter, data)
    else:
        shown = photo.size
        check_photo_size(shown, job.photo)
    image, window, fill = letterbox_for(photo, segmenter.size, segmenter.fit)
    sx, sy = shown[0] / photo.width, shown[1] / photo.height
    window = (window[0] * sx, window[1] * sy, window[2] * sx, window[3] * sy)
    return NeedsMask(job, image, photo, window, shown, fill, data)


def _first_look_at(item: NeedsMask, shown: Box, mask: np.ndarray, labels, said: int | None, contract: ModelContract):
    """One photo at the first look (``shown``: the plane's pixels the photo covers): its worn
    garment's plane, the columns of the person kept among several (``people.main_person``) or
    None, the parser's whole garment where it is shown alone and the other garments of an outfit
    laid out with it (``alone.alone_plane``) or None, whether the parse shows the person wearing
    it all the same (``alone.shows_person``), and, shown alone, its top's box (within ``shown``)
    and the band of the plane that holds it (``silhouette.one_view``: one of a product's front and
    back views), else None and None."""
    threshold = contract.fit.mask_threshold
    x0, y0, x1, y1 = shown
    worn, columns = mask, None
    if labels is not None:
        found = main_person(mask[y0:y1, x0:x1], labels[y0:y1, x0:x1], threshold, MIN_GARMENT_SHARE, contract.labels)
        if found is not None:
            columns = (found[0] + x0, found[1] + x0)
            worn = keep_columns(mask, columns)
    parsed = alone_plane(item.image, shown, mask, labels, said, threshold, contract.labels)
    if parsed is None:
        return worn, columns, None, False, None, None
    plane, apart, band = parsed
    if band is not None:
        mask, labels = within(mask, band), None if labels is None else within(labels, band)
    top = mask[y0:y1, x0:x1]
    seen = shows_person(top >= threshold, None if labels is None else labels[y0:y1, x0:x1], contract.labels)
    return worn, columns, (plane, apart), seen, mask_box(top, threshold), band


def _closer_look(box: Box | None, shape: tuple[int, ...], alone: bool) -> bool:
    """Whether a garment boxed ``box`` in a plane of ``shape`` gets the second look: it fills
    less than ``ZOOM_BELOW`` of the frame both ways, or, ``alone`` (shown alone at the first
    look), either way (a narrow top in a tall frame: a full-length person, or a garment alone)."""
    if box is None:
        return False
    bh, bw = (box[3] - box[1]) / shape[0], (box[2] - box[0]) / shape[1]
    return max(bh, bw) < ZOOM_BELOW or (alone and min(bh, bw) < ZOOM_BELOW)


def _worn_at_second(
    second: dict[str, np.ndarray], row: int, threshold: int, names: tuple[str, ...], band: Box | None
) -> bool:
    """Whether the second look at a garment the head called alone finds it worn: the head says
    so there, or the closer parse (within ``band``, the crop's pixels that hold the garment
    taken among several: ``silhouette.one_view``) shows the person wearing it (``alone.shows_person``)."""
    if int(second["alone"][row].max()) < ALONE_AT:
        return True
    labels = within(second["labels"][row, ..., 0], band) if "labels" in second else None
    return shows_person(within(second["mask"][row, ..., 0], band) >= threshold, labels, names)


def closer_crop(item: NeedsMask, zoom: Box, contract: ModelContract) -> np.ndarray | ClothesExtractorError:
    """A closer look's input (``NeedsMask.zoomed``), made where the photo is (a worker, for the
    folder job): a photo decoded again for it (``NeedsMask.light``) that changed or went gives
    that photo's error instead, for ``second_look`` to report."""
    try:
        return item.zoomed(zoom, contract)
    except ClothesExtractorError as exc:
        return exc


@dataclass
class FirstLook:
    """What the segmenter's first look at a batch decided (``first_look``): each photo's mask or
    error so far, and the closer looks it asks for (``zooms``: the photo's index and its window
    of the detail letterbox); ``second_look`` takes their crops and decides the rest. ``kept``,
    ``alone`` and ``seen`` are what the second look needs of the first (see ``segment``)."""

    results: list[SegmentedMask | Exception]
    zooms: list[tuple[int, Box]]
    kept: dict[int, tuple[int, int]]  # the columns of the person chosen among several, in plane pixels
    alone: set[int]  # the garments shown alone
    seen: set[int]  # ...whose first parse shows a person wearing it: worn, told at the closer look

    @property
    def closer(self) -> list[int]:
        """The indices of the photos that get a closer look, in ``zooms``' order."""
        return [index for index, _ in self.zooms]

    @classmethod
    def of(cls, looks: list[PhotoLook | None]) -> FirstLook:
        """A batch's first look, from each photo's (``look_at``; None: a photo gone on without one)."""
        had = [(index, look) for index, look in enumerate(looks) if look is not None]
        return cls(
            [None if look is None else look.result for look in looks],
            [(index, look.zoom) for index, look in had if look.zoom is not None],
            {index: look.columns for index, look in had if look.columns is not None},
            {index for index, look in had if look.alone},
            {index for index, look in had if look.seen},
        )


def segment(items: list[NeedsMask], segmenter: Any) -> list[SegmentedMask | Exception]:
    """Garment masks of a batch of letterboxed photos (in the process that holds the model).

    A garment that fills less than ``ZOOM_BELOW`` of the frame gets a second look: its
    region, cut from the detail letterbox, is segmented again at the segmenter's full
    resolution and replaces the first mask there. A photo of several people apart keeps the
    garment of the largest who wears one (``people.main_person``), at both looks. A garment
    the parser's ``alone`` head finds shown alone, on a backdrop it can be told from, is cut
    out, not generated (``alone.alone_plane``: not where its parse shows the person wearing it,
    ``alone.shows_person``); one that gets a second look is alone only if the head says so
    again there and the closer parse shows no one (a small figure far off in a big frame is
    not), and then its first look's plane stands (the cut-out's silhouette, the photo's own,
    holds it). A garment the head calls alone gets that look wherever its top, not its whole
    parse, is under ``ZOOM_BELOW`` of the frame in either direction: a full-length person whose
    light trousers the parser missed is a narrow top in a tall frame, and worn at a closer look.
    """
    look = first_look(items, segmenter)
    crops = [closer_crop(items[index], zoom, segmenter.contract) for index, zoom in look.zooms]
    return second_look(look, crops, segmenter)


def parse(items: list[NeedsMask], segmenter: Any) -> list[tuple]:
    """The segmenter's first look at a batch (in the process that holds the model): for each
    photo, what ``look_at`` reads of it (its mask plane, label plane or None, and the ``alone``
    head's value or None)."""
    outputs = segmenter.run(image=np.stack([item.image for item in items]))
    first, labels, says_alone = outputs["mask"][..., 0], outputs.get("labels"), outputs.get("alone")
    return [
        (
            first[index],
            None if labels is None else labels[index, ..., 0],
            None if says_alone is None else int(says_alone[index].max()),
        )
        for index in range(len(items))
    ]


@dataclass
class PhotoLook:
    """One photo's first look (``look_at``): its mask or error so far, and the window of its
    closer look (None: none). ``columns``, ``alone`` and ``seen``: what the second look needs of
    the first (``FirstLook``)."""

    result: SegmentedMask | Exception
    zoom: Box | None
    columns: tuple[int, int] | None
    alone: bool
    seen: bool


def look_at(item: NeedsMask, mask: np.ndarray, own: np.ndarray | None, said: int | None, contract: Any) -> PhotoLook:
    """What the first look (``parse``) at ``item`` decides: a worker's work where workers are
    (``pipeline``), not the calling process's, which forms the batches."""
    threshold = contract.fit.mask_threshold
    x0, y0, x1, y1 = shown_box(item.window, item.photo_size, mask.shape)
    # a garment alone is sized by its top (of one view among several), not its whole parse
    worn, columns, parsed, person, top, band = _first_look_at(item, (x0, y0, x1, y1), mask, own, said, contract)
    if person and not _closer_look(top, mask.shape, True):  # worn: no closer look to tell, none needed
        parsed = None
    is_alone = parsed is not None
    # a person's too, until the closer look: the whole parse keeps a small top found till then
    seen = is_alone and person
    mask = parsed[0] if is_alone else worn
    shown = mask[y0:y1, x0:x1]
    box = mask_box(shown, threshold, detached=not is_alone)
    if box is None or not garment_found(shown, threshold):
        return PhotoLook(NoGarmentError(), None, columns, is_alone, seen)
    apart = parsed[1] if is_alone else None
    people = columns is not None and not is_alone
    result = SegmentedMask(
        mask, item.window, people=people, alone=is_alone, apart=apart, band=band if is_alone else None
    )
    box = (top or box) if is_alone else box
    zoom = None
    if _closer_look(box, mask.shape, is_alone):
        f = DETAIL_FACTOR
        detail_box = ((box[0] + x0) * f, (box[1] + y0) * f, (box[2] + x0) * f, (box[3] + y0) * f)
        zoom = fit_window(detail_box, contract.size, ZOOM_MARGIN)
    return PhotoLook(result, zoom, columns, is_alone, seen)


def first_look(items: list[NeedsMask], segmenter: Any) -> FirstLook:
    """``segment``'s first look at a batch: its masks, and the closer looks they need."""
    contract, parsed = segmenter.contract, parse(items, segmenter)
    return FirstLook.of([look_at(item, *planes, contract) for item, planes in zip(items, parsed, strict=True)])


def for_look(item: NeedsMask, said: int | None, light: bool) -> NeedsMask:
    """``item`` as a worker takes it for ``look_then``: to a process (``light``) without its
    letterbox (147 KB at 256x192) unless the parser's head (``said``) may call its garment shown
    alone, the one case the look reads it (``alone.alone_plane``); to a thread as it is."""
    return item if not light or (said is not None and said >= ALONE_AT) else item.for_worker()


def look_then(item: NeedsMask, mask: np.ndarray, own: Any, said: int | None, contract: Any, plan: Plan) -> tuple:
    """In a worker: ``look_at`` one photo, then what its look asks for: (the look, its closer
    look's crop: ``closer_crop``), or ``finished``: (None, its ``Prepared``, or its error: no
    garment found, or one fitting it raised)."""
    look = look_at(item, mask, own, said, contract)
    if look.zoom is not None:
        return look, closer_crop(item, look.zoom, contract)
    if not isinstance(look.result, SegmentedMask):
        return None, look.result
    return finished(item, look.result, plan)


def finished(item: NeedsMask, segmented: SegmentedMask, plan: Plan) -> tuple[None, Prepared | Exception]:
    """``finish`` (in a worker) as ``look_then`` returns it: (None, its ``Prepared``, or the
    error fitting it raised)."""
    try:
        return None, finish(item, segmented, plan)
    except Exception as exc:  # noqa: BLE001 - that photo's, reported as its fit's error
        return None, exc


def second_look(
    look: FirstLook, crops: list[np.ndarray | Exception], segmenter: Any
) -> list[SegmentedMask | Exception]:
    """``segment``'s second look: the crops of ``look.zooms`` (in order; an error where a crop
    could not be made: that photo's result) segmented again, and each photo's mask decided."""
    contract = segmenter.contract
    threshold = contract.fit.mask_threshold
    results, kept, alone, seen = list(look.results), look.kept, set(look.alone), look.seen
    zooms, images = [], []
    for (index, zoom), crop in zip(look.zooms, crops, strict=True):
        if isinstance(crop, Exception):
            results[index] = crop
        else:
            zooms.append((index, zoom))
            images.append(crop)
    if zooms:
        second = segmenter.run(image=np.stack(images))
        for row, (index, zoom) in enumerate(zooms):
            mask = second["mask"][row, ..., 0]
            view = results[index].band  # (a SegmentedMask: zoomed) one view's band among several, or None
            view = None if view is None else tuple(v * DETAIL_FACTOR for v in view)  # (in detail pixels)
            band = None if view is None else box_in(view, zoom, mask.shape)  # (in the crop's)
            if index in alone and (index in seen or _worn_at_second(second, row, threshold, contract.labels, band)):
                results[index] = dataclasses.replace(
                    results[index], alone=False, apart=None, band=None, people=index in kept and view is None
                )
                alone.discard(index)
            if index in alone:  # alone at both looks: the first look's plane stands (the photo's own silhouette
                continue  # holds it better than a closer look's, which can lose a white top on white)
            if garment_found(mask, threshold):
                # the view taken among several, else the person ``main_person`` chose, if any
                columns = kept.get(index) if view is None else None
                columns = None if columns is None else (columns[0] * DETAIL_FACTOR, columns[1] * DETAIL_FACTOR)
                closer = CloserMask(mask.copy(), zoom, detail_size(contract), view, columns)
                results[index] = dataclasses.replace(results[index], closer=closer)
            else:  # a closer look that sees no garment where the first saw a small one: none is there
                results[index] = NoGarmentError()
    return results


def mask_from_segmenter(plane: np.ndarray, window: Box, photo_size: tuple[int, int]) -> Image.Image:
    """The part of a letterbox-plane mask [h, w] that covers the photo, as an L image.

    It keeps the plane's resolution; ``fit_to_model`` maps it onto the photo.
    """
    h, w = plane.shape[:2]
    x0, y0, x1, y1 = window
    sx, sy = w / (x1 - x0), h / (y1 - y0)
    box = (-x0 * sx, -y0 * sy, (photo_size[0] - x0) * sx, (photo_size[1] - y0) * sy)
    size = (max(1, round(box[2] - box[0])), max(1, round(box[3] - box[1])))
    return Image.fromarray(plane, "L").resize(size, Image.Resampling.BILINEAR, box=box)


def finish(item: NeedsMask, segmented: SegmentedMask, plan: Plan) -> Prepared:
    """Fit a segmented photo with its predicted mask (in a worker; the photo is decoded again,
    at the scale its garment window needs; one on a device is cut from where it lies)."""
    mask = mask_from_segmenter(segmented.garment_plane(), segmented.window, item.photo_size)
    source = "segmenter" + ("+zoom" if segmented.zoomed else "") + ("+one-person" if segmented.people else "")
    source += "+alone" if segmented.alone else ""
    others = None  # an outfit's other garments, over the photo as ``mask`` is
    if segmented.apart is not None:
        others = mask_from_segmenter(segmented.apart.astype(np.uint8) * 255, segmented.window, item.photo_size)
    band = None  # one of several views: its band, in photo pixels
    if segmented.band is not None:
        (h, w), (x0, y0, x1, y1) = segmented.plane.shape[:2], segmented.window
        sx, sy = (x1 - x0) / w, (y1 - y0) / h
        b = segmented.band
        band = (x0 + b[0] * sx, y0 + b[1] * sy, x0 + b[2] * sx, y0 + b[3] * sy)
    photo = None if item.on_host else item.photo
    return fit_photo(item.job, mask, source, plan, photo, segmented.alone, others, band, item.data)


def write(item: Prepared, outputs: dict[str, np.ndarray], plan: Plan) -> FileResult:
    """Background, encode and write one garment atomically (in a worker); never raises: an
    error is the result's (``stops_job`` where the disk is full)."""
    job = item.job
    try:
        data, size = plan.encoded(outputs, output_format(job.output), job.mask, job.stamp)
        write_atomic(job.output, data)
    except Exception as exc:  # noqa: BLE001 - one bad output must not stop the folder (a full disk does)
        log.debug("writing %s failed", job.output, exc_info=True)
        error, full = describe_error(exc), isinstance(exc, DiskFull)
        return FileResult(str(job.photo), "error", str(job.output), error, item.mask_source, stops_job=full)
    return FileResult(str(job.photo), "ok", str(job.output), None, item.mask_source, item.saved_mask, size)
