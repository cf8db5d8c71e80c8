"""Which networks exist: one table from an architecture's name to its config and module.

``unet``: the pix2pix U-Net (generator or segmenter, ``networks``). ``flow``: the warping
generator (``flow``). ``silhouette``: a trained U-Net generator with a silhouette head
(``silhouette``). ``tryon-flow``: the try-on network built from its modules (``tryon``).
Checkpoints store the name beside the config, so every tool that builds a network from a
checkpoint goes through ``build``.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from .flow import FlowConfig, FlowGenerator, ServedFlowGenerator
from .networks import SERVED, UNet, UNetConfig
from .silhouette import ServedSilhouetteGenerator, SilhouetteConfig, SilhouetteGenerator
from .tryon import ServedTryOn, TryOnConfig, TryOnGenerator

ARCHITECTURES: dict[str, tuple[type, type[nn.Module]]] = {
    "unet": (UNetConfig, UNet),
    "flow": (FlowConfig, FlowGenerator),
    "silhouette": (SilhouetteConfig, SilhouetteGenerator),
    "tryon-flow": (TryOnConfig, TryOnGenerator),
}
# The name an exported model's contract gives its architecture (``training.architecture.name``).
SERVED_NAMES = {
    "unet": "pix2pix-unet",
    "flow": "warping-flow",
    "silhouette": "pix2pix-unet-silhouette",
    "tryon-flow": "tryon-warping-flow",
}

# The served architectures that hold a pix2pix U-Net generator: where its width and depth
# are in the contract, and the prefix of its weights in the graph.
UNET_HOLDERS = {
    SERVED_NAMES["unet"]: ("ngf", "depth", "generator."),
    SERVED_NAMES["silhouette"]: ("renderer_ngf", "renderer_depth", "generator.renderer."),
}


def unet_of(architecture: dict) -> tuple[int, int, str]:
    """(ngf, depth, weight prefix) of the U-Net generator in a served model's architecture record."""
    holder = UNET_HOLDERS.get(architecture.get("name"))
    if holder is None or architecture.get("task", "generator") != "generator":
        raise ValueError(f"{architecture.get('name')} holds no pix2pix U-Net generator")
    ngf, depth, prefix = holder
    return int(architecture[ngf]), int(architecture[depth]), prefix


def architecture_of(model: nn.Module) -> str:
    for name, (_, cls) in ARCHITECTURES.items():
        if isinstance(model, cls):
            return name
    raise TypeError(f"{type(model).__name__} is not one of the networks ({', '.join(ARCHITECTURES)})")


def build(arch: str, config: Mapping[str, Any]) -> nn.Module:
    """The network ``arch`` with the settings ``config`` (checked: unknown keys are refused)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; this version has {', '.join(ARCHITECTURES)}")
    config_cls, cls = ARCHITECTURES[arch]
    return cls(config_cls.from_dict(config))


def served(model: nn.Module, dtype: torch.dtype = torch.float32) -> nn.Module:
    """``model`` wrapped with the uint8 NHWC pre/post-processing of its task, in eval mode."""
    if isinstance(model, FlowGenerator):
        return ServedFlowGenerator(model, dtype).eval()
    if isinstance(model, SilhouetteGenerator):
        return ServedSilhouetteGenerator(model, dtype).eval()
    if isinstance(model, TryOnGenerator):
        return ServedTryOn(model, dtype).eval()
    return SERVED[model.config.task](model, dtype).eval()
