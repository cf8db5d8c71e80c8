"""The try-on network: the warping generator's modules, turned around.

Try-off moves the photo's pixels into the catalog frame; try-on moves the catalog
garment's pixels onto the person. The same pieces do it (``flow``): an encoder per side,
coarse-to-fine grid levels that sample the garment's features where the current grid points
and compare them with the person's (``FlowLevel``), bounded residual offsets, a composition
mask between the warped garment and a rendered image (skin, arms, what the garment does not
cover), and the same losses (``losses``). The person is painted grey in the region to dress
anew (the parser's upper clothes and arms) inside the graph; outside it the output is the
person's own pixels.

The catalog garment is lit as a studio lights it; the person may not be. With ``relight``
(``train --relight``) a gain on each colour channel of the warped garment, one per photo,
read from both sides' deepest features and from the person photo's own colours
(``light_statistics``), puts the garment in the person's light (a stop darker, a warm lamp:
``train --lighting`` shows it such photos). Its layers start at zero, a gain of 1: a network
without them, given them, computes what it computed (``ADDED_BY``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .flow import (
    FlowLevel,
    GridPyramid,
    _encoder,
    _zero_head,
    coarse_to_fine,
    global_summary,
    resize,
    resize_grid,
    warp,
)
from .networks import mask_to_weight, photo_to_unit, unit_to_uint8

GREY = 0.0  # the painted region, in [-1, 1]
RELIGHT_RANGE = 1.5  # the relit garment's gains lie within exp(+-1.5): x0.22 to x4.5
# Adam moves a weight by about its learning rate a step; the log-colours, scaled up, let the
# colour layer reach a gain that follows the light (about 0.7 per unit of log-colour) in a run
# of a few thousand steps
LIGHT_STATISTICS_SCALE = 4.0
LOG_FLOOR = 1.0 / 64  # log(colour + this): a black pixel does not weigh as minus infinity


@dataclass(frozen=True)
class TryOnConfig(GridPyramid):
    task: str = "tryon"
    height: int = 256
    width: int = 192
    ngf: int = 24
    levels: int = 5
    top: int = 12
    residual_px: float = 2.0
    relight: bool = False  # a gain on the warped garment's colour channels, one per photo

    def __post_init__(self) -> None:
        if self.task != "tryon":
            raise ValueError(f"the try-on network serves try-on, not {self.task!r}")
        if self.ngf < 2 or self.top < 1 or self.residual_px < 0:
            raise ValueError("ngf must be >= 2, top >= 1 and residual_px >= 0")
        self.check_levels()


def tryon_inputs(person: torch.Tensor, region: torch.Tensor, garment: torch.Tensor, garment_mask: torch.Tensor):
    """(person side, garment side), 4 channels each, from NCHW tensors in [-1, 1] / [0, 1]:
    the person painted grey in the region, with the region; the garment on white, with its mask."""
    painted = person * (1 - region) + GREY * region
    on_white = garment * garment_mask + (1 - garment_mask)
    return torch.cat([painted, region * 2 - 1], 1), torch.cat([on_white, garment_mask * 2 - 1], 1)


class TryOnGenerator(nn.Module):
    # the layers a setting adds: a file from before the setting, or before it gained a layer
    # (relight_colour, 2026-12-02), lacks them, and they keep their initialisation, where the
    # network computes what it did without them
    ADDED_BY = {"relight": ("relight.", "relight_colour.")}

    def __init__(self, config: TryOnConfig):
        super().__init__()
        self.config = config
        self.in_channels, self.out_channels = 4, 3
        widths = config.widths
        decoder = config.decoder_widths
        self.garment_encoder = _encoder(4, widths)
        self.person_encoder = _encoder(4, widths)
        deepest = widths[-1]
        self.bottom = nn.Sequential(
            nn.Conv2d(3 * deepest, decoder[-1], 3, 1, 1, bias=False), nn.BatchNorm2d(decoder[-1]), nn.LeakyReLU(0.2)
        )
        self.bottom_flow = _zero_head(decoder[-1], 2)
        self.levels = nn.ModuleList(
            FlowLevel(decoder[level + 1], widths[level], decoder[level], widths[level], config.residual_px)
            for level in range(config.levels - 2, -1, -1)
        )
        self.top = FlowLevel(decoder[0], 4, config.top, 4, config.residual_px)
        self.heads = nn.Conv2d(config.top, 4, 3, 1, 1)  # composition mask logit, rendered RGB
        nn.init.normal_(self.heads.weight, 0.0, 0.02)
        nn.init.zeros_(self.heads.bias)
        if config.relight:
            self.relight = nn.Conv2d(2 * deepest, 3, 1)  # log-gains of red, green, blue: 0 to start
            self.relight_colour = nn.Conv2d(6, 3, 1, bias=False)  # from light_statistics
            for weight in (self.relight.weight, self.relight.bias, self.relight_colour.weight):
                nn.init.zeros_(weight)

    def forward(self, person_side: torch.Tensor, garment_side: torch.Tensor) -> dict[str, Any]:
        garments, persons = [], []
        g, p = garment_side, person_side
        for g_block, p_block in zip(self.garment_encoder, self.person_encoder, strict=True):
            g, p = g_block(g), p_block(p)
            garments.append(g)
            persons.append(p)
        pooled_garment = g.mean(dim=(2, 3), keepdim=True)
        state = self.bottom(torch.cat([g, p, global_summary(g)], 1))  # pooled_garment at every position
        state, grids = coarse_to_fine(self, state, garments, persons, garment_side, person_side)
        grid = grids[-1]
        heads = self.heads(state)
        warped = warp(garment_side[:, :3], grid)
        out = {}
        if self.config.relight:
            pooled = torch.cat([pooled_garment, p.mean(dim=(2, 3), keepdim=True)], 1)
            logit = self.relight(pooled) + self.relight_colour(light_statistics(person_side))
            out["gain"] = torch.exp(RELIGHT_RANGE * torch.tanh(logit))
            warped = relit(warped, out["gain"])
        m = torch.sigmoid(heads[:, 0:1])
        rendered = torch.tanh(heads[:, 1:4])
        region = (person_side[:, 3:4] + 1) / 2
        painted = person_side[:, :3]
        image = region * (m * warped + (1 - m) * rendered) + (1 - region) * painted
        return {"image": image, "grids": grids, "grid": grid, "warped": warped, "mask": m, "rendered": rendered, **out}


def light_statistics(person_side: torch.Tensor) -> torch.Tensor:
    """[N, 6, 1, 1]: the person photo's colour outside the region to dress, as the log of its
    geometric mean (a gain on the light adds its log, whatever the photo shows) and the log of
    its mean weighted toward the brightest pixels (a white wall, a white shirt: the colour of
    the light itself), scaled by ``LIGHT_STATISTICS_SCALE``."""
    rgb = (person_side[:, :3] + 1) / 2
    outside = (1 - person_side[:, 3:4]) / 2
    log_rgb = torch.log(rgb + LOG_FLOOR)

    def weighted_mean(x, weight):  # means, not sums: an fp16 graph's sums overflow at 512x384
        return (weight * x).mean((2, 3), keepdim=True) / weight.mean((2, 3), keepdim=True).clamp_min(1e-4)

    geometric = weighted_mean(log_rgb, outside)
    white = weighted_mean(rgb, outside * rgb.mean(1, keepdim=True) ** 4)
    return LIGHT_STATISTICS_SCALE * torch.cat([geometric, torch.log(white + LOG_FLOOR)], 1)


def relit(garment: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """``garment`` ([-1, 1]) with each colour channel's light times ``gain`` ([N, 3, 1, 1])."""
    return (garment + 1) * gain.to(garment.dtype) - 1


class ServedTryOn(nn.Module):
    """uint8 person, region, garment, garment_mask [N, h, w, *] (model size), and the person's
    window and the garment at any resolution, ``photo`` and ``garment_photo`` [N, H, W, 3]
    (the same size) -> uint8 image [N, H, W, 3].

    The grid, the composition mask and the rendered image are predicted at the model size;
    the grid samples ``garment_photo`` at its own size, so the garment's prints, logos and
    stripes reach a 1024x768 photo at that resolution (the rendered part, skin and arms, is
    upsampled). ``photo`` and ``garment_photo`` equal to ``person`` and ``garment`` (the
    default) give the model-size output, exactly the training network's on a region of 0 and
    255, as the parser's is (on a soft edge the photo path blends in the person itself, the
    network its person painted grey).
    """

    def __init__(self, generator: TryOnGenerator, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.generator, self.dtype = generator, dtype

    def forward(self, person, region, garment, garment_mask, photo=None, garment_photo=None):
        weight = mask_to_weight(region, self.dtype)
        garment_weight = mask_to_weight(garment_mask, self.dtype)
        person_side, garment_side = tryon_inputs(
            photo_to_unit(person, self.dtype), weight, photo_to_unit(garment, self.dtype), garment_weight
        )
        out = self.generator(person_side, garment_side)
        if photo is None:
            return unit_to_uint8(out["image"])
        # At the photo's size, in fp32 whatever the network computed in: a grid coordinate
        # still resolves a pixel of a 1024-pixel garment there.
        size = photo.shape[1:3]
        big_garment_weight = resize(garment_weight.float(), size)
        on_white = photo_to_unit(garment_photo) * big_garment_weight + (1 - big_garment_weight)  # as tryon_inputs
        warped = warp(on_white, resize_grid(out["grid"].float(), size))
        if "gain" in out:
            warped = relit(warped, out["gain"].float())
        m, rendered = resize(out["mask"].float(), size), resize(out["rendered"].float(), size)
        big_weight = resize(weight.float(), size)
        # outside the region the person itself (on a binary region, what the network's painted
        # person is there; the upsampled region's soft edge would blend in the painted grey)
        image = big_weight * (m * warped + (1 - m) * rendered) + (1 - big_weight) * photo_to_unit(photo)
        return unit_to_uint8(image)


__all__ = ["ServedTryOn", "TryOnConfig", "TryOnGenerator", "light_statistics", "relit", "tryon_inputs"]
