"""Finding (photo, garment mask, catalog garment) samples in the supported dataset layouts.

Torch-free, so that ``evaluate`` runs on a runtime-only install; training builds its
PyTorch datasets on these records. Five layouts, each a folder per split:

- VITON-HD: ``image/00000_00.jpg``, ``cloth/00000_00.jpg`` (same name),
  ``image-parse-v3/00000_00.png``; pairs in ``<split>_pairs.txt`` beside the split folder.
- CP-VTON / VITON: ``image/000010_0.jpg``, ``cloth/000010_1.jpg``,
  ``image-parse/000010_0.png``; pairs in ``<split>_pairs.txt`` beside the split folder.
- Dress Code (a category folder such as ``upper_body/``): ``images/000000_0.jpg`` (the
  person) and ``images/000000_1.jpg`` (the garment), ``label_maps/000000_4.png`` (its own
  labels: 4 = upper clothes), ``pairs.txt`` in the folder (else each photo's ``_1`` image).
- triplets (your own data): ``photo/``, ``mask/`` and ``garment/`` files sharing a stem,
  any image format; the mask is white (255) on the garment.
- pairs (your own data, no masks): ``photo/`` and ``garment/`` files sharing a stem. Scored as
  ``extract`` and ``tryon`` run them (``evaluate --masks segmenter``); what needs a mask
  (training, scoring on the pairs' own masks) refuses them (``no_masks``).

``DIR`` may be a split folder itself (all of it is the split) or a dataset root holding
split folders (``train``, ``val`` / ``validation`` / ``test``). A root without a
validation split gets a seeded one carved from train.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InputError
from ..runtime.contract import ModelContract
from ..runtime.fitting import fit_to_model, letterbox, letterbox_for
from ..runtime.images import IMAGE_SUFFIXES, load_mask, load_photo
from ..runtime.labelmaps import load_label_mask
from ..runtime.silhouette import garment_silhouette
from ..runtime.walk import DRESSCODE_LABELS, PARSE_FOLDERS, dataset_parse_folder, dresscode_folder, dresscode_label_map
from .changes import PhotoChange
from .tryon_fit import fit_tryon

log = logging.getLogger(__name__)

TRIPLET_FOLDERS = ("photo", "mask", "garment")
PAIRS_FOLDERS = ("photo", "garment")  # triplets without masks
SEGMENTER_MASKS = "score a generator as extract runs it, on the segmenter's masks (evaluate --masks segmenter)"
VALIDATION_SPLITS = ("val", "validation", "test")
SPLITS = ("train", "all", *VALIDATION_SPLITS)
DRESSCODE_CATEGORIES = ("upper_body", "dresses", "lower_body")
DEFAULT_VAL_FRACTION = 0.05


@dataclass(frozen=True)
class Sample:
    photo: Path
    mask: Path  # a label map (mask_kind "parse" / "labels"), a mask image ("file"), or where none is ("none": pairs)
    mask_kind: str
    garment: Path | None  # the catalog image; None where a layout has none

    @property
    def name(self) -> str:
        return self.photo.stem


def no_masks(sample: Sample) -> str:
    """That ``sample``'s split (pairs) has no masks, in an error's words."""
    return f"the pairs of {sample.photo.parent.parent} have no masks (photo/ and garment/, no mask/)"


def _images(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {
        Path(n).stem: folder / n
        for n in sorted(os.listdir(folder))
        if not n.startswith(".") and Path(n).suffix.lower() in IMAGE_SUFFIXES
    }


def layout_of(split_dir: Path) -> str | None:
    """``viton-hd``, ``cp-vton``, ``dresscode``, ``triplets``, ``pairs`` or None for a split folder."""
    parse_dir = dataset_parse_folder(split_dir)
    if parse_dir is not None:
        return "viton-hd" if parse_dir.name == PARSE_FOLDERS[0] else "cp-vton"
    if dresscode_folder(split_dir):
        return "dresscode"
    if all((split_dir / name).is_dir() for name in TRIPLET_FOLDERS):
        return "triplets"
    if all((split_dir / name).is_dir() for name in PAIRS_FOLDERS):
        return "pairs"
    return None


LAYOUTS = (  # what a split folder of each layout holds (the first folder names the photos)
    ("VITON-HD", ("image", PARSE_FOLDERS[0])),
    ("CP-VTON", ("image", PARSE_FOLDERS[1])),
    ("Dress Code", ("images", DRESSCODE_LABELS)),
    ("triplets", TRIPLET_FOLDERS),
    ("pairs, no masks", PAIRS_FOLDERS),
)


def layouts_expected(folder: Path, root: bool = False) -> str:
    """What a split folder (with ``root``, a dataset) holds, for an error about ``folder``;
    where ``folder`` (or its train/) has some of a layout's folders, which it lacks."""
    listed = ", ".join(" + ".join(f"{f}/" for f in folders) + f" ({name})" for name, folders in LAYOUTS)
    if root:
        listed += "; a root holds such a train/ folder (and val/ or test/)"
    where, folder = ("its train/", folder / "train") if (folder / "train").is_dir() else ("it", folder)
    have, lacks = [], []
    for name, folders in LAYOUTS:
        present = [f for f in folders if (folder / f).is_dir()]
        if present and len(present) < len(folders) and present == (have or present):
            have = present
            lacks.append(", ".join(f"{f}/" for f in folders if f not in present) + f" ({name})")
    if have:
        listed += f"; {where} has {', '.join(f'{f}/' for f in have)} but no {' or '.join(lacks)}"
    return f"a split folder holds {listed}"


def _read_pairs(path: Path) -> dict[str, str]:
    pairs = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) not in (2, 3):  # Dress Code's pairs files add the category
            raise InputError(f"{path}:{number}: expected 'person.jpg garment.jpg', got {line!r}")
        pairs[parts[0]] = parts[1]
    return pairs


def _pairs(split_dir: Path) -> dict[str, str] | None:
    """person file name -> garment file name from the split's pairs file, if there is one."""
    for candidate in pairs_files(split_dir):
        if candidate.is_file():
            return _read_pairs(candidate)
    return None


def _dresscode_samples(split_dir: Path) -> list[Sample]:
    pairs = _pairs(split_dir) or {}
    images = split_dir / "images"
    samples = []
    for stem, photo in _images(images).items():
        if not stem.endswith("_0"):
            continue
        garment = images / pairs.get(photo.name, f"{stem[:-2]}_1{photo.suffix}")
        samples.append(Sample(photo, dresscode_label_map(photo), "labels", garment if garment.is_file() else None))
    return samples


def split_samples(split_dir: Path) -> list[Sample]:
    """Every sample of one split folder, sorted by photo name. A sample whose mask or catalog
    file is missing is kept: loading it fails with the file's name (``load_sample``)."""
    layout = layout_of(split_dir)
    if layout is None:
        raise InputError(f"{split_dir} is not a dataset split: {layouts_expected(split_dir)}")
    if layout == "triplets":
        photos, masks, garments = (_images(split_dir / name) for name in TRIPLET_FOLDERS)
        mask_dir = split_dir / TRIPLET_FOLDERS[1]  # (a photo without its mask: where it would be, PNG)
        return [
            Sample(photos[stem], masks.get(stem, mask_dir / f"{stem}.png"), "file", garments.get(stem))
            for stem in sorted(photos)
        ]
    if layout == "pairs":  # (the mask a triplet would have there: none is)
        photos, garments = (_images(split_dir / name) for name in PAIRS_FOLDERS)
        return [Sample(photos[s], split_dir / "mask" / f"{s}.png", "none", garments.get(s)) for s in sorted(photos)]
    if layout == "dresscode":
        return _dresscode_samples(split_dir)
    parse_dir = dataset_parse_folder(split_dir)
    pairs = _pairs(split_dir)
    samples = []
    for stem, photo in _images(split_dir / "image").items():
        if pairs is not None and photo.name in pairs:
            garment_name = pairs[photo.name]
        elif layout == "cp-vton" and stem.endswith("_0"):
            garment_name = f"{stem[:-2]}_1{photo.suffix}"
        else:
            garment_name = photo.name
        garment = split_dir / "cloth" / garment_name
        samples.append(Sample(photo, parse_dir / f"{stem}.png", "parse", garment if garment.is_file() else None))
    return samples


def find_split(data_dir: Path, split: str) -> Path | None:
    """The folder of ``split`` under ``data_dir`` (a Dress Code root: its upper_body folder)."""
    names = VALIDATION_SPLITS if split in VALIDATION_SPLITS else (split,)
    for name in names:
        if layout_of(data_dir / name) is not None:
            return data_dir / name
    return None


def split_folders(data_dir: Path) -> list[Path]:
    """Every split folder of ``data_dir``: itself if it is one, else its train/, val/,
    validation/ and test/ folders and its Dress Code category folders."""
    data_dir = Path(data_dir)
    if layout_of(data_dir) is not None:
        return [data_dir]
    found = [data_dir / name for name in ("train", *VALIDATION_SPLITS) if layout_of(data_dir / name) is not None]
    return found + [data_dir / c for c in DRESSCODE_CATEGORIES if layout_of(data_dir / c) == "dresscode"]


def pairs_files(split_dir: Path) -> tuple[Path, ...]:
    """Where a split folder's pairs file is read from (``_pairs``), in that order: writing
    one there changes which catalog image each photo of the split wears."""
    return (split_dir.parent / f"{split_dir.name}_pairs.txt", split_dir / "pairs.txt")


def _root_split(data_dir: Path) -> Path | None:
    """``data_dir`` if it is a split folder itself, or the Dress Code category folder of a root."""
    if layout_of(data_dir) is not None:
        return data_dir
    for category in DRESSCODE_CATEGORIES:
        if layout_of(data_dir / category) == "dresscode":
            return data_dir / category
    return None


def load_samples(
    data_dir: Path,
    split: str,
    *,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = 0,
    require_garment: bool = True,
) -> list[Sample]:
    """The samples of ``split`` (``train``, ``val`` / ``validation`` / ``test``, or ``all``).

    A root: ``val`` takes its val/, validation/ or test/ folder, ``train`` its train/,
    ``all`` its train/. A data folder without a validation folder (a root with only train/,
    or a split folder given directly) has a seeded ``val_fraction`` of its samples as its
    validation split and the rest as its training split, so the two never overlap; ``all``
    is every sample of it (what ``evaluate`` scores when given a split folder).
    """
    data_dir = Path(data_dir)
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; use {', '.join(SPLITS)}")
    train_dir = find_split(data_dir, "train") or _root_split(data_dir)
    val_dir = find_split(data_dir, "val")
    if split in VALIDATION_SPLITS and val_dir is not None:
        samples = split_samples(val_dir)
    elif train_dir is None and val_dir is not None:
        raise InputError(f"no {split} split in {data_dir} (it has {val_dir.name}/: use --split val)")
    elif train_dir is None:
        raise InputError(f"{data_dir} is not a dataset: {layouts_expected(data_dir, root=True)}")
    else:
        samples = split_samples(train_dir)
        if split != "all" and val_dir is None:
            if len(samples) == 1:
                raise InputError(
                    f"{train_dir} holds a single sample: too few to hold out a validation share and train on "
                    f"the rest; add samples, or give the validation samples a folder of their own (val/ beside train/)"
                )
            order = np.random.default_rng(seed).permutation(len(samples))
            n_val = max(1, round(len(samples) * val_fraction))
            chosen = order[:n_val] if split in VALIDATION_SPLITS else order[n_val:]
            samples = [samples[i] for i in sorted(chosen)]
    found, where = len(samples), "" if split == "all" else f" ({split} split)"
    if require_garment:
        lacking = [s.photo.name for s in samples if s.garment is None]
        samples = [s for s in samples if s.garment is not None]
        if lacking and samples:  # (said: a score over fewer pairs than the folder holds is not silent)
            named = ", ".join(lacking[:5]) + (f" and {len(lacking) - 5} more" if len(lacking) > 5 else "")
            have = "has no catalog image beside it" if len(lacking) == 1 else "have no catalog image beside them"
            log.warning(
                "%d of the %d photos of %s%s %s, left out: %s", len(lacking), found, data_dir, where, have, named
            )
    if not samples:
        why = (
            f": none of its {found} photos has a catalog image beside it (cloth/ in VITON and VITON-HD, "
            "garment/ in triplets, images/NNNNNN_1.jpg in Dress Code)"
            if found
            else ""
        )
        raise InputError(f"no usable samples in {data_dir}{where}{why}")
    return samples


def default_split(data_dir: Path) -> str:
    """What ``evaluate`` scores by default: a root's validation folder (``val``), or all of a
    split folder given directly (``all``), never a seeded share of it."""
    return "val" if find_split(Path(data_dir), "val") is not None else "all"


def load_sample(sample: Sample) -> tuple[Image.Image, Image.Image, Image.Image | None]:
    """(RGB photo, L garment mask, RGB catalog garment or None), decoded as the runtime does.

    ``InputError`` naming the file and its role if one is missing or unreadable.
    """
    photo, _ = load_photo(sample.photo)
    mask = load_sample_mask(sample)
    garment = None
    if sample.garment is not None:
        garment = load_photo(sample.garment, role="catalog image")[0]
    return photo, mask, garment


def load_sample_mask(sample: Sample) -> Image.Image:
    """The sample's garment mask alone (L, 255 = garment), from its mask file or label map."""
    if sample.mask_kind == "none":
        raise InputError(f"{sample.photo.name} has no garment mask: {no_masks(sample)}; {SEGMENTER_MASKS}")
    if not sample.mask.is_file():
        raise InputError(f"the garment mask of {sample.photo.name} is missing: {sample.mask}")
    return load_label_mask(sample.mask_kind, sample.mask) if sample.mask_kind != "file" else load_mask(sample.mask)


LABELLED = ("parse", "labels")  # mask kinds that are human parsings: VITON's LIP maps, Dress Code's


def load_labels(sample: Sample) -> Image.Image | None:
    """A VITON parse map's or a Dress Code label map's labels remapped to the parser's classes
    (mode L), or None where the sample has no human parsing (a mask file)."""
    from ..tasks import DRESSCODE_TO_CLASS, LIP_TO_CLASS

    if sample.mask_kind not in LABELLED:
        return None
    from ..runtime.images import open_image

    table = LIP_TO_CLASS if sample.mask_kind == "parse" else DRESSCODE_TO_CLASS
    with open_image(sample.mask, "parse map") as image:
        if image.mode not in ("P", "L"):
            return None  # a colour map: the labels are not recoverable exactly
        return Image.fromarray(table[np.asarray(image)], "L")


def fit_sample(
    photo: Image.Image,
    mask: Image.Image,
    garment: Image.Image | None,
    contract: ModelContract,
    output_size: tuple[int, int] | None = None,
    labels: Image.Image | None = None,
) -> dict[str, np.ndarray]:
    """A sample's model input and target, uint8 NHWC-ready, exactly as serving fits them.

    generator: ``image`` [H, W, 3] and ``mask`` [H, W, 1] fitted around the garment,
    ``target`` the catalog garment letterboxed on the background colour and ``alpha``
    [H, W, 1] its silhouette (255 = garment), at ``output_size`` (default: the model size).
    A catalog-resolution model also gets ``photo``, the same window of the photo at that
    size; a model-size one's output is to be upsampled to it (``evaluate``'s native
    resolution). segmenter: the whole
    photo as ``image`` and its mask, letterboxed, as ``target`` [H, W, 1].
    """
    size, fit = contract.size, contract.fit
    if contract.task == "tryon":
        return fit_tryon(photo, garment, labels, contract, native=output_size is not None)
    if contract.task == "generator":
        if garment is None:
            raise InputError("a generator sample needs its catalog garment image")
        out_size = output_size or size
        fitted = fit_to_model(photo, mask, size, fit, output_size=out_size if contract.catalog_resolution else None)
        target, _ = letterbox(garment, out_size, contract.background_rgb)
        alpha = garment_silhouette(target, contract.background_rgb).astype(np.uint8)[:, :, None] * 255
        found = {"image": fitted.image, "mask": fitted.mask, "target": target, "alpha": alpha}
        if fitted.photo is not None:
            found["photo"] = fitted.photo
        return found
    image, _, _ = letterbox_for(photo, size, fit)
    target, _ = letterbox(mask, size, 0)
    found = {"image": image, "target": target[:, :, None]}
    if labels is not None:
        found["labels"] = letterbox(
            labels.resize(photo.size, Image.Resampling.NEAREST), size, 0, Image.Resampling.NEAREST
        )[0][:, :, None]
    return found


def load_fitted(
    sample: Sample, contract: ModelContract, native: bool = False, change: PhotoChange | None = None
) -> dict[str, np.ndarray]:
    """A stored sample read and fitted for ``contract`` (``fit_sample``), with the parse map's
    labels where the model needs them (a parser, a try-on). ``native``: the output at the
    catalog image's own size. ``change``: the photo (and the catalog image) changed first."""
    photo, mask, garment = load_sample(sample)
    if change:
        photo, garment = change.photo(photo), change.catalog(garment)
    labels = load_labels(sample) if contract.labels or contract.task == "tryon" else None
    size = (garment.height, garment.width) if native and garment is not None else None  # (a try-on's: its window's)
    return fit_sample(photo, mask, garment, contract, output_size=size, labels=labels)
