"""The pix2pix U-Net generator (Isola et al. 2017), sized by width ``ngf`` and ``depth``.

The skip block is the reference implementation's ``UnetSkipConnectionBlock``; the
factories became a registry and the depth is free, so 256x192 (depth <= 6) and 256x256
(depth <= 8) inputs both work. Input: 4 channels, the masked photo in [-1, 1] and the mask
in [-1, 1] (see ``generator_input``); output: RGB in [-1, 1] (tanh).
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import nn

NORM_LAYERS: dict[str, Callable[[int], nn.Module]] = {
    "batch": lambda channels: nn.BatchNorm2d(channels),
    "instance": lambda channels: nn.InstanceNorm2d(channels, affine=False, track_running_stats=False),
    "none": lambda channels: nn.Identity(),
}


@dataclass(frozen=True)
class GeneratorConfig:
    """Shape of a generator; stored in every checkpoint and (as a summary) every model."""

    height: int = 256
    width: int = 192
    ngf: int = 64
    depth: int = 6
    norm: str = "batch"
    dropout: bool = True

    def __post_init__(self) -> None:
        if self.norm not in NORM_LAYERS:
            raise ValueError(f"norm must be one of {', '.join(NORM_LAYERS)}, got {self.norm!r}")
        if self.depth < 2:
            raise ValueError(f"depth must be >= 2, got {self.depth}")
        if self.ngf < 1:
            raise ValueError(f"ngf must be >= 1, got {self.ngf}")
        step = 2**self.depth
        if self.height % step or self.width % step:
            raise ValueError(
                f"a depth-{self.depth} U-Net halves the input {self.depth} times, so height and "
                f"width must be multiples of {step}; {self.height}x{self.width} is not "
                f"(use a smaller depth, e.g. 6 for 256x192, 8 for 256x256)"
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "GeneratorConfig":
        names = [f.name for f in dataclasses.fields(cls)]
        for key in data:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(f"unknown generator setting {key!r}{hint}")
        return cls(**data)


def generator_input(photo: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The network's 4-channel input from a photo in [-1, 1] and a mask in [0, 1] (NCHW).

    Everything but the garment is painted white, the catalog background, so the network
    never sees the person or the scene; the mask goes along as a fourth channel.
    """
    masked = photo * mask + (1.0 - mask)
    return torch.cat([masked, mask * 2.0 - 1.0], dim=1)


class UnetSkipConnectionBlock(nn.Module):
    """One level of the U-Net: down-sample, the inner levels, up-sample, concat the skip."""

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        input_nc: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        norm: str = "batch",
        use_dropout: bool = False,
    ):
        super().__init__()
        self.outermost = outermost
        make_norm = NORM_LAYERS[norm]
        # BatchNorm has its own shift, so the conv before it needs no bias.
        use_bias = norm != "batch"
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
        downrelu = nn.LeakyReLU(0.2)
        uprelu = nn.ReLU()
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            layers = [downconv, submodule, uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
            layers = [downrelu, downconv, uprelu, upconv, make_norm(outer_nc)]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
            layers = [downrelu, downconv, make_norm(inner_nc), submodule, uprelu, upconv, make_norm(outer_nc)]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UNetGenerator(nn.Module):
    """pix2pix U-Net: widths ngf, 2ngf, 4ngf, then 8ngf for every deeper level."""

    in_channels = 4
    out_channels = 3

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config
        # Channels after each down-sampling: the level-L block maps widths[L-1] <-> widths[L].
        widths = [config.ngf * min(2**level, 8) for level in range(config.depth)]
        last = config.depth - 1
        block = UnetSkipConnectionBlock(widths[last - 1], widths[last], innermost=True, norm=config.norm)
        for level in range(last - 1, 0, -1):
            # As in pix2pix: dropout in the repeated 8ngf levels between innermost and 4ngf.
            repeated = widths[level - 1] == widths[level] == config.ngf * 8
            block = UnetSkipConnectionBlock(
                widths[level - 1],
                widths[level],
                submodule=block,
                norm=config.norm,
                use_dropout=config.dropout and repeated,
            )
        self.model = UnetSkipConnectionBlock(
            self.out_channels,
            widths[0],
            input_nc=self.in_channels,
            submodule=block,
            outermost=True,
            norm=config.norm,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
