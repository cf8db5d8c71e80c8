"""What photos there are: the walk of the user's folders, and the entries of a list of photos.

A folder is walked one folder's names at a time, in output order (``walk_photos``); a
dataset split (VITON-HD or CP-VTON ``image/`` + parse maps, Dress Code ``images/`` + label
maps) gives its photos with their maps; ``extract FOLDER --files-from LIST`` takes the
photos a list names under FOLDER instead (``listed_photos``). Each is a ``Found``: a photo
with its output path under ``-o`` (without the suffix) and its mask source, or a problem
where a photo or folder was, which becomes that job's error: the scan never stops.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from .images import IMAGE_SUFFIXES

# Parse-map folder names, most specific first: VITON-HD, then CP-VTON / VITON.
PARSE_FOLDERS = ("image-parse-v3", "image-parse")
DRESSCODE_LABELS = "label_maps"  # Dress Code: images/NNNNNN_0.jpg + label_maps/NNNNNN_4.png


@dataclass(frozen=True)
class MaskSource:
    kind: str  # "file" (--masks), "parse" (VITON parse map), "labels" (Dress Code), "auto" (alpha or segmenter)
    path: Path | None = None

    def describe(self) -> str:
        return self.kind if self.path is None else f"{self.kind}:{self.path}"


def dataset_parse_folder(folder: Path) -> Path | None:
    """The parse-map folder if ``folder`` is a VITON-HD or CP-VTON dataset split."""
    if not os.path.isdir(folder / "image"):
        return None
    for name in PARSE_FOLDERS:
        if os.path.isdir(folder / name):
            return folder / name
    return None


def dresscode_folder(folder: Path) -> bool:
    """Whether ``folder`` is a Dress Code category folder (``images/`` + ``label_maps/``)."""
    return os.path.isdir(folder / "images") and os.path.isdir(folder / DRESSCODE_LABELS)


def dresscode_label_map(photo: Path) -> Path:
    """The label map of a Dress Code person photo ``images/NNNNNN_0.jpg``."""
    stem = photo.stem[:-2] if photo.stem.endswith("_0") else photo.stem
    return photo.parent.parent / DRESSCODE_LABELS / f"{stem}_4.png"


def is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


@dataclass(frozen=True)
class Found:
    """One entry of a folder walk: a photo, or a problem where a photo or folder was."""

    path: Path
    rel: str  # output path relative to the output folder, without suffix
    mask: MaskSource = MaskSource("auto")
    error: str | None = None


def _scan_error(path: Path, exc: OSError) -> str:
    if getattr(exc, "errno", None) == 40:  # ELOOP
        return f"cannot read {path}: a symbolic link loop"
    return f"cannot read {path}: {exc.strerror or exc}"


def _dataset_photos(folder: Path, prefix: str) -> Iterator[Found] | None:
    """The photos of a dataset split folder with their parse / label maps, or None if it is not one."""
    parse_dir = dataset_parse_folder(folder)
    if parse_dir is not None:
        keys = _output_order(n for n in os.listdir(folder / "image") if is_image_name(n))
        return (
            Found(folder / "image" / name, prefix + stem, MaskSource("parse", parse_dir / f"{stem}.png"))
            for name, stem in map(_from_key, keys)
        )
    if dresscode_folder(folder):
        images = folder / "images"
        keys = _output_order(n for n in os.listdir(images) if is_image_name(n) and Path(n).stem.endswith("_0"))
        return (
            Found(images / name, prefix + stem, MaskSource("labels", dresscode_label_map(images / name)))
            for name, stem in map(_from_key, keys)
        )
    return None


def walk_photos(folder: Path, recursive: bool, exclude: set[Path], prefix: str = "", seen=None) -> Iterator[Found]:
    """Every photo under ``folder``, and every entry that could not be read as an error: a
    folder's photos sorted by stem, then name (``a.jpg``, ``a.png``, ``a-1.jpg``), then its
    subfolders, sorted.

    One folder's names are held while it is walked (its photos and subfolders, as strings),
    never the entries of the whole tree: the walk of a million photos stays small.
    """
    seen = set() if seen is None else seen
    try:
        stat = folder.stat()
        if (stat.st_dev, stat.st_ino) in seen:
            yield Found(folder, prefix.rstrip("/"), error=f"{folder} is a folder loop (a symbolic link back up)")
            return
        seen.add((stat.st_dev, stat.st_ino))
        dataset = _dataset_photos(folder, prefix)
        if dataset is not None:
            yield from dataset
            return
        if folder.resolve() in exclude:
            return  # the output folder inside an input folder: never read results back as photos
        photos, subfolders, problems = _list_folder(folder)
    except OSError as exc:
        yield Found(folder, prefix.rstrip("/"), error=_scan_error(folder, exc))
        return
    for name, stem in map(_from_key, photos):
        yield Found(folder / name, prefix + stem, error=problems.get(name))
    if recursive:
        for name in subfolders:
            yield from walk_photos(folder / name, recursive, exclude, f"{prefix}{name}/", seen)


def subfolders_left_out(folder: Path, exclude: set[Path]) -> list[str]:
    """The subfolders a walk of ``folder`` without ``recursive`` does not enter, sorted: not
    a dataset layout's own, hidden ones or ``exclude`` (the job's own folders); none where
    ``folder`` is no folder or cannot be read (the walk says why)."""
    if not os.path.isdir(folder) or dataset_parse_folder(folder) is not None or dresscode_folder(folder):
        return []

    def entered(entry: os.DirEntry) -> bool:  # (the walk would enter it; no photo is examined)
        try:
            return not entry.name.startswith(".") and entry.is_dir()
        except OSError:
            return False

    try:
        with os.scandir(folder) as listing:
            subfolders = sorted(entry.name for entry in listing if entered(entry))
    except OSError:
        return []
    return [name for name in subfolders if (folder / name).resolve() not in exclude]


def _list_folder(folder: Path) -> tuple[list[str], list[str], dict[str, str]]:
    """A folder's photos (as ``_output_order`` keys) and subfolder names, sorted, hidden ones
    left out, and the names of the photos that could not be examined, with why."""
    photos: list[str] = []
    subfolders: list[str] = []
    problems: dict[str, str] = {}
    with os.scandir(folder) as listing:
        for entry in listing:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir():
                    subfolders.append(entry.name)
                elif is_image_name(entry.name) and entry.is_file():
                    photos.append(_key(entry.name))
                elif is_image_name(entry.name) and entry.is_symlink():  # its target is gone
                    problems[entry.name] = f"{entry.path} is a link to a missing file ({os.readlink(entry.path)})"
                    photos.append(_key(entry.name))
            except OSError as exc:
                if is_image_name(entry.name):
                    photos.append(_key(entry.name))
                    problems[entry.name] = _scan_error(Path(entry.path), exc)
    photos.sort()
    subfolders.sort()
    return photos, subfolders, problems


def passed_over(folders: Iterable[Path], recursive: bool, limit: int = 10_000) -> dict[str, int]:
    """The files in ``folders`` (and below, with ``recursive``) a walk passes over, by suffix
    ("(none)" for a name without one), most common first: what a job that found no photo can
    name. Hidden names are left out, as the walk leaves them; at most ``limit`` entries are read."""
    counts: dict[str, int] = {}
    pending, seen = list(folders), 0
    while pending and seen < limit:
        try:
            with os.scandir(pending.pop()) as listing:
                for entry in listing:
                    seen += 1
                    if seen > limit:
                        break
                    if entry.name.startswith("."):
                        continue
                    if entry.is_dir():
                        pending.extend([Path(entry.path)] if recursive else [])
                    elif not is_image_name(entry.name):
                        suffix = os.path.splitext(entry.name)[1].lower() or "(none)"
                        counts[suffix] = counts.get(suffix, 0) + 1
        except OSError:
            continue  # (a folder the walk could not read either: its own error says so)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def passed_over_note(folders: Iterable[Path], recursive: bool) -> str:
    """For a message that no photo was found in ``folders``: ": the files there (...) are not
    named as photos (...); ..." with the files a walk passed over, by suffix; "" for none."""
    other = passed_over(folders, recursive)
    if not other:
        return ""
    kinds = ", ".join(f"{count} {suffix}" for suffix, count in list(other.items())[:6])
    return (
        f": the files there ({kinds}{', ...' if len(other) > 6 else ''}) are not named as photos "
        f"({' '.join(sorted(IMAGE_SUFFIXES))}); a file of another format Pillow reads can be given by its path"
    )


def _key(name: str) -> str:
    return "\0".join(os.path.splitext(name))  # a.jpg -> "a\0.jpg"


def _output_order(names: Iterable[str]) -> list[str]:
    """``names`` in output order: by stem, then name (``a.jpg``, ``a.png``, ``a-1.jpg``), so
    that photos that would be written to one output come one after the other. Each is held
    as its stem and suffix joined by a NUL, which sorts so by itself: no sort key beside
    each of a flat folder's million names."""
    return sorted(map(_key, names))


def _from_key(key: str) -> tuple[str, str]:
    """(name, stem) of an ``_output_order`` key."""
    stem, _, suffix = key.partition("\0")
    return stem + suffix, stem


def named_photo(item: Path) -> Found:
    """A photo named directly; inside a dataset split it still gets its parse or label map."""
    if item.parent.name == "image" and dataset_parse_folder(item.parent.parent) is not None:
        parse_dir = dataset_parse_folder(item.parent.parent)
        return Found(item, item.stem, MaskSource("parse", parse_dir / f"{item.stem}.png"))
    if item.parent.name == "images" and dresscode_folder(item.parent.parent):
        return Found(item, item.stem, MaskSource("labels", dresscode_label_map(item)))
    return Found(item, item.stem)


def read_listing(listing: Path) -> Iterator[tuple[int, str]]:
    """A list of photos' entries as (line number, entry): one a line, any bytes a file name
    may hold (read as ``os.fsdecode`` does; a UTF-8 byte-order mark, as Windows editors
    write, left out), blank lines and lines starting with ``#`` left out. ``OSError`` if the
    file cannot be read."""
    with open(listing, "rb") as lines:
        for number, raw in enumerate(lines, 1):
            entry = os.fsdecode(raw.rstrip(b"\r\n").removeprefix(b"\xef\xbb\xbf" if number == 1 else b""))
            if entry.strip() and not entry.startswith("#"):
                yield number, entry


def listed_photos(folder: Path, listing: Path, exclude: Iterable[Path] = ()) -> Iterator[Found]:
    """The photos ``listing`` names under ``folder`` (``extract FOLDER --files-from LIST``), in
    the list's order: each entry a path relative to ``folder``, or absolute inside it, and its
    output the same path under ``-o`` (a photo of a dataset split: its stem, with its map, as
    the walk gives it). An entry outside ``folder``, inside one of the ``exclude`` folders (the
    job's outputs and masks, which a walk leaves out), missing, a folder or no image file name
    is a ``Found`` with the error, naming the line."""
    root = os.path.abspath(folder).rstrip(os.sep) + os.sep
    kept_out = tuple({os.path.join(way(f), "") for f in exclude for way in (os.path.abspath, os.path.realpath)})
    for number, entry in read_listing(listing):
        line = f"(line {number} of {listing})"
        full = os.path.normpath(os.path.join(root, entry))
        if not full.startswith(root) or full == root.rstrip(os.sep):
            yield Found(
                Path(entry), entry, error=f"{entry} {line} is not inside {folder}: outputs mirror paths under it"
            )
            continue
        if full.startswith(kept_out):
            yield Found(Path(full), entry, error=f"{full} {line} is in this job's outputs or --masks: not a photo")
            continue
        rel = full[len(root) :]
        path, error = folder / rel, None
        try:
            is_folder = stat.S_ISDIR(os.stat(full).st_mode)
        except OSError as exc:
            reason = "not found" if exc.errno == errno.ENOENT else f"cannot be read: {exc.strerror or exc}"
            is_folder, error = False, f"{path} {line} {reason}"
        if is_folder:
            error = f"{path} {line} is a folder: list photo files"
        elif not is_image_name(path.name):
            error = f"{path} {line} is not a photo file's name (.jpg, .png, .webp, .tif, ...)"
        dataset = named_photo(path) if error is None else None
        if dataset is not None and dataset.mask.kind != "auto":
            yield dataset  # its stem, with its parse or label map, as the walk gives it
        else:
            yield Found(path, os.path.splitext(rel)[0].replace(os.sep, "/"), error=error)  # its path under -o
