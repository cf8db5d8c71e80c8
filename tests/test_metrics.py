import numpy as np
import pytest

from clothes_extractor.eval.metrics import PSNR_CAP_DB, image_metrics, iou, ms_ssim, psnr, ssim


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
    assert set(image_metrics(a, b)) == {"ssim", "psnr", "gmsd", "sharpness"}
    with pytest.raises(ValueError, match="at least 161"):
        ms_ssim(a, b)


def test_iou_of_known_masks():
    a = np.zeros((2, 10, 10, 1), np.uint8)
    b = np.zeros_like(a)
    a[0, :5] = 255  # 50 px
    b[0, 2:7] = 255  # 50 px, 30 shared -> 30 / 70
    assert iou(a, b).tolist() == pytest.approx([30 / 70, 1.0])  # second pair: both empty


def test_gmsd_matches_a_hand_computed_case():
    from clothes_extractor.eval.metrics import gmsd

    # a: black. b: its left half at v = 3 sqrt(T). After the 2x2 average, b is [[v, 0], [v, 0]];
    # with conv2's zero padding its Prewitt magnitudes are v/3 (left) and v sqrt(5)/3 (right),
    # so the similarity map is T / (m^2 + T) = [1/2, 1/6, 1/2, 1/6] and its deviation is 1/6.
    v = 3 * np.sqrt(170.0)
    a = np.zeros((1, 4, 4, 3))
    b = np.zeros((1, 4, 4, 3))
    b[:, :, :2] = v
    assert gmsd(a, b)[0] == pytest.approx(1 / 6, abs=1e-9)
    assert gmsd(b, a)[0] == pytest.approx(1 / 6, abs=1e-9)  # symmetric


def test_gmsd_is_zero_for_identical_images_and_grows_with_blur():
    from PIL import Image, ImageFilter

    from clothes_extractor.eval.metrics import gmsd, sharpness_ratio

    rng = np.random.default_rng(0)
    # a striped, printed garment: sharp edges at several scales
    truth = np.full((128, 96, 3), 250, np.uint8)
    truth[::8] = (20, 40, 200)
    truth[40:80, 20:70] = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    assert gmsd(truth, truth)[0] == 0.0 and sharpness_ratio(truth, truth)[0] == 1.0
    blurred = [np.asarray(Image.fromarray(truth).filter(ImageFilter.GaussianBlur(r))) for r in (0.6, 1.2, 2.4)]
    scores = [gmsd(b, truth)[0] for b in blurred]
    assert 0 < scores[0] < scores[1] < scores[2]
    sharp = [sharpness_ratio(b, truth)[0] for b in blurred]
    assert 1 > sharp[0] > sharp[1] > sharp[2] > 0  # blur loses edge energy
    noisy = np.clip(truth + rng.normal(0, 20, truth.shape), 0, 255).astype(np.uint8)
    assert sharpness_ratio(noisy, truth)[0] > 1.05  # noise adds some
    flat = np.full_like(truth, 128)
    assert sharpness_ratio(flat, flat)[0] == 1.0 and sharpness_ratio(truth, flat)[0] > 1e3


def test_image_metrics_reports_texture_scores_too():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (2, 64, 48, 3), dtype=np.uint8)
    values = image_metrics(a, a)
    assert set(values) == {"ssim", "psnr", "gmsd", "sharpness"}  # MS-SSIM needs 161 px sides
    assert values["gmsd"].tolist() == [0.0, 0.0] and values["sharpness"].tolist() == [1.0, 1.0]


def test_class_iou_skips_classes_in_neither_map():
    from clothes_extractor.eval.metrics import class_iou

    predicted = np.array([[[0, 1], [1, 2]]])
    target = np.array([[[0, 1], [2, 2]]])
    scores = class_iou(predicted, target, 4)[0]
    assert scores[0] == 1.0 and scores[1] == pytest.approx(0.5) and scores[2] == pytest.approx(0.5)
    assert np.isnan(scores[3])


@pytest.mark.parametrize("threads", [0, 3])
def test_a_batch_is_scored_in_chunks_in_its_order_as_each_sample_alone(threads):
    """``score_batch`` scores a batch a few samples at a time, on a pool's threads where given:
    each sample's scores are those it gets alone, in the batch's order (every reference sliced
    with the outputs: a silhouette's IoU goes with its own garment)."""
    from concurrent.futures import ThreadPoolExecutor

    from clothes_extractor.eval.evaluate import SCORE_CHUNK, score_batch

    n = 2 * SCORE_CHUNK + 1  # a last chunk that is not whole
    rng = np.random.default_rng(3)
    target, _ = noisy_pair(n, (168, 168, 3))
    outputs = np.stack([np.clip(t + rng.normal(0, 4 + 6 * i, t.shape), 0, 255) for i, t in enumerate(target)])
    outputs = outputs.astype(np.uint8)
    alpha = rng.integers(0, 256, (n, 168, 168), dtype=np.uint8)
    output_alpha = np.stack([np.where(rng.random((168, 168)) < 0.1 * i, 255 - a, a) for i, a in enumerate(alpha)])
    references = {"target": target, "alpha": alpha, "output_alpha": output_alpha.astype(np.uint8)}
    pool = ThreadPoolExecutor(threads) if threads else None
    try:
        batch = score_batch("generator", outputs, references, pool)
    finally:
        if pool is not None:
            pool.shutdown()
    alone = [
        score_batch("generator", outputs[i : i + 1], {k: v[i : i + 1] for k, v in references.items()}) for i in range(n)
    ]
    assert set(batch) == {"ssim", "ms_ssim", "psnr", "gmsd", "sharpness", "alpha_iou"}
    for name, values in batch.items():
        assert values.tolist() == [float(a[name][0]) for a in alone], name
    assert sorted(batch["psnr"].tolist(), reverse=True) == batch["psnr"].tolist()  # more noise further on
    assert batch["alpha_iou"][0] == 1.0 and batch["alpha_iou"][-1] < 0.9
