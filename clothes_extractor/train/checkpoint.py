"""Generator checkpoints: the weights plus the full config that built them.

Loaded with ``weights_only=True``: a checkpoint is data, never code.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from .networks import GeneratorConfig, UNetGenerator

CHECKPOINT_FORMAT = "clothes-extractor-checkpoint"
CHECKPOINT_VERSION = 1


def save_generator(path: str | Path, model: UNetGenerator, **extra: Any) -> None:
    """Save ``model`` with its config; ``extra`` (step, metrics, optimizers...) rides along."""
    path = Path(path)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "task": "generator",
        "config": dataclasses.asdict(model.config),
        "model": model.state_dict(),
        **extra,
    }
    temp = path.with_name(f".{path.name}.partial")
    torch.save(payload, temp)
    temp.replace(path)


def load_generator(path: str | Path) -> tuple[UNetGenerator, dict[str, Any]]:
    """The generator in eval mode and the whole checkpoint dictionary."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a clothes-extractor checkpoint (no {CHECKPOINT_FORMAT!r} marker)")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {payload.get('version')!r} is not {CHECKPOINT_VERSION}")
    if payload.get("task") != "generator":
        raise CheckpointError(f"{path} holds a {payload.get('task')!r} model, not a generator")
    try:
        model = UNetGenerator(GeneratorConfig.from_dict(payload["config"]))
        model.load_state_dict(payload["model"])
    except (KeyError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: the checkpoint does not build a generator ({exc})") from None
    return model.eval(), payload
