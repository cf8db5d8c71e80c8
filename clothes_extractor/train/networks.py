"""The networks: pix2pix U-Net (generator and segmenter) and the 70x70 PatchGAN.

The skip block and the discriminator are the pix2pix reference (Isola et al. 2017,
``networks.py``); its if/elif factories became registries and the depth is free, so
256x192 (depth <= 6) and 256x256 (depth <= 8) inputs both work. Optional scSE attention
(Roy et al. 2018) recalibrates each decoder level, as the seed project used.

Tasks:
- ``generator``: 4 channels in (the masked photo and the mask, see ``generator_input``),
  RGB in [-1, 1] out (tanh).
- ``segmenter``: the photo in [-1, 1] in, one channel of garment logits out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import nn

from ..runtime.settings import unknown_key
from ..tasks import TASKS, UPPER_CLASS, task_of
from .alone_head import AloneHead

NORM_LAYERS: dict[str, Callable[[int], nn.Module]] = {
    "batch": lambda channels: nn.BatchNorm2d(channels),
    "instance": lambda channels: nn.InstanceNorm2d(channels, affine=False, track_running_stats=False),
    "none": lambda channels: nn.Identity(),
}
ATTENTION = ("none", "scse")


@dataclass(frozen=True)
class UNetConfig:
    """Shape of a U-Net; stored in every checkpoint and (as a summary) every model."""

    task: str = "generator"
    height: int = 256
    width: int = 192
    ngf: int = 64
    depth: int = 6
    norm: str = "batch"
    dropout: bool = True
    attention: str = "none"
    classes: int = 0  # segmenter: 0 = one garment logit; N = a human parser's N class logits
    alone: bool = (
        False  # a parser: with a head that tells a garment shown alone from a worn one (``alone_head.AloneHead``)
    )

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.norm not in NORM_LAYERS:
            raise ValueError(f"norm must be one of {', '.join(NORM_LAYERS)}, got {self.norm!r}")
        if self.attention not in ATTENTION:
            raise ValueError(f"attention must be one of {', '.join(ATTENTION)}, got {self.attention!r}")
        if self.depth < 2:
            raise ValueError(f"depth must be >= 2, got {self.depth}")
        if self.ngf < 1:
            raise ValueError(f"ngf must be >= 1, got {self.ngf}")
        if self.classes and (self.task != "segmenter" or self.classes < 2):
            raise ValueError(f"classes: a segmenter's parser classes (>= 2), got {self.classes} for a {self.task}")
        if self.alone and not self.classes:
            raise ValueError("alone: the head belongs to a human parser (classes)")
        step = 2**self.depth
        if self.height % step or self.width % step:
            fits = max((d for d in range(2, self.depth) if not (self.height % 2**d or self.width % 2**d)), default=0)
            near = f"{max(step, round(self.height / step) * step)}x{max(step, round(self.width / step) * step)}"
            raise ValueError(
                f"a depth-{self.depth} U-Net halves the input {self.depth} times, so height and "
                f"width must be multiples of {step}; {self.height}x{self.width} is not: give a size such as {near}"
                + (f", or --depth {fits} (the most that {self.height}x{self.width} takes)" if fits else "")
            )

    @property
    def size(self) -> tuple[int, int]:
        return self.height, self.width

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "UNetConfig":
        problem = unknown_key(data, cls)
        if problem is not None:
            raise ValueError(f"unknown network setting {problem}")
        return cls(**data)


def generator_input(photo: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The generator's 4-channel input from a photo in [-1, 1] and a mask in [0, 1] (NCHW).

    Everything but the garment is painted white, the catalog background, so the network
    never sees the person or the scene; the mask goes along as a fourth channel.
    """
    masked = photo * mask + (1.0 - mask)
    return torch.cat([masked, mask * 2.0 - 1.0], dim=1)


def photo_to_unit(image: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 [N, H, W, C] -> float [N, C, H, W] in [-1, 1]."""
    return image.permute(0, 3, 1, 2).to(dtype) / 127.5 - 1.0


def mask_to_weight(mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 mask [N, H, W, 1] -> float [N, 1, H, W] in [0, 1]."""
    return mask.permute(0, 3, 1, 2).to(dtype) / 255.0


def unit_to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float [N, C, H, W] in [-1, 1] -> uint8 [N, H, W, C], rounded as the served model does."""
    return ((x + 1.0) * 127.5).round().clamp(0.0, 255.0).to(torch.uint8).permute(0, 2, 3, 1)


def weight_to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float [N, 1, H, W] in [0, 1] -> uint8 [N, H, W, 1]."""
    return (x * 255.0).round().clamp(0.0, 255.0).to(torch.uint8).permute(0, 2, 3, 1)


class SCSE(nn.Module):
    """Concurrent spatial and channel squeeze & excitation (Roy et al. 2018)."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.channel = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )
        self.spatial = nn.Sequential(nn.Conv2d(channels, 1, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.channel(x) + x * self.spatial(x)


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
        attention: bool = False,
        final: str = "tanh",
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
            layers = [downconv, submodule, uprelu, upconv] + ([nn.Tanh()] if final == "tanh" else [])
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
            layers = [downrelu, downconv, uprelu, upconv, make_norm(outer_nc)]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
            layers = [downrelu, downconv, make_norm(inner_nc), submodule, uprelu, upconv, make_norm(outer_nc)]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        if attention and not outermost:
            layers.append(SCSE(outer_nc))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UNet(nn.Module):
    """pix2pix U-Net: widths ngf, 2ngf, 4ngf, then 8ngf for every deeper level."""

    ADDED_BY = {"alone": ("alone_head.",)}
    LEFT_OUT = ("alone",)  # a run without the head starts from a file's parser alone (checkpoint.dropped_settings)

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        described = task_of(config.task)
        self.in_channels, self.out_channels, final = described.in_channels, described.out_channels, described.activation
        if config.classes:
            self.out_channels = config.classes
        attention = config.attention == "scse"
        # Channels after each down-sampling: the level-L block maps widths[L-1] <-> widths[L].
        widths = [config.ngf * min(2**level, 8) for level in range(config.depth)]
        last = config.depth - 1
        block = UnetSkipConnectionBlock(
            widths[last - 1], widths[last], innermost=True, norm=config.norm, attention=attention
        )
        for level in range(last - 1, 0, -1):
            # As in pix2pix: dropout in the repeated 8ngf levels between innermost and 4ngf.
            repeated = widths[level - 1] == widths[level] == config.ngf * 8
            block = UnetSkipConnectionBlock(
                widths[level - 1],
                widths[level],
                submodule=block,
                norm=config.norm,
                use_dropout=config.dropout and repeated,
                attention=attention,
            )
        self.model = UnetSkipConnectionBlock(
            self.out_channels,
            widths[0],
            input_nc=self.in_channels,
            submodule=block,
            outermost=True,
            norm=config.norm,
            final=final,
        )
        if config.alone:
            self.alone_head = AloneHead(widths[-2], widths[-1], config.classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def parse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A parser with an ``alone`` head: its class logits and its pooled deepest levels
        (``AloneHead.pooled``), which the head reads beside the class shares."""
        taps: list[torch.Tensor] = []
        handles = [module.register_forward_hook(lambda _m, _i, out: taps.append(out)) for module in self._taps()]
        try:
            logits = self.model(x)
        finally:
            for handle in handles:
                handle.remove()
        return logits, AloneHead.pooled(taps[0], taps[1])

    def _taps(self) -> tuple[nn.Module, nn.Module]:
        """The two deepest levels' down-sampled features, normalised: the module after the
        second-deepest level's down-convolution (its BatchNorm, or what folding left there) and
        the innermost down-convolution (no normalisation follows it), in the order they run."""
        blocks = []
        block = self.model
        while True:
            inner = [m for m in block.model if isinstance(m, UnetSkipConnectionBlock)]
            if not inner:
                break
            block = inner[0]
            blocks.append(block)
        return blocks[-2].model[2], blocks[-1].model[1]


class PatchDiscriminator(nn.Module):
    """The 70x70 PatchGAN (3 layers): one real/fake logit per overlapping 70x70 patch.

    Conditioned on the generator's input: it sees ``cat([condition, image])``.
    """

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3, norm: str = "batch"):
        super().__init__()
        make_norm = NORM_LAYERS[norm]
        use_bias = norm != "batch"
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=use_bias),
                make_norm(ndf * mult),
                nn.LeakyReLU(0.2),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, condition: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.model(torch.cat([condition, image], 1))

    def features(self, condition: torch.Tensor, image: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(the activations after each LeakyReLU, the logits): feature matching compares the first."""
        x = torch.cat([condition, image], 1)
        found = []
        for layer in self.model:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                found.append(x)
        return found, x


def conv_bn_pairs(module: nn.Module, prefix: str = ""):
    """(convolution, BatchNorm) names of each BatchNorm2d that directly follows a Conv2d or
    ConvTranspose2d in an ``nn.Sequential``: what ``export`` folds, and ``--init`` from a served
    model unfolds."""
    for name, child in module.named_children():
        yield from conv_bn_pairs(child, f"{prefix}{name}.")
    if isinstance(module, nn.Sequential):
        layers = list(module.named_children())
        for (conv_name, conv), (norm_name, norm) in zip(layers, layers[1:], strict=False):
            if isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(norm, nn.BatchNorm2d):
                yield f"{prefix}{conv_name}", f"{prefix}{norm_name}"


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """pix2pix's 'normal' init: N(0, 0.02) convolutions, N(1, 0.02) BatchNorm scales."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)


def folded_unet(height: int, width: int, ngf: int, depth: int, attention: str = "none") -> UNet:
    """A pix2pix U-Net generator as its served file holds it (BatchNorm folded into the
    convolutions: no normalisation, no dropout): what the warping generator and the
    silhouette head render with, and what ``renderer.unet_from_onnx`` reads back."""
    config = UNetConfig(
        task="generator", height=height, width=width, ngf=ngf, depth=depth, norm="none", dropout=False,
        attention=attention,
    )  # fmt: skip
    return UNet(config)


class ServedGenerator(nn.Module):
    """uint8 image [N,H,W,3] + uint8 mask [N,H,W,1] -> uint8 garment [N,H,W,3], all in-graph.

    ``dtype`` is the precision the network computes in (float16 for fp16 exports).
    """

    def __init__(self, generator: nn.Module, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.generator, self.dtype = generator, dtype

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        condition = generator_input(photo_to_unit(image, self.dtype), mask_to_weight(mask, self.dtype))
        return unit_to_uint8(self.generator(condition))


class ServedSegmenter(nn.Module):
    """uint8 image [N,H,W,3] -> uint8 garment mask [N,H,W,1] (probability x 255), all in-graph.

    A parser (``classes``) also gives ``labels`` [N,H,W,1], the class of each pixel; its
    garment mask is the softmax probability of the upper-clothes class. One with an ``alone``
    head also gives ``alone`` [N,1,1,1], the head's probability x 255.
    """

    def __init__(self, segmenter: nn.Module, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.segmenter, self.dtype = segmenter, dtype
        if segmenter.config.alone:  # in fp32 in any precision: its standardisation's scales overflow fp16
            segmenter.alone_head.float()

    def forward(self, image: torch.Tensor):
        alone = self.segmenter.config.alone
        if alone:
            logits, pooled = self.segmenter.parse(photo_to_unit(image, self.dtype))
        else:
            logits = self.segmenter(photo_to_unit(image, self.dtype))
        if not self.segmenter.config.classes:
            return weight_to_uint8(torch.sigmoid(logits))
        # The softmax on the channels-last scores: onnxruntime's softmax over the channel axis
        # of NCHW took a third of the parser's time on the CPU (1.2x faster whole, same bytes).
        probabilities = torch.softmax(logits.float().permute(0, 2, 3, 1), dim=-1)
        probability = probabilities[..., UPPER_CLASS : UPPER_CLASS + 1]
        labels = logits.argmax(dim=1, keepdim=True).to(torch.uint8).permute(0, 2, 3, 1)
        mask = (probability * 255.0).round().clamp(0.0, 255.0).to(torch.uint8)
        if not alone:
            return mask, labels
        features = AloneHead.features(pooled, probabilities.mean((1, 2)))
        shown_alone = torch.sigmoid(self.segmenter.alone_head.classify(features)).reshape(-1, 1, 1, 1)
        return mask, labels, (shown_alone * 255.0).round().clamp(0.0, 255.0).to(torch.uint8)


SERVED = {"generator": ServedGenerator, "segmenter": ServedSegmenter}
