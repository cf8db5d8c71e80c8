"""Scoring a served model on a dataset split, and contact sheets, without PyTorch.

Generator: SSIM, MS-SSIM and PSNR (RGB, data range 255) of the output against the
catalog garment fitted to the model's resolution. Segmenter: IoU of the predicted mask
against the parse-map mask. Means over every pair.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from .datasets import Sample, fit_sample, load_sample
from .metrics import image_metrics, iou
from .pipeline import default_workers
from .session import ModelSession

log = logging.getLogger(__name__)

METRICS = {"generator": ("ssim", "ms_ssim", "psnr"), "segmenter": ("iou",)}
# The number training keeps the best checkpoint by, per task.
MAIN_METRIC = {"generator": "ssim", "segmenter": "iou"}


@dataclass
class MetricTotals:
    """Running sums of per-sample metrics; ``means`` gives the averages."""

    sums: dict[str, float] = field(default_factory=dict)
    count: int = 0

    def add(self, values: dict[str, np.ndarray]) -> None:
        for name, batch in values.items():
            self.sums[name] = self.sums.get(name, 0.0) + float(np.sum(batch))
        self.count += len(next(iter(values.values())))

    def means(self) -> dict[str, float]:
        return {name: total / max(self.count, 1) for name, total in self.sums.items()}


def score_batch(task: str, outputs: np.ndarray, targets: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sample metrics of one batch of uint8 outputs against uint8 targets."""
    if task == "generator":
        return image_metrics(outputs, targets)
    return {"iou": iou(outputs, targets)}


def sheet_row(task: str, inputs: dict[str, np.ndarray], output: np.ndarray) -> list[np.ndarray]:
    """One contact-sheet row: generator input | mask | output | target; segmenter photo | output | target."""

    def rgb(a: np.ndarray) -> np.ndarray:
        return np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a

    if task == "generator":
        return [inputs["image"], rgb(inputs["mask"]), output, inputs["target"]]
    return [inputs["image"], rgb(output), rgb(inputs["target"])]


def contact_sheet(rows: Sequence[Sequence[np.ndarray]], gap: int = 4) -> Image.Image:
    """Tile rows of equally sized uint8 [H, W, 3] tiles on a grey background."""
    if not rows:
        raise ValueError("a contact sheet needs at least one row")
    h, w = rows[0][0].shape[:2]
    cols = max(len(r) for r in rows)
    sheet = np.full((len(rows) * (h + gap) + gap, cols * (w + gap) + gap, 3), 128, np.uint8)
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            y, x = gap + r * (h + gap), gap + c * (w + gap)
            sheet[y : y + h, x : x + w] = tile
    return Image.fromarray(sheet)


def extraction_sheet(results: Sequence, size: tuple[int, int]) -> Image.Image:
    """Rows of photo | mask used (if saved) | garment for finished ``extract`` results."""
    from .fitting import letterbox
    from .images import load_mask, load_photo

    rows = []
    for result in results:
        photo, _ = load_photo(Path(result.input))
        row = [letterbox(photo, size, (255, 255, 255))[0]]
        if result.saved_mask:
            mask = load_mask(Path(result.saved_mask)).resize(photo.size)
            row.append(np.repeat(letterbox(mask, size, 0)[0][:, :, None], 3, axis=-1))
        with Image.open(result.output) as garment:
            row.append(np.asarray(garment.convert("RGB").resize((size[1], size[0]))))
        rows.append(row)
    return contact_sheet(rows)


@dataclass(frozen=True)
class Evaluation:
    task: str
    samples: int
    metrics: dict[str, float]
    sheet: Image.Image | None

    def to_json(self) -> dict:
        return {"task": self.task, "samples": self.samples, "metrics": self.metrics}


def evaluate_model(
    model: ModelSession,
    samples: Sequence[Sample],
    *,
    batch_size: int = 16,
    workers: int | None = None,
    sheet_rows: int = 0,
    progress: Callable[[int], None] | None = None,
) -> Evaluation:
    """Run ``model`` over ``samples`` and average its metrics; optionally a contact sheet."""
    contract = model.contract
    names = list(model.input_names)
    totals = MetricTotals()
    rows: list[list[np.ndarray]] = []

    def prepare(sample: Sample) -> dict[str, np.ndarray]:
        return fit_sample(*load_sample(sample), contract)

    with ThreadPoolExecutor(workers or default_workers()) as pool:
        for start in range(0, len(samples), batch_size):
            prepared = list(pool.map(prepare, samples[start : start + batch_size]))
            feeds = {name: np.stack([p[name] for p in prepared]) for name in names}
            outputs = model.run(**feeds)
            totals.add(score_batch(contract.task, outputs, np.stack([p["target"] for p in prepared])))
            for p, out in zip(prepared, outputs, strict=True):
                if len(rows) < sheet_rows:
                    rows.append(sheet_row(contract.task, p, out))
            if progress is not None:
                progress(len(prepared))
    return Evaluation(contract.task, totals.count, totals.means(), contact_sheet(rows) if rows else None)
