"""Image quality metrics in numpy: SSIM, MS-SSIM, PSNR (generator) and IoU (segmenter).

Training validation and ``evaluate`` both use these on the uint8 images the served model
produces, so the numbers in a checkpoint, a model card and an evaluation agree.
SSIM and MS-SSIM follow ``pytorch_msssim`` (Gaussian window 11, sigma 1.5, valid
filtering, K = (0.01, 0.03), the five MS-SSIM weights of Wang et al. 2003), the
implementation most pix2pix-style papers report; a test checks the two agree.
"""

from __future__ import annotations

import numpy as np

MS_SSIM_WEIGHTS = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
WINDOW_SIZE = 11
WINDOW_SIGMA = 1.5
PSNR_CAP_DB = 100.0  # identical images: report this instead of infinity


def _gaussian_window(size: int = WINDOW_SIZE, sigma: float = WINDOW_SIGMA) -> np.ndarray:
    coords = np.arange(size, dtype=np.float64) - size // 2
    g = np.exp(-(coords**2) / (2 * sigma**2))
    return (g / g.sum()).astype(np.float32)


def _filter_valid(x: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of [N, C, H, W] along H and W."""
    k = len(window)
    for axis in (2, 3):
        if x.shape[axis] < k:
            continue  # as pytorch_msssim: too small to filter along this axis
        length = x.shape[axis] - k + 1
        index = [slice(None)] * 4
        out = None
        for i, w in enumerate(window):
            index[axis] = slice(i, i + length)
            term = w * x[tuple(index)]
            out = term if out is None else out + term
        x = out
    return x


def _as_nchw(images: np.ndarray) -> np.ndarray:
    """[N, H, W, C] or [H, W, C] uint8/float -> float32 [N, C, H, W]."""
    # float32 halves the memory traffic; SSIM agrees with float64 to ~1e-6.
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise ValueError(f"expected [N, H, W, C] images, got shape {list(np.shape(images))}")
    return x.transpose(0, 3, 1, 2)


def _ssim_and_cs(x: np.ndarray, y: np.ndarray, data_range: float) -> tuple[np.ndarray, np.ndarray]:
    """Per image and channel SSIM and contrast-structure terms, [N, C] each."""
    window = _gaussian_window()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = _filter_valid(x, window), _filter_valid(y, window)
    sigma_xx = _filter_valid(x * x, window) - mu_x**2
    sigma_yy = _filter_valid(y * y, window) - mu_y**2
    sigma_xy = _filter_valid(x * y, window) - mu_x * mu_y
    cs_map = (2 * sigma_xy + c2) / (sigma_xx + sigma_yy + c2)
    ssim_map = ((2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)) * cs_map
    return ssim_map.mean(axis=(2, 3)), cs_map.mean(axis=(2, 3))


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if np.shape(a) != np.shape(b):
        raise ValueError(f"images differ in shape: {list(np.shape(a))} and {list(np.shape(b))}")


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> np.ndarray:
    """SSIM of each image pair ([N, H, W, C] or one [H, W, C]), averaged over channels: [N]."""
    _check_pair(a, b)
    s, _ = _ssim_and_cs(_as_nchw(a), _as_nchw(b), data_range)
    return s.mean(axis=1)


def _avg_pool2(x: np.ndarray) -> np.ndarray:
    """2x2 average pooling, zero-padding odd sides by one (torch's avg_pool2d, count_include_pad)."""
    pad_h, pad_w = x.shape[2] % 2, x.shape[3] % 2
    if pad_h or pad_w:
        x = np.pad(x, ((0, 0), (0, 0), (pad_h, pad_h), (pad_w, pad_w)))
    h, w = x.shape[2] // 2, x.shape[3] // 2
    x = x[:, :, : 2 * h, : 2 * w]
    return x.reshape(x.shape[0], x.shape[1], h, 2, w, 2).mean(axis=(3, 5))


MS_SSIM_MIN_SIDE = (WINDOW_SIZE - 1) * 2 ** (len(MS_SSIM_WEIGHTS) - 1) + 1  # 161: the window fits 4 halvings on


def ms_ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> np.ndarray:
    """Multi-scale SSIM (5 scales) of each image pair, averaged over channels: [N].

    Needs a smaller side of at least 161 pixels (the window still fits after four halvings).
    """
    _, multi = _ssim_and_ms_ssim(a, b, data_range)
    if multi is None:
        raise ValueError(f"MS-SSIM needs images of at least {MS_SSIM_MIN_SIDE} px on each side, got {np.shape(a)}")
    return multi


def _ssim_and_ms_ssim(a: np.ndarray, b: np.ndarray, data_range: float) -> tuple[np.ndarray, np.ndarray | None]:
    """SSIM and MS-SSIM (None for images too small for it) of each pair."""
    _check_pair(a, b)
    x, y = _as_nchw(a), _as_nchw(b)
    if min(x.shape[2:]) < MS_SSIM_MIN_SIDE:
        s, _ = _ssim_and_cs(x, y, data_range)
        return s.mean(axis=1), None
    factors = []
    for level in range(len(MS_SSIM_WEIGHTS)):
        s, cs = _ssim_and_cs(x, y, data_range)
        if level == 0:
            single_scale = s.mean(axis=1)
        if level < len(MS_SSIM_WEIGHTS) - 1:
            factors.append(np.maximum(cs, 0.0))
            x, y = _avg_pool2(x), _avg_pool2(y)
    factors.append(np.maximum(s, 0.0))
    stacked = np.stack(factors)  # [levels, N, C]
    value = np.prod(stacked ** MS_SSIM_WEIGHTS[:, None, None], axis=0)
    return single_scale, value.mean(axis=1)


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> np.ndarray:
    """PSNR in dB of each image pair: [N]; identical images give ``PSNR_CAP_DB``."""
    _check_pair(a, b)
    x, y = _as_nchw(a), _as_nchw(b)
    mse = ((x - y) ** 2).mean(axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        value = 10 * np.log10(data_range**2 / mse)
    return np.minimum(value, PSNR_CAP_DB)


def image_metrics(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> dict[str, np.ndarray]:
    """SSIM, MS-SSIM and PSNR of each image pair in one pass (SSIM is MS-SSIM's first scale).

    MS-SSIM is left out for images under ``MS_SSIM_MIN_SIDE`` pixels.
    """
    single, multi = _ssim_and_ms_ssim(a, b, data_range)
    values = {"ssim": single, "psnr": psnr(a, b, data_range)}
    if multi is not None:
        values["ms_ssim"] = multi
    return values


def iou(predicted: np.ndarray, target: np.ndarray, threshold: int = 128) -> np.ndarray:
    """Intersection over union of each pair of masks ([N, H, W(, 1)]) at ``threshold``: [N].

    Two empty masks agree perfectly (1.0).
    """
    _check_pair(predicted, target)
    p = np.asarray(predicted) >= threshold
    t = np.asarray(target) >= threshold
    if p.ndim == 2:
        p, t = p[None], t[None]
    axes = tuple(range(1, p.ndim))
    inter = (p & t).sum(axis=axes)
    union = (p | t).sum(axis=axes)
    return np.where(union == 0, 1.0, inter / np.maximum(union, 1))
