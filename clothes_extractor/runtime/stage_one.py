"""Stage one of a try-on whose garments come from photos (``tryon --garment-from``,
``dress_folder(garment_from_photo=True)``): each garment photo's catalog image made by
``extract``'s own pipeline, a window of pairs at a time, before the window is dressed.

    made, stopped = extract_garments(photos, into, generator, parser, output_size=dresser.garment_size)
    dress_from_photos(dress_jobs(...), tmp, extract, dress, dresser.signature)   # both stages
"""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from ..errors import NoGarmentError
from .dress_jobs import DressingSummary, DressJob, DressResult, decided
from .jobs import find_jobs
from .options import ExtractOptions
from .pipeline import run_extraction
from .session import ModelSession, trim_memory

Catalog = dict[Path, Path | str]  # stage one's: garment photo -> its catalog image, or why there is none
# the same, by the photo as its pairs read it (``DressJob.garment_read``)
Made = dict[tuple[Path, str, int], Path | str]
# A garment photo whose garment the segmenter cannot find: tryon takes no masks, so extract it first.
EXTRACT_FIRST = "clothes-extractor extract PHOTO --masks DIR, then tryon --garment GARMENT"


def extract_garments(
    photos: Sequence[Path],
    folder: Path,
    generator: ModelSession,
    parser: ModelSession,
    batch_size: int = 8,
    cancel: threading.Event | None = None,
    output_size: str = "model",
) -> tuple[Catalog, str | None]:
    """Stage one on every garment photo: {photo: its catalog image (PNG on white, at
    ``output_size``: the dresser's ``garment_size``) in ``folder``, or why there is none}, and
    why stage one stopped (a full disk, a cancel) or None. A stopped stage one leaves some
    photos out of the map. The two models' CPU memory is given back at the end (``trim_memory``)."""
    if not photos:
        return {}, None
    jobs = [find_jobs([photo], folder / str(index), "png")[0] for index, photo in enumerate(photos)]
    made: Catalog = {}

    def on_result(result: Any) -> None:
        error = result.error
        if error is not None and error.startswith(NoGarmentError.SUMMARY):
            error = str(NoGarmentError(EXTRACT_FIRST))
        made[Path(result.input)] = Path(result.output) if result.status == "ok" else f"garment photo: {error}"

    options = ExtractOptions(batch_size=batch_size, output_size=output_size, background="white")
    summary = run_extraction(generator, jobs, options, on_result, parser, cancel=cancel)
    trim_memory([generator, parser])  # (the try-on model runs next)
    return made, summary.stopped


def with_catalog(jobs: Iterable[DressJob | DressResult], catalog: Made) -> Iterator[DressJob | DressResult]:
    """``jobs`` (a window's, those done already ``decided``) with each garment photo replaced
    by the catalog image stage one made of it (``extract_garments``' map, by the photo as the job
    read it: ``DressJob.garment_read``); a pair whose photo it could not extract fails with its reason."""
    for job in jobs:
        if isinstance(job, DressResult):
            yield job
            continue
        made = catalog.get(job.garment_read, "garment photo: stage one did not reach it")
        if isinstance(made, Path):
            yield dataclasses.replace(job, garment=made, photo=job.garment)  # (its stamp: the photo's)
        else:
            yield DressResult.of(job, "error", made, error_of="garment")


# Pairs at a time whose garment photos stage one extracts before they are dressed: their catalog
# images (~50 KB each at 256x192) take ~50 MB of temporary space at most, and the first pairs
# are written after 1,024 extractions. Each stage gives back its models' CPU memory at its end
# (ModelSession.trim), so the next one does not run beside it.
STAGE_ONE_WINDOW = 1024


def dress_from_photos(
    jobs: Iterable[DressJob | DressResult | None],
    folder: Path,
    extract: Callable[[list[Path], Path], tuple[Catalog, str | None]],
    dress: Callable[..., DressingSummary],
    signature: str,
    overwrite: bool = False,
    window: int | None = None,
    watched: bool = False,
) -> DressingSummary:
    """Both stages for garments that come from photos (``--garment-from``), ``window`` pairs
    (default ``STAGE_ONE_WINDOW``) at a time: the garment photos of the window's pairs left
    to dress (not ``decided``) extracted into a new subfolder of ``folder``
    (``extract(photos, into)``: ``extract_garments``' map and why it stopped), then the
    window dressed in them (``dress(jobs, tally=summary)``: ``run_dressing``). A catalog image the
    next window needs is kept (one garment photo for a folder of persons is extracted once; one
    written again since, as a watch gives it, is extracted again), the others are removed: any
    number of garment photos take one window's temporary space and memory. ``watched``: a watch's
    ``jobs``, whose None (none ready now) ends a window. Stops at the first stage that stops
    (``summary.stopped``: a full disk, a cancel)."""
    summary, started = DressingSummary(by_last_try=watched), time.perf_counter()
    catalog: Made = {}
    for number, chunk in enumerate(_windows(jobs, window or STAGE_ONE_WINDOW)):
        # each pair done or refused decided once (a rerun extracts only the garments of the pairs left)
        chunk = [job if isinstance(job, DressResult) else decided(job, signature, overwrite) or job for job in chunk]
        photos = {job.garment_read for job in chunk if isinstance(job, DressJob)}
        for photo in set(catalog) - photos:  # (a garment photo's catalog image no pair left here needs)
            _remove(catalog.pop(photo))
        new = sorted(photo for photo in photos if photo not in catalog)
        if new:
            made, summary.stopped = extract([read[0] for read in new], folder / f"stage-one-{number}")
            catalog.update((read, made[read[0]]) for read in new if read[0] in made)
            if summary.stopped is not None:
                break
        dress(with_catalog(chunk, catalog), tally=summary)
        if summary.stopped is not None:
            break
    summary.seconds = time.perf_counter() - started  # (both stages)
    return summary


def _windows(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """``items`` ``size`` at a time; a None among them (a watch's: none ready now) ends a window."""
    window: list[Any] = []
    for item in items:
        if item is None:
            if window:
                yield window
                window = []
            continue
        window.append(item)
        if len(window) == size:
            yield window
            window = []
    if window:
        yield window


def _remove(made: Path | str) -> None:
    """A catalog image stage one made, and its folder (``extract_garments`` gives each one its own)."""
    if isinstance(made, Path):
        made.unlink(missing_ok=True)
        try:
            made.parent.rmdir()
        except OSError:
            pass
