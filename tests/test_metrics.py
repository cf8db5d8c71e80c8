import numpy as np
import pytest

from clothes_extractor.runtime.metrics import PSNR_CAP_DB, image_metrics, iou, ms_ssim, psnr, ssim


def noisy_pair(n=2, shape=(256, 192, 3), sigma=25, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    base = (127 + 100 * np.sin(xx / 9.0 + yy / 13.0))[..., None].repeat(shape[2], -1)
    a = np.stack([np.clip(base + rng.normal(0, 5, shape), 0, 255) for _ in range(n)]).astype(np.uint8)
    b = np.clip(a + rng.normal(0, sigma, a.shape), 0, 255).astype(np.uint8)
    return a, b


def test_identical_images_score_perfectly():
    a, _ = noisy_pair()
    assert ssim(a, a) == pytest.approx([1, 1])
    assert ms_ssim(a, a) == pytest.approx([1, 1])
    assert psnr(a, a).tolist() == [PSNR_CAP_DB, PSNR_CAP_DB]


def test_psnr_of_a_known_error():
    a = np.full((1, 8, 8, 3), 100, np.uint8)
    b = a + 10  # MSE 100 -> 10 log10(255^2 / 100)
    assert psnr(a, b)[0] == pytest.approx(10 * np.log10(255**2 / 100))


def test_more_noise_scores_lower():
    a, b = noisy_pair(sigma=10)
    _, c = noisy_pair(sigma=40)
    assert (ssim(a, b) > ssim(a, c)).all() and (ms_ssim(a, b) > ms_ssim(a, c)).all()


def test_agrees_with_pytorch_msssim():
    torch = pytest.importorskip("torch")
    reference = pytest.importorskip("pytorch_msssim", reason="pytorch-msssim (dev extra) is not installed")
    a, b = noisy_pair(n=3)
    ta, tb = (torch.from_numpy(x).permute(0, 3, 1, 2).double() for x in (a, b))
    np.testing.assert_allclose(ssim(a, b), reference.ssim(ta, tb, data_range=255, size_average=False), atol=1e-5)
    np.testing.assert_allclose(ms_ssim(a, b), reference.ms_ssim(ta, tb, data_range=255, size_average=False), atol=1e-5)


def test_small_images_have_no_ms_ssim():
    a, b = noisy_pair(shape=(64, 48, 3))
    assert set(image_metrics(a, b)) == {"ssim", "psnr"}
    with pytest.raises(ValueError, match="at least 161"):
        ms_ssim(a, b)


def test_iou_of_known_masks():
    a = np.zeros((2, 10, 10, 1), np.uint8)
    b = np.zeros_like(a)
    a[0, :5] = 255  # 50 px
    b[0, 2:7] = 255  # 50 px, 30 shared -> 30 / 70
    assert iou(a, b).tolist() == pytest.approx([30 / 70, 1.0])  # second pair: both empty
