"""Image quality metrics in numpy: SSIM, MS-SSIM, PSNR, GMSD, sharpness (generator), IoU.

Training validation and ``evaluate`` both use these on the uint8 images the served model
produces, so the numbers in a checkpoint, a model card and an evaluation agree.
SSIM and MS-SSIM follow ``pytorch_msssim`` (Gaussian window 11, sigma 1.5, valid
filtering, K = (0.01, 0.03), the five MS-SSIM weights of Wang et al. 2003), the
implementation most pix2pix-style papers report; a test checks the two agree.

SSIM forgives blur: a smeared garment and a sharp one score alike. Two gradient-based
scores see texture: GMSD (gradient magnitude similarity deviation, Xue et al. 2014,
following the authors' MATLAB code; 0 for identical images, larger is worse) and the
sharpness ratio (mean gradient magnitude of the output over the target's; 1.0 is as
sharp as the truth, a blurred output scores below 1).
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
    """SSIM, MS-SSIM, PSNR, GMSD and sharpness of each output ``a`` against its target ``b``.

    SSIM is MS-SSIM's first scale (one pass); MS-SSIM is left out for images under
    ``MS_SSIM_MIN_SIDE`` pixels.
    """
    single, multi = _ssim_and_ms_ssim(a, b, data_range)
    values = {"ssim": single, "psnr": psnr(a, b, data_range)}
    if multi is not None:
        values["ms_ssim"] = multi
    values["gmsd"] = gmsd(a, b)
    values["sharpness"] = sharpness_ratio(a, b)
    return values


GMSD_T = 170.0  # the authors' stability constant for 0..255 images
# Prewitt kernels as the GMSD code uses them (its conv2 flips them; the magnitude is the same).
PREWITT_X = np.array([[1.0, 0.0, -1.0]] * 3) / 3.0
LUMA_WEIGHTS = (0.298936021293775, 0.587043074451121, 0.114020904255103)  # MATLAB's rgb2gray (R, G, B)


def luma(images: np.ndarray) -> np.ndarray:
    """[N, H, W, 3] (or one [H, W, 3]) -> float64 [N, H, W], MATLAB's rgb2gray weights."""
    x = np.asarray(images, dtype=np.float64)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"expected [N, H, W, 3] images, got shape {list(np.shape(images))}")
    if x.shape[-1] == 1:
        return x[..., 0]
    r, g, b = LUMA_WEIGHTS
    return x[..., 0] * r + x[..., 1] * g + x[..., 2] * b


def _filter_same(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """2-D correlation of [N, H, W] with a 3x3 kernel, 'same' size, zero padding (conv2's)."""
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    h, w = x.shape[1:]
    out = np.zeros_like(x)
    for dy in range(3):
        for dx in range(3):
            if kernel[dy, dx]:
                out += kernel[dy, dx] * padded[:, dy : dy + h, dx : dx + w]
    return out


def gradient_magnitude(grey: np.ndarray) -> np.ndarray:
    """Prewitt gradient magnitude of [N, H, W] grey images, zero padding: [N, H, W]."""
    return np.hypot(_filter_same(grey, PREWITT_X), _filter_same(grey, PREWITT_X.T))


def gradient_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """GMSD's similarity map of each pair of uint8 RGB images ([N, H, W, 3] or one [H, W, 3]):
    [N, ceil(H / 2), ceil(W / 2)], 1 where the two have the same gradient magnitude.

    As the authors' code: grey (rgb2gray), 2x2 average and every second pixel, Prewitt
    gradient magnitudes with zero padding, and (2 m_a m_b + T) / (m_a^2 + m_b^2 + T) with
    T = 170.
    """
    _check_pair(a, b)
    maps = []
    for images in (a, b):
        y = luma(images)
        h, w = y.shape[1] // 2 * 2, y.shape[2] // 2 * 2
        if h == 0 or w == 0:
            raise ValueError(f"GMSD needs images of at least 2x2 pixels, got {np.shape(images)}")
        # conv2(Y, ones(2)/4, 'same') sampled at odd (1-based) pixels: the mean of each 2x2 block
        # (the last row/column of an odd side averages with conv2's zero padding)
        y = np.pad(y, ((0, 0), (0, y.shape[1] % 2), (0, y.shape[2] % 2)))
        down = y.reshape(y.shape[0], y.shape[1] // 2, 2, y.shape[2] // 2, 2).mean(axis=(2, 4))
        maps.append(gradient_magnitude(down))
    m_a, m_b = maps
    return (2 * m_a * m_b + GMSD_T) / (m_a**2 + m_b**2 + GMSD_T)


def gmsd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """GMSD of each pair of uint8 RGB images ([N, H, W, 3] or one [H, W, 3]): [N]; lower is better.

    The standard deviation (population) of ``gradient_similarity``'s map, as the authors pool
    it: 0 for identical images, and it grows with blur. (A score, not a loss: a deviation is
    also lowered by making the similarity uniformly worse, texture drawn on flat cloth beside
    a blurred edge; ``train.losses.gradient_similarity_loss`` takes the map's mean.)
    """
    similarity = gradient_similarity(a, b)
    return similarity.reshape(len(similarity), -1).std(axis=1)


def sharpness_ratio(output: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Mean gradient magnitude of each output over its target's ([N, H, W, 3] uint8): [N].

    1.0: as much edge energy as the truth; a blurred output scores below 1, added noise or
    ringing above. Gradients are taken on the grey image at full resolution, inside the
    frame (no padding), so the border does not count. A flat target gives 1.0 if the
    output is flat too, else the output's mean gradient over a tiny floor.
    """
    _check_pair(output, target)
    means = []
    for images in (output, target):
        magnitude = gradient_magnitude(luma(images))[:, 1:-1, 1:-1]
        means.append(magnitude.reshape(len(magnitude), -1).mean(axis=1) if magnitude.size else np.zeros(len(magnitude)))
    out, truth = means
    floor = 1e-6
    return np.where((out <= floor) & (truth <= floor), 1.0, out / np.maximum(truth, floor))


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


def class_iou(predicted: np.ndarray, target: np.ndarray, classes: int) -> np.ndarray:
    """IoU of each class in each pair of label maps ([N, H, W(, 1)] class indices): [N, classes].

    NaN where a class is in neither map (nothing to score); averages skip those.
    """
    _check_pair(predicted, target)
    p = np.asarray(predicted).reshape(len(predicted), -1)
    t = np.asarray(target).reshape(len(target), -1)
    scores = np.full((len(p), classes), np.nan)
    for c in range(classes):
        pc, tc = p == c, t == c
        union = (pc | tc).sum(axis=1)
        inter = (pc & tc).sum(axis=1)
        scores[:, c] = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    return scores
