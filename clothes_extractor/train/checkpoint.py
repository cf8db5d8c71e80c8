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
import logging
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from ..runtime.files import write_atomic
from .architectures import architecture_of, build

log = logging.getLogger(__name__)

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
    not_ours = f"{path} is not a checkpoint that train wrote (RUN/last.pt or best.pt)"
    with open(path, "rb") as handle:
        if handle.read(2) != b"PK":  # torch.save's zip archive
            served = " but a served ONNX model" if path.suffix.lower() == ".onnx" else ""
            raise CheckpointError(f"{not_ours}: it is no PyTorch file{served}")
    if not zipfile.is_zipfile(path):  # (train writes atomically: a copy or a download that did not finish)
        raise CheckpointError(
            f"{path} is cut short or damaged: its zip archive has no end (a copy or a download that did not "
            "finish?); copy it again, or give the run's other checkpoint (last.pt or best.pt)"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        if "Weights only load failed" in str(exc):  # pickled code, which is never loaded
            raise CheckpointError(f"{not_ours}: it holds Python objects, not only tensors and settings") from None
        said = str(exc).splitlines()[0].split(". ")[0][:200]  # (its first sentence: not cut in the middle of one)
        raise CheckpointError(f"{not_ours}: torch.load cannot read it ({said})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a clothes-extractor checkpoint (no {CHECKPOINT_FORMAT!r} marker)")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {payload.get('version')!r} is not {CHECKPOINT_VERSION}")
    return payload


RESUME_ONLY = ("discriminator", "optimizers", "scaler", "rng")  # what only --resume reads


def load_resumable(path: str | Path) -> dict[str, Any]:
    """The checkpoint at ``path``, if it holds what ``--resume`` continues a run from."""
    payload = load_checkpoint(path)
    if "optimizers" not in payload or "train_config" not in payload:
        raise CheckpointError(
            f"--resume {path} holds a network without the training state a run continues from (its "
            f"optimizers: a slimmed copy, as a GPU lease brings back): start a new run from its weights "
            f"with --init {path}"
        )
    return payload


def slim_checkpoint(path: str | Path, dest: str | Path) -> dict[str, Any]:
    """Write a copy of the checkpoint at ``path`` to ``dest`` with its floating-point weights as
    fp16 and without what only ``--resume`` reads (discriminator, optimizers, scaler, RNG): about a
    quarter of the bytes, what travels to and from a lent GPU. It exports, evaluates and starts
    runs (``--init``) like the original. Returns the copy."""
    payload = load_checkpoint(path)
    slim = {key: value for key, value in payload.items() if key not in RESUME_ONLY}
    slim["model"] = {key: v.half() if v.is_floating_point() else v for key, v in payload["model"].items()}
    write_atomic(Path(dest), lambda handle: torch.save(slim, handle))
    return slim


def kind_of(payload: dict[str, Any]) -> tuple[str | None, str]:
    """A checkpoint's (task, architecture); ``unet`` where it names none (from before the warping generator)."""
    return payload.get("task"), payload.get("arch", "unet")


def average_checkpoints(
    paths: list[str | Path], dest: str | Path, weights: list[float] | None = None
) -> dict[str, Any]:
    """Write to ``dest`` the (``weights``-weighted) mean of the networks of ``paths``: runs of
    one recipe started from the same checkpoint (``--init``) under other seeds, and that
    checkpoint itself (a "model soup": the mean of such runs is a network too, and often
    steadier than each). Every checkpoint must hold the same kind of network with the same
    settings; integer buffers (BatchNorm's step counters) and the rest of the dictionary
    (summary, config) come from the first, without what only ``--resume`` reads. Returns it."""
    if len(paths) < 2:
        raise CheckpointError("averaging takes two checkpoints or more")
    weights = [1.0] * len(paths) if weights is None else [float(w) for w in weights]
    if len(weights) != len(paths) or min(weights) < 0 or sum(weights) <= 0:
        raise CheckpointError(
            f"{len(paths)} checkpoints need as many weights, none negative and not all 0: got {weights}"
        )
    payloads = [load_checkpoint(path) for path in paths]
    first = payloads[0]
    for path, payload in zip(paths[1:], payloads[1:], strict=True):
        same = kind_of(payload) == kind_of(first) and payload["config"] == first["config"]
        if not same or payload["model"].keys() != first["model"].keys():
            task, arch = kind_of(payload)
            raise CheckpointError(
                f"{path} holds another network than {paths[0]} ({task} {arch}, {payload['config']}); only runs "
                "of the same network, started from one checkpoint, are averaged"
            )
    total = sum(weights)
    model = {}
    for key, value in first["model"].items():
        if not value.is_floating_point():
            model[key] = value
            continue
        parts = [(w / total) * payload["model"][key].float() for w, payload in zip(weights, payloads, strict=True)]
        model[key] = torch.stack(parts).sum(0).to(value.dtype)
    averaged = {key: value for key, value in first.items() if key not in RESUME_ONLY}
    averaged["model"] = model
    averaged["summary"] = {
        **first.get("summary", {}),
        "averaged": [{"checkpoint": str(p), "weight": w / total} for p, w in zip(paths, weights, strict=True)],
    }
    write_atomic(Path(dest), lambda handle: torch.save(averaged, handle))
    return averaged


def load_model(path: str | Path, task: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """The network of a checkpoint, in eval mode, and the whole checkpoint dictionary."""
    payload = load_checkpoint(path)
    if task is not None and payload.get("task") != task:
        raise CheckpointError(f"{path} holds a {payload.get('task')!r} model, not a {task}")
    try:
        model = build(kind_of(payload)[1], payload["config"])
        model.load_state_dict(with_added_layers(model, payload["model"]))
    except (KeyError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: the checkpoint does not build its network ({exc})") from None
    return model.eval(), payload


def check_kind(path: str | Path, task: str, arch: str, option: str) -> dict[str, Any]:
    """The checkpoint at ``path``, if it holds a ``task`` network of architecture ``arch``."""
    payload = load_checkpoint(path)
    kind = kind_of(payload)
    if kind != (task, arch):
        raise CheckpointError(
            f"{option} {path} holds a {kind[0]} ({kind[1]}); this run trains a {task} ({arch}): "
            "give a checkpoint of the same kind"
        )
    return payload


# the train option behind each network setting, where its name is not the setting's
SETTING_OPTIONS = {
    "height": "--size height",
    "width": "--size width",
    "levels": "--depth",
    "renderer_ngf": "--renderer ngf",
    "renderer_depth": "--renderer depth",
    "classes": "--parser classes",
    "dropout": "--dropout",
}


def load_weights(path: str | Path, model: nn.Module, option: str) -> dict[str, Any]:
    """Load the network weights of the checkpoint at ``path`` into ``model`` (same architecture
    and settings, or settings that add layers, ``added_settings``), saying which differ if they
    do; the whole checkpoint dictionary."""
    payload = check_kind(path, model.config.task, architecture_of(model), option)
    record = payload.get("config", {})
    differ = setting_differences(model, record)
    try:
        kept = without_dropped_layers(model, record, payload["model"], f"{option} {path}")
        model.load_state_dict(with_added_layers(model, kept))
    except (KeyError, RuntimeError) as exc:
        why = "; ".join(differ) if differ else str(exc).splitlines()[0]
        raise CheckpointError(f"{option} {path} is a network of other settings than this run's: {why}") from None
    return payload


def setting_differences(model: nn.Module, record: dict[str, Any]) -> list[str]:
    """How a file's network settings (``record``) differ from ``model``'s, as the options that
    set them (``--ngf 4 (this run: 8)``; a setting the file does not record is taken as the
    run's), leaving out the settings this run adds layers with (``added_settings``) and those
    whose layers it leaves out of the file (``dropped_settings``)."""
    config, added = dataclasses.asdict(model.config), added_settings(model, record) | dropped_settings(model, record)
    return [
        f"{SETTING_OPTIONS.get(key, '--' + key.replace('_', '-'))} {record[key]} (this run: {config[key]})"
        for key in config
        if key not in added and record.get(key, config[key]) != config[key]
    ]


def added_settings(model: nn.Module, record: dict[str, Any]) -> set[str]:
    """The settings this run's network turns on that a file's settings (``record``) do not and
    that only add layers (the network's ``ADDED_BY``, such as the try-on network's ``relight``):
    the file has no weights for those layers, which keep their initialisation (``added_layers``)."""
    config = dataclasses.asdict(model.config)
    return {key for key in getattr(model, "ADDED_BY", {}) if config.get(key) and not record.get(key)}


def dropped_settings(model: nn.Module, record: dict[str, Any]) -> set[str]:
    """The settings a file's network (``record``) turns on that this run's does not and that
    the network lets a run leave out (its ``LEFT_OUT``: a parser's ``alone`` head): the run
    starts from the rest of the file (a parser trained further changes the features its head
    reads; ``train --alone-head`` fits a new one)."""
    config = dataclasses.asdict(model.config)
    return {key for key in getattr(model, "LEFT_OUT", ()) if record.get(key) and not config.get(key)}


def without_dropped_layers(
    model: nn.Module, record: dict[str, Any], stored: dict[str, Any], source: str
) -> dict[str, Any]:
    """A file's weights (``stored``) without the layers of its ``dropped_settings``, saying so
    (``source``: the option and the file)."""
    settings = sorted(dropped_settings(model, record))
    if not settings:
        return stored
    log.warning(
        "%s: left out its %s layers, which this run's network does not have (a parser trained further changes "
        "the features its alone head reads: fit a new head on the result with train --alone-head --init)",
        source,
        " and ".join(settings),
    )
    added_by = getattr(model, "ADDED_BY", {})
    dropped = tuple(prefix for key in settings for prefix in added_by[key])
    return {k: v for k, v in stored.items() if not k.startswith(dropped)}


def added_layers(model: nn.Module) -> tuple[str, ...]:
    """The name prefixes of the layers the settings ``model`` turns on add (its ``ADDED_BY``).
    Each starts as the identity, so a file that lacks one (from before the setting, or before
    the setting gained that layer) leaves it at its initialisation and keeps the file's function."""
    config = dataclasses.asdict(model.config)
    added_by = getattr(model, "ADDED_BY", {})
    return tuple(prefix for key, prefixes in added_by.items() if config.get(key) for prefix in prefixes)


def with_added_layers(model: nn.Module, stored: dict[str, Any]) -> dict[str, Any]:
    """A file's weights (``stored``), with ``model``'s own for the ``added_layers`` it lacks."""
    fresh = added_layers(model)
    current = model.state_dict()
    return {**{k: v for k, v in current.items() if k not in stored and k.startswith(fresh)}, **stored}
