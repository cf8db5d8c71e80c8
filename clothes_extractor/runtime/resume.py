"""Resume: a job whose output these models already wrote, with these settings, is skipped.

Every output carries the run's signature (``Plan.signature_of``: the generator's digest, the
size and the background, the segmenter's where it found the mask, and the size and
modification time of the photo and the mask file it was made from, with the digest of their
bytes: ``records.input_state``, ``ExtractJob.with_content``); an output with another one (its photo
or mask changed since: other sizes and times, and other bytes), or cut short, is redone; a file
this tool did not write is kept and the job reported (``signature.check_replaceable``),
unless ``overwrite``. ``preview_extraction`` says so of every job without decoding a photo
(``extract --dry-run``). ``written_anyway`` reads an output back the same way where a worker
process died before it could say that it wrote it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

from PIL import Image

from ..errors import ClothesExtractorError
from .jobs import ExtractJob
from .options import ExtractOptions, make_plan
from .signature import check_replaceable, read_signature
from .stages import FileResult, NeedsMask, Plan, Prepared, output_format, prepare, signed_parts
from .walk import MaskSource

if TYPE_CHECKING:
    from .session import ModelSession

log = logging.getLogger(__name__)
AUTO = MaskSource("auto")  # no mask file: the photo's alpha or the segmenter


@dataclass(frozen=True)
class Skipped:
    job: ExtractJob


def already_done(job: ExtractJob, plan: Plan, overwrite: bool) -> bool:
    """Whether the output is already there, complete and written by these models with these
    settings (an output of another model, or a truncated one, is redone; a ``redo`` job's
    always is). ``OutputError`` for
    a file there, or at its ``--save-masks`` name, that this tool did not write (kept unless
    ``overwrite``)."""
    if overwrite:
        return False
    signature = read_signature(job.output, output_format(job.output))
    if not job.redo and plan.wrote(signature, job.mask, job.stamp, job.inputs):
        return True
    if os.path.exists(job.output):  # (False where its name cannot be looked up: too long, say; the write says why)
        check_replaceable(job.output)
        log.info("redoing %s: incomplete, or written by another model or settings", job.output)
    if job.mask_output is not None and not job.mask_saved_already:
        check_replaceable(job.mask_output, "--save-masks folder")
    return False


def recorded_time(plan: Plan, output: Path, mask: MaskSource = AUTO) -> float | None:
    """The modification time of the one file ``output`` was made from, as its signature records
    it, where the output is this ``plan``'s for a photo whose mask comes from ``mask``: what a
    rerun skips while that file is as it was (``extract --urls-from`` asks the server whether its
    image changed since then). None where there is no such output, it records no time, or it was
    made from a mask file too."""
    written, recorded, _ = signed_parts(read_signature(output, output_format(output)) or "")
    size, _, time_ns = recorded.partition(":")
    if written != plan.signature_of(mask) or not (size.isdigit() and time_ns.lstrip("-").isdigit()):
        return None  # (also a record of two files, "SIZE:TIME,SIZE:TIME": its mask file's too)
    return int(time_ns) / 1e9


def prepare_or_skip(job: ExtractJob, plan: Plan, overwrite: bool) -> Prepared | NeedsMask | Skipped:
    """``prepare``, unless the output is ``already_done``."""
    return Skipped(job) if already_done(job, plan, overwrite) else prepare(job, plan)


def stamp(path: Path) -> tuple[int, int, int] | None:
    """What tells the file at ``path`` now from another written there later (its device, inode and
    modification time: an atomic write puts a new file in its place), or None if there is none."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino, info.st_mtime_ns


def before_write(job: ExtractJob, overwrite: bool) -> tuple[int, int, int] | None:
    """For ``written_anyway``, taken before a job's write is sent: the output there then, where it may
    carry this run's signature already (``overwrite``, a ``redo`` job); else None: its read found it
    did not (``already_done``), so only this write can have put one there."""
    return stamp(job.output) if overwrite or job.redo else None


def written_anyway(item: Prepared, plan: Plan, before: tuple[int, int, int] | None) -> FileResult | None:
    """The ``ok`` result of a write whose worker process died before its result came back (its pool
    broke: ``WorkerDied``) where the write was done: the output there is whole, carries this run's
    signature and is not the file there before it was sent (``before_write``). None: it was not."""
    job = item.job
    if read_signature(job.output, output_format(job.output)) != plan.signature_of(job.mask, job.stamp):
        return None
    if before is not None and stamp(job.output) == before:
        return None
    try:
        with Image.open(job.output) as image:
            size = (image.height, image.width)
    except OSError:
        return None
    return FileResult(str(job.photo), "ok", str(job.output), None, item.mask_source, item.saved_mask, size)


def preview_extraction(
    generator: ModelSession, jobs: Iterable[ExtractJob], options: ExtractOptions, segmenter: ModelSession | None = None
) -> Iterator[FileResult]:
    """What ``run_extraction`` would do with each job, decoding no photo and writing nothing
    (``extract --dry-run``): ``pending`` (to extract), ``skipped`` (its output is done, from
    these models and these settings) or ``error`` (refused before any decoding: a name two
    photos would write, a file there that this tool did not write). A photo that cannot be
    decoded, or shows no garment, is found by the run itself."""
    plan = make_plan(generator, segmenter, options)
    for job in jobs:
        if job.error is not None:
            yield FileResult(str(job.photo), "error", None, job.error, None)
            continue
        try:
            done = already_done(job, plan, options.overwrite)
        except ClothesExtractorError as exc:
            yield FileResult(str(job.photo), "error", str(job.output), str(exc), None)
            continue
        yield FileResult(str(job.photo), "skipped" if done else "pending", str(job.output), None, job.mask.describe())
