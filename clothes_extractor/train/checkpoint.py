"""Checkpoints: the network, its full config, and (for training runs) everything to resume.

A checkpoint is a dict saved with ``torch.save`` and loaded with ``weights_only=True``:
data, never code. Keys: ``format``, ``version``, ``task``, ``arch`` (``unet`` where
absent: checkpoints from before the warping generator), ``config`` (the network's
settings), ``model`` (state dict) and, from training, ``train_config``,
``discriminator``, ``optimizers``, ``scaler``, ``step``, ``epoch``, ``best_metric``,
``rng`` and ``summary``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from ..runtime.files import write_atomic
from .architectures import architecture_of, build

CHECKPOINT_FORMAT = "clothes-extractor-checkpoint"
CHECKPOINT_VERSION = 1


def save_checkpoint(path: str | Path, model: nn.Module, **extra: Any) -> None:
    """Save ``model`` with its config, atomically; ``extra`` rides along."""
    path = Path(path)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "task": model.config.task,
        "arch": architecture_of(model),
        "config": dataclasses.asdict(model.config),
        "model": model.state_dict(),
        **extra,
    }
    write_atomic(path, lambda handle: torch.save(payload, handle))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dictionary, checked to be one of ours."""
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
    return payload


def load_model(path: str | Path, task: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """The network of a checkpoint, in eval mode, and the whole checkpoint dictionary."""
    payload = load_checkpoint(path)
    if task is not None and payload.get("task") != task:
        raise CheckpointError(f"{path} holds a {payload.get('task')!r} model, not a {task}")
    try:
        model = build(payload.get("arch", "unet"), payload["config"])
        model.load_state_dict(payload["model"])
    except (KeyError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: the checkpoint does not build its network ({exc})") from None
    return model.eval(), payload
