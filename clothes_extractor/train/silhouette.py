"""A trained U-Net generator with a silhouette head: transparent backgrounds, the same pixels.

The pix2pix U-Net renders the garment on white and says nothing of where the garment ends:
a white garment on white is invisible, and a shop that wants its own background needs the
garment's alpha. Read back from the U-Net's flood fill (``runtime.silhouette`` on its own
output) the alpha is poor (IoU 0.77 on the first 300 VITON validation pairs: the U-Net's
background is not quite white, and a pale garment leaks into it), so a small network learns it.

``SilhouetteGenerator`` keeps a trained U-Net (``--renderer``, frozen: its garment is the
U-Net's, byte for byte) and adds a light encoder-decoder that reads the photo, its mask,
the U-Net's rendering and (``unet_features``) the U-Net's own last decoder features, which
already know the garment's shape, and predicts the garment's silhouette in the catalog frame,
trained with BCE + Dice against the catalog image's non-background region
(``garment_silhouette``). A global summary at the coarsest level lets it see the whole
garment (how long the sleeves are, where the hem is) wherever the photo has it. It works at
half the model size, and its logit is brought up to the model size: a silhouette is smooth,
and at full size the head (without the U-Net's features) cost most of the U-Net's own time
again (189 vs 107 ms for a batch of 8 on two CPU cores; at half size about a fifth more).
With the features, as shipped, it runs in 1.45x the U-Net's time (the model card).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .flow import GridPyramid, _conv, _encoder, doubled, global_summary
from .networks import folded_unet, generator_input, mask_to_weight, photo_to_unit, unit_to_uint8, weight_to_uint8


@dataclass(frozen=True)
class SilhouetteConfig(GridPyramid):
    """Shape of a U-Net generator with a silhouette head; stored in checkpoints and models."""

    task: str = "generator"
    height: int = 256
    width: int = 192
    ngf: int = 16  # silhouette encoder channels at 1/4 of the input; 2x at 1/8, 4x from 1/16 on
    levels: int = 5  # the head reads the input at 1/2; its coarsest level is at 1/2**(levels + 1)
    renderer_ngf: int = 64  # the U-Net generator's width and depth (its served file's contract)
    renderer_depth: int = 6
    # also read the U-Net's last decoder features (2 x renderer_ngf, at 1/2); ``train`` sets it,
    # False is how a checkpoint from before the option reads
    unet_features: bool = False

    def __post_init__(self) -> None:
        if self.task != "generator":
            raise ValueError(f"a silhouette head belongs to a generator, not a {self.task!r}")
        if self.ngf < 2 or self.renderer_ngf < 2:
            raise ValueError(f"ngf and renderer_ngf must be >= 2, got {self.ngf} and {self.renderer_ngf}")
        self.check_levels(reads_at=2)


class SilhouetteGenerator(nn.Module):
    """Photo + mask (the U-Net's 4-channel condition) -> the U-Net's garment in [-1, 1] and the
    silhouette's logit and probability (``garment``, ``alpha_logit``, ``alpha``)."""

    def __init__(self, config: SilhouetteConfig):
        super().__init__()
        self.config = config
        self.in_channels, self.out_channels = 4, 3
        self.renderer = folded_unet(config.height, config.width, config.renderer_ngf, config.renderer_depth)
        reads = self.in_channels + self.out_channels  # the condition and the rendering
        if config.unet_features:
            reads += 2 * config.renderer_ngf
        widths = config.widths
        self.encoder = _encoder(reads, widths)
        self.bottom = nn.Sequential(_conv(2 * widths[-1], widths[-1]), _conv(widths[-1], widths[-1]))
        # decoder level i: the state from level i+1, brought up, beside the encoder's level i
        self.decoder = nn.ModuleList(
            nn.Sequential(_conv(widths[i + 1] + widths[i], widths[i]), _conv(widths[i], widths[i]))
            for i in range(len(widths) - 2, -1, -1)
        )
        self.top = nn.Sequential(_conv(widths[0] + reads, widths[0]), nn.Conv2d(widths[0], 1, 3, 1, 1))

    def render(self, condition: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The U-Net's garment, and its features before the last up-sampling (at 1/2): the
        outermost level is down-conv, the inner levels, ReLU, up-conv, tanh, in sequence."""
        frozen = not any(p.requires_grad for p in self.renderer.parameters())
        outermost = self.renderer.model.model
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            features = outermost[1](outermost[0](condition))
            return outermost[2:](features), features

    def forward(self, condition: torch.Tensor) -> dict[str, torch.Tensor]:
        rendered, features = self.render(condition)
        x = reads = F.avg_pool2d(torch.cat([condition, rendered.to(condition.dtype)], 1), 2)
        if self.config.unet_features:
            x = reads = torch.cat([reads, F.relu(features)], 1)
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        x = self.bottom(torch.cat([x, global_summary(x)], 1))
        # every level is twice the one below it (check_levels), up to the condition's own size
        for block, skip in zip(self.decoder, reversed(skips[:-1]), strict=True):
            x = block(torch.cat([doubled(x), skip], 1))
        logit = doubled(self.top(torch.cat([doubled(x), reads], 1)))
        return {"garment": rendered, "alpha_logit": logit, "alpha": torch.sigmoid(logit)}


class ServedSilhouetteGenerator(nn.Module):
    """uint8 image [N,H,W,3] + mask [N,H,W,1] -> uint8 garment [N,H,W,3] (the U-Net's own) and
    alpha [N,H,W,1] (255 = garment), all in-graph."""

    def __init__(self, generator: SilhouetteGenerator, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.generator, self.dtype = generator, dtype

    def forward(self, image: torch.Tensor, mask: torch.Tensor):
        condition = generator_input(photo_to_unit(image, self.dtype), mask_to_weight(mask, self.dtype))
        out = self.generator(condition)
        return unit_to_uint8(out["garment"]), weight_to_uint8(out["alpha"])
