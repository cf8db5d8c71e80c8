"""A folder job that goes on (``extract --watch``; ``tryon --watch``, its pairs): the photos in the
folders now, then each photo that comes into them later, or changes, once it has stopped changing,
until it is told to stop.

A hot folder: a studio's tethering software, a scanner or an upload writes photos into it, and
their garments appear in the output folder seconds later. The folders are walked again every
``POLL_S``, or ``WALK_WAIT`` times as long as a walk takes where that is longer (a large folder:
the walk takes a fifth of a core at most), the same walk as a folder job's, so ``--recursive``,
``--masks`` and ``--shard`` mean what they mean there; a photo is given to the job once its file
has stopped changing: written at least ``SETTLE_S`` ago, or the same size and time at two walks in
a row (a copy in progress is not a photo yet; one that stalls longer than that fails as a cut-off
file and is extracted when it is whole, its size and time then new); an empty file (an upload's
placeholder) waits until it is ``EMPTY_SETTLE_S`` old. A photo given once is given
again only when its size or time (or its mask file's) changes, or its status-change time (a chmod:
one that could not be read is tried again once its permissions are mended): the job's resume then
redoes it if its bytes changed. A photo that goes away is forgotten (its garment stays). Each photo given costs
a number held for the watch's life (about 70 bytes: a million photos, 69 MB measured); nothing
else grows with the folder. A watched folder that goes (a share unmounted, the folder moved) is
said once and waited for (``Folders``), not failed at every walk. The standard library only: no
watcher package, and it works alike on network folders (NFS, SMB), where change notifications do
not arrive.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .dress_jobs import DressJob, DressResult
from .jobs import ExtractJob, MaskIndex, iter_jobs
from .pairs import Pairs, dress_jobs
from .records import CONTENT
from .shards import Shard

log = logging.getLogger(__name__)

POLL_S = 2.0  # between one walk of the folders and the next, at least...
WALK_WAIT = 4.0  # ...and at least this many times the last walk's own time (a fifth of a core, at most, walking)
SETTLE_S = 2.0  # a photo written more recently than this waits for the next walk (still being written?)
EMPTY_SETTLE_S = 30.0  # an empty file (a placeholder that an upload or a copy fills in later) waits this long
WAITING_S = 0.1  # while it waits, the job hears this often that no photo is ready (None): see ``pipeline``
# what a watch knows of a job: what it makes (a photo's garment: the photo; a try-on pair: its output),
# the size and time of its input files (``records.input_state``; None: gone since listed), each one's
# status-change time (``records.input_state``), why it fails before any work
Described = tuple[Any, "str | None", "tuple[int, ...]", "str | None"]


def photo_job(job: ExtractJob) -> Described:
    """An ``extract`` job as a ``Watch`` knows it."""
    return job.photo, job.stamp, job.changed, job.error


def pair_job(job: DressJob | DressResult) -> Described:
    """A try-on pair as a ``Watch`` knows it (``tryon --watch``): what it makes (its output; a pair
    refused before any work, the pair), the size and time of its person and garment (the pair is
    given again where either is written again, or its permissions change), why it was refused."""
    if isinstance(job, DressResult):
        return (job.person, job.garment), None, (), job.error
    return job.output, job.stamp, job.changed, None


class Watch:
    """The photos of ``walk`` (a folder job's walk: ``jobs.iter_jobs``, made again for each pass),
    and then those that come or change, as a job source (``jobs``) that ends once ``stop`` is set
    (from any thread, or a signal handler: ``pipeline.run_extraction`` calls those while it waits).
    ``passes`` counts the walks done to their end; ``given`` the jobs given; ``walk_s`` is the last
    walk's own time (a folder of 100,000 photos: about 5 s of a core here), and the next walk
    waits ``WALK_WAIT`` times that where it is longer than ``poll_s`` (``wait_s``). ``describe``:
    what it knows of a job of the walk (``photo_job``; a try-on pair's, ``tryon --watch``:
    ``pair_job``, whose output is given again where its person or its garment changes)."""

    def __init__(
        self,
        walk: Callable[[], Iterable[ExtractJob]],
        stop: threading.Event | None = None,
        poll_s: float = POLL_S,
        settle_s: float = SETTLE_S,
        describe: Callable[[Any], Described] = photo_job,
    ):
        self.walk, self.poll_s, self.settle_s, self.describe = walk, poll_s, settle_s, describe
        self.stop = stop if stop is not None else threading.Event()
        self.passes = 0
        self.walk_s = 0.0
        self._given: set[int] = set()  # each job given: hash of (photo, its files' sizes, times, status change, error)
        self._changing: dict[Any, str | None] = {}  # photos seen written recently: their stamps then

    def jobs(self) -> Iterator[Any]:
        """Each photo's job once it has stopped changing, walk after walk; between walks (and
        during a long one), None every ``WAITING_S`` until the next or ``stop``."""
        while not self.stop.is_set():
            self.walk_s = 0.0
            yield from self._walk_once()
            next_walk = time.monotonic() + self.wait_s
            while True:  # (one None at least: the photos of this walk move on before the next)
                yield None
                if self.stop.is_set() or time.monotonic() >= next_walk:
                    break
                self.stop.wait(WAITING_S)

    @property
    def given(self) -> int:
        """How many jobs it has given."""
        return len(self._given)

    @property
    def wait_s(self) -> float:
        """Seconds from the end of one walk to the next."""
        return max(self.poll_s, WALK_WAIT * self.walk_s)

    def _walk_once(self) -> Iterator[Any]:
        now, heard = time.time(), time.monotonic()
        changing: dict[Any, str | None] = {}
        for job in self._timed(self.walk):
            if time.monotonic() - heard >= WAITING_S:  # a walk of many photos given before: Ctrl-C is heard
                yield None
                heard = time.monotonic()
            if self.stop.is_set():
                return
            made, stamp, changed, error = self.describe(job)
            if error is None and stamp is None:
                continue  # gone since it was listed: found again if it comes back
            key = hash((str(made), stamp, changed, error))
            if key in self._given:
                continue
            if error is None and not self._settled(made, stamp, now):
                changing[made] = stamp
                continue
            self._given.add(key)
            yield job
        self._changing = changing
        self.passes += 1  # (a walk to its end: one that a stop cut short is not counted)

    def _timed(self, walk: Callable[[], Iterable[Any]]) -> Iterator[Any]:
        """``walk()``'s jobs, the time it takes to start (a ``--masks`` folder read) and to make each
        added to ``walk_s`` (not the job's time between them)."""
        started = time.perf_counter()
        walking = iter(walk())
        self.walk_s += time.perf_counter() - started
        while True:
            started = time.perf_counter()
            try:
                job = next(walking)
            except StopIteration:
                return
            finally:
                self.walk_s += time.perf_counter() - started
            yield job

    def _settled(self, made: Any, stamp: str | None, now: float) -> bool:
        """Whether the files of the job that makes ``made`` (their ``stamp``) have stopped
        changing: the same stamp as at the last walk, or their newest modification time at least
        ``settle_s`` before ``now``; where one of them is empty, that time at least
        ``EMPTY_SETTLE_S`` before (a placeholder stays the same while the upload that fills it in
        has not begun)."""
        settle_s = self.settle_s
        if any(size == 0 for size, _ in _sizes_and_times(stamp)):
            settle_s = max(settle_s, EMPTY_SETTLE_S)
        elif made in self._changing and self._changing[made] == stamp:
            return True
        return newest_time(stamp) <= now - settle_s


def watched_walk(
    inputs: list[Path],
    out_dir: Path,
    fmt: str,
    masks: Path | None,
    recursive: bool,
    save_masks: Path | None,
    shard: Shard | None,
) -> Callable[[], Iterator[ExtractJob]]:
    """A folder job's walk (``jobs.iter_jobs``) for a ``Watch`` to make again and again: its
    ``--masks`` folder read anew each time (a ``MaskIndex`` keeps the listing it read, where the
    mask of a photo that came since would not be found)."""

    folders = Folders(inputs)

    def walk() -> Iterator[ExtractJob]:
        there = folders.there()
        if not there:
            return iter(())
        index = MaskIndex(masks) if masks is not None else None
        return iter_jobs(there, out_dir, fmt, index, recursive, save_masks, shard)

    return walk


def watched_pairs(pairs: Pairs, out_dir: Path, fmt: str) -> Callable[[], Iterator[DressJob | DressResult]]:
    """A try-on folder job's walk (``pairs.dress_jobs``: its folder of persons or garments, or both,
    every person in every garment) for a ``Watch`` to make again and again; nothing while a folder
    is gone (``Folders``)."""
    folders = Folders([side for side in (pairs.person, pairs.garment) if side.is_dir()])
    return lambda: dress_jobs(pairs, out_dir, fmt) if len(folders.there()) == len(folders.folders) else iter(())


class Folders:
    """The folders a watch walks, as they come and go: ``there()``, those there now. One that is
    gone (a network share unmounted, the folder moved or removed) is said once and left out of the
    walk, not reported as a failed photo at every walk, until it is back (said too); its photos'
    garments stay."""

    def __init__(self, folders: Iterable[Path]):
        self.folders = list(folders)
        self.gone: set[Path] = set()

    def there(self) -> list[Path]:
        there = []
        for folder in self.folders:
            if os.path.isdir(folder):
                if folder in self.gone:
                    self.gone.discard(folder)
                    log.warning("%s is back: the watch takes its photos again", folder)
                there.append(folder)
            elif folder not in self.gone:
                self.gone.add(folder)
                log.warning(
                    "%s is gone (a share unmounted, the folder moved or removed?): the watch waits for it to come back",
                    folder,
                )
        return there


def newest_time(stamp: str | None) -> float:
    """The newest modification time (seconds) an input record holds (``records.input_state``:
    ``SIZE:MTIME_NS`` for each file, joined by ``,``); +inf where there is none."""
    return max((time for _, time in _sizes_and_times(stamp)), default=float("inf"))


def _sizes_and_times(stamp: str | None) -> list[tuple[int, float]]:
    """The size (bytes) and modification time (seconds) of each file of an input record."""
    if not stamp:
        return []
    sizes_and_times = stamp.partition(CONTENT)[0]  # (a record completed by its digest: ``with_content``)
    files = [part.split(":", 1) for part in sizes_and_times.split(",")]
    return [(int(size), int(mtime_ns) / 1e9) for size, mtime_ns in files]
