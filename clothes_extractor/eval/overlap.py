"""Validation pairs that are also training pairs: copies found by content, not by name.

A dataset's splits can share pairs under other names. VITON's do: 1,187 of its 1,528
validation pairs have a byte-identical person photo and catalog image among its 14,221
training pairs (and 145 repeat inside the validation split). Scored on such a split, a
model is partly scored on what it was trained on, and choosing a run's best epoch by it
rewards learning pairs by heart. So:

- ``train`` leaves out of training every sample whose photo or catalog image is a copy of
  a validation sample's (``training_split``; ``--keep-val-copies`` trains on them, as runs
  before this did);
- ``evaluate`` marks each scored pair seen or not in the data's training split and reports
  the means over the pairs held out beside the split's (``held_out``).

A copy is the same bytes (files of equal size, then their digests): fast on millions of
files and never wrong, but a re-encoded or resized copy is not found.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..errors import InputError
from .datasets import VALIDATION_SPLITS, Sample, load_samples
from .evaluate import MetricTotals

log = logging.getLogger(__name__)


def _files(samples: Iterable[Sample]) -> Iterable[Path]:
    for sample in samples:
        yield sample.photo
        if sample.garment is not None:
            yield sample.garment


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:  # a missing file is reported where its sample is loaded
        return -1


def _digest(path: Path) -> bytes | None:
    try:
        return hashlib.blake2b(path.read_bytes()).digest()
    except OSError:  # an unreadable file is reported where its sample is loaded
        return None


def copies(samples: Sequence[Sample], others: Sequence[Sample]) -> list[bool]:
    """For each of ``samples``: whether its photo or catalog image has the same bytes as a
    photo or catalog image of ``others``. Only files whose size occurs on both sides are read."""
    mine = {path: _size(path) for path in _files(samples)}
    theirs_by_size: dict[int, list[Path]] = defaultdict(list)
    for path in set(_files(others)):
        theirs_by_size[_size(path)].append(path)
    shared = {size for size in mine.values() if size >= 0 and size in theirs_by_size}
    theirs = {_digest(path) for size in shared for path in theirs_by_size[size]} - {None}
    digests = {path: _digest(path) for path, size in mine.items() if size in shared}
    return [any(digests.get(path) in theirs for path in _files([sample])) for sample in samples]


def repeats(samples: Sequence[Sample]) -> int:
    """How many of ``samples`` repeat the photo (the same bytes) of another one before them."""
    by_size: dict[int, list[Path]] = defaultdict(list)
    for sample in samples:
        by_size[_size(sample.photo)].append(sample.photo)
    found = 0
    for size, paths in by_size.items():
        if size >= 0 and len(paths) > 1:
            digests = [_digest(path) for path in paths]
            found += len(digests) - len(set(digests))
    return found


def training_split(
    data: Path, val_fraction: float, seed: int, require_garment: bool, keep_copies: bool = False
) -> tuple[list[Sample], list[Sample]]:
    """(training, validation) samples of ``data`` as ``train`` uses them: the training samples
    that are copies of a validation sample are left out, unless ``keep_copies``."""
    common: dict[str, Any] = {"val_fraction": val_fraction, "seed": seed, "require_garment": require_garment}
    train, val = load_samples(data, "train", **common), load_samples(data, "val", **common)
    if keep_copies:
        return train, val
    seen = copies(train, val)
    if any(seen):  # a fault of the dataset the user should see without -v
        log.warning(
            "left out %d of %d training samples: copies of validation samples (the same photo or catalog "
            "image, byte for byte), so that validation scores pairs the run never trains on; "
            "--keep-val-copies trains on them", sum(seen), len(train),
        )  # fmt: skip
    return [s for s, c in zip(train, seen, strict=True) if not c], val


def seen_in_training(
    data: Path, split: str, samples: Sequence[Sample], val_fraction: float, seed: int, require_garment: bool
) -> set[str] | None:
    """The names of ``samples`` (``split`` of ``data``, as ``evaluate`` loaded them) whose photo
    or catalog image is a copy of a training sample's; None where there is nothing to compare
    with (not a validation split, or no training split in ``data``)."""
    if split not in VALIDATION_SPLITS:
        return None
    try:
        train = load_samples(data, "train", val_fraction=val_fraction, seed=seed, require_garment=require_garment)
    except InputError:
        return None
    return {sample.name for sample, copy in zip(samples, copies(samples, train), strict=True) if copy}


def held_out_samples(
    data: Path, split: str, samples: Sequence[Sample], val_fraction: float, seed: int, require_garment: bool
) -> list[Sample] | None:
    """``samples`` less the copies of training samples (``seen_in_training``); None where
    there is nothing to compare with."""
    seen = seen_in_training(data, split, samples, val_fraction, seed, require_garment)
    return None if seen is None else [sample for sample in samples if sample.name not in seen]


def held_out(per_sample: Sequence[dict[str, Any]], seen: set[str]) -> dict[str, Any]:
    """The means of ``per_sample`` scores (``evaluate``'s, keyed by ``sample``) over the
    pairs whose names are not in ``seen``, averaged as the split's are (``MetricTotals``):
    {"samples": N, "metrics": {...}}."""
    rows = [row for row in per_sample if row["sample"] not in seen]
    totals = MetricTotals()
    if rows:
        names = [name for name, value in rows[0].items() if isinstance(value, float)]
        totals.add({name: np.array([row[name] for row in rows], dtype=np.float64) for name in names})
    return {"samples": len(rows), "metrics": totals.means()}
