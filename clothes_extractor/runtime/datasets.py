"""Finding (photo, garment mask, catalog garment) samples in the supported dataset layouts.

Torch-free, so that ``evaluate`` runs on a runtime-only install; training builds its
PyTorch datasets on these records. Three layouts, each a folder per split:

- VITON-HD: ``image/00000_00.jpg``, ``cloth/00000_00.jpg`` (same name),
  ``image-parse-v3/00000_00.png``; pairs in ``<split>_pairs.txt`` beside the split folder.
- CP-VTON / VITON: ``image/000010_0.jpg``, ``cloth/000010_1.jpg``,
  ``image-parse/000010_0.png``; pairs in ``<split>_pairs.txt`` beside the split folder.
- triplets (your own data): ``photo/``, ``mask/`` and ``garment/`` files sharing a stem,
  any image format; the mask is white (255) on the garment.

``DIR`` may be a split folder itself or a dataset root holding split folders (``train``,
``val`` / ``test``). A root without a validation split gets a seeded one carved from train.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InputError
from .contract import ModelContract
from .fitting import fit_to_model, letterbox
from .images import IMAGE_SUFFIXES, load_mask, load_parse_mask, load_photo
from .jobs import PARSE_FOLDERS, dataset_parse_folder

TRIPLET_FOLDERS = ("photo", "mask", "garment")
VALIDATION_SPLITS = ("val", "validation", "test")
DEFAULT_VAL_FRACTION = 0.05


@dataclass(frozen=True)
class Sample:
    photo: Path
    mask: Path  # a parse map (mask_kind "parse") or a mask image (mask_kind "file")
    mask_kind: str
    garment: Path | None  # the catalog image; None where a layout has none

    @property
    def name(self) -> str:
        return self.photo.stem


def _images(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {
        Path(n).stem: folder / n
        for n in sorted(os.listdir(folder))
        if not n.startswith(".") and Path(n).suffix.lower() in IMAGE_SUFFIXES
    }


def layout_of(split_dir: Path) -> str | None:
    """``viton-hd``, ``cp-vton``, ``triplets`` or None for a split folder."""
    parse_dir = dataset_parse_folder(split_dir)
    if parse_dir is not None:
        return "viton-hd" if parse_dir.name == PARSE_FOLDERS[0] else "cp-vton"
    if all((split_dir / name).is_dir() for name in TRIPLET_FOLDERS):
        return "triplets"
    return None


def _pairs(split_dir: Path) -> dict[str, str] | None:
    """person file name -> garment file name from ``<split>_pairs.txt``, if there is one."""
    for candidate in (split_dir.parent / f"{split_dir.name}_pairs.txt", split_dir / "pairs.txt"):
        if candidate.is_file():
            pairs = {}
            for number, line in enumerate(candidate.read_text().splitlines(), 1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) != 2:
                    raise InputError(f"{candidate}:{number}: expected 'person.jpg garment.jpg', got {line!r}")
                pairs[parts[0]] = parts[1]
            return pairs
    return None


def split_samples(split_dir: Path) -> list[Sample]:
    """Every usable sample of one split folder, sorted by photo name."""
    layout = layout_of(split_dir)
    if layout is None:
        raise InputError(
            f"{split_dir} is not a dataset split: expected image/ + image-parse-v3/ (VITON-HD), "
            "image/ + image-parse/ (CP-VTON), or photo/ + mask/ + garment/ (triplets)"
        )
    if layout == "triplets":
        photos, masks, garments = (_images(split_dir / name) for name in TRIPLET_FOLDERS)
        return [
            Sample(photos[stem], masks[stem], "file", garments.get(stem)) for stem in sorted(photos) if stem in masks
        ]
    parse_dir = dataset_parse_folder(split_dir)
    pairs = _pairs(split_dir)
    samples = []
    for stem, photo in _images(split_dir / "image").items():
        parse = parse_dir / f"{stem}.png"
        if not parse.is_file():
            continue
        if pairs is not None and photo.name in pairs:
            garment_name = pairs[photo.name]
        elif layout == "cp-vton" and stem.endswith("_0"):
            garment_name = f"{stem[:-2]}_1{photo.suffix}"
        else:
            garment_name = photo.name
        garment = split_dir / "cloth" / garment_name
        samples.append(Sample(photo, parse, "parse", garment if garment.is_file() else None))
    return samples


def find_split(data_dir: Path, split: str) -> Path | None:
    """The folder of ``split`` under ``data_dir`` (``data_dir`` itself if it is a split)."""
    names = VALIDATION_SPLITS if split in VALIDATION_SPLITS else (split,)
    for name in names:
        if layout_of(data_dir / name) is not None:
            return data_dir / name
    return None


def load_samples(
    data_dir: Path,
    split: str,
    *,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = 0,
    require_garment: bool = True,
) -> list[Sample]:
    """The samples of ``split`` (``train``, ``val`` or ``all``) of the dataset at ``data_dir``.

    Without a validation folder, a seeded ``val_fraction`` of the training samples is the
    validation split and the rest the training split, so the two never overlap. ``all``
    is every sample of the training folder (or of ``data_dir`` if it is a split itself).
    """
    data_dir = Path(data_dir)
    if split not in ("train", "all", *VALIDATION_SPLITS):
        raise InputError(f"unknown split {split!r}; use train, val or all")
    train_dir = find_split(data_dir, "train") or (data_dir if layout_of(data_dir) else None)
    val_dir = find_split(data_dir, "val")
    if split in VALIDATION_SPLITS and val_dir is not None:
        samples = split_samples(val_dir)
    elif train_dir is None:
        raise InputError(f"no dataset in {data_dir}: give a split folder or a root with train/ (and val/ or test/)")
    else:
        samples = split_samples(train_dir)
        if split != "all" and val_dir is None:
            order = np.random.default_rng(seed).permutation(len(samples))
            n_val = max(1, round(len(samples) * val_fraction)) if len(samples) > 1 else 0
            chosen = order[:n_val] if split in VALIDATION_SPLITS else order[n_val:]
            samples = [samples[i] for i in sorted(chosen)]
    if require_garment:
        samples = [s for s in samples if s.garment is not None]
    if not samples:
        raise InputError(f"no usable {split} samples in {data_dir}")
    return samples


def load_sample(sample: Sample) -> tuple[Image.Image, Image.Image, Image.Image | None]:
    """(RGB photo, L garment mask, RGB catalog garment or None), decoded as the runtime does."""
    photo, _ = load_photo(sample.photo)
    mask = load_parse_mask(sample.mask) if sample.mask_kind == "parse" else load_mask(sample.mask)
    garment = load_photo(sample.garment)[0] if sample.garment is not None else None
    return photo, mask, garment


def fit_sample(
    photo: Image.Image,
    mask: Image.Image,
    garment: Image.Image | None,
    contract: ModelContract,
) -> dict[str, np.ndarray]:
    """A sample's model input and target, uint8 NHWC-ready, exactly as serving fits them.

    generator: ``image`` [H, W, 3] and ``mask`` [H, W, 1] fitted around the garment,
    ``target`` the catalog garment letterboxed on the background colour. segmenter: the
    whole photo as ``image`` and its mask, letterboxed, as ``target`` [H, W, 1].
    """
    size, fit = contract.size, contract.fit
    if contract.task == "generator":
        if garment is None:
            raise InputError("a generator sample needs its catalog garment image")
        fitted = fit_to_model(photo, mask, size, fit)
        target, _ = letterbox(garment, size, contract.background_rgb)
        return {"image": fitted.image, "mask": fitted.mask, "target": target}
    image, _ = letterbox(photo, size, fit.pad_rgb)
    target, _ = letterbox(mask, size, 0)
    return {"image": image, "target": target[:, :, None]}
