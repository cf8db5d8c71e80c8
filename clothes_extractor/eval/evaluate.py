"""Scoring a served model on a dataset split, without PyTorch.

Generator: SSIM, MS-SSIM, PSNR, GMSD and the sharpness ratio (RGB, data range 255) of the
output against the catalog garment, at the model's resolution or, for a catalog-resolution
model, at the catalog image's own (``resolution="native"``); with a silhouette output,
its IoU against the catalog image's non-background region (``alpha_iou``); on each pair's
own mask, or as ``extract`` runs it, on the segmenter's (``extracted``; a try-on as ``tryon``
runs it: ``dressed``). Segmenter: IoU
of the predicted mask against the label map's. Means over every pair, per-pair scores, the
pairs that could not be scored (with the reason), and a sheet of the first and the worst.
"""

from __future__ import annotations

import logging
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from ..errors import ClothesExtractorError, InputError
from ..tasks import task_of
from .changes import PhotoChange
from .datasets import LABELLED, SEGMENTER_MASKS, Sample, load_fitted, load_sample_mask, no_masks
from .dressed import dressed, dresser_for, pasted
from .extracted import extract_plan, extracted, mask_at_photo_size, scratch, to_target_size
from .metrics import class_iou, image_metrics, iou
from .sheets import contact_sheet, sheet_row

log = logging.getLogger(__name__)


@dataclass
class MetricTotals:
    """Running sums of per-sample metrics; ``means`` gives the averages. A NaN (a class in
    neither label map, a pair's mask IoU without its mask file) is left out of its metric's
    average, and a metric that is NaN for every sample has none; ``counts``: the samples each
    average is over."""

    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    count: int = 0

    def add(self, values: dict[str, np.ndarray]) -> None:
        for name, batch in values.items():
            batch = np.asarray(batch, dtype=np.float64)
            self.sums[name] = self.sums.get(name, 0.0) + float(np.nansum(batch))
            self.counts[name] = self.counts.get(name, 0) + int(np.count_nonzero(~np.isnan(batch)))
        self.count += len(next(iter(values.values())))

    def means(self) -> dict[str, float]:
        return {name: total / self.counts[name] for name, total in self.sums.items() if self.counts[name]}


SCORE_CHUNK = 2  # images scored at a time: a batch of 32 in one go scores 1.5x slower (its planes leave the caches)


def score_batch(
    task: str, outputs: np.ndarray, references: dict[str, np.ndarray], pool: Executor | None = None
) -> dict[str, np.ndarray]:
    """Per-sample metrics of one batch of uint8 outputs against ``references["target"]``.

    A generator that also gave its silhouette (``references["output_alpha"]``) is scored
    on it against the catalog image's (``references["alpha"]``): ``alpha_iou``. The batch is
    scored ``SCORE_CHUNK`` samples at a time (every reference has a sample's row per
    output), on ``pool``'s threads side by side where one is given (numpy's filters let go
    of the GIL): the same values, in the batch's order.
    """
    chunks = [slice(start, start + SCORE_CHUNK) for start in range(0, len(outputs), SCORE_CHUNK)]
    if len(chunks) <= 1:
        return _scores(task, outputs, references)

    def scored(chunk: slice) -> dict[str, np.ndarray]:
        return _scores(task, outputs[chunk], {name: values[chunk] for name, values in references.items()})

    parts = list(pool.map(scored, chunks) if pool is not None else map(scored, chunks))
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def _scores(task: str, outputs: np.ndarray, references: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    if task == "tryon":  # paired: the person wearing this garment (native: the window at its own resolution)
        return image_metrics(outputs, references.get("target", references.get("person")))
    if task != "generator":
        values = {"iou": iou(outputs, references["target"])}
        if "output_labels" in references and "labels" in references:
            values.update(parser_scores(references["output_labels"], references["labels"]))
        return values
    values = image_metrics(outputs, references["target"])
    if "output_alpha" in references and "alpha" in references:
        values["alpha_iou"] = iou(references["output_alpha"], references["alpha"])
    return values


def parser_scores(predicted: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class IoU of a parser's label maps (``iou_<class>``) and their mean over the classes
    that matter (``parser_miou``), per sample."""
    from ..tasks import PARSER_CLASSES, PARSER_SCORED

    scores = class_iou(predicted, target, len(PARSER_CLASSES))
    values = {f"iou_{name}": scores[:, i] for i, name in enumerate(PARSER_CLASSES)}
    scored = scores[:, [PARSER_CLASSES.index(n) for n in PARSER_SCORED]]
    present = ~np.isnan(scored)
    totals = np.where(present, scored, 0.0).sum(axis=1)
    values["parser_miou"] = np.where(present.any(axis=1), totals / np.maximum(present.sum(axis=1), 1), np.nan)
    return values


@dataclass(frozen=True)
class Evaluation:
    task: str
    samples: int
    metrics: dict[str, float]
    per_sample: list[dict[str, Any]]
    failures: list[dict[str, str]]
    sheet: Image.Image | None
    counts: dict[str, int] = field(default_factory=dict)  # the samples each mean is over (``MetricTotals``)

    def fewer(self) -> dict[str, int]:
        """The metrics whose means are over fewer than all the samples scored: their counts."""
        return {name: self.counts[name] for name in self.metrics if self.counts.get(name, self.samples) < self.samples}

    def to_json(self) -> dict:
        """The evaluation as JSON takes it: a score that is not a number (NaN: a class in neither
        label map) is null, not the ``NaN`` no JSON reader but Python's takes."""
        return {
            "task": self.task,
            "samples": self.samples,
            "metrics": self.metrics,
            "fewer_samples": self.fewer(),
            "failed": len(self.failures),
            "failures": self.failures,
            "per_sample": [
                {name: None if isinstance(value, float) and np.isnan(value) else value for name, value in row.items()}
                for row in self.per_sample
            ],
        }


def evaluate_model(
    model: Any,
    samples: Sequence[Sample],
    *,
    batch_size: int = 8,
    workers: int = 4,
    sheet_rows: int = 0,
    worst: int = 0,
    resolution: str = "model",
    perceptual: Sequence[Any] = (),
    change: PhotoChange | None = None,
    segmenter: Any = None,
    progress: Callable[[int], None] | None = None,
) -> Evaluation:
    """Run ``model`` (a ``ModelSession``) over ``samples``; metrics, per-pair scores, failures.

    A pair that cannot be loaded is listed in ``failures`` with its reason and the rest is
    scored. ``sheet_rows``: the first N pairs on a contact sheet, then ``worst`` more rows of
    the worst-scored pairs. ``resolution="native"``: a generator is scored at each catalog
    image's own size (a catalog-resolution one answers there; a model-size one's output is
    upsampled, bicubic, what its user gets at that size), a try-on at the person's window's
    (as ``tryon`` dresses it, up to 1024x768; the same rule); a segmenter runs as ``extract``
    runs it (with its zoomed second look) and its mask is scored at the photo's own size.
    ``perceptual``: ``PerceptualMetric``s (``eval.perceptual``) scored beside the others, on
    the same pixels (a generator's or a try-on's images). ``change``: every photo (and
    catalog image) changed first (``changes.PhotoChange``: black and white, another light).
    ``segmenter``: a generator is scored as ``extract`` runs it, on the masks this segmenter
    finds (``extracted``: a pair where it finds none is reported failed), a try-on as ``tryon``
    runs it, on the region this parser finds (``dressed``: its dressed photo at the photo's own
    size; ``resolution`` native dresses at the photo's resolution), not on the pairs' own.
    """
    contract = model.contract
    task = contract.task
    if perceptual and task not in ("generator", "tryon"):
        raise InputError(f"perceptual metrics score images: a generator's or a try-on's, not a {task}'s")
    if segmenter is not None and task not in ("generator", "tryon"):
        raise InputError(f"a {task} is scored on the dataset's masks; the segmenter's are for a generator or a try-on")
    if segmenter is None and task != "tryon" and samples and all(s.mask_kind == "none" for s in samples):
        how = SEGMENTER_MASKS if task == "generator" else "a segmenter is scored against them: add them (mask/)"
        raise InputError(f"a {task} is scored here on each pair's own mask, and {no_masks(samples[0])}: {how}")
    no_parse = not any(s.mask_kind in LABELLED for s in samples)  # (not pair by pair)
    if task == "tryon" and segmenter is None and samples and no_parse:
        raise InputError(
            "a try-on model is scored on pairs with a human parsing, the region to dress (VITON's image-parse/ or "
            f"image-parse-v3/, Dress Code's label_maps/): none of these {len(samples)} pairs has one"
        )
    if resolution == "native" and task == "segmenter":
        return _segmenter_as_extract_runs_it(model, samples, batch_size, sheet_rows, progress, change)
    native = resolution == "native" and task in ("generator", "tryon")
    totals = MetricTotals()
    per_sample: list[dict[str, Any]] = []
    failures: list[dict[str, str]] = []
    rows: list[list[np.ndarray]] = []
    kept: list[tuple[float, list[np.ndarray]]] = []  # (badness, row) of the worst so far

    def prepare(sample: Sample) -> dict[str, np.ndarray] | str:
        try:
            return load_fitted(sample, contract, native, change)
        except ClothesExtractorError as exc:
            return str(exc)

    with ThreadPoolExecutor(workers) as pool, scratch(segmenter) as folder:
        fitted_of = _fitter(model, segmenter, native, change, pool, folder, prepare)
        for start in range(0, len(samples), batch_size):
            chunk = samples[start : start + batch_size]
            fitted = fitted_of(chunk)
            done = []  # (sample, item, its scores), in the chunk's order once all are scored
            for group in _by_shape(_scorable(fitted, failures)):
                items = [item for _, item in group]
                if segmenter is not None:  # (run already, as extract or tryon runs them)
                    scores = _scored(task, items, perceptual, pool)
                else:
                    scores = _score_group(model, items, perceptual, pool)
                totals.add(scores)
                done += [(s, item, {k: float(v[i]) for k, v in scores.items()}) for i, (s, item) in enumerate(group)]
            position = {id(sample): i for i, sample in enumerate(chunk)}
            for sample, item, values in sorted(done, key=lambda d: position[id(d[0])]):
                per_sample.append({"sample": sample.name, **values})
                row = sheet_row(task, item, item["output"])
                if len(rows) < sheet_rows:
                    rows.append(row)
                elif worst:
                    metric, higher_is_worse = task_of(task).worst_by
                    kept.append((values[metric] if higher_is_worse else -values[metric], row))
                    kept.sort(key=lambda k: -k[0])
                    del kept[worst:]
            if progress is not None:
                progress(len(chunk))
    rows += [row for _, row in kept]
    sheet = contact_sheet(rows) if rows else None
    return Evaluation(task, totals.count, totals.means(), per_sample, failures, sheet, totals.counts)


def _fitter(
    model: Any, segmenter: Any, native: bool, change: PhotoChange | None, pool: Executor, folder: Path | None, prepare
) -> Callable[[Sequence[Sample]], list[tuple[Sample, Any]]]:
    """How a chunk of pairs is made ready to score: each fitted on its own mask (``prepare``), or,
    with a ``segmenter``, run as ``extract`` (a generator: ``extracted``) or ``tryon`` (a try-on:
    ``dressed``) runs it, its output included."""
    if segmenter is None:
        return lambda chunk: list(zip(chunk, pool.map(prepare, chunk), strict=True))
    if model.contract.task == "tryon":
        dresser = dresser_for(model, segmenter, native)
        return lambda chunk: dressed(chunk, dresser, change, pool)
    plan = extract_plan(model, segmenter)
    return lambda chunk: extracted(chunk, model, segmenter, plan, folder, native, change, pool)


def _segmenter_as_extract_runs_it(
    model: Any, samples: Sequence[Sample], batch_size: int, sheet_rows: int, progress, change: PhotoChange | None
) -> Evaluation:
    """IoU of the masks ``extract`` would use (``stages.segment``: the first look and, for a
    small garment, the zoomed one), mapped back onto each photo at its own size. A photo in
    which it finds no garment scores 0."""
    from ..runtime.images import load_photo
    from ..runtime.jobs import ExtractJob
    from ..runtime.stages import for_segmenter, segment
    from ..runtime.walk import MaskSource

    totals, per_sample, failures, rows = MetricTotals(), [], [], []
    for start in range(0, len(samples), batch_size):
        chunk, truths, items = samples[start : start + batch_size], [], []
        for sample in chunk:
            try:  # the photo is decoded once, as extract decodes it for the segmenter
                photo = change.photo(load_photo(sample.photo)[0]) if change else None
                job = ExtractJob(sample.photo, sample.photo, MaskSource("auto"))
                item = for_segmenter(job, model.contract, photo)
                truth = load_sample_mask(sample)
            except ClothesExtractorError as exc:
                failures.append({"sample": str(sample.photo), "error": str(exc)})
                continue
            truths.append((sample, item.photo, truth.resize(item.photo_size, Image.Resampling.NEAREST)))
            items.append(item)
        for (sample, photo, truth), item, found in zip(
            truths, items, segment(items, model) if items else [], strict=True
        ):
            predicted = np.zeros((truth.height, truth.width), np.uint8)
            if not isinstance(found, Exception):
                predicted = mask_at_photo_size(found, item)
            scores = {
                "iou": iou(predicted[None], np.asarray(truth)[None]),
                "zoomed": np.array([getattr(found, "zoomed", False)], float),
            }
            totals.add(scores)
            per_sample.append({"sample": sample.name, **{k: float(v[0]) for k, v in scores.items()}})
            if len(rows) < sheet_rows:
                size = (model.contract.width, model.contract.height)
                rows.append(
                    [
                        np.asarray(photo.resize(size)),
                        np.asarray(Image.fromarray(predicted).resize(size))[..., None],
                        np.asarray(truth.resize(size))[..., None],
                    ]
                )
        if progress is not None:
            progress(len(chunk))
    sheet = contact_sheet(rows) if rows else None
    return Evaluation("segmenter", totals.count, totals.means(), per_sample, failures, sheet, totals.counts)


PERSON_SIDE = ("person", "region", "photo")  # a try-on's inputs that come from the person (the rest: the garment)


def unpaired_sheet(
    model: Any, samples: Sequence[Sample], rows: int = 6, garments: int = 4, change: PhotoChange | None = None
) -> Image.Image:
    """Try-on, unpaired: each of the first ``rows`` persons in the garments of the next
    ``garments`` pairs; a row is person | garment, output | garment, output ... ``change``:
    the persons' photos (and the garments) changed first, as the scores change them."""
    if model.contract.task != "tryon":
        raise InputError(f"an unpaired sheet is a try-on's; this model is a {model.contract.task}")
    items = [load_fitted(sample, model.contract, change=change) for sample in samples[: rows + garments]]
    if len(items) < 2:
        raise InputError("an unpaired sheet needs at least two pairs")
    lines = []
    for i, person in enumerate(items[:rows]):
        others = [items[(i + k + 1) % len(items)] for k in range(min(garments, len(items) - 1))]
        feeds = {  # the person's side from this person, the garment's from the others
            spec.name: np.stack(
                [person[spec.name]] * len(others) if spec.name in PERSON_SIDE else [o[spec.name] for o in others]
            )
            for spec in model.contract.inputs
        }
        dressed = model.run(**feeds)["image"]
        lines.append(
            [person["person"]] + [tile for o, d in zip(others, dressed, strict=True) for tile in (o["garment"], d)]
        )
    return contact_sheet(lines)


def _scorable(fitted: list[tuple[Sample, Any]], failures: list[dict[str, str]]) -> list[tuple[Sample, Any]]:
    """The pairs of ``fitted`` that can be scored; each of the others (a reason given for its
    item) listed in ``failures`` and logged."""
    good = []
    for sample, item in fitted:
        if isinstance(item, str):
            failures.append({"sample": str(sample.photo), "error": item})
            log.warning("%s: %s", sample.photo, item)
        else:
            good.append((sample, item))
    return good


def _by_shape(items: list[tuple[Sample, dict[str, np.ndarray]]]) -> list[list[tuple[Sample, dict[str, np.ndarray]]]]:
    """Pairs grouped so that each group can run as one batch (same input and target shapes)."""
    groups: dict[tuple, list] = {}
    for sample, item in items:
        key = tuple(sorted((name, array.shape) for name, array in item.items()))
        groups.setdefault(key, []).append((sample, item))
    return list(groups.values())


def _score_group(
    model: Any, items: list[dict[str, np.ndarray]], perceptual: Sequence[Any] = (), pool: Executor | None = None
) -> dict[str, np.ndarray]:
    """Run one batch and score it (``_scored``); each item gets its ``output`` (and the model's
    silhouette or labels: ``output_alpha``, ``output_labels``)."""
    contract = model.contract
    feeds = {spec.name: np.stack([item[spec.name] for item in items]) for spec in contract.inputs}
    main_name = contract.outputs[0].name
    outputs = model.run(**feeds)
    if "target" in items[0] and contract.task in ("generator", "tryon"):
        outputs = to_target_size(outputs, main_name, items[0]["target"].shape[:2])
        if contract.task == "tryon" and not contract.catalog_resolution:
            outputs[main_name] = pasted(outputs[main_name], items)
    for name in ("alpha", "labels"):
        if name in outputs:
            for item, value in zip(items, outputs[name], strict=True):
                item[f"output_{name}"] = value
    for item, output in zip(items, outputs[main_name], strict=True):
        item["output"] = output
    return _scored(contract.task, items, perceptual, pool)


SCALARS = ("mask_iou", "zoomed", "alone")  # an item's own scores, [1] each (``extracted``)


def _scored(
    task: str, items: list[dict[str, np.ndarray]], perceptual: Sequence[Any] = (), pool: Executor | None = None
) -> dict[str, np.ndarray]:
    """Per-item scores of a batch of items that hold their ``output`` (``score_batch``, on
    ``pool``'s threads; ``perceptual`` metrics beside), with the scores an item holds (``SCALARS``)."""
    main = np.stack([item["output"] for item in items])
    references = {
        name: np.stack([item[name] for item in items])
        for name in ("target", "alpha", "labels", "person", "output_alpha", "output_labels")
        if name in items[0]
    }
    scores = score_batch(task, main, references, pool)
    for metric in perceptual:  # against what the image metrics compare with
        scores[metric.name] = metric(main, references["target" if "target" in references else "person"])
    for name in SCALARS:  # (an item without one, or with NaN: left out of that score's mean)
        if any(name in item for item in items):
            scores[name] = np.concatenate([item.get(name, np.array([np.nan])) for item in items])
    return scores
