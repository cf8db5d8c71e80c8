"""The warping generator: it moves the photo's own pixels instead of drawing new ones.

A U-Net regenerates every pixel from a bottleneck and blurs whatever its skip connections
do not line up (prints, logos, stripes): the garment on the body and the flat garment are
not aligned. This network inverts the appearance-flow idea of try-on (PF-AFN, GP-VTON) for
try-off. From the fitted photo and its garment mask it predicts, in the catalog frame:

- a sampling grid into the photo, coarse to fine: an identity grid plus an offset at 1/32
  of the input size, refined at every finer level. Each decoder level sees the encoder's
  features *warped by the current grid* (skip connections that are aligned with the
  catalog frame, which plain U-Net skips are not) and adds a residual offset;
- a composition mask ``m``: where the sampled photo is used, and where
- a rendered image takes over (what the photo does not show: the inside of the collar,
  parts under arms or hair);
- the garment's silhouette ``alpha`` in the catalog frame (transparent backgrounds).

``garment = alpha * (m * sample(photo, grid) + (1 - m) * rendered) + (1 - alpha) * white``.

The grid is a smooth field, so it can be computed at the model size and upsampled to the
photo crop's own resolution: ``ServedFlowGenerator`` samples a 1024x768 crop directly,
inside the exported graph, and the texture keeps the photo's real resolution.
Coordinates follow ``grid_sample(align_corners=False)`` everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..runtime.settings import unknown_key
from .distributed import to_device
from .networks import folded_unet, generator_input, mask_to_weight, photo_to_unit, unit_to_uint8, weight_to_uint8

ALIGN_CORNERS = False  # one convention for every grid_sample and interpolate here


class GridPyramid:
    """What the warping generator's, the try-on network's and the silhouette head's settings
    share: ``levels`` levels over encoders ``ngf`` wide at 1/2 of what they read (mixed into
    their dataclasses)."""

    height: int
    width: int
    ngf: int
    levels: int

    def check_levels(self, reads_at: int = 1) -> None:
        """``reads_at``: the network reads its input at 1/reads_at of its size (a power of 2)."""
        if not 2 <= self.levels <= 7:
            raise ValueError(f"a warping network has 2-7 grid levels (train --depth), got {self.levels}")
        step = 2**self.levels * reads_at
        if (self.height | self.width) % step:  # (a power of 2 divides both where it divides their OR)
            fits = [n for n in range(2, self.levels) if not (self.height | self.width) % (2**n * reads_at)]
            raise ValueError(
                f"{self.levels} levels halve the input {step.bit_length() - 1} times, so height and width must be "
                f"multiples of {step}; {self.height}x{self.width} is not: give such a size"
                + (f" or --depth {fits[-1]}" if fits else "")
            )

    @property
    def size(self) -> tuple[int, int]:
        return self.height, self.width

    @property
    def widths(self) -> list[int]:
        """Channels of the encoder at 1/2, 1/4, ... 1/2**levels of what it reads."""
        return [self.ngf * min(2**level, 4) for level in range(self.levels)]

    @property
    def decoder_widths(self) -> list[int]:
        """Channels of the decoder at the same levels: half the encoder's. The decoder runs at
        the fine levels, where convolutions cost the most, so it is kept lean."""
        return [max(8, width // 2) for width in self.widths]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        problem = unknown_key(data, cls)
        if problem is not None:
            raise ValueError(f"unknown network setting {problem}")
        return cls(**data)


@dataclass(frozen=True)
class FlowConfig(GridPyramid):
    """Shape of a warping generator; stored in every checkpoint and exported model."""

    task: str = "generator"
    height: int = 256
    width: int = 192
    ngf: int = 32  # encoder channels at 1/2 of the input; 2x at 1/4, 4x from 1/8 on
    levels: int = 5  # the coarsest grid is at 1/2**levels of the input
    top: int = 12  # decoder channels at the full model size (heads for mask, alpha, rendered)
    residual_px: float = 0.0  # bound of each finer level's residual offset, in its own pixels (0: none)
    renderer_ngf: int = 0  # >0: a pix2pix U-Net (this width) renders the garment; the grid aligns the photo to it
    renderer_depth: int = 6
    target_ngf: int = 16  # with a renderer: channels of the encoder over its rendered garment

    def __post_init__(self) -> None:
        if self.task != "generator":
            raise ValueError(f"the warping network is a generator, not a {self.task!r}")
        if self.ngf < 2 or self.top < 1:
            raise ValueError(f"ngf must be >= 2 and top >= 1, got {self.ngf} and {self.top}")
        if self.renderer_ngf < 0 or self.target_ngf < 1 or self.residual_px < 0:
            raise ValueError("renderer_ngf and residual_px must be >= 0, target_ngf >= 1")
        self.check_levels()

    @property
    def target_widths(self) -> list[int]:
        """Channels of the encoder over the rendered garment (with a renderer), per level."""
        return [self.target_ngf * min(2**level, 4) for level in range(self.levels)]


def identity_axes(height, width, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The identity grid's x of each column, [1, 1, 1, W], and y of each row, [1, 1, H, 1]
    ((x, y) in [-1, 1], float32): the grid is the two spread over the plane."""
    ys = (torch.arange(height, device=like.device, dtype=torch.float32) * 2 + 1) / height - 1
    xs = (torch.arange(width, device=like.device, dtype=torch.float32) * 2 + 1) / width - 1
    return xs.view(1, 1, 1, -1), ys.view(1, 1, -1, 1)


def identity_grid(n: int, height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """The grid that samples every pixel from itself: [n, 2, H, W], (x, y) in [-1, 1], float32."""
    xs, ys = identity_axes(height, width, like)
    return torch.cat([xs.expand(n, 1, height, width), ys.expand(n, 1, height, width)], 1)


def plus_identity(offsets: torch.Tensor, size=None) -> torch.Tensor:
    """``offsets`` [N, 2, H, W] from the identity grid of their size (``size``: (H, W) where it is
    not the model's, fixed one, e.g. a photo's) back to a grid. Added axis by axis, as
    broadcasts: an exported graph stores two axes, not a plane, and reads no batch size for them."""
    height, width = size if size is not None else (int(offsets.shape[-2]), int(offsets.shape[-1]))
    xs, ys = identity_axes(height, width, offsets)
    return torch.cat([offsets[:, :1] + xs, offsets[:, 1:] + ys], 1)


def minus_identity(grid: torch.Tensor) -> torch.Tensor:
    """A model-size ``grid`` [N, 2, h, w] as offsets from the identity (``plus_identity`` undone)."""
    xs, ys = identity_axes(int(grid.shape[-2]), int(grid.shape[-1]), grid)
    return torch.cat([grid[:, :1] - xs, grid[:, 1:] - ys], 1)


def warp(source: torch.Tensor, grid: torch.Tensor, padding: str = "border") -> torch.Tensor:
    """Sample ``source`` [N, C, h, w] at ``grid`` [N, 2, H, W] (x, y in [-1, 1]): [N, C, H, W].

    Sampled in float32 whatever ``source`` is (and returned as it was): an fp16 graph's
    ``GridSample`` would run on the CPU under onnxruntime's CUDA provider, whose kernel takes
    float32 alone (and a CUDA graph refuses a model with a node off the GPU). Under autocast
    PyTorch samples in float32 anyway."""
    options = dict(mode="bilinear", padding_mode=padding, align_corners=ALIGN_CORNERS)
    return F.grid_sample(source.float(), grid.float().permute(0, 2, 3, 1), **options).to(source.dtype)


def resize(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=ALIGN_CORNERS)


def resize_grid(grid: torch.Tensor, size) -> torch.Tensor:
    """A (model-size) sampling grid at another size: its offsets from the identity are resized,
    then added to the identity of the new size. (Resizing the grid itself would clamp at the
    frame's edge and pull the border half a pixel inwards at every level.)"""
    return plus_identity(resize(minus_identity(grid), size), size)


def grid_doubled(grid: torch.Tensor) -> torch.Tensor:
    """``resize_grid`` to twice the size of a model-size level, by a factor (see ``doubled``)."""
    return plus_identity(doubled(minus_identity(grid)))


def doubled(x: torch.Tensor) -> torch.Tensor:
    """``x`` at twice its size, for a model-size level whose size is fixed (``check_levels``).

    By a factor, not to a size read off a tensor: an exported graph then computes no shape for
    it (onnxruntime runs shape computations on the CPU, and a CUDA graph refuses a model with any
    node off the GPU). The same values as ``resize`` to twice the size."""
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=ALIGN_CORNERS)


def global_summary(x: torch.Tensor) -> torch.Tensor:
    """Each channel's mean over the plane, at every position of ``x``'s plane (a model-size
    level): broadcast over a plane of that size as numbers, so that an exported graph computes no
    shape for it (an ``Add`` of a constant)."""
    plane = torch.zeros((1, 1, int(x.shape[-2]), int(x.shape[-1])), dtype=x.dtype, device=x.device)
    return x.mean(dim=(2, 3), keepdim=True) + plane


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(0.2),
    )


def _zero_head(cin: int, cout: int) -> nn.Conv2d:
    """A 3x3 output convolution that starts at zero: the flow starts as the identity."""
    head = nn.Conv2d(cin, cout, 3, 1, 1)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return head


class FlowLevel(nn.Module):
    """One decoder level: bring the coarser state up, look at the features the current grid
    samples from the photo's encoder (a skip connection aligned with the catalog frame) and,
    with a renderer, at the rendered garment's features there, and refine the grid by a
    residual offset (bounded to ``bound_px`` of this level's pixels, if given)."""

    def __init__(self, coarse: int, skip: int, width: int, target: int = 0, bound_px: float = 0.0):
        super().__init__()
        # 1x1 at the coarse size, then upsampled: cheaper than a convolution after upsampling.
        self.up = nn.Sequential(nn.Conv2d(coarse, width, 1, bias=False), nn.BatchNorm2d(width), nn.LeakyReLU(0.2))
        self.fuse = nn.Sequential(_conv(width + skip + target, width), _conv(width, width))
        self.flow = _zero_head(width, 2)
        self.bound_px = bound_px

    def forward(self, state: torch.Tensor, grid: torch.Tensor, skip: torch.Tensor, target=None):
        # each level twice the coarser one (``check_levels``): by a factor, an exported graph computes no size
        state = doubled(self.up(state))
        grid = grid_doubled(grid)  # the grid stays float32 when the network runs in fp16
        parts = [state, warp(skip, grid)] + ([target] if target is not None else [])
        state = self.fuse(torch.cat(parts, 1))
        residual = self.flow(state).float()
        if self.bound_px:
            h, w = int(skip.shape[-2]), int(skip.shape[-1])
            scale = to_device([2.0 * self.bound_px / w, 2.0 * self.bound_px / h], residual.device)
            residual = torch.tanh(residual) * scale.view(1, 2, 1, 1)
        return state, grid + residual


def _encoder(in_channels: int, widths: list[int]) -> nn.ModuleList:
    blocks, previous = nn.ModuleList(), in_channels
    for width in widths:
        blocks.append(nn.Sequential(_conv(previous, width, stride=2), _conv(width, width)))
        previous = width
    return blocks


class FlowGenerator(nn.Module):
    """Photo + mask (the U-Net's 4-channel condition) -> grid, composition mask, rendered
    image and silhouette at the model size; ``forward`` composes the garment.

    With a renderer (``renderer_ngf``), a pix2pix U-Net renders the garment first (its
    shape and colours, blurred where it cannot align a print); a second encoder reads that
    rendering, and each grid level matches the photo's features to it: the grid becomes a
    correspondence between the photo and a rough catalog image, as in try-on's appearance
    flow. The garment is the rendering, with the photo's own pixels composed in where the
    grid found them (``compose``). The renderer can start from a trained U-Net and stay frozen.
    """

    def __init__(self, config: FlowConfig):
        super().__init__()
        self.config = config
        self.in_channels, self.out_channels = 4, 3
        widths, decoder = config.widths, config.decoder_widths
        self.encoder = _encoder(self.in_channels, widths)
        self.renderer = None
        targets = [0] * config.levels
        if config.renderer_ngf:
            self.renderer = folded_unet(config.height, config.width, config.renderer_ngf, config.renderer_depth)
            targets = config.target_widths
            self.target_encoder = _encoder(self.out_channels, targets)
        deepest = widths[-1]
        # At the coarsest level a global summary joins every position: the first grid can place the garment anywhere.
        self.bottom = nn.Sequential(_conv(2 * deepest + targets[-1], decoder[-1]), _conv(decoder[-1], decoder[-1]))
        self.bottom_flow = _zero_head(decoder[-1], 2)
        self.levels = nn.ModuleList(
            FlowLevel(decoder[level + 1], widths[level], decoder[level], targets[level], config.residual_px)
            for level in range(config.levels - 2, -1, -1)
        )
        # The full model size: the warped condition itself is the skip (and the rendering the target).
        rendered = self.out_channels if self.renderer is not None else 0
        self.top = FlowLevel(decoder[0], self.in_channels, config.top, rendered, config.residual_px)
        # composition mask logit, silhouette logit, rendered RGB (the last unused with a renderer)
        self.heads = nn.Conv2d(config.top, 5, 3, 1, 1)
        nn.init.normal_(self.heads.weight, 0.0, 0.02)
        with torch.no_grad():
            # without a renderer: start by using the photo; with one, by trusting the rendering
            start = -2.0 if self.renderer is not None else 2.0
            self.heads.bias.copy_(torch.tensor([start, 0.0, 0.0, 0.0, 0.0]))

    def render(self, condition: torch.Tensor) -> torch.Tensor | None:
        if self.renderer is None:
            return None
        frozen = not any(p.requires_grad for p in self.renderer.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            return self.renderer(condition)

    def predict(self, condition: torch.Tensor) -> dict[str, torch.Tensor]:
        """The network's fields at the model size (grids coarse to fine, logits, rendered)."""
        rendered = self.render(condition)
        features = []
        x = condition
        for block in self.encoder:
            x = block(x)
            features.append(x)
        targets: list[torch.Tensor | None] = [None] * len(features)
        if rendered is not None:
            t, targets = rendered, []
            for block in self.target_encoder:
                t = block(t)
                targets.append(t)
        state = self.bottom(torch.cat([x, global_summary(x)] + ([targets[-1]] if rendered is not None else []), 1))
        state, grids = coarse_to_fine(self, state, features, targets, condition, rendered)
        grid = grids[-1]
        heads = self.heads(state)
        return {
            "grids": grids,
            "grid": grid,
            "mask_logit": heads[:, 0:1],
            "alpha_logit": heads[:, 1:2],
            "rendered": rendered if rendered is not None else torch.tanh(heads[:, 2:5]),
        }

    def forward(self, condition: torch.Tensor) -> dict[str, torch.Tensor]:
        """The fields and the garment composed from them, at the model size: ``garment`` in
        [-1, 1] on white, ``alpha``, ``mask``, ``sampled`` (see ``compose``) and the fields."""
        fields = self.predict(condition)
        on_white = self.renderer is not None
        return {**fields, **compose(fields, condition[:, :3], resize_fields=False, rendered_on_white=on_white)}


def coarse_to_fine(
    network: nn.Module,
    state: torch.Tensor,
    skips: list[torch.Tensor],
    targets: list[torch.Tensor | None],
    source: torch.Tensor,
    target: torch.Tensor | None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The grid pyramid of a warping network (``bottom_flow``, ``levels``, ``top``): the
    identity plus the bottom offset at the coarsest level, each finer ``FlowLevel`` fed the
    encoder features ``skips`` (and ``targets``) of its own level, then the full-size level
    over ``source`` (and ``target``). Returns the full-size state and the grids, coarse to fine."""
    grid = plus_identity(network.bottom_flow(state).float())
    grids = [grid]
    for level, skip, level_target in zip(network.levels, reversed(skips[:-1]), reversed(targets[:-1]), strict=True):
        state, grid = level(state, grid, skip, level_target)
        grids.append(grid)
    state, grid = network.top(state, grid, source, target)
    grids.append(grid)
    return state, grids


def compose(
    fields: dict[str, torch.Tensor], source: torch.Tensor, resize_fields: bool = True, rendered_on_white: bool = False
) -> dict[str, torch.Tensor]:
    """The garment from the network's fields and the masked photo ``source``.

    With ``resize_fields`` the fields are resized to the source's size first, so the same
    code composes at the model size (training, ``resize_fields=False``) and at the photo
    crop's resolution (served: always resized, so the exported graph takes any size).
    """
    size = source.shape[-2:]

    def at_size(x: torch.Tensor) -> torch.Tensor:
        return resize(x, size) if resize_fields else x

    grid = resize_grid(fields["grid"], size) if resize_fields else fields["grid"]
    sampled = warp(source, grid)
    m = torch.sigmoid(at_size(fields["mask_logit"]))
    alpha = torch.sigmoid(at_size(fields["alpha_logit"]))
    rendered = at_size(fields["rendered"])
    if rendered_on_white:
        # A renderer's garment is already on white: the photo goes in where the grid found the
        # garment (m) inside the silhouette; a wrong silhouette cannot cut the rendering's shape.
        used = m * alpha
        garment = used * sampled + (1 - used) * rendered
    else:
        garment = alpha * (m * sampled + (1 - m) * rendered) + (1 - alpha)  # white is 1 in [-1, 1]
    return {"garment": garment, "alpha": alpha, "sampled": sampled, "mask": m}


class ServedFlowGenerator(nn.Module):
    """uint8 image + mask [N, h, w, *] (model size) and the same window of the photo at any
    resolution, ``photo`` [N, H, W, 3] -> uint8 garment [N, H, W, 3] and alpha [N, H, W, 1].

    The fields are predicted at the model size and applied to ``photo`` at its own size:
    the garment keeps the photo's pixels. ``photo`` equal to ``image`` gives the model-size
    output, exactly the training network's.
    """

    def __init__(self, generator: FlowGenerator, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.generator, self.dtype = generator, dtype

    def forward(self, image: torch.Tensor, mask: torch.Tensor, photo: torch.Tensor):
        weight = mask_to_weight(mask, self.dtype)
        condition = generator_input(photo_to_unit(image, self.dtype), weight)
        # The network may run in fp16; the grid and the sampling stay fp32, where a
        # coordinate still resolves a pixel of a 1024-pixel photo.
        fields = {k: v.float() for k, v in self.generator.predict(condition).items() if k != "grids"}
        big = photo_to_unit(photo)
        big_weight = resize(weight.float(), big.shape[-2:])
        masked = big * big_weight + (1.0 - big_weight)  # as generator_input paints the model-size photo
        out = compose(fields, masked, rendered_on_white=self.generator.renderer is not None)
        return unit_to_uint8(out["garment"]), weight_to_uint8(out["alpha"])
