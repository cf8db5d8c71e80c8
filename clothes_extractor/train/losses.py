"""Losses: the GAN objectives of pix2pix, a differentiable SSIM, and Dice for the segmenter."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .metrics import ssim_and_cs, ssim_dtype

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


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of NCHW batches in [-1, 1]: the validation metric's own computation
    (``train.metrics.ssim_and_cs``), so the loss and the metric cannot drift apart.

    SSIM's luminance term is not shift-invariant, so the images are mapped to [0, 1] first,
    as uint8 / 255 is. The variances are differences of nearly equal blurred terms: under
    autocast (fp16 convolutions) they drown in rounding error, so autocast is off here and
    the precision is the metric's (float64 on a GPU).
    """
    dtype = ssim_dtype(x)
    with torch.autocast(x.device.type, enabled=False):
        s, _ = ssim_and_cs((x.to(dtype) + 1) / 2, (y.to(dtype) + 1) / 2, data_range=1.0)
        return s.mean().float()


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice of sigmoid(logits) against a [0, 1] target, per image, averaged."""
    probability = torch.sigmoid(logits).flatten(1)
    target = target.flatten(1)
    overlap = (probability * target).sum(1)
    return (1 - (2 * overlap + eps) / (probability.sum(1) + target.sum(1) + eps)).mean()
