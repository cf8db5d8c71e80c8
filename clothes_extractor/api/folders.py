"""The folder jobs from Python: ``extract``'s (``extract_folder``) and ``tryon``'s
(``dress_folder``), with the commands' guarantees: atomic files, finished outputs skipped on
a rerun, a bad photo reported and the job going on, a full disk or a cancel stopping it.
Their steps are the runtime's own; the commands add reports, progress bars and dry runs.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

from ..errors import InputError
from ..runtime.dress_jobs import DressingSummary, DressResult
from ..runtime.session import ModelSession
from ..runtime.stages import ExtractionSummary, FileResult
from .photos import _opened

log = logging.getLogger(__name__)


def extract_folder(
    inputs: str | Path | Sequence[str | Path],
    output: str | Path,
    *,
    generator: ModelSession | str | Path | None = None,
    segmenter: ModelSession | str | Path | None = None,
    masks: str | Path | None = None,
    save_masks: str | Path | None = None,
    recursive: bool = False,
    files_from: str | Path | None = None,
    shard: str | None = None,
    output_format: str = "png",
    quality: int = 95,
    output_size: str | int | tuple[int, int] = "auto",
    background: str | tuple[int, int, int] = "white",
    alpha_mask: bool = False,
    fill: float | str | None = None,
    overwrite: bool = False,
    batch_size: int = 8,
    workers: int | None = None,
    processes: bool = False,
    decode: str = "auto",
    on_start: Callable[[int], None] | None = None,
    on_result: Callable[[FileResult], None] | None = None,
    cancel: threading.Event | None = None,
    watch: threading.Event | None = None,
) -> ExtractionSummary:
    """``extract``'s folder job: every photo under ``inputs`` (folders and files) to
    ``output/<its path>.<output_format>``, with its guarantees (atomic files, finished outputs
    skipped on a rerun, a bad photo reported and the job going on, a full disk stopping it).

    ``on_start(total)`` is told how many results will come (for a progress bar; the folders
    are walked once more to count them, only if it is given); ``on_result`` sees each
    photo's ``FileResult`` (``input``, ``status`` ok / skipped / error, ``output``,
    ``error``, ...) as it is final, in this thread. ``cancel``: set it (from a button's
    thread, say) to stop within a tenth of a second; the writes in progress finish, and
    ``summary.stopped`` says ``"cancelled"`` (or why a full disk stopped it). ``watch`` (``extract
    --watch``; a hot folder): after the photos there now, go on with each photo that comes into the
    folders or changes, once it is written whole, until ``watch`` is set; then the photos in flight
    are finished and the summary returned (``on_start`` counts the photos there at the start;
    ``summary.failed``, the photos whose last try failed; ``summary.recovered``, those that failed,
    then were written again and done: a cut-off upload, finished). ``fill`` (the garment's
    share of the image, ``"85%"``), ``masks``, ``save_masks``, ``recursive``, ``files_from`` (a
    list of photos under the one input folder), ``shard`` (``"K/N"``) and ``decode`` (``auto``:
    JPEGs on the GPU where the models run on CUDA and nvImageCodec starts, else on the host, said
    in the log) as in
    ``extract``. Workers are threads unless ``processes`` (which scale with cores; a frozen
    app must call ``multiprocessing.freeze_support()``; a worker process that dies takes the
    photos in its pool with it, and each is tried again alone: ``summary.retried`` counts
    them). Sessions default to the bundled
    models (opened for this call and closed); the caller's are trimmed at the end
    (``runtime.session.trim_memory``: their memory goes back until the next job). Raises
    ``OutputError`` / ``InputError`` / ``ValueError`` for settings that cannot work, before
    any photo is read.
    """
    from ..runtime.files import check_local, from_file_uri
    from ..runtime.jobs import count_jobs, iter_jobs

    named = [from_file_uri(item) for item in ([inputs] if isinstance(inputs, (str, Path)) else inputs)]
    output = from_file_uri(output)
    for item, what in [(item, "input") for item in named] + [(output, "output")]:
        check_local(item, what)
    paths = [Path(item) for item in named]
    out_dir, listing = Path(output), Path(files_from) if files_from is not None else None
    if listing is not None and (len(paths) != 1 or not paths[0].is_dir()):
        raise InputError("files_from names photos under one folder: give that folder as the only input")
    if listing is not None and not os.access(listing, os.R_OK):
        raise InputError(f"cannot read the list files_from={str(listing)!r}: not found, or not readable")
    job = ExtractRun(paths, out_dir, masks, save_masks, shard, output_format, background)
    options = job.options(batch_size, workers, quality, overwrite, output_size, alpha_mask, processes, fill)
    if on_start is not None:
        on_start(count_jobs(paths, out_dir, recursive, job.save_dir, job.masks_dir, job.share, listing))
    jobs = iter_jobs(paths, out_dir, output_format, job.index, recursive, job.save_dir, job.share, listing)
    if watch is not None:
        jobs = _watched(paths, listing, job, out_dir, output_format, recursive, watch)
    return job.run(jobs, options, generator, segmenter, decode, on_result, cancel, watched=watch is not None)


def _watched(paths, listing, job: ExtractRun, out_dir: Path, fmt: str, recursive: bool, stop: threading.Event):
    """``extract_folder(watch=stop)``'s jobs (``runtime.watch.Watch``); ``InputError`` where there
    is no folder to watch."""
    from ..runtime.watch import Watch, watched_walk

    if listing is not None:
        raise InputError("watch watches folders for the photos that come: leave out files_from (a list is taken once)")
    for path in paths:
        if not path.is_dir():
            raise InputError(
                f"watch watches folders: {path} is {'a file' if path.exists() else 'not found'} (give the folder "
                "its photos come into; create it first if they have not come yet)"
            )
    return Watch(watched_walk(paths, out_dir, fmt, job.masks_dir, recursive, job.save_dir, job.share), stop).jobs()


class ExtractRun:
    """What ``extract_folder`` and ``urls.extract_urls`` share: the output's settings checked
    (``OutputError`` / ``ValueError`` before any photo is read), and the run."""

    def __init__(self, paths, out_dir: Path, masks, save_masks, shard, output_format: str, background) -> None:
        from ..runtime.files import check_output_dir
        from ..runtime.images import OUTPUT_FORMATS
        from ..runtime.jobs import MaskIndex, check_output_folders
        from ..runtime.shards import Shard

        if output_format not in OUTPUT_FORMATS:
            raise ValueError(f"output_format is one of {', '.join(OUTPUT_FORMATS)}, not {output_format!r}")
        if background == "transparent" and output_format == "jpg":
            raise ValueError("JPEG has no transparency: output_format='png' or 'webp' with background='transparent'")
        try:
            self.share = Shard.parse(shard) if shard is not None else None
        except ValueError as exc:
            raise ValueError(f"shard {exc}") from None
        self.masks_dir, self.save_dir = (Path(folder) if folder is not None else None for folder in (masks, save_masks))
        check_output_folders(paths, out_dir, self.save_dir, self.masks_dir)
        check_output_dir(out_dir)
        if self.save_dir is not None:
            check_output_dir(self.save_dir, "the save_masks folder")
        self.index = MaskIndex(self.masks_dir) if self.masks_dir is not None else None
        self.background = background

    def options(self, batch_size, workers, quality, overwrite, output_size, alpha_mask, processes, fill=None):
        from ..runtime.options import ExtractOptions, default_workers

        return ExtractOptions(
            batch_size=batch_size,
            workers=workers or default_workers(),
            quality=quality,
            overwrite=overwrite,
            output_size=output_size,
            background=self.background,
            alpha_mask=alpha_mask,
            processes=processes,
            fill=fill,
        )

    def run(
        self, jobs, options, generator, segmenter, decode, on_result, cancel, opening=None, watched=False
    ) -> ExtractionSummary:
        """``jobs`` extracted with the sessions (opened here where given as names or None, and
        closed; the caller's trimmed after); ``opening(generator, segmenter, options)``, if given,
        is told the sessions first. ``watched``: a watch's jobs (``run_extraction``'s)."""
        from ..runtime.gpudecode import open_decoder
        from ..runtime.jobs import removing_stale_partials
        from ..runtime.pipeline import run_extraction
        from ..runtime.session import trim_memory

        opened = _opened(
            {"generator": generator, "segmenter": segmenter},
            options.background,
            fill=options.fill,
            output_size=options.output_size,
        )
        try:
            generator, segmenter = opened.get("generator", generator), opened.get("segmenter", segmenter)
            if opening is not None:
                opening(generator, segmenter, options)
            decoder, why = open_decoder(decode, generator.provider)
            if why:
                log.warning("%s", why)
            summary = run_extraction(
                generator,
                removing_stale_partials(jobs),
                options,
                on_result,
                segmenter,
                decoder=decoder,
                cancel=cancel,
                watched=watched,
            )
        finally:
            for session in opened.values():
                session.close()
        # the caller's sessions outlive the job: what their last batches grew goes back for now
        trim_memory(session for session in (generator, segmenter) if session not in opened.values())
        return summary


def dress_folder(
    person: str | Path,
    garment: str | Path,
    output: str | Path,
    *,
    pairs: str | Path | Sequence[tuple[str, str]] | None = None,
    recursive: bool = False,
    garment_from_photo: bool = False,
    tryon: ModelSession | str | Path | None = None,
    parser: ModelSession | str | Path | None = None,
    generator: ModelSession | str | Path | None = None,
    shard: str | None = None,
    output_format: str = "png",
    quality: int = 95,
    overwrite: bool = False,
    batch_size: int = 8,
    workers: int | None = None,
    on_start: Callable[[int], None] | None = None,
    on_result: Callable[[DressResult], None] | None = None,
    cancel: threading.Event | None = None,
    resolution: str = "photo",
    watch: threading.Event | None = None,
    all_pairs: bool = False,
) -> DressingSummary:
    """``tryon``'s folder job: each person of ``person`` dressed in each garment of
    ``garment`` (a photo or a folder each; at most one a folder), or, with both folders, the
    ``pairs`` named (a pairs file of ``PERSON GARMENT`` lines, as VITON's
    ``test_pairs.txt``, or a sequence of (person, garment) names in the two folders), or with
    ``all_pairs`` every person in every garment (``tryon --all-pairs``); each
    to ``output/PERSON__GARMENT.<output_format>``. ``recursive``: the photos in the
    subfolders of the folder too, each output in the same subfolder under ``output``.

    ``garment_from_photo``: the garments are photos of someone wearing them; stage one
    extracts their catalog images (into a temporary folder), 1,024 pairs at a time, each
    window's before its pairs are dressed. ``on_start(total)`` is
    told how many results will come; ``on_result`` sees each pair's ``DressResult``
    (``person``, ``garment``, ``status`` ok / skipped / error, ``output``, ``error``,
    ``size``, ``error_of``: "person" or "garment" where the error is about one of them) as it
    is final, in this thread. ``cancel``: set it (from a button's thread) to
    stop after the pairs in flight (at most two batches); ``summary.stopped`` says
    ``"cancelled"`` (or why a full disk stopped it), and a rerun resumes. ``shard``
    (``"K/N"``) as in ``tryon``; ``workers`` threads (default: one per core, at most 16)
    read the next batch's photos while the models dress one, and as many paste, encode and
    write the results. Sessions default to the bundled models (opened for this call and
    closed); the bundled segmenter is the parser. ``resolution`` as in ``dress``. Raises ``InputError`` /
    ``OutputError`` / ``ValueError`` for inputs and settings that cannot work, before any pair is dressed.
    ``watch`` (``tryon --watch``): after the pairs there now, go on with the pairs of each photo that
    comes into the folder of ``person`` (or of ``garment``) or changes, once it is written whole, until
    ``watch`` is set; a garment (or person) written again redoes its pairs; ``summary.failed`` counts
    the pairs whose last try failed, ``summary.recovered`` those that failed, then were done.
    """
    from ..runtime.dress_jobs import run_dressing
    from ..runtime.dressing import Dresser
    from ..runtime.files import check_local, check_output_dir, from_file_uri, remove_stale_partials
    from ..runtime.images import OUTPUT_FORMATS
    from ..runtime.limits import check_batch_size
    from ..runtime.pairs import check_output_folder, dress_jobs
    from ..runtime.stage_one import dress_from_photos, extract_garments

    started = time.perf_counter()
    person, garment, output = (from_file_uri(value) for value in (person, garment, output))
    for value, what in ((person, "person"), (garment, "garment"), (output, "output")):
        check_local(value, what)
    persons, garments, out_dir = Path(person), Path(garment), Path(output)
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"output_format is one of {', '.join(OUTPUT_FORMATS)}, not {output_format!r}")
    check_batch_size(batch_size)  # (extract_folder's is ExtractOptions')
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if recursive and pairs is not None:
        raise ValueError("recursive walks a folder, pairs= names the files in it: give one of them")
    found = _find_pairs(persons, garments, pairs, recursive, shard, out_dir, all_pairs)
    if watch is not None and (pairs is not None or not (persons.is_dir() or garments.is_dir())):
        why = "leave out pairs (a list is taken once)" if pairs is not None else "neither person nor garment is one"
        raise InputError(f"watch watches a folder for the photos that come: {why}")
    try:
        total, _ = found.count()  # (a walk that keeps nothing: the folder is walked again as the job goes)
    except InputError:
        if watch is None:
            raise
        total = 0  # (a watched folder with no photos yet)
    check_output_folder(persons, garments, out_dir)
    check_output_dir(out_dir)
    remove_stale_partials(out_dir, recursive=found.tree is not None)
    stage_one = {"generator": generator} if garment_from_photo else {}
    opened = _opened({"tryon": tryon, "segmenter": parser, **stage_one}, names={"segmenter": "parser"})
    try:
        made = opened.get("generator", generator) if garment_from_photo else None  # (its digest: in the signature)
        if made is not None:
            made.require_task("generator")
        dresser = Dresser(
            opened.get("tryon", tryon),
            opened.get("segmenter", parser),
            "garment_from_photo=True",
            resolution=resolution,
            garments_by=made.digest if made is not None else "",
        )
        if on_start is not None:
            on_start(total)
        jobs = dress_jobs(found, out_dir, output_format)  # (and the pairs refused, as they come)
        if watch is not None:
            from ..runtime.watch import Watch, pair_job, watched_pairs

            jobs = Watch(watched_pairs(found, out_dir, output_format), watch, describe=pair_job).jobs()
        dress = functools.partial(
            run_dressing,
            dresser,
            batch_size=batch_size,
            overwrite=overwrite,
            quality=quality,
            on_result=on_result,
            cancel=cancel,
            workers=workers,
            watched=watch is not None,
        )
        if not garment_from_photo:
            summary = dress(jobs)
        else:  # stage one, a window of pairs at a time, for the garments of the pairs left to dress
            extract = functools.partial(
                extract_garments,
                generator=made,
                parser=dresser.parser,
                batch_size=batch_size,
                cancel=cancel,
                output_size=dresser.garment_size,
            )
            with tempfile.TemporaryDirectory(prefix="clothes-extractor-") as tmp:
                watched = watch is not None
                summary = dress_from_photos(
                    jobs, Path(tmp), extract, dress, dresser.signature, overwrite, watched=watched
                )
    finally:
        for session in opened.values():
            session.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _find_pairs(
    persons: Path, garments: Path, pairs, recursive: bool, shard: str | None, out_dir: Path, every: bool = False
):
    """``dress_folder``'s pairs (``runtime.pairs.Pairs``: those of ``shard``; with
    ``recursive``, a tree walked without ``out_dir``; ``every``: every person x every garment)."""
    from ..runtime.pairs import Pairs, Tree, read_pairs
    from ..runtime.shards import Shard

    for role, path in (("person", persons), ("garment", garments)):
        if not path.exists():
            raise InputError(f"{role} not found: {path}")
    try:
        share = Shard.parse(shard) if shard is not None else None
    except ValueError as exc:
        raise ValueError(f"shard {exc}") from None
    if every:
        if pairs is not None or recursive:
            raise ValueError("all_pairs pairs every person with every garment of two folders: no pairs=, recursive=")
        if not (persons.is_dir() and garments.is_dir()):
            raise ValueError("all_pairs dresses every person of a folder in every garment of another: give two folders")
        return Pairs(persons, garments, shard=share, every=True)
    if pairs is None:
        if persons.is_dir() and garments.is_dir():
            raise ValueError(
                "person and garment are both folders: give pairs= to say who wears what, or all_pairs=True"
            )
        return Pairs(persons, garments, tree=Tree.of(persons, garments, recursive), exclude=[out_dir], shard=share)
    if not (persons.is_dir() and garments.is_dir()):
        raise ValueError("pairs= names files in folders: person and garment must be folders")
    listing, repeats = read_pairs(pairs, persons, garments)
    if repeats:
        log.info("pairs names %d pair(s) again; each pair is dressed once", repeats)
    return Pairs(persons, garments, listing=listing, shard=share)
