"""The validation metrics of ``runtime.metrics``, computed in PyTorch on the training device.

Same definitions, same numbers (a test checks agreement with the numpy versions to 1e-5),
but on the GPU a validation pass costs milliseconds instead of the ~40 ms per image numpy
needs on one CPU core, so a GPU run can validate often without waiting on the host.
Inputs are uint8 NHWC tensors, as the served model produces them; results are per-sample
float64 numpy arrays, ready for ``MetricTotals``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..runtime.metrics import MS_SSIM_MIN_SIDE, MS_SSIM_WEIGHTS, PSNR_CAP_DB, WINDOW_SIGMA, WINDOW_SIZE


def _gaussian(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    coords = torch.arange(WINDOW_SIZE, dtype=torch.float64) - WINDOW_SIZE // 2
    g = torch.exp(-(coords**2) / (2 * WINDOW_SIGMA**2))
    return (g / g.sum()).to(device=device, dtype=torch.float32).to(dtype)


def ssim_dtype(t: torch.Tensor) -> torch.dtype:
    """Where SSIM is computed: float64 on a GPU, whose float32 convolutions run in TF32 by
    default, too coarse for the variance terms (differences of nearly equal blurred values)."""
    return torch.float64 if t.is_cuda else torch.float32


def ssim_and_cs(x: torch.Tensor, y: torch.Tensor, data_range: float):
    """Per image and channel SSIM and contrast-structure terms of NCHW images, [N, C] each.

    Differentiable (the training loss uses it too); the caller picks the precision.
    """
    channels = x.shape[1]
    gaussian = _gaussian(x.device, x.dtype)
    along_h = gaussian.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    along_w = gaussian.view(1, 1, 1, -1).expand(channels, 1, 1, -1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        # Separable 'valid' filtering; as pytorch_msssim and runtime.metrics, a side shorter
        # than the window is left unfiltered.
        if t.shape[2] >= WINDOW_SIZE:
            t = F.conv2d(t, along_h, groups=channels)
        if t.shape[3] >= WINDOW_SIZE:
            t = F.conv2d(t, along_w, groups=channels)
        return t

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    sigma_xx = blur(x * x) - mu_x**2
    sigma_yy = blur(y * y) - mu_y**2
    sigma_xy = blur(x * y) - mu_x * mu_y
    cs_map = (2 * sigma_xy + c2) / (sigma_xx + sigma_yy + c2)
    ssim_map = ((2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)) * cs_map
    return ssim_map.mean(dim=(2, 3)), cs_map.mean(dim=(2, 3))


def _avg_pool2(x: torch.Tensor) -> torch.Tensor:
    """2x2 average pooling, zero-padding odd sides by one (as runtime.metrics)."""
    return F.avg_pool2d(x, 2, padding=(x.shape[2] % 2, x.shape[3] % 2))


@torch.no_grad()
def image_metrics(outputs: torch.Tensor, targets: torch.Tensor, data_range: float = 255.0) -> dict[str, np.ndarray]:
    """SSIM, MS-SSIM (sides >= 161 px) and PSNR of each pair of uint8 NHWC images: [N] each."""
    if outputs.shape != targets.shape:
        raise ValueError(f"images differ in shape: {list(outputs.shape)} and {list(targets.shape)}")
    dtype = ssim_dtype(outputs)
    x = outputs.permute(0, 3, 1, 2).to(dtype)
    y = targets.to(outputs.device).permute(0, 3, 1, 2).to(dtype)
    mse = ((x - y) ** 2).mean(dim=(1, 2, 3)).double()
    psnr = torch.clamp(10 * torch.log10(data_range**2 / mse), max=PSNR_CAP_DB)
    levels = len(MS_SSIM_WEIGHTS) if min(x.shape[2:]) >= MS_SSIM_MIN_SIDE else 1
    factors = []
    for level in range(levels):
        s, cs = ssim_and_cs(x, y, data_range)
        if level == 0:
            single = s.mean(dim=1)
        if level < levels - 1:
            factors.append(torch.clamp(cs, min=0))
            x, y = _avg_pool2(x), _avg_pool2(y)
    values = {"ssim": single.double().cpu().numpy(), "psnr": psnr.cpu().numpy()}
    if levels > 1:
        factors.append(torch.clamp(s, min=0))
        weights = torch.tensor(MS_SSIM_WEIGHTS, dtype=torch.float64, device=x.device)[:, None, None]
        multi = torch.prod(torch.stack(factors).double() ** weights, dim=0).mean(dim=1)
        values["ms_ssim"] = multi.cpu().numpy()
    return values


@torch.no_grad()
def iou(predicted: torch.Tensor, target: torch.Tensor, threshold: int = 128) -> np.ndarray:
    """Intersection over union of each pair of uint8 masks at ``threshold``: [N]; two empty masks give 1."""
    p = (predicted >= threshold).flatten(1)
    t = (target.to(predicted.device) >= threshold).flatten(1)
    inter = (p & t).sum(dim=1).double()
    union = (p | t).sum(dim=1).double()
    return torch.where(union == 0, torch.ones_like(union), inter / union.clamp(min=1)).cpu().numpy()


def score_batch(task: str, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, np.ndarray]:
    """``runtime.evaluate.score_batch`` on tensors, on their device."""
    if task == "generator":
        return image_metrics(outputs, targets)
    return {"iou": iou(outputs, targets)}
