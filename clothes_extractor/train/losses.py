"""Losses: the GAN objectives of pix2pix, a differentiable SSIM, and Dice for the segmenter."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

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


def _gaussian_kernel(channels: int, size: int = 11, sigma: float = 1.5, device=None, dtype=None) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = (g / g.sum()).to(device=device, dtype=dtype)
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of NCHW batches in [-1, 1] (Gaussian window 11, sigma 1.5, valid filtering).

    The same number as ``runtime.metrics.ssim`` on the uint8 images: SSIM's luminance term
    is not shift-invariant, so the images are mapped to [0, 1] first, as uint8 / 255 is.
    """
    # The variances are differences of nearly equal blurred terms: under autocast (fp16
    # convolutions) or TF32 (CUDA's default for float32 convolutions) they drown in rounding
    # error and SSIM turns into noise. So: no autocast, and float64 on a GPU.
    dtype = torch.float64 if x.is_cuda else torch.float32
    with torch.autocast(x.device.type, enabled=False):
        x, y = (x.to(dtype) + 1) / 2, (y.to(dtype) + 1) / 2
        channels = x.shape[1]
        kernel = _gaussian_kernel(channels, device=x.device, dtype=dtype)
        c1, c2 = 0.01**2, 0.03**2

        def blur(t: torch.Tensor) -> torch.Tensor:
            return F.conv2d(t, kernel, groups=channels)

        mu_x, mu_y = blur(x), blur(y)
        sigma_xx = blur(x * x) - mu_x**2
        sigma_yy = blur(y * y) - mu_y**2
        sigma_xy = blur(x * y) - mu_x * mu_y
        cs = (2 * sigma_xy + c2) / (sigma_xx + sigma_yy + c2)
        return (((2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)) * cs).mean().float()


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice of sigmoid(logits) against a [0, 1] target, per image, averaged."""
    probability = torch.sigmoid(logits).flatten(1)
    target = target.flatten(1)
    overlap = (probability * target).sum(1)
    return (1 - (2 * overlap + eps) / (probability.sum(1) + target.sum(1) + eps)).mean()
