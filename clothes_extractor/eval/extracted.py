"""A generator scored as ``extract`` runs it: the masks the segmenter finds, not the dataset's.

``evaluate`` scores a generator on each pair's parse map by default: the model alone, on the
mask a person drew. A user's photos have no such map: ``extract`` finds the mask with the
segmenter (its first look and, for a small garment, the zoomed one; the person kept among
several; a garment shown alone cut out, not generated) and fits the photo with it. Here each
pair goes through those same stages (``runtime.stages``: ``for_segmenter``, ``segment``,
``finish``) and the generator's garment, as ``extract`` writes it before encoding, is scored
against the catalog image: the number a user of ``extract`` sees. A photo in which the
segmenter finds no garment is one ``extract`` writes nothing for: that pair is reported failed.
The IoU of the mask used against the pair's own (``mask_iou``) is scored beside, so that a
bad garment can be told apart from a bad mask.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import tempfile
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from PIL import Image

from ..errors import ClothesExtractorError, InputError, NoGarmentError
from ..runtime.fitting import letterbox
from ..runtime.images import load_photo
from ..runtime.jobs import ExtractJob
from ..runtime.options import ExtractOptions, make_plan
from ..runtime.silhouette import garment_silhouette
from ..runtime.stages import (
    NeedsMask,
    Plan,
    Prepared,
    SegmentedMask,
    finish,
    for_segmenter,
    mask_from_segmenter,
    segment,
)
from ..runtime.walk import MaskSource
from .changes import PhotoChange
from .datasets import Sample, load_sample_mask
from .metrics import iou

log = logging.getLogger(__name__)

NO_GARMENT = "the segmenter finds no garment in this photo: extract writes nothing for it"


@contextlib.contextmanager
def scratch(segmenter: Any) -> Iterator[Path | None]:
    """A temporary folder where pairs are run as extract runs them (``extracted``: a changed
    photo is written there for its stages to read), removed after; None without a segmenter."""
    if segmenter is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="clothes-extractor-") as folder:
        yield Path(folder)


def extract_plan(generator: Any, segmenter: Any) -> Plan:
    """The plan of ``extract --output-size model`` (on white) with these sessions (``extracted``
    gives it a pair's catalog image's size, at native resolution)."""
    return make_plan(generator, segmenter, ExtractOptions(output_size="model"))


def extracted(
    samples: Sequence[Sample],
    generator: Any,
    segmenter: Any,
    plan: Plan,
    folder: Path,
    native: bool = False,
    change: PhotoChange | None = None,
    pool: Executor | None = None,
) -> list[tuple[Sample, dict[str, np.ndarray] | str]]:
    """Each sample as ``extract`` gives it: (sample, the item to score, or why there is none).

    An item holds the generator's ``image`` and ``mask`` as fitted (the photo and the mask
    letterboxed, for a garment shown alone), its ``output`` (and ``output_alpha``, where the
    generator gives a silhouette), the catalog image as ``target`` and its silhouette as
    ``alpha``, at the model's size or (``native``) the catalog image's own, as ``extract
    --output-size`` would write it; ``mask_iou`` (where the pair has a mask), ``zoomed`` and ``alone``
    (``_pair``). ``folder``:
    where a changed photo (``change``) is written for the stages to read; ``pool``: threads that
    decode and fit the photos side by side.
    """
    mapped = pool.map if pool is not None else map

    def to_segment(index: int) -> tuple[NeedsMask, Image.Image] | str:
        try:
            return _to_segment(samples[index], segmenter, folder / f"{index}.png", change)
        except ClothesExtractorError as exc:
            return str(exc)

    found: list[tuple[Sample, Any]] = list(zip(samples, mapped(to_segment, range(len(samples))), strict=True))
    looked = [index for index, (_, item) in enumerate(found) if not isinstance(item, str)]
    masks = segment([found[index][1][0] for index in looked], segmenter) if looked else []

    def fitted(index: int, mask: SegmentedMask | Exception) -> tuple[Prepared, dict[str, Any]] | str:
        sample, (item, garment) = found[index]
        try:
            if isinstance(mask, Exception):
                raise mask
            size = (garment.height, garment.width) if native else generator.contract.size
            prepared = finish(item, mask, dataclasses.replace(plan, output_size=size) if native else plan)
            return prepared, _pair(sample, item, mask, prepared, garment, size, plan)
        except NoGarmentError:
            return NO_GARMENT
        except ClothesExtractorError as exc:
            return str(exc)

    ready = []
    for index, result in zip(looked, mapped(fitted, looked, masks), strict=True):
        if isinstance(result, str):
            found[index] = (found[index][0], result)
        else:
            ready.append((index, *result))
    for index, scored in _run(generator, ready):
        found[index] = (found[index][0], scored)
    return found


def _to_segment(
    sample: Sample, segmenter: Any, changed_at: Path, change: PhotoChange | None
) -> tuple[NeedsMask, Image.Image]:
    """The sample's photo made ready for the segmenter, as ``extract`` decodes it (a changed
    photo is written to ``changed_at`` first, losslessly, and read from there), and its catalog image."""
    if sample.garment is None:
        raise InputError("a generator sample needs its catalog garment image")
    garment = load_photo(sample.garment, role="catalog image")[0]
    photo = sample.photo
    if change:
        change.photo(load_photo(photo)[0]).save(changed_at)
        photo, garment = changed_at, change.catalog(garment)
    job = ExtractJob(photo, changed_at.with_suffix(".out.png"), MaskSource("auto"))
    return for_segmenter(job, segmenter.contract), garment


def _pair(
    sample: Sample,
    item: NeedsMask,
    mask: SegmentedMask,
    prepared: Prepared,
    garment: Image.Image,
    size: tuple[int, int],
    plan: Plan,
) -> dict[str, Any]:
    """What is scored of one pair beside its output: its truth, its mask's IoU (and whether it was
    ``zoomed``, or the garment shown ``alone``: 1 or 0, each a [1] array as a score is), its sheet tiles."""
    contract = plan.generator
    target, _ = letterbox(garment, size, contract.background_rgb)
    used = mask_at_photo_size(mask, item)
    pair = {
        "target": target,
        "alpha": garment_silhouette(target, contract.background_rgb).astype(np.uint8)[:, :, None] * 255,
        "zoomed": np.array([float(mask.zoomed)]),
        "alone": np.array([float(prepared.ready is not None)]),
    }
    if sample.mask_kind != "none":  # (pairs without masks: nothing to score the mask used against)
        pair["mask_iou"] = _mask_iou(sample, used, item.photo_size)
    if prepared.ready is not None:  # shown alone: cut out, not generated; the photo and mask letterboxed
        photo = item.photo if isinstance(item.photo, Image.Image) else load_photo(item.job.photo)[0]
        pair["image"] = letterbox(photo, contract.size, contract.background_rgb)[0]
        pair["mask"] = letterbox(Image.fromarray(used), contract.size, 0)[0][:, :, None]
    else:
        pair["image"], pair["mask"] = prepared.inputs["image"], prepared.inputs["mask"]
    return pair


def _mask_iou(sample: Sample, used: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The IoU of the mask used against the pair's own, [1]; NaN (left out of the mean, said) where
    its mask file is missing or unreadable: the pair is scored all the same, its mask is not used."""
    try:
        truth = np.asarray(load_sample_mask(sample).resize(size, Image.Resampling.NEAREST))
    except ClothesExtractorError as exc:
        log.warning("%s: its mask_iou is left out: %s", sample.photo, exc)
        return np.array([np.nan])
    return iou(used[None], truth[None])


def mask_at_photo_size(segmented: SegmentedMask, item: NeedsMask) -> np.ndarray:
    """The mask ``extract`` fits a photo with (``stages.finish``), uint8 [h, w] over the photo at
    its displayed size: what ``mask_iou`` and ``evaluate --model segmenter --resolution native`` score."""
    plane = mask_from_segmenter(segmented.garment_plane(), segmented.window, item.photo_size)
    return np.asarray(plane.resize(item.photo_size, Image.Resampling.BILINEAR))


def _run(generator: Any, ready: list[tuple[int, Prepared, dict[str, Any]]]) -> list[tuple[int, dict[str, Any]]]:
    """The generator run on the fitted pairs (those of one output size as one batch; a garment
    shown alone is its cut-out), each output brought to its target's size as ``Plan.page`` does."""
    groups: dict[tuple, list[tuple[int, Prepared, dict[str, Any]]]] = {}
    for entry in ready:
        prepared = entry[1]
        key = ("alone", entry[0]) if prepared.ready is not None else (prepared.batch_key, entry[2]["target"].shape)
        groups.setdefault(key, []).append(entry)
    done = []
    for group in groups.values():
        first = group[0][1]
        if first.ready is not None:
            outputs = {name: array[None] for name, array in first.ready.items()}
        else:
            outputs = generator.run(**{name: np.stack([p.inputs[name] for _, p, _ in group]) for name in first.inputs})
        outputs = to_target_size(outputs, "garment", group[0][2]["target"].shape[:2])
        for row, (index, _, pair) in enumerate(group):
            pair["output"] = outputs["garment"][row]
            if "alpha" in outputs and generator.contract.alpha:  # (a cut-out's, where the generator draws one)
                pair["output_alpha"] = outputs["alpha"][row].reshape(pair["alpha"].shape)
            done.append((index, pair))
    return done


def to_target_size(outputs: dict[str, np.ndarray], main: str, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """A model-size generator's garment (bicubic) and silhouette (bilinear) upsampled to the
    (height, width) of the catalog images it is scored against (``--resolution native``)."""
    if outputs[main].shape[1:3] == size:
        return outputs
    resized = dict(outputs)
    for name, method in ((main, Image.Resampling.BICUBIC), ("alpha", Image.Resampling.BILINEAR)):
        if name in outputs:
            batch = outputs[name]
            planes = [Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in batch]
            stacked = np.stack([np.asarray(p.resize((size[1], size[0]), method)) for p in planes])
            resized[name] = stacked.reshape(stacked.shape[:3] + batch.shape[3:])
    return resized
