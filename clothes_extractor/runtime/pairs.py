"""Who wears what in a folder try-on job (``tryon``, ``api.dress_folder``): the pairs, and the
output each one writes.

    pairs = Pairs(persons, garments)                       # (listing=read_pairs(...), tree, shard, every)
    total = pairs.count()                                  # a walk that keeps nothing
    run_dressing(dresser, dress_jobs(pairs, out_dir, "png"), ...)    # runtime.dress_jobs
    # garments from photos (--garment-from): runtime.stage_one.dress_from_photos

A folder of persons (or garments) is walked, never held: a million persons in one garment
are planned in the memory of one folder's names, as ``extract``'s photos are. The front
ends check how the inputs combine (two folders need a pairs listing, or every person in
every garment) in their own words; what is here raises ``InputError`` for what the files say.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple, Sequence

from ..errors import InputError, OutputError
from .dress_jobs import DressJob, DressResult
from .files import same_file
from .records import input_state
from .shards import Shard
from .walk import passed_over_note, walk_photos

Pair = tuple[Path, Path]  # (person photo, garment image or photo)


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
    the pairs of a ``listing`` (``read_pairs``), or, ``every``, with two folders, every person of
    one in every garment of the other (``_every``); those of ``shard`` (a pair's share is its
    output path's). Each iteration walks the folders again, yielding a ``Pair`` or, for a
    folder entry that cannot be read, an ``Unreadable``."""

    person: Path
    garment: Path
    listing: PairsListing | None = None
    tree: Tree | None = None
    exclude: Sequence[Path] = ()
    shard: Shard | None = None
    every: bool = False

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
            folder = self._empty_folder()
            raise InputError(f"no images found in {folder}{passed_over_note([folder], self.tree is not None)}")
        return held, every

    def _walk(self) -> Iterator[Pair | Unreadable]:
        person, garment = self.person, self.garment
        if not (person.is_dir() or garment.is_dir()):
            yield person, garment
            return
        if self.every:
            yield from self._every()
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

    def _every(self) -> Iterator[Pair | Unreadable]:
        """Each garment of its folder on each person of theirs, a garment at a time (a batch reads
        its garment once; stage one's window holds few garment photos, each extracted once); an
        entry that cannot be read said once, as is the second of two garments whose pairs would
        write the same outputs (``a.jpg`` and ``a.png``: it is not dressed)."""
        said, before = False, None  # (the persons' unreadable entries said; the garment before)
        for garment in walk_photos(self.garment, False, set()):
            error = garment.error
            if error is None and before is not None and garment.path.stem == before.stem:
                error = f"its pairs' outputs would be those of {before.name}: rename one of the two garments"
            if error is not None:
                yield Unreadable(garment.path, error)
                continue
            before = garment.path
            for person in walk_photos(self.person, False, set()):
                if person.error is None:
                    yield person.path, garment.path
                elif not said:
                    yield Unreadable(person.path, person.error)
            said = True

    def _empty_folder(self) -> Path:
        """The folder whose walk gives nothing (``every``: the first of the two with no image)."""
        if not self.every:
            return self.person if self.person.is_dir() else self.garment
        return next((f for f in (self.person, self.garment) if not any(walk_photos(f, False, set()))), self.person)

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
            stamp, changed = input_state(person, garment)
            yield DressJob(person, garment, path, stamp=stamp, changed=changed)


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
