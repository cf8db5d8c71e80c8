"""A network read back from its served ONNX file, to start a training run from (``--init MODEL.onnx``).

The models the package ships, and any that ``export`` wrote, carry their weights and, in
their contract, the network's settings; the checkpoints that made them stayed on the
machines that trained them. ``--init`` takes such a file as it takes a checkpoint: the
weights map back by name (the served wrapper's prefix and the fp16 storage's suffix taken
off), and each BatchNorm the export folded into the convolution before it comes back: the
convolution keeps the folded weights, its shift moves into the BatchNorm, which starts as
the identity (``load_served``; the rebuilt network reproduces the file within the export's
own tolerances, checked as ``export`` checks a file). In eval mode that is the file's
function; in training, BatchNorm divides by the batch's statistics instead, so before the
first step ``calibrate_batchnorm`` measures each unfolded BatchNorm's input on the run's own
training pairs and takes those statistics as its running ones and its scale and shift: the
eval-mode function stays the file's, and the train-mode one starts next to it.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import CheckpointError, ExportError
from ..runtime.session import contract_of
from .architectures import SERVED_NAMES, UNET_HOLDERS, architecture_of, build, served, unet_of
from .checkpoint import dropped_settings, load_weights, setting_differences, with_added_layers, without_dropped_layers
from .data import GarmentDataset
from .networks import conv_bn_pairs

log = logging.getLogger(__name__)


def is_served(path: str | Path) -> bool:
    """Whether ``path`` names a served ONNX model rather than a checkpoint."""
    return Path(path).suffix.lower() == ".onnx"


def load_init(path: str | Path, model: nn.Module, option: str) -> dict[str, Any]:
    """``--init``: the weights of a checkpoint or of a served model, loaded into ``model``; what
    the run keeps of it (``summary``; ``unfolded``: the BatchNorms ``calibrate_batchnorm`` needs)."""
    return load_served(path, model, option) if is_served(path) else load_weights(path, model, option)


def load_served(path: str | Path, model: nn.Module, option: str) -> dict[str, Any]:
    """Load the served model at ``path`` into ``model`` (the same architecture and settings,
    or a plain U-Net generator from a file whose generator holds one), BatchNorm unfolded as
    the identity; checked to reproduce the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{option} {path}: no such file")
    contract = contract_of(path)
    record = contract.training.get("architecture") or {}
    if architecture_of(model) == "unet" and record.get("name") in UNET_HOLDERS.keys() - {SERVED_NAMES["unet"]}:
        return _load_held_unet(path, record, model, option)
    _check_same_network(path, contract, model, option)
    dropped = dropped_settings(model, record)
    if dropped:  # rebuilt as the file is (checked to reproduce it), then those layers left out
        whole = build(architecture_of(model), {**dataclasses.asdict(model.config), **{k: record[k] for k in dropped}})
        found = load_served(path, whole, option)
        model.load_state_dict(without_dropped_layers(model, record, whole.state_dict(), f"{option} {path}"))
        return found
    training = contract.training
    summary = {"renderer": training["renderer"]} if "renderer" in training else {}
    return {"summary": summary, "unfolded": _load_unfolded(path, model, _prefix(model), option)}


def _load_held_unet(path: Path, record: dict[str, Any], model: nn.Module, option: str) -> dict[str, Any]:
    """A U-Net generator run from a file whose generator renders with one (a silhouette model:
    the U-Net draws the garment, a head adds its alpha): the U-Net's weights, the rest left out
    (said), checked to give the file's garment. Nothing of the file's training record is the
    run's (it is the whole model's; the U-Net's own is its ``renderer`` entry)."""
    if model.config.task != "generator":
        raise CheckpointError(
            f"{option} {path} serves a generator ({record.get('name')}); this run trains a {model.config.task}: "
            "give a model of the same kind"
        )
    ngf, depth, prefix = unet_of(record)
    held = {"height": record.get("height"), "width": record.get("width"), "ngf": ngf, "depth": depth}
    differ = setting_differences(model, {**held, "attention": "none"})  # (a silhouette model's U-Net has none)
    if differ:
        raise CheckpointError(f"{option} {path} holds a U-Net of other settings than this run's: {'; '.join(differ)}")
    unfolded = _load_unfolded(path, model, prefix, option, outputs=["garment"])
    log.warning(
        "%s %s: took the U-Net that renders its garment, left out the rest (%s: its silhouette head)",
        option, path, record.get("name"),
    )  # fmt: skip
    return {"summary": {}, "unfolded": unfolded}


def _load_unfolded(
    path: Path, model: nn.Module, prefix: str, option: str, outputs: list[str] | None = None
) -> list[str]:
    """The file's weights under ``prefix`` loaded into ``model``, each folded BatchNorm unfolded,
    checked to reproduce the file (its ``outputs``, or all); the names of those BatchNorms."""
    import onnx

    from ..export.onnx_export import validate_export

    pairs = list(conv_bn_pairs(model))
    unfolded = _unfolded_state(model, pairs, served_weights(onnx.load(str(path)), prefix))
    state = with_added_layers(model, {k: v for k, v in unfolded.items() if v is not None})
    missing = [k for k in unfolded if k not in state]
    if missing:
        raise CheckpointError(
            f"{option} {path}: its weights do not map onto this run's network by name (no {', '.join(missing[:3])}"
            f"{' ...' if len(missing) > 3 else ''}: the export keeps one copy of identical weights, such as an "
            "untrained network's zero layers); start from the checkpoint it was exported from"
        )
    model.load_state_dict(state)
    try:  # (the run's model may be on a GPU already)
        validate_export(copy.deepcopy(model).cpu().eval(), path, outputs=outputs)
    except ExportError as exc:
        raise CheckpointError(f"{option} {path}: the network rebuilt from it does not reproduce it ({exc})") from None
    return [norm for _, norm in pairs]


def served_weights(proto: Any, prefix: str) -> dict[str, np.ndarray]:
    """The weights of a served graph (an ``onnx.ModelProto``) that sit under ``prefix`` (the
    served wrapper's name for the network), by their names in the network, as fp32 (the fp16
    storage's suffix taken off)."""
    from onnx import numpy_helper

    found = {}
    for tensor in proto.graph.initializer:
        name = tensor.name.removesuffix(".fp16")
        if name.startswith(prefix):
            found[name[len(prefix) :]] = numpy_helper.to_array(tensor).astype(np.float32)
    return found


def model_from_served(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The network a served model was exported from, read back from the file (``load_served``:
    checked to reproduce it), in eval mode, and the file's training summary: what ``export``
    needs to write the same weights again with this version's wrapper and contract."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    contract = contract_of(path)
    record = dict(contract.training.get("architecture") or {})
    name = record.pop("name", None)
    arch = {served_name: arch for arch, served_name in SERVED_NAMES.items()}.get(name)
    if arch is None:
        raise CheckpointError(f"{path}: its contract names no network this version builds ({name or 'none'})")
    try:
        model = build(arch, record)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: its contract's network settings do not build ({exc})") from None
    load_served(path, model, "the model")
    return model.eval(), {k: v for k, v in contract.training.items() if k != "architecture"}


def _check_same_network(path: Path, contract: Any, model: nn.Module, option: str) -> None:
    """Refuses a file of another kind or settings (leaving out the settings this run adds)."""
    record = dict(contract.training.get("architecture") or {})
    theirs, ours = record.pop("name", None), SERVED_NAMES[architecture_of(model)]
    task = model.config.task
    if (contract.task, theirs) != (task, ours):
        raise CheckpointError(
            f"{option} {path} serves a {contract.task} ({theirs or 'no architecture record'}); this run trains "
            f"a {task} ({ours}): give a model of the same kind"
        )
    differ = setting_differences(model, record)
    if differ:
        raise CheckpointError(f"{option} {path} is a network of other settings than this run's: {'; '.join(differ)}")


def _prefix(model: nn.Module) -> str:
    """The name the served wrapper gives the network (``generator.``, ``segmenter.``)."""
    training = model.training
    wrapper = served(model)  # (which puts the network in eval mode)
    model.train(training)
    return next(name + "." for name, module in wrapper.named_modules() if module is model)


def _unfolded_state(
    model: nn.Module, pairs: list[tuple[str, str]], stored: dict[str, np.ndarray]
) -> dict[str, torch.Tensor | None]:
    """``model``'s state dict from the file's weights (None where the file has none): each
    folded convolution's weights as they are, its shift in the BatchNorm after it, which is
    otherwise the identity (scale 1, mean 0, variance 1 - eps)."""
    state: dict[str, torch.Tensor | None] = {}
    norms = {norm: conv for conv, norm in pairs}
    convs = set(norms.values())
    modules = dict(model.named_modules())
    for name, value in model.state_dict().items():
        owner, _, leaf = name.rpartition(".")
        if owner in norms:
            norm = modules[owner]
            if leaf == "bias":  # (a shift the export found all zero it may leave out: zero)
                found = stored.get(f"{norms[owner]}.bias")
                state[name] = torch.zeros_like(value) if found is None else torch.from_numpy(found).reshape(value.shape)
            else:
                fill = {"weight": 1.0, "running_mean": 0.0, "running_var": 1.0 - norm.eps}.get(leaf)
                state[name] = value.clone() if fill is None else torch.full_like(value, fill)
        elif owner in convs and leaf == "bias":
            state[name] = torch.zeros_like(value)  # a biased convolution's shift is in the BatchNorm now
        elif name in stored:
            state[name] = torch.from_numpy(stored[name]).reshape(value.shape)
        else:
            state[name] = None
    return state


def calibration_batch(samples: list, contract: Any, count: int = 32) -> dict[str, torch.Tensor]:
    """Up to ``count`` training samples spread over ``samples``, fitted as training fits them
    (no augmentation), as one batch of uint8 tensors: what ``calibrate_batchnorm`` measures on."""
    chosen = samples[:: max(1, len(samples) // count)][:count]
    dataset = GarmentDataset(chosen, contract)
    items = [dataset[(0, index)] for index in range(len(chosen))]
    return {key: torch.from_numpy(np.stack([item[key] for item in items])) for key in items[0]}


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, norms: list[str], forward: Callable[[], Any]) -> None:
    """Give each BatchNorm in ``norms`` (unfolded as the identity plus a shift) its input's
    per-channel mean and deviation over one ``forward()`` as running statistics, scale and shift
    added: ``model``'s eval-mode function does not change, and in train mode, on batches like
    that one, BatchNorm gives what it gave in eval mode."""
    modules = dict(model.named_modules())
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        modules[name].register_forward_hook(lambda _m, args, _out, name=name: seen.__setitem__(name, args[0]))
        for name in norms
    ]
    was_training = model.training
    try:
        model.eval()
        forward()
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    for name in (name for name in norms if name in seen):  # (one the forward never ran stays as it is)
        norm, x = modules[name], seen[name].float()
        mean = x.mean(dim=(0, 2, 3))
        deviation = x.var(dim=(0, 2, 3), unbiased=False).clamp_min(norm.eps).sqrt()
        norm.weight.copy_(deviation)
        norm.bias.add_(mean)
        norm.running_mean.copy_(mean)
        norm.running_var.copy_(deviation**2 - norm.eps)
