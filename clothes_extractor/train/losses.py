"""Losses that need no pretrained network: pix2pix's GAN objectives with discriminator
feature matching, SSIM, gradient magnitude similarity, Dice, and the warping generator's flow
and composition terms."""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..eval.metrics import GMSD_T, LUMA_WEIGHTS, PREWITT_X
from .distributed import to_device
from .flow import minus_identity, warp

GAN_MODES = ("lsgan", "vanilla")


class GANLoss(nn.Module):
    """``lsgan``: least squares against 1 (real) / 0 (fake); ``vanilla``: BCE on logits."""

    def __init__(self, mode: str = "lsgan"):
        super().__init__()
        if mode not in GAN_MODES:
            raise ValueError(f"GAN loss must be one of {', '.join(GAN_MODES)}, got {mode!r}")
        self.mode = mode

    def forward(self, prediction: torch.Tensor, real: bool) -> torch.Tensor:
        target = torch.full_like(prediction, 1.0 if real else 0.0)
        if self.mode == "lsgan":
            return F.mse_loss(prediction, target)
        return F.binary_cross_entropy_with_logits(prediction, target)


def feature_matching(fake: list[torch.Tensor], real: list[torch.Tensor]) -> torch.Tensor:
    """Mean L1 between the discriminator's intermediate features of fake and real images
    (pix2pixHD): the generator matches the statistics the discriminator looks at."""
    return sum(F.l1_loss(f, r.detach()) for f, r in zip(fake, real, strict=True)) / len(fake)


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of NCHW batches in [-1, 1], as ``pytorch_msssim`` computes it (the oracle
    that ``eval.metrics`` is tested against, so loss and metric agree).

    SSIM's luminance term is not shift-invariant, so the images are mapped to [0, 1] first,
    as uint8 / 255 is. The variances are differences of nearly equal blurred terms: under
    autocast (fp16 convolutions) or TF32 they drown in rounding error, so autocast is off
    here and a GPU computes in float64.
    """
    from pytorch_msssim import ssim as msssim_ssim

    dtype = torch.float64 if x.is_cuda else torch.float32
    window = ssim_window(x.shape[1], x.device, dtype)
    with torch.autocast(x.device.type, enabled=False):
        value = msssim_ssim((x.to(dtype) + 1) / 2, (y.to(dtype) + 1) / 2, data_range=1.0, win=window)
        return value.float()


@functools.lru_cache(maxsize=16)
def ssim_window(channels: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``pytorch_msssim``'s own window (Gaussian, 11 taps, sigma 1.5, made as it makes it), one
    row per channel, made once where it is used: left to it, it is made on the host at every
    call and its copy to a GPU waits for the GPU (``distributed.to_device``)."""
    coords = torch.arange(11, dtype=torch.float) - 11 // 2
    taps = torch.exp(-(coords**2) / (2 * 1.5**2))
    taps /= taps.sum()
    return to_device(taps.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), device, dtype)  # [C, 1, 1, 11], as it repeats it


def gradient_similarity_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """1 - the mean of GMSD's similarity map of NCHW RGB batches in [-1, 1], as
    ``eval.metrics.gradient_similarity`` maps the same images as uint8: the catalog image's
    edges where it has them, as strong, and none where it has none, which L1 and SSIM let a
    generator blur away.

    The map's mean, not its deviation (GMSD, the score): a deviation is lowered by making
    the similarity uniformly worse, and a U-Net fine-tuned on it drew a grid on plain cloth
    beside its blurred edges (``models/generator.md``). Grey on the 0..255 scale, each 2x2
    block's mean (an odd side padded with zeros), Prewitt gradient magnitudes (zero padding),
    the stability constant T. float32 with autocast off: T = 170 on a 0..255 scale leaves
    fp16 no room.
    """
    weights, kernel = gradient_filters(x.device)
    with torch.autocast(x.device.type, enabled=False):
        magnitudes = []
        for images in (x, y):
            grey = ((images.float() + 1) * 127.5 * weights).sum(1, keepdim=True)
            grey = F.pad(grey, (0, grey.shape[-1] % 2, 0, grey.shape[-2] % 2))
            gradients = F.conv2d(F.avg_pool2d(grey, 2), kernel, padding=1)
            magnitudes.append(torch.sqrt(gradients.pow(2).sum(1) + 1e-8))  # (the root's slope at 0 is infinite)
        m_x, m_y = magnitudes
        similarity = (2 * m_x * m_y + GMSD_T) / (m_x**2 + m_y**2 + GMSD_T)
        return 1 - similarity.mean()


@functools.lru_cache(maxsize=16)
def gradient_filters(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``gradient_similarity_loss``'s grey weights [1, 3, 1, 1] and Prewitt kernels [2, 1, 3, 3]
    (x, y), made once on the device (as ``ssim_window``)."""
    prewitt = np.stack([PREWITT_X, PREWITT_X.T])[:, None]
    return (
        to_device(LUMA_WEIGHTS, device, torch.float32).view(1, 3, 1, 1),
        to_device(prewitt, device, torch.float32),
    )


def soft_dice(probability: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice of a probability map against a [0, 1] target, per image, averaged.
    An image with no garment scores 0 only where the prediction is empty too."""
    probability, target = probability.flatten(1), target.flatten(1)
    overlap = (probability * target).sum(1)
    return (1 - (2 * overlap + eps) / (probability.sum(1) + target.sum(1) + eps)).mean()


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """``soft_dice`` of sigmoid(logits)."""
    return soft_dice(torch.sigmoid(logits), target, eps)


def grid_offsets_px(grid: torch.Tensor) -> torch.Tensor:
    """A sampling grid [N, 2, H, W] (x, y in [-1, 1]) as offsets from the identity, in pixels."""
    h, w = grid.shape[-2:]
    scale = to_device([w / 2.0, h / 2.0], grid.device, grid.dtype).view(1, 2, 1, 1)
    return minus_identity(grid) * scale


def flow_smoothness(grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(total variation, second-order variation) of a grid's offsets, in pixels per pixel.

    TV keeps neighbouring pixels sampling neighbouring places; the second-order term lets
    the grid scale and shear freely (an affine offset has none) but not crumple.
    """
    offsets = grid_offsets_px(grid)
    dx = offsets[..., :, 1:] - offsets[..., :, :-1]
    dy = offsets[..., 1:, :] - offsets[..., :-1, :]
    tv = dx.abs().mean() + dy.abs().mean()
    second = (dx[..., :, 1:] - dx[..., :, :-1]).abs().mean() + (dy[..., 1:, :] - dy[..., :-1, :]).abs().mean()
    return tv, second


def masked_l1(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean |x - y| where ``weight`` [N, 1, H, W] is on (0 if it is off everywhere)."""
    return ((x - y).abs() * weight).sum() / (weight.sum() * x.shape[1]).clamp(min=1.0)


def gradient_l1(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean |horizontal and vertical differences of x - those of y| where ``weight`` is on
    (both pixels of a difference): L1 on the images' edges. A flat region gives a warp no
    gradient under plain L1; an edge in the wrong place costs here on both of its sides."""

    def differences(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return z[..., :, 1:] - z[..., :, :-1], z[..., 1:, :] - z[..., :-1, :]

    (x_dx, x_dy), (y_dx, y_dy) = differences(x), differences(y)
    w_dx = weight[..., :, 1:] * weight[..., :, :-1]
    w_dy = weight[..., 1:, :] * weight[..., :-1, :]
    return 0.5 * (masked_l1(x_dx, y_dx, w_dx) + masked_l1(x_dy, y_dy, w_dy))


def pyramid_warp_loss(
    grids: list[torch.Tensor], source: torch.Tensor, target: torch.Tensor, alpha: torch.Tensor, padding: str = "border"
):
    """Mean over the grids (coarse to fine) of the L1 between the source sampled by the grid
    and the target, inside the target's silhouette, at each grid's own resolution.

    Source, target and silhouette are area-averaged to each level first, so a coarse grid
    gets a gradient from the garment's large shapes long before the fine texture lines up.
    ``padding`` is what a grid reads outside the source (``warp``'s): the edge pixels, or
    zeros (for a mask: no garment beyond the photo).
    """
    total = source.new_zeros(())
    for grid in grids:
        size = tuple(grid.shape[-2:])
        if size == tuple(source.shape[-2:]):
            s, t, a = source, target, alpha
        else:
            s, t, a = (F.adaptive_avg_pool2d(x, size) for x in (source, target, alpha))
        total = total + masked_l1(warp(s, grid, padding), t, a)
    return total / len(grids)


def better_source_loss(out: dict[str, torch.Tensor], target: torch.Tensor, block: int) -> torch.Tensor:
    """BCE of the composition mask against where the sampled photo is the better source.

    Over a ``block``-pixel box around each pixel, the mean L1 of the sampled photo and of the
    rendered image against the catalog image are compared (both detached): the mask's target
    is 1 where the photo's own pixels are nearer the truth, 0 where the rendering is (and on
    ties: the white around the garment, the rendering's). A term that pulls the mask towards
    the photo everywhere on the garment copies misplaced prints, or, weighted low, gives way
    to the rendering everywhere; this one asks the mask where the grid can be trusted (a
    learned confidence). On the model card's CPU runs it never became confident (the grid
    was not yet better than the rendering): measure a new grid with
    ``scripts/warp_diagnosis.py`` first.
    """
    with torch.no_grad():
        height, width = target.shape[-2:]
        errors = []
        for source in (out["sampled"], out["rendered"]):
            error = (source.float() - target).abs().mean(1, keepdim=True)
            box = F.avg_pool2d(error, block, 1, block // 2, count_include_pad=False)
            errors.append(box[..., :height, :width])  # an even box pads one pixel more
        better = (errors[0] < errors[1]).float()
    return F.binary_cross_entropy_with_logits(out["mask_logit"].float(), better)
