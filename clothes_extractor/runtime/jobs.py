"""Turning the user's inputs (files, folders, dataset folders) into extraction jobs.

Each job names one photo, where its result goes, and where its garment mask comes from:
``--masks DIR`` (same relative path, or the same stem when DIR is flat, any image format),
the parse map of a VITON-HD (``image/`` + ``image-parse-v3/``) or CP-VTON (``image/`` +
``image-parse/``) dataset folder, the Dress Code label map (``images/`` +
``label_maps/``), then (known only once the photo is decoded) the photo's alpha channel
if asked for (``--alpha-mask``), and last the segmenter.

A folder that cannot be read (permissions, a symlink loop) or an entry that cannot be
examined becomes a job with an error: the scan never stops the whole folder.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import InputError, OutputError
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


@dataclass(frozen=True)
class ExtractJob:
    photo: Path
    output: Path
    mask: MaskSource  # kind "auto": no mask file; the photo's alpha (if asked for) or the segmenter
    error: str | None = None  # set when the job is known to fail before any decoding
    mask_output: Path | None = None  # where to save the mask used (--save-masks)


def dataset_parse_folder(folder: Path) -> Path | None:
    """The parse-map folder if ``folder`` is a VITON-HD or CP-VTON dataset split."""
    if not (folder / "image").is_dir():
        return None
    for name in PARSE_FOLDERS:
        if (folder / name).is_dir():
            return folder / name
    return None


def dresscode_folder(folder: Path) -> bool:
    """Whether ``folder`` is a Dress Code category folder (``images/`` + ``label_maps/``)."""
    return (folder / "images").is_dir() and (folder / DRESSCODE_LABELS).is_dir()


def dresscode_label_map(photo: Path) -> Path:
    """The label map of a Dress Code person photo ``images/NNNNNN_0.jpg``."""
    stem = photo.stem[:-2] if photo.stem.endswith("_0") else photo.stem
    return photo.parent.parent / DRESSCODE_LABELS / f"{stem}_4.png"


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


class MaskIndex:
    """The files of a ``--masks`` folder. A folder with subfolders is matched by relative path
    only (``in/b/x.jpg`` never takes ``masks/a/x.png``); a flat folder also by stem."""

    def __init__(self, folder: Path):
        if not folder.is_dir():
            raise InputError(f"--masks folder not found or not a folder: {folder}")
        self.folder = folder
        self._by_rel: dict[str, list[Path]] = defaultdict(list)
        self._by_stem: dict[str, list[Path]] = defaultdict(list)
        self.nested = False

        def unreadable(error: OSError) -> None:
            raise InputError(f"cannot read the --masks folder: {error.filename}: {error.strerror}")

        for root, dirs, files in os.walk(folder, onerror=unreadable):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            self.nested = self.nested or bool(dirs)
            for name in sorted(files):
                if _is_image_name(name):
                    path = Path(root) / name
                    rel = path.relative_to(folder).with_suffix("").as_posix()
                    self._by_rel[rel].append(path)
                    self._by_stem[path.stem].append(path)

    def __len__(self) -> int:
        return sum(len(paths) for paths in self._by_rel.values())

    def find(self, rel_without_suffix: str) -> Path | None:
        """The mask for a photo; ``InputError`` if several files could be it."""
        tables = [(self._by_rel, rel_without_suffix)]
        if not self.nested:
            tables.append((self._by_stem, Path(rel_without_suffix).name))
        for table, key in tables:
            paths = table.get(key, [])
            if len(paths) == 1:
                return paths[0]
            if len(paths) > 1:
                names = ", ".join(str(p) for p in paths)
                raise InputError(f"several masks match {key!r}: {names}; keep one")
        return None


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
        names = sorted(os.listdir(folder / "image"))
        return (
            Found(folder / "image" / n, prefix + Path(n).stem, MaskSource("parse", parse_dir / f"{Path(n).stem}.png"))
            for n in names
            if _is_image_name(n)
        )
    if dresscode_folder(folder):
        names = sorted(n for n in os.listdir(folder / "images") if _is_image_name(n) and Path(n).stem.endswith("_0"))
        return (
            Found(
                folder / "images" / n,
                prefix + Path(n).stem,
                MaskSource("labels", dresscode_label_map(folder / "images" / n)),
            )
            for n in names
        )
    return None


def walk_photos(folder: Path, recursive: bool, exclude: set[Path], prefix: str = "", seen=None) -> Iterator[Found]:
    """Every photo under ``folder`` (sorted), and every entry that could not be read as an error."""
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
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError as exc:
        yield Found(folder, prefix.rstrip("/"), error=_scan_error(folder, exc))
        return
    subfolders = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            if entry.is_dir():
                subfolders.append(entry)
            elif _is_image_name(entry.name) and entry.is_file():
                yield Found(Path(entry.path), prefix + Path(entry.name).stem)
        except OSError as exc:
            if _is_image_name(entry.name):
                yield Found(Path(entry.path), prefix + Path(entry.name).stem, error=_scan_error(Path(entry.path), exc))
    if recursive:
        for entry in subfolders:
            yield from walk_photos(Path(entry.path), recursive, exclude, f"{prefix}{entry.name}/", seen)


def _single(item: Path) -> Found:
    """A photo named directly; inside a dataset split it still gets its parse or label map."""
    if item.parent.name == "image" and dataset_parse_folder(item.parent.parent) is not None:
        parse_dir = dataset_parse_folder(item.parent.parent)
        return Found(item, item.stem, MaskSource("parse", parse_dir / f"{item.stem}.png"))
    if item.parent.name == "images" and dresscode_folder(item.parent.parent):
        return Found(item, item.stem, MaskSource("labels", dresscode_label_map(item)))
    return Found(item, item.stem)


def check_output_folders(inputs: Iterable[Path], out_dir: Path, save_masks: Path | None) -> None:
    """Refuse output folders that would overwrite inputs or each other, before any work."""
    out = out_dir.resolve()
    for item in inputs:
        if item.is_dir() and item.resolve() == out:
            raise OutputError(
                f"the output folder {out_dir} is the input folder: garments would mix with the photos; "
                "choose another -o (a subfolder is fine)"
            )
    if save_masks is not None and save_masks.resolve() == out:
        raise OutputError(f"--save-masks {save_masks} is the output folder: masks would overwrite garments")


def find_jobs(
    inputs: Iterable[Path],
    out_dir: Path,
    fmt: str,
    masks: MaskIndex | None = None,
    recursive: bool = False,
    save_masks: Path | None = None,
) -> list[ExtractJob]:
    """Every photo under ``inputs`` as a job; problems known up front are jobs with ``error``.

    Outputs are ``out_dir/<relative path>.<fmt>``; with ``save_masks``, each job also saves
    the mask it used there, as ``<relative path>.png``.
    """
    inputs = list(inputs)
    exclude = {p.resolve() for p in (out_dir, save_masks) if p is not None}
    jobs: list[ExtractJob] = []
    claimed: dict[Path, Path] = {}
    for item in inputs:
        if item.is_dir():
            found: Iterable[Found] = walk_photos(item, recursive, exclude)
        elif item.exists():
            found = [_single(item)]
        else:
            jobs.append(ExtractJob(item, out_dir, MaskSource("auto"), error=f"input not found: {item}"))
            continue
        for entry in found:
            output = out_dir / f"{entry.rel}.{fmt}"
            error, source = entry.error, entry.mask
            if error is None and masks is not None:
                try:
                    mask_file = masks.find(entry.rel)
                except InputError as exc:
                    error = str(exc)
                else:
                    source = MaskSource("file", mask_file) if mask_file is not None else source
            first = claimed.setdefault(output, entry.path)
            if first != entry.path and error is None:
                error = f"{entry.path} and {first} would both be written to {output}; extract them separately"
            mask_output = save_masks / f"{entry.rel}.png" if save_masks is not None else None
            jobs.append(ExtractJob(entry.path, output, source, error, mask_output))
    return jobs
