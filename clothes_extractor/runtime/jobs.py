"""Turning the user's inputs (files, folders, dataset folders) into extraction jobs.

Each job names one photo, where its result goes, and where its garment mask comes from,
in this order: ``--masks DIR`` (same relative name or stem, any image format), the parse
map of a VITON-HD (``image/`` + ``image-parse-v3/``) or CP-VTON (``image/`` +
``image-parse/``) dataset folder, and last the photo's own alpha channel, which is only
known once the photo is decoded.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import InputError
from .images import IMAGE_SUFFIXES

# Parse-map folder names, most specific first: VITON-HD, then CP-VTON / VITON.
PARSE_FOLDERS = ("image-parse-v3", "image-parse")


@dataclass(frozen=True)
class MaskSource:
    kind: str  # "file" (--masks), "parse" (dataset parse map), "alpha" (the photo's own), "segmenter"
    path: Path | None = None

    def describe(self) -> str:
        return self.kind if self.path is None else f"{self.kind}:{self.path}"


@dataclass(frozen=True)
class ExtractJob:
    photo: Path
    output: Path
    mask: MaskSource  # kind "alpha" means: no mask file, use the photo's alpha or the segmenter
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


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


class MaskIndex:
    """The files of a ``--masks`` folder, found by relative path (no suffix) or by stem."""

    def __init__(self, folder: Path):
        if not folder.is_dir():
            raise InputError(f"--masks folder not found or not a folder: {folder}")
        self.folder = folder
        self._by_rel: dict[str, list[Path]] = defaultdict(list)
        self._by_stem: dict[str, list[Path]] = defaultdict(list)
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
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
        for table, key in ((self._by_rel, rel_without_suffix), (self._by_stem, Path(rel_without_suffix).name)):
            paths = table.get(key, [])
            if len(paths) == 1:
                return paths[0]
            if len(paths) > 1:
                names = ", ".join(str(p) for p in paths)
                raise InputError(f"several masks match {key!r}: {names}; keep one")
        return None


def _walk_photos(folder: Path, recursive: bool, exclude: Path | None) -> Iterator[tuple[Path, str, Path | None]]:
    """(photo, relative output stem, parse map folder) under ``folder``, sorted."""
    parse_dir = dataset_parse_folder(folder)
    if parse_dir is not None:
        for name in sorted(os.listdir(folder / "image")):
            if _is_image_name(name):
                yield folder / "image" / name, Path(name).stem, parse_dir
        return
    if exclude is not None and folder.resolve() == exclude:
        return  # the output folder inside an input folder: never read results back as photos
    entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    for entry in entries:
        if entry.is_file() and _is_image_name(entry.name):
            yield Path(entry.path), Path(entry.name).stem, None
    if recursive:
        for entry in entries:
            if entry.is_dir() and not entry.name.startswith("."):
                # A dataset split below a folder keeps its own layout (photos in image/).
                for photo, rel, parse in _walk_photos(Path(entry.path), recursive, exclude):
                    yield photo, f"{entry.name}/{rel}", parse


def find_jobs(
    inputs: Iterable[Path],
    out_dir: Path,
    fmt: str,
    masks: MaskIndex | None = None,
    recursive: bool = False,
    save_masks: Path | None = None,
) -> list[ExtractJob]:
    """Every photo under ``inputs`` as a job; problems known up front are jobs with ``error``.

    With ``save_masks``, each job also saves the mask it used there, as ``<name>.png``.
    """
    out_resolved = out_dir.resolve()
    jobs: list[ExtractJob] = []
    claimed: dict[Path, Path] = {}
    for item in inputs:
        if item.is_dir():
            found = _walk_photos(item, recursive, out_resolved)
        elif item.exists():
            # A photo named directly inside a dataset split still gets its parse map.
            parse_dir = dataset_parse_folder(item.parent.parent) if item.parent.name == "image" else None
            found = iter([(item, item.stem, parse_dir)])
        else:
            jobs.append(ExtractJob(item, out_dir, MaskSource("alpha"), error=f"input not found: {item}"))
            continue
        for photo, rel, parse_dir in found:
            output = out_dir / f"{rel}.{fmt}"
            error = None
            source = MaskSource("alpha")
            try:
                mask_file = masks.find(rel) if masks is not None else None
            except InputError as exc:
                mask_file, error = None, str(exc)
            if mask_file is not None:
                source = MaskSource("file", mask_file)
            elif parse_dir is not None:
                source = MaskSource("parse", parse_dir / f"{photo.stem}.png")
            first = claimed.setdefault(output, photo)
            if first != photo and error is None:
                error = f"{photo} and {first} would both be written to {output}; extract them separately"
            mask_output = save_masks / f"{rel}.png" if save_masks is not None else None
            jobs.append(ExtractJob(photo, output, source, error, mask_output))
    return jobs
