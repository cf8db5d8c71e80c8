"""Turning the user's inputs (files, folders, dataset folders) into extraction jobs.

Each job names one photo, where its result goes, and where its garment mask comes from:
``--masks DIR`` (same relative path, or the same stem when DIR is flat, any image format),
the parse map of a VITON-HD (``image/`` + ``image-parse-v3/``) or CP-VTON (``image/`` +
``image-parse/``) dataset folder, the Dress Code label map (``images/`` + ``label_maps/``),
then (known once the photo is decoded) its alpha channel (``--alpha-mask``), the segmenter.

The photos come from ``walk`` (a folder walk, or a list's entries); a folder that cannot be
read (permissions, a symlink loop) or an entry that cannot be examined becomes a job with an
error: the scan never stops the whole folder.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import InputError, OutputError, lookup_error
from .files import remove_stale_partials, same_file
from .records import input_state, with_digest
from .shards import Shard
from .walk import (
    Found,
    MaskSource,
    is_image_name,
    listed_photos,
    named_photo,
    read_listing,
    subfolders_left_out,
    walk_photos,
)


@dataclass(frozen=True)
class ExtractJob:
    photo: Path
    output: Path
    mask: MaskSource  # kind "auto": no mask file; the photo's alpha (if asked for) or the segmenter
    error: str | None = None  # set when the job is known to fail before any decoding
    mask_output: Path | None = None  # where to save the mask used (--save-masks)
    redo: bool = False  # never skipped as done (a photo from standard input: its name says nothing)
    # the size and modification time of its photo and mask file when the job was made (``records.input_state``);
    # once they are read, with the digest of their bytes after CONTENT (``with_content``)
    stamp: str | None = None
    changed: tuple[int, ...] = ()  # the status-change time (ns) of each of those files then (``records.input_state``)

    @property
    def inputs(self) -> tuple[Path, ...]:
        """The files the job reads, as ``stamp`` records them: its photo, and its mask file if it has one."""
        return tuple(path for path in (self.photo, self.mask.path) if path is not None)

    def with_content(self, data: bytes | None = None) -> ExtractJob:
        """This job with its ``stamp`` completed by the digest of its inputs' bytes as they are read
        now (``content_digest``; ``data``: the photo's, read already), for its output's record; as it
        is where it has no stamp (a photo from standard input, a URL) or they cannot be read."""
        return dataclasses.replace(self, stamp=with_digest(self.stamp, self.inputs, (data,)))

    @property
    def mask_saved_already(self) -> bool:
        """Whether the mask is read from the file it would be saved to (``--masks DIR
        --save-masks DIR``, after a manual fix): that file is left as it is."""
        return (
            self.mask_output is not None and self.mask.path is not None and same_file(self.mask_output, self.mask.path)
        )


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a link loop, say: not a folder to look in
        return False


class MaskIndex:
    """The files of a ``--masks`` folder. A folder with subfolders is matched by relative path
    only (``in/b/x.jpg`` never takes ``masks/a/x.png``); a flat folder also by stem.

    Read one folder at a time, as the photos ask (they come folder by folder), and only the
    last folder read is kept: a masks folder of any size costs one folder's names. A folder
    the photos come back to (a ``--files-from`` list that goes front/1, side/1, front/2, ...)
    is not read again: its photos' masks are looked up by name, with the suffixes its files
    were seen with (reading a folder of 20,000 masks for every photo ran at 12 photos/s).
    """

    REMEMBERED = 65_536  # folders whose suffixes are kept (the oldest forgotten first: read again)

    def __init__(self, folder: Path):
        self.check(folder)
        self.folder = folder
        stems, subfolders = self._listing(folder)
        self.nested = any(not name.startswith(".") for name in subfolders)
        self._last: tuple[Path, dict[str, list[str]]] = (folder, stems)  # the top folder, read once
        self._suffixes: dict[Path, tuple[str, ...]] = {}  # each folder read: its masks' suffixes
        self._remember(folder, stems)

    @staticmethod
    def check(folder: Path) -> None:
        """``InputError`` unless ``folder`` can be a masks folder (what the index is built from)."""
        if not folder.is_dir():
            raise InputError(f"--masks folder not found or not a folder: {folder}")

    @staticmethod
    def _listing(folder: Path) -> tuple[dict[str, list[str]], list[str]]:
        """A masks folder's image files by stem (sorted), and its subfolders."""
        stems: dict[str, list[str]] = defaultdict(list)
        subfolders: list[str] = []
        try:
            with os.scandir(folder) as listing:
                for entry in listing:
                    if _is_dir(entry):
                        subfolders.append(entry.name)
                    elif is_image_name(entry.name):
                        stems[os.path.splitext(entry.name)[0]].append(entry.name)
        except (FileNotFoundError, NotADirectoryError):
            pass  # no such folder among the masks: no mask for the photos of that folder
        except OSError as exc:
            raise InputError(f"cannot read the --masks folder: {folder}: {exc.strerror or exc}") from None
        for names in stems.values():
            names.sort()
        return stems, subfolders

    def find(self, rel_without_suffix: str) -> Path | None:
        """The mask for a photo; ``InputError`` if several files could be it."""
        where, stem = posixpath.split(rel_without_suffix)
        if where and not self.nested:
            where = ""  # a flat folder: by stem
        folder = self.folder / where
        if self._last[0] == folder:
            names = self._last[1].get(stem, [])
        elif folder in self._suffixes:
            names = self._probe(folder, stem)
        else:
            self._last = (folder, self._listing(folder)[0])
            self._remember(folder, self._last[1])
            names = self._last[1].get(stem, [])
        if len(names) > 1:
            found = ", ".join(str(folder / name) for name in names)
            raise InputError(f"several masks match {rel_without_suffix if where else stem!r}: {found}; keep one")
        return folder / names[0] if names else None

    def _remember(self, folder: Path, stems: dict[str, list[str]]) -> None:
        if len(self._suffixes) >= self.REMEMBERED:
            del self._suffixes[next(iter(self._suffixes))]
        self._suffixes[folder] = tuple(
            sorted({os.path.splitext(name)[1] for names in stems.values() for name in names})
        )

    def _probe(self, folder: Path, stem: str) -> list[str]:
        """What the folder's listing would give for ``stem``, without reading it again: the
        names ``stem`` + each suffix its masks were seen with that are there, not folders (one
        file under two spellings, on a filesystem that ignores case, counted once)."""
        if stem.startswith("."):
            return []  # (not an image name: the listing leaves such files out)
        names, seen = [], set()
        for suffix in self._suffixes[folder]:
            path = os.path.join(folder, stem + suffix)
            try:
                link = os.lstat(path)
            except OSError:
                continue
            if (link.st_dev, link.st_ino) not in seen and not os.path.isdir(path):
                seen.add((link.st_dev, link.st_ino))
                names.append(stem + suffix)
        return sorted(names)


def check_output_folders(
    inputs: Iterable[Path], out_dir: Path, save_masks: Path | None, masks: Path | None = None
) -> None:
    """Refuse output folders that would overwrite inputs (the photos, the ``--masks``) or
    each other, before any work."""
    out = out_dir.resolve()
    if masks is not None and masks.resolve() == out:
        raise OutputError(f"the output folder {out_dir} is the --masks folder: garments would replace the masks")
    for item in inputs:
        if os.path.isdir(item) and item.resolve() == out:
            raise OutputError(
                f"the output folder {out_dir} is the input folder: garments would mix with the photos; "
                "choose another -o (a subfolder is fine)"
            )
    if save_masks is None:
        return
    if save_masks.resolve() == out:
        raise OutputError(f"--save-masks {save_masks} is the output folder: masks would overwrite garments")
    for item in inputs:
        if os.path.isdir(item) and item.resolve() == save_masks.resolve():
            raise OutputError(
                f"--save-masks {save_masks} is the input folder: masks would mix with the photos (and replace "
                "PNG photos); choose another folder (a subfolder is fine)"
            )


def overwrite_error(photo: Path, output: Path, mask_output: Path | None = None, mask: Path | None = None) -> str | None:
    """Why this job's garment or saved mask would replace its own photo (or its mask file), or None."""
    if same_file(output, photo):
        return f"the output {output} is the photo itself: the garment would replace it; choose another -o"
    if mask is not None and same_file(output, mask):
        return f"the output {output} is the photo's mask: the garment would replace it; choose another -o"
    if mask_output is not None and same_file(mask_output, photo):
        return f"--save-masks would write {mask_output}, the photo itself; choose another --save-masks folder"
    return None


def find_jobs(
    inputs: Iterable[Path],
    out_dir: Path,
    fmt: str,
    masks: MaskIndex | None = None,
    recursive: bool = False,
    save_masks: Path | None = None,
) -> list[ExtractJob]:
    """Every photo under ``inputs`` as a job (``iter_jobs``, as a list)."""
    return list(iter_jobs(inputs, out_dir, fmt, masks, recursive, save_masks))


def iter_jobs(
    inputs: Iterable[Path],
    out_dir: Path,
    fmt: str,
    masks: MaskIndex | None = None,
    recursive: bool = False,
    save_masks: Path | None = None,
    shard: Shard | None = None,
    listing: Path | None = None,
) -> Iterator[ExtractJob]:
    """Every photo under ``inputs`` (of ``shard``'s share; with ``listing``, those it names
    under the one input folder) as a job, one at a time; problems known up front are jobs
    with ``error``. Outputs are ``out_dir/<relative path>.<fmt>``; with ``save_masks``, each
    job also saves its mask there, as ``<relative path>.png``.

    Two photos for one output (``a.jpg``, ``a.png``): the first in the walk's order gets it,
    the other an error. One input folder's photos can only collide with their neighbours in
    the walk (``walk_photos``'s order), so only the last output is remembered; with several
    inputs or a listing, every output is. A photo named directly (or listed) whose garment or
    mask would be written over it (``-o`` its own folder) is an error too.
    """
    inputs = list(inputs)
    exclude = _not_walked(out_dir, save_masks, masks.folder if masks is not None else None)
    claimed: dict[str, str] = {}  # output (its relative path) -> its photo; strings: a listing's million are held
    remember_all = len(inputs) > 1 or listing is not None
    for item in inputs:
        named = False  # a photo given by name may sit where its outputs go; a walked folder never does
        if listing is not None:
            found, named = listed_photos(item, listing, exclude), True
        elif os.path.isdir(item):  # (os.path: False, not an exception, for a name too long)
            found: Iterable[Found] = walk_photos(item, recursive, exclude)
        elif os.path.exists(item):
            found, named = [named_photo(item)], True
        else:
            found = [Found(item, item.stem, error=_not_found(item))]
        for entry in found:
            if shard is not None and not shard.holds(entry.rel):
                continue
            twice = None
            if entry.rel not in claimed:
                if not remember_all:
                    claimed.clear()  # a new output: no photo before it can share it
                if entry.error is None:  # (an input not found, a broken link: writes nothing)
                    claimed[entry.rel] = str(entry.path)
            elif entry.error is None:
                first, output = claimed[entry.rel], out_dir / f"{entry.rel}.{fmt}"  # (or the same photo, again)
                twice = (
                    f"{entry.path} comes twice: it is extracted once"
                    if first == str(entry.path)
                    else f"{entry.path} and {first} would both be written to {output}; extract them separately"
                )
            yield job_of(entry, out_dir, fmt, masks, save_masks, named=named, error=twice)


def job_of(entry: Found, out_dir: Path, fmt: str, masks=None, save_masks=None, *, named=True, error=None) -> ExtractJob:
    """The job of one photo (``entry``, found by a walk, or ``named``: given, listed or fetched):
    its output ``out_dir/<rel>.<fmt>``, its mask (the entry's, or the ``masks`` file of its name:
    a ``MaskIndex``), its mask saved as ``save_masks/<rel>.png``, and the error known before any
    decoding (``error``, else the entry's, a mask's, an output that would be written over the
    photo or its mask)."""
    output = out_dir / f"{entry.rel}.{fmt}"
    error, source = error or entry.error, entry.mask
    if error is None and masks is not None:
        try:
            mask_file = masks.find(entry.rel)
        except InputError as exc:
            error = str(exc)
        else:
            source = MaskSource("file", mask_file) if mask_file is not None else source
    mask_output = save_masks / f"{entry.rel}.png" if save_masks is not None else None
    if error is None and (named or source.path is not None):  # (a dataset's parse maps, --masks files)
        error = overwrite_error(entry.path, output, mask_output, source.path)
    stamp, changed = input_state(entry.path, source.path)
    return ExtractJob(entry.path, output, source, error, mask_output, stamp=stamp, changed=changed)


def _not_found(item: Path) -> str:
    """Why an input is not there: not found, or what the system says of its path (a name too
    long, a loop of links): that input's error, and the other inputs go on."""
    return lookup_error(item) or f"input not found: {item}"


def _not_walked(*folders: Path | None) -> set[Path]:
    """The folders a walk leaves out: the outputs, the saved masks and the ``--masks`` folder
    (inside an input folder with ``--recursive``, their images are not photos)."""
    return {folder.resolve() for folder in folders if folder is not None}


def count_jobs(
    inputs: Iterable[Path],
    out_dir: Path,
    recursive: bool = False,
    save_masks: Path | None = None,
    masks: Path | None = None,
    shard: Shard | None = None,
    listing: Path | None = None,
) -> int:
    """How many jobs ``iter_jobs`` gives for these inputs (a walk that keeps nothing)."""
    exclude = _not_walked(out_dir, save_masks, masks)
    if listing is not None and shard is None:
        return sum(1 for _ in read_listing(listing))  # (every entry is a job: a photo, or an error)
    if listing is not None:
        found: Iterable[Found] = (f for i in inputs for f in listed_photos(i, listing, exclude))
    else:
        found = (
            f for i in inputs for f in (walk_photos(i, recursive, exclude) if os.path.isdir(i) else [Found(i, i.stem)])
        )
    return sum(1 for f in found if shard is None or shard.holds(f.rel))


def unsearched_subfolders(
    inputs: Iterable[Path], out_dir: Path | None, save_masks: Path | None = None, masks: Path | None = None
) -> list[Path]:
    """The subfolders of the input folders that a walk without ``recursive`` leaves out (not
    the job's own output and mask folders): photos there are not taken, which a user who
    forgot ``--recursive`` should hear about."""
    exclude = _not_walked(out_dir, save_masks, masks)
    return [folder / name for folder in inputs for name in subfolders_left_out(folder, exclude)]


def removing_stale_partials(jobs: Iterable[ExtractJob | None]) -> Iterator[ExtractJob | None]:
    """``jobs``, each output folder cleared of what killed runs left there (``.partial``
    files of dead processes) before its first job: the folders are remembered, not the jobs.
    (None, a feed's "none ready yet": ``pipeline.run_extraction``, passed on.)"""
    cleared: set[Path] = set()
    for job in jobs:
        if job is not None and job.error is None and job.output.parent not in cleared:
            cleared.add(job.output.parent)
            remove_stale_partials(job.output.parent)
        yield job
