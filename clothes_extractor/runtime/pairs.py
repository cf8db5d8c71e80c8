"""Who wears what in a folder try-on job (``tryon``, ``api.dress_folder``): the pairs, the
output each one writes, and the catalog images of garment photos (stage one).

    pairs = Pairs(persons, garments)                       # (listing=read_pairs(...), tree, shard)
    total = pairs.count()                                  # a walk that keeps nothing
    run_dressing(dresser, dress_jobs(pairs, out_dir, "png"), ...)    # runtime.dress_jobs
    # garments from photos (--garment-from): a window of pairs at a time, stage one for the
    # garment photos of its pairs not dressed yet, then stage two (run_dressing) on the window
    dress_from_photos(dress_jobs(...), tmp, extract, dress, dresser.signature)
    # extract(photos, into) = extract_garments(photos, into, generator, parser, output_size=dresser.garment_size)
    # dress(jobs) = run_dressing(dresser, jobs, ...)

A folder of persons (or garments) is walked, never held: a million persons in one garment
are planned in the memory of one folder's names, as ``extract``'s photos are. The front
ends check how the inputs combine (two folders need a pairs listing) in their own words;
what is here raises ``InputError`` for what the files say.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Sequence

from ..errors import InputError, NoGarmentError, OutputError
from .dress_jobs import DressingSummary, DressJob, DressResult, decided
from .files import same_file
from .jobs import find_jobs, input_stamp
from .options import ExtractOptions
from .pipeline import run_extraction
from .session import ModelSession, trim_memory
from .shards import Shard
from .walk import passed_over_note, walk_photos

Pair = tuple[Path, Path]  # (person photo, garment image or photo)
Catalog = dict[Path, Path | str]  # stage one's: garment photo -> its catalog image, or why there is none
Made = dict[tuple[Path, str], Path | str]  # the same, by the photo as its pairs read it (``DressJob.garment_read``)
# A garment photo whose garment the segmenter cannot find: tryon takes no masks, so extract it first.
EXTRACT_FIRST = "clothes-extractor extract PHOTO --masks DIR, then tryon --garment GARMENT"


@dataclass(frozen=True)
class Tree:
    """The folder of a job walked with its subfolders (``-r``): the persons' (``side`` 0) or
    the garments' (1). Each output goes to the subfolder its walked photo came from."""

    root: Path
    side: int

    @classmethod
    def of(cls, person: Path, garment: Path, recursive: bool) -> Tree | None:
        """The tree of a job's inputs (``Pairs``: at most one of them a folder), or None."""
        if recursive:
            for side, item in enumerate((person, garment)):
                if item.is_dir():
                    return cls(item, side)
        return None

    def under(self, path: Path) -> str:
        """``path``'s folder below the root: ``"a/b/"``, or ``""`` at the root."""
        try:
            where = path.parent.relative_to(self.root).as_posix()
        except ValueError:  # the root itself (a folder that cannot be read)
            return ""
        return "" if where == "." else f"{where}/"


def output_stem(person: Path, garment: Path, tree: Tree | None = None) -> str:
    """PERSON__GARMENT, in a walked tree under its photo's subfolder: a pair's output path
    below ``-o`` without its suffix, and its shard key."""
    return f"{tree.under((person, garment)[tree.side]) if tree else ''}{person.stem}__{garment.stem}"


@dataclass
class Pairs:
    """Who wears what: every person of ``person`` (a photo or a folder) x the garment of
    ``garment`` (a photo or a folder; at most one of the two a folder, walked with its
    subfolders in a ``tree``, never the folders of ``exclude``: an output folder inside it),
    or the pairs of a ``listing`` (``read_pairs``); those of ``shard`` (a pair's share is its
    output path's). Each iteration walks the folder again, yielding a ``Pair`` or, for a
    folder entry that cannot be read, an ``Unreadable``."""

    person: Path
    garment: Path
    listing: PairsListing | None = None
    tree: Tree | None = None
    exclude: Sequence[Path] = ()
    shard: Shard | None = None

    def __iter__(self) -> Iterator[Pair | Unreadable]:
        for item in self.listing if self.listing is not None else self._walk():
            if self.shard is None or self.shard.holds(self._key(item)):
                yield item

    def count(self) -> tuple[int, int]:
        """How many pairs and unreadable entries an iteration gives, and how many there are in
        all shards (a walk that keeps none of them); ``InputError`` for a folder with no
        images at all."""
        held = every = 0
        for item in self.listing if self.listing is not None else self._walk():
            every += 1
            held += self.shard is None or self.shard.holds(self._key(item))
        if every == 0:
            folder = self.person if self.person.is_dir() else self.garment
            raise InputError(f"no images found in {folder}{passed_over_note([folder], self.tree is not None)}")
        return held, every

    def _walk(self) -> Iterator[Pair | Unreadable]:
        person, garment = self.person, self.garment
        if not (person.is_dir() or garment.is_dir()):
            yield person, garment
            return
        # (only a tree's subfolders can be left out: an output folder that is an input folder is
        # refused with its own reason, check_output_folder)
        exclude = {path.resolve() for path in self.exclude} - {person.resolve(), garment.resolve()}
        folder = person if person.is_dir() else garment
        for entry in walk_photos(folder, self.tree is not None, exclude):
            if entry.error is not None:
                yield Unreadable(entry.path, entry.error)
            else:
                yield (entry.path, garment) if folder is person else (person, entry.path)

    def _key(self, item: Pair | Unreadable) -> str:
        if isinstance(item, Unreadable):
            return f"{self.tree.under(item.path) if self.tree else ''}{item.path.stem}"
        return output_stem(*item, self.tree)


class Unreadable(NamedTuple):
    """A folder entry that cannot be read (a symbolic link loop, an unreadable file), to be
    reported while the rest is dressed."""

    path: Path
    error: str


@dataclass(frozen=True)
class PairsListing:
    """The pairs a listing names, in its order, each pair once (``read_pairs`` makes one,
    having checked every line): a pairs file is read again at every iteration, never held
    (a million pairs held as a list took 1.1 GB); a caller's sequence is the caller's."""

    source: Path | Sequence[Sequence[str]]
    person_dir: Path
    garment_dir: Path

    def __iter__(self) -> Iterator[Pair]:
        for person, garment in _distinct(_rows(self.source)):
            yield self.person_dir / person, self.garment_dir / garment


def read_pairs(
    listing: Path | Iterable[Sequence[str]], person_dir: Path, garment_dir: Path
) -> tuple[PairsListing, int]:
    """The pairs a listing names, and how many it named again (each pair is dressed once);
    ``InputError`` for a line that names no pair, or a listing that names none, before any work.

    ``listing``: a pairs file (lines ``PERSON GARMENT``, names in the two folders, as VITON's
    ``test_pairs.txt``; blank lines and ``#`` comments skipped) or a sequence of (person,
    garment) names."""
    source = Path(listing) if isinstance(listing, (str, Path)) else list(listing)
    named = 0

    def counted() -> Iterator[Sequence[str]]:
        nonlocal named
        for fields in _rows(source):
            named += 1
            yield fields

    distinct = sum(1 for _ in _distinct(counted()))
    if not distinct:
        raise InputError(
            f"the pairs file {source} names no pairs" if isinstance(source, Path) else "pairs names no pairs"
        )
    return PairsListing(source, person_dir, garment_dir), named - distinct


def _distinct(rows: Iterable[Sequence[str]]) -> Iterator[Sequence[str]]:
    """Each (person, garment) of ``rows`` the first time it comes (held: 16 bytes of its digest)."""
    seen: set[bytes] = set()
    for fields in rows:
        named = "\0".join(os.path.normpath(field) for field in fields)  # ./a.jpg is a.jpg, as for a Path
        key = hashlib.blake2b(named.encode("utf-8", "surrogateescape"), digest_size=16).digest()
        if key not in seen:
            seen.add(key)
            yield fields


def _rows(source: Path | Sequence[Sequence[str]]) -> Iterator[Sequence[str]]:
    """The (person, garment) names of each line of a pairs file that names something, or of
    each item of a sequence; ``InputError`` at the first that is no pair."""
    if not isinstance(source, Path):
        for index, fields in enumerate(source):
            if isinstance(fields, (str, bytes)) or len(fields) != 2:
                raise InputError(f"pairs[{index}]: expected (person, garment), got {fields!r}")
            yield fields
        return
    try:
        with open(source, encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if line.strip() and not line.lstrip().startswith("#"):
                    fields = line.split()
                    if len(fields) != 2:
                        raise InputError(f"{source}, line {number}: expected 'PERSON GARMENT', got {line.strip()!r}")
                    yield fields
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the pairs file {source}: {exc}") from None


def check_output_folder(person: Path, garment: Path, out_dir: Path) -> None:
    """Refuse an output folder that is an input folder, before any work: the dressed photos
    would mix with the persons (or garments), and the next run would dress them too."""
    for role, item in (("person", person), ("garment", garment)):
        if item.is_dir() and item.resolve() == out_dir.resolve():
            raise OutputError(
                f"the output folder {out_dir} is the {role} folder: dressed photos would mix with the inputs, and "
                "the next run would take them for inputs; choose another -o (a subfolder is fine)"
            )


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


def dress_jobs(pairs: Pairs, out_dir: Path, fmt: str, single: Path | None = None) -> Iterator[DressJob | DressResult]:
    """The job of each pair, writing ``out_dir/PERSON__GARMENT.fmt`` (in a walked ``tree``,
    under its photo's subfolder; or ``single``, for one pair), or the result of a pair that
    fails before any work: an unreadable folder entry, an output that would replace one of
    its inputs, one output name for two pairs (``a.jpg`` and ``a.png``). The outputs are
    remembered for a listing (any order); for a walk, whose outputs come sorted, only the
    last one."""
    remember_all = pairs.listing is not None
    claimed: dict[str, str] = {}  # output -> "PERSON\0GARMENT" (no path holds a NUL); a listing's million are held
    for item in pairs:
        if isinstance(item, Unreadable):
            yield DressResult(str(item.path), "", "error", "", item.error)
            continue
        person, garment = item
        path = single or out_dir / f"{output_stem(person, garment, pairs.tree)}.{fmt}"
        inputs = {"person photo": person, "garment": garment}
        replaced = next((what for what, found in inputs.items() if same_file(path, found)), None)
        if str(path) not in claimed and not remember_all:
            claimed.clear()  # a new output: no pair before it can share it
        first = claimed.setdefault(str(path), f"{person}\0{garment}")
        error = None
        if replaced is not None:
            error = f"the output {path} is the {replaced} itself: the result would replace it; choose another -o"
        elif first != f"{person}\0{garment}":
            error = f"{path} is already the output of {_other_pair(first, person, garment)}; dress this pair separately"
        if error is not None:
            yield DressResult(str(person), str(garment), "error", str(path), error)
        else:
            yield DressJob(person, garment, path, stamp=input_stamp(person, garment))


def _other_pair(other: str, person: Path, garment: Path) -> str:
    """The pair ``other`` ("PERSON\0GARMENT") as a message about the pair (``person``, ``garment``)
    names it: by what it does not share with it (the message names this pair already, and its
    line leaves that name out)."""
    other_person, other_garment = other.split("\0")
    if other_garment == str(garment):
        return f"{other_person} in the same garment"
    if other_person == str(person):
        return f"the same person in {other_garment}"
    return f"{other_person} + {other_garment}"


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
            yield DressJob(job.person, made, job.output, photo=job.garment, stamp=job.stamp)  # (of the photo)
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
            made, summary.stopped = extract([photo for photo, _ in new], folder / f"stage-one-{number}")
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
