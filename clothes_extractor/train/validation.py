"""A run's validation: the served model over the validation split, scored as ``evaluate`` scores it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from ..eval.evaluate import MetricTotals, score_batch
from ..eval.sheets import contact_sheet, sheet_row
from ..runtime.hardware import physical_cores
from ..tasks import task_of
from .architectures import served
from .data import batches
from .flow import FlowConfig


@torch.no_grad()
def validate(model: torch.nn.Module, loader, device: torch.device, sheet_rows: int) -> tuple[dict[str, float], Any]:
    """Metrics of the served model (uint8 in and out, as exported) over the whole loader,
    scored by ``eval`` exactly as ``evaluate`` scores the exported file, on every core (numpy's
    scores of a batch of 32 take a core ~0.7 s: on one, the 341 held-out pairs held a GPU run
    up for longer than its training between two validations)."""
    task = model.config.task
    was_training = model.training
    wrapped = served(model)
    totals = MetricTotals()
    rows: list[list[np.ndarray]] = []
    with ThreadPoolExecutor(physical_cores(), thread_name_prefix="ce-score") as pool:
        for batch in batches(loader):
            inputs = [batch[spec.name].to(device) for spec in task_of(task).inputs]
            if task == "generator" and isinstance(model.config, FlowConfig):
                inputs.append(inputs[0])  # the photo at the model size: the model-size output
            outputs = wrapped(*inputs)
            arrays = {name: tensor.cpu().numpy() for name, tensor in batch.items()}
            if isinstance(outputs, tuple):  # a second output: the silhouette (flow) or the labels (parser)
                outputs, extra = (o.cpu().numpy() for o in outputs)
                arrays["output_alpha" if task == "generator" else "output_labels"] = extra
            else:
                outputs = outputs.cpu().numpy()
            totals.add(score_batch(task, outputs, arrays, pool))
            for i, output in enumerate(outputs[: max(0, sheet_rows - len(rows))]):
                rows.append(sheet_row(task, {k: v[i] for k, v in arrays.items()}, output))
    model.train(was_training)
    return totals.means(), (contact_sheet(rows) if rows else None)
