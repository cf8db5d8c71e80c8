"""Training: losses, augmentation, the loop (resume, DDP), and train -> export -> evaluate."""

import csv
import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from clothes_extractor.data.synth import write_synthetic
from clothes_extractor.errors import CheckpointError, InputError
from clothes_extractor.train.data import (
    Augmentation,
    DeviceLoader,
    EpochSampler,
    GarmentDataset,
    augment,
    augment_batch,
    preload,
)
from clothes_extractor.train.loop import TrainConfig, train
from clothes_extractor.train.losses import GANLoss, dice_loss, ssim
from clothes_extractor.train.networks import PatchDiscriminator, UNet, UNetConfig
from conftest import VITON_VAL, cli_env, cp_vton_subset, dress_code_folder, run_cli


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn")
    write_synthetic(root, 24, seed=0, size=(64, 48))
    return root


def tiny_config(data, out, **changes):
    settings = dict(
        data=str(data),
        out=str(out),
        height=64,
        width=48,
        depth=3,
        ngf=4,
        ndf=8,
        batch_size=4,
        epochs=2,
        workers=0,
        val_limit=4,
        sheet_rows=2,
    )
    return TrainConfig(**{**settings, **changes})


def test_gan_losses_on_known_inputs():
    zeros = torch.zeros(2, 1, 4, 4)
    assert GANLoss("lsgan")(zeros, real=True).item() == pytest.approx(1.0)
    assert GANLoss("lsgan")(zeros, real=False).item() == pytest.approx(0.0)
    assert GANLoss("vanilla")(zeros, real=True).item() == pytest.approx(np.log(2))
    with pytest.raises(ValueError, match="GAN loss"):
        GANLoss("wgan")


def test_dice_and_ssim_losses_on_known_inputs():
    target = torch.zeros(1, 1, 8, 8)
    target[..., :4] = 1
    perfect = torch.where(target > 0, 20.0, -20.0)
    assert dice_loss(perfect, target).item() == pytest.approx(0.0, abs=1e-3)
    assert dice_loss(-perfect, target).item() > 0.9
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert ssim(x, x).item() == pytest.approx(1.0)
    assert ssim(x, torch.rand(2, 3, 32, 32) * 2 - 1).item() < 0.2


def test_torch_ssim_matches_the_runtime_metric():
    from clothes_extractor.eval.metrics import ssim as numpy_ssim

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (2, 40, 40, 3), dtype=np.uint8)
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    ta, tb = (torch.from_numpy(x).permute(0, 3, 1, 2).double() / 127.5 - 1 for x in (a, b))
    assert ssim(ta, tb).item() == pytest.approx(float(numpy_ssim(a, b).mean()), abs=1e-6)


def test_the_gradient_similarity_loss_maps_as_evaluate_and_its_gradient_sharpens():
    """``--gms-weight``'s term is 1 - the mean of ``eval.metrics.gradient_similarity``'s map
    (one formula with evaluate's GMSD, odd sides included), and descending it puts a blurred
    image's edges back: GMSD, the score, falls with it."""
    from clothes_extractor.eval.metrics import gmsd, gradient_similarity
    from clothes_extractor.train.losses import gradient_similarity_loss

    def as_unit(images):
        return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1

    rng = np.random.default_rng(0)
    for height, width in ((40, 36), (33, 27)):
        a = rng.integers(0, 256, (2, height, width, 3), dtype=np.uint8)
        b = np.clip(a + rng.normal(0, 30, a.shape), 0, 255).astype(np.uint8)
        expected = 1 - gradient_similarity(a, b).mean()
        assert gradient_similarity_loss(as_unit(a), as_unit(b)).item() == pytest.approx(expected, abs=1e-5)
        assert gradient_similarity_loss(as_unit(a), as_unit(a)).item() == pytest.approx(0.0, abs=1e-6)

    stripes = torch.zeros(1, 3, 32, 32)
    stripes[..., ::8, :] = stripes[..., 1::8, :] = 1.0  # white stripes on mid grey
    blurred = torch.nn.functional.avg_pool2d(stripes, 5, 1, 2, count_include_pad=False).requires_grad_()

    def score(images):
        as_uint8 = (((x.detach().clamp(-1, 1).permute(0, 2, 3, 1) + 1) * 127.5).round().byte().numpy() for x in images)
        return gmsd(*as_uint8)[0]

    before = score((blurred, stripes))
    optimizer = torch.optim.Adam([blurred], lr=0.05)
    for _ in range(40):
        optimizer.zero_grad()
        gradient_similarity_loss(blurred, stripes).backward()
        optimizer.step()
    assert before > 0.05 and score((blurred, stripes)) < before / 2


def test_gmsd_is_a_score_not_a_loss_texture_on_flat_cloth_lowers_it():
    """Why the loss takes the similarity map's mean: GMSD, its deviation, is lowered by texture
    drawn on flat cloth beside a blurred edge (the similarity made uniformly worse), which a
    U-Net fine-tuned on it learned to draw (a grid on plain tops, ``models/generator.md``); the
    mean-pooled loss is raised by it."""
    from clothes_extractor.eval.metrics import gmsd
    from clothes_extractor.train.losses import gradient_similarity_loss

    target = np.full((1, 64, 64, 3), 200, np.uint8)
    target[:, :, :32] = 60  # a dark and a light cloth, a sharp edge between
    ramp = np.clip((np.arange(64) - 27.5) / 9, 0, 1)  # the edge blurred over 9 columns
    blurred = np.broadcast_to((60 + 140 * ramp).round().astype(np.uint8)[None, None, :, None], target.shape).copy()
    rows, columns = np.mgrid[:64, :64]
    checks = ((rows // 4 + columns // 4) % 2 * 2 - 1) * 12 * (np.abs(columns - 32) > 12)
    textured = np.clip(blurred.astype(int) + checks[None, ..., None], 0, 255).astype(np.uint8)
    assert gmsd(textured, target)[0] < gmsd(blurred, target)[0]

    def loss(images):
        return gradient_similarity_loss(*(torch.from_numpy(x).permute(0, 3, 1, 2).float() / 127.5 - 1 for x in images))

    assert loss((textured, target)).item() > 2 * loss((blurred, target)).item()


def test_a_misplaced_texture_pays_the_edge_term_and_wins_the_gradient_similarity_term():
    """A knit the photo does not place: stripes drawn half a period off cost ``--edge-weight``'s
    signed term more than plain cloth does (what the network cannot place it leaves plain), and
    cost ``--gms-weight``'s less (a magnitude is matched wherever it is drawn: the striping the
    GMS fine-tune drew on plain knits, ``models/generator.md``)."""
    from clothes_extractor.train.losses import gradient_l1, gradient_similarity_loss

    rows = torch.arange(48).view(1, 1, 48, 1).expand(1, 3, 48, 40)
    knit = torch.where(rows % 8 < 4, 0.2, -0.2)  # (finer than 4 rows a side, GMSD's 2x2 averaging smooths it away)
    misplaced = torch.where((rows + 4) % 8 < 4, 0.2, -0.2)
    plain = torch.zeros_like(knit)
    everywhere = torch.ones_like(knit[:, :1])
    assert gradient_l1(plain, knit, everywhere) < gradient_l1(misplaced, knit, everywhere)
    assert gradient_similarity_loss(misplaced, knit) < gradient_similarity_loss(plain, knit) / 10


def test_the_ssim_loss_window_is_pytorch_msssims_own():
    """The loss brings its own window (made once on the device) and scores as ``pytorch_msssim``
    does with the window it makes itself, to the last bit."""
    from pytorch_msssim import ssim as msssim_ssim

    from clothes_extractor.train.losses import ssim_window

    torch.manual_seed(1)
    x = torch.rand(3, 3, 40, 36, dtype=torch.float64) * 2 - 1
    y = (x + 0.2 * torch.randn_like(x)).clamp(-1, 1)
    window = ssim_window(3, torch.device("cpu"), torch.float64)
    assert window.shape == (3, 1, 1, 11) and window.dtype == torch.float64
    assert ssim_window(3, torch.device("cpu"), torch.float64) is window  # made once
    own = msssim_ssim(((x + 1) / 2).float(), ((y + 1) / 2).float(), data_range=1.0)
    assert torch.equal(ssim(x.float(), y.float()), own)


def test_ssim_loss_ignores_autocast():
    # Under autocast the blurs would run in half precision and the variance terms drown in
    # rounding error (a GPU run's SSIM loss was noise until this held).
    torch.manual_seed(0)
    x = torch.rand(2, 3, 48, 40) * 2 - 1
    y = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = ssim(x, y)
    assert under_autocast.dtype == torch.float32
    assert under_autocast.item() == pytest.approx(ssim(x, y).item(), abs=1e-6)


def _fitted_batch(n=6, size=(64, 48)):
    """Fitted-input-like tensors: white photo with a red garment where the mask is set."""
    image = torch.full((n, *size, 3), 255, dtype=torch.uint8)
    mask = torch.zeros((n, *size, 1), dtype=torch.uint8)
    image[:, 16:48, 8:30] = torch.tensor([255, 0, 0], dtype=torch.uint8)
    mask[:, 16:48, 8:30] = 255
    target = torch.full((n, *size, 3), 255, dtype=torch.uint8)
    target[:, 10:54, 4:24] = torch.tensor([0, 0, 255], dtype=torch.uint8)  # off-centre: shows a flip
    return {"image": image, "mask": mask, "target": target}


def test_batch_augmentation_keeps_photo_mask_and_garment_together():
    batch = _fitted_batch()
    settings = Augmentation(flip=0.5, rotate_degrees=10, scale=0.1, jitter=0.0)
    out = augment_batch(batch, np.random.default_rng(1), settings)
    assert all(out[k].dtype == torch.uint8 and out[k].shape == batch[k].shape for k in batch)
    flips = 0
    for i in range(len(batch["image"])):
        p, m, t = (out[k][i].numpy().astype(int) for k in ("image", "mask", "target"))
        red = (p[..., 0] > 200) & (p[..., 1] < 60)
        inside = m[..., 0] > 200
        assert (red & inside).sum() / max(inside.sum(), 1) > 0.95
        assert (red & ~(m[..., 0] > 40)).sum() <= 0.03 * red.sum()
        blue_columns = np.nonzero((t[..., 2] > 200) & (t[..., 0] < 60))[1]
        flipped = blue_columns.mean() > 24  # the catalog image flips with the photo, never moves otherwise
        assert flipped == (np.nonzero(red)[1].mean() > 24)
        flips += flipped
        assert p[0, 0].tolist() == [255, 255, 255]  # uncovered corners: the background colour
    assert 0 < flips < len(batch["image"])
    again = augment_batch(batch, np.random.default_rng(1), settings)
    assert all(torch.equal(out[k], again[k]) for k in out)  # a pure function of the generator
    # Segmenter batches: the target is the mask and moves with the photo.
    seg = augment_batch({"image": batch["image"], "target": batch["mask"]}, np.random.default_rng(1), settings)
    assert torch.equal(seg["target"], out["mask"]) and torch.equal(seg["image"], out["image"])


def test_batch_jitter_is_pillows_and_applies_to_photo_and_garment_alike():
    from PIL import ImageEnhance

    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (1, 16, 12, 3), dtype=np.uint8)
    batch = {
        "image": torch.from_numpy(photo),
        "mask": torch.full((1, 16, 12, 1), 255, dtype=torch.uint8),
        "target": torch.from_numpy(photo.copy()),
    }
    settings = Augmentation(flip=0, rotate_degrees=0, scale=0, jitter=0.2)
    out = augment_batch(batch, np.random.default_rng(5), settings)
    assert torch.equal(out["image"], out["target"])
    factors = np.random.default_rng(5)
    factors.random(1), factors.uniform(0, 0, 1), factors.uniform(1, 1, 1)  # flip, angle, zoom draws
    f = factors.uniform(0.8, 1.2, (1, 3))[0]
    expected = Image.fromarray(photo[0])
    for enhancer, factor in zip((ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color), f, strict=True):
        expected = enhancer(expected).enhance(factor)
    diff = np.abs(out["image"][0].numpy().astype(int) - np.asarray(expected).astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.05  # float vs Pillow's integer arithmetic at the edges


def test_black_and_white_samples_in_batches_and_per_photo():
    """--grayscale: the drawn samples' photo and garment (inside its silhouette) turn gray,
    the geometry and the catalog's white background stay; without it nothing is drawn."""
    rng = np.random.default_rng(3)
    n = 8
    batch = _fitted_batch(n)
    batch["image"] = torch.from_numpy(rng.integers(0, 256, (n, 64, 48, 3), dtype=np.uint8))
    batch["target"][:, 10:54, 4:24] = torch.from_numpy(rng.integers(0, 200, (n, 44, 20, 3), dtype=np.uint8))
    batch["alpha"] = torch.zeros((n, 64, 48, 1), dtype=torch.uint8)
    batch["alpha"][:, 10:54, 4:24] = 255

    def gray(t):
        return (t[..., 0] == t[..., 1]).all() and (t[..., 1] == t[..., 2]).all()

    plain = Augmentation(flip=0.5, rotate_degrees=10, scale=0.1, jitter=0.1)
    colour = augment_batch(batch, np.random.default_rng(1), plain)
    for share, expect_gray in ((1.0, n), (0.5, None)):
        settings = Augmentation(flip=0.5, rotate_degrees=10, scale=0.1, jitter=0.1, grayscale=share)
        out = augment_batch(batch, np.random.default_rng(1), settings)
        assert torch.equal(out["mask"], colour["mask"])  # drawn after the rest: the same geometry
        grays = [bool(gray(out["image"][i])) for i in range(n)]
        assert sum(grays) == expect_gray if expect_gray else 0 < sum(grays) < n
        for i in range(n):
            assert bool(gray(out["target"][i])) == grays[i]  # the garment with its photo
            assert (out["target"][i][out["alpha"][i][..., 0] == 0] == 255).all()  # white stays white
            if not grays[i]:
                assert torch.equal(out["image"][i], colour["image"][i])
    assert not any(bool(gray(colour["image"][i])) for i in range(n))
    # The per-photo path (the loader's) draws the same way: photo and garment gray, mask as without.
    photo = Image.fromarray(batch["image"][0].numpy())
    garment = Image.fromarray(batch["target"][0].numpy())
    mask = Image.fromarray(batch["mask"][0, ..., 0].numpy())
    p0, m0, g0, _ = augment(photo, mask, garment, np.random.default_rng(2), plain)
    p1, m1, g1, _ = augment(photo, mask, garment, np.random.default_rng(2), replace(plain, grayscale=1.0))
    assert np.array_equal(np.asarray(m0), np.asarray(m1)) and not gray(torch.from_numpy(np.array(p0)))
    assert gray(torch.from_numpy(np.array(p1))) and gray(torch.from_numpy(np.array(g1)))
    assert (np.asarray(g1)[np.asarray(g0).min(-1) == 255] == 255).all()  # (the garment flips with the photo)


def test_another_light_on_the_photo_alone():
    """--lighting: the drawn samples' photo takes an exposure x white balance within the
    ranges (channels apart), the catalog garment and the masks stay what they are without
    it (drawn after the rest), per batch, per photo and for a try-on person."""
    from clothes_extractor.train.augment import augment_tryon_batch

    n = 16
    batch = _fitted_batch(n)
    batch["image"][:] = 200
    plain = Augmentation(flip=0.5, rotate_degrees=0, scale=0, jitter=0.1)
    lit_settings = replace(plain, lighting=0.5)
    without = augment_batch(batch, np.random.default_rng(4), plain)
    lit = augment_batch(batch, np.random.default_rng(4), lit_settings)
    assert torch.equal(lit["target"], without["target"]) and torch.equal(lit["mask"], without["mask"])
    changed = [not torch.equal(lit["image"][i], without["image"][i]) for i in range(n)]
    assert 0 < sum(changed) < n
    unjittered = augment_batch(batch, np.random.default_rng(4), replace(lit_settings, jitter=0.0))
    levels = unjittered["image"][:, 32, 20].numpy().astype(float)  # one colour: the gains themselves
    levels = levels[(levels != 200).any(1)]
    assert 0 < len(levels) < n and (levels >= np.floor(200 * 0.4 * 0.75)).all()
    assert (levels.max(1) - levels.min(1) > 0).mean() > 0.5  # the white balance moves the channels apart
    # Per photo: the photo alone.
    photo = Image.fromarray(batch["image"][0].numpy())
    garment = Image.fromarray(batch["target"][0].numpy())
    mask = Image.fromarray(batch["mask"][0, ..., 0].numpy())
    always = replace(plain, lighting=1.0)
    p0, m0, g0, _ = augment(photo, mask, garment, np.random.default_rng(2), plain)
    p1, m1, g1, _ = augment(photo, mask, garment, np.random.default_rng(2), always)
    assert np.array_equal(np.asarray(m0), np.asarray(m1)) and np.array_equal(np.asarray(g0), np.asarray(g1))
    assert not np.array_equal(np.asarray(p0), np.asarray(p1))
    # Try-on: the person (input and truth) takes the light, the catalog garment does not.
    tryon = {
        "person": batch["image"][:4].clone(),
        "garment": batch["target"][:4].clone(),
        "garment_mask": batch["mask"][:4].clone(),
    }
    t0 = augment_tryon_batch(tryon, np.random.default_rng(6), plain)
    t1 = augment_tryon_batch(tryon, np.random.default_rng(6), always)
    assert torch.equal(t0["garment"], t1["garment"]) and not torch.equal(t0["person"], t1["person"])


def test_device_loader_follows_the_sampler_and_resumes_mid_epoch(synthetic):
    config = tiny_config(synthetic, "unused")
    from clothes_extractor.eval.datasets import load_samples

    samples = load_samples(synthetic, "train", val_fraction=0.05, seed=0, require_garment=True)
    dataset = GarmentDataset(samples, config.contract())
    arrays = preload(dataset, torch.device("cpu"), workers=0, batch_size=5)
    assert len(arrays["image"]) == len(samples)
    assert np.array_equal(arrays["target"][3].numpy(), dataset[3]["target"].numpy())
    sampler = EpochSampler(len(samples), seed=0)
    loader = DeviceLoader(arrays, 4, sampler, Augmentation(), seed=0, drop_last=True)
    sampler.set_epoch(2)
    full = [b["image"].clone() for b in loader]
    assert len(full) == len(loader) == len(samples) // 4
    sampler.set_epoch(2, start=8)  # two batches in
    resumed = [b["image"] for b in loader]
    assert len(resumed) == len(full) - 2 and all(torch.equal(a, b) for a, b in zip(full[2:], resumed, strict=True))
    plain = list(DeviceLoader(arrays, 5))
    assert [len(b["image"]) for b in plain][-1] == len(samples) % 5 or len(samples) % 5 == 0
    assert torch.equal(torch.cat([b["mask"] for b in plain]), arrays["mask"])


def test_preloading_names_every_sample_that_cannot_be_read_at_once(synthetic, tmp_path):
    import shutil

    from clothes_extractor.errors import InputError
    from clothes_extractor.eval.datasets import load_samples

    data = tmp_path / "data"
    shutil.copytree(synthetic, data)
    samples = load_samples(data, "all")
    samples[2].photo.write_bytes(b"not a photo")
    samples[7].photo.write_bytes(samples[7].photo.read_bytes()[:300])  # truncated
    dataset = GarmentDataset(samples, tiny_config(data, "unused").contract())
    for workers in (0, 2):
        with pytest.raises(InputError) as refused:
            preload(dataset, torch.device("cpu"), workers=workers, batch_size=4)
        said = str(refused.value)
        assert said.startswith(f"2 of the {len(samples)} samples cannot be read: "), said
        assert str(samples[2].photo) in said and str(samples[7].photo) in said and "Remove or replace" in said


def test_a_loaders_worker_processes_are_forked_once_the_garbage_is_collected(tmp_path):
    """A forked worker's first collection finalized what the training process had let go and not
    collected yet; an onnxruntime object among it waited forever for its thread pool's threads,
    which a fork does not copy (a full test run hung so, in the test below). ``batches`` collects
    the garbage before the workers are forked: it is finalized in this process, never in one."""
    import gc
    import os

    from clothes_extractor.train.data import batches

    record = tmp_path / "finalized.txt"

    class Garbage:
        def __del__(self) -> None:
            with open(record, "a") as file:
                file.write(f"{os.getpid()}\n")

    gc.collect()
    gc.disable()  # (no collection of its own between the garbage and the fork)
    try:
        garbage = Garbage()
        garbage.itself = garbage  # (collected by the cycle collector only)
        del garbage
        loader = torch.utils.data.DataLoader(
            range(4), batch_size=2, num_workers=1, worker_init_fn=lambda _: gc.collect()
        )
        assert sum(len(batch) for batch in batches(loader)) == 4
    finally:
        gc.enable()
    assert record.read_text().split() == [str(os.getpid())]


def test_a_streamed_run_goes_on_past_an_unreadable_sample_and_says_it_once(synthetic, tmp_path, caplog):
    """Without --data-on-device a corrupt photo was met when its batch came, hours into a run
    perhaps, and stopped it; now the next sample takes its place, the photo is named once
    (not once an epoch), and the run's end says how many were left out. A share of them
    (more than 1%, at least 10) still stops it, naming them."""
    import shutil

    from clothes_extractor.errors import InputError
    from clothes_extractor.eval.overlap import training_split
    from clothes_extractor.train.data import LeftOut, Substituting

    data = tmp_path / "data"
    shutil.copytree(synthetic, data)
    config = tiny_config(data, tmp_path / "run", epochs=3, workers=1)
    samples = training_split(data, config.val_fraction, config.seed, True)[0]
    bad = samples[3].photo
    bad.write_bytes(bad.read_bytes()[:200])  # truncated
    dataset = GarmentDataset(samples, config.contract())
    item = Substituting(dataset)[1, 3]
    assert str(bad) in item.pop("unread") and all(torch.equal(item[k], v) for k, v in dataset[1, 4].items())
    assert Substituting(dataset)[1, 4]["unread"] == ""
    with caplog.at_level("WARNING"):
        train(config)
    said = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert (
        len(said) == 2
        and said[0].startswith("left out of training, another sample in its place: ")
        and str(bad) in said[0]
    ), said
    assert said[1] == "1 training sample(s) could not be read and were left out"
    assert (tmp_path / "run" / "last.pt").is_file()
    validation = training_split(data, config.val_fraction, config.seed, True)[1][0].photo
    validation.write_bytes(b"not a photo")  # said before training, not at the end of the first epoch
    with pytest.raises(InputError, match=r"^1 of the \d+ samples cannot be read: photo .*Remove or replace"):
        train(tiny_config(data, tmp_path / "second", epochs=3, workers=1))
    assert not (tmp_path / "second").exists() or not any((tmp_path / "second").glob("*.pt"))
    shutil.copy(samples[0].photo, validation)
    for n, sample in enumerate(samples):  # no training set at all: said, not trained around
        sample.photo.write_bytes(b"not a photo %d" % n)
    with pytest.raises(InputError, match=r"8 training samples in a row cannot be read: photo "):
        train(tiny_config(data, tmp_path / "third", epochs=3, workers=1))
    left_out = LeftOut(limit=10)
    for n in range(10):
        left_out.take({"unread": [f"photo {n} is truncated", ""]})
    with pytest.raises(InputError, match=r"^11 training samples cannot be read \(more than 10 of them\): photo 0"):
        left_out.take({"unread": ["photo 10 is truncated\nphoto 0 is truncated"]})


def test_a_zoomed_out_segmenter_photo_goes_on_in_its_backdrop_on_either_path(synthetic):
    from clothes_extractor.eval.datasets import load_sample, load_samples
    from clothes_extractor.runtime.fitting import border_colour

    config = tiny_config(synthetic, "unused", task="segmenter", parser=False)
    assert config.contract().fit.pad == "border"
    samples = load_samples(synthetic, "train", val_fraction=0.05, seed=0)[:4]
    zoom = Augmentation(flip=0, rotate_degrees=0, scale=0, jitter=0, framing=1.0, zoom_out=0.4)
    dataset = GarmentDataset(samples, config.contract(), zoom, seed=0)
    for index, sample in enumerate(samples):
        photo = np.asarray(load_sample(sample)[0])
        backdrop = border_colour(photo)
        assert backdrop != (255, 255, 255)  # (else white padding would pass too)
        corners = dataset[index]["image"].numpy()[[0, 0, -1, -1], [0, -1, 0, -1]]
        assert (
            sum(np.abs(corner.astype(int) - backdrop).max() <= 2 for corner in corners) >= 3
        )  # one may hold the photo


def test_data_on_device_time_limit_schedule_and_val_every(synthetic, tmp_path):
    out = train(
        tiny_config(synthetic, tmp_path / "run", epochs=4, data_on_device=True, val_every=2, lr_schedule="linear")
    )
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [2.0, 4.0]
    state = torch.load(out / "last.pt", weights_only=True)
    # linear: constant for the first half, then down towards 0 (the last step runs at 1/steps of the rate)
    assert 0 < state["optimizers"]["g"]["param_groups"][0]["lr"] < 0.2 * 2e-4
    timed = train(tiny_config(synthetic, tmp_path / "timed", epochs=1000, time_limit_min=0.01, data_on_device=True))
    rows = [json.loads(line) for line in (timed / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) >= 1 and rows[-1]["epoch"] < 1000  # stopped by the clock, validated and saved
    assert (timed / "last.pt").is_file() and (timed / "best.pt").is_file()
    with pytest.raises(ValueError, match="lr_schedule"):
        tiny_config(synthetic, tmp_path, lr_schedule="cosine")


def test_patch_discriminator_is_the_70px_patchgan():
    d = PatchDiscriminator(7, ndf=64)
    out = d(torch.zeros(1, 4, 256, 256), torch.zeros(1, 3, 256, 256))
    assert out.shape == (1, 1, 30, 30)  # pix2pix: 30x30 patches of 70x70 pixels for 256x256


def test_unet_with_scse_and_segmenter_task():
    seg = UNet(UNetConfig(task="segmenter", height=64, width=48, ngf=4, depth=3, attention="scse"))
    assert seg(torch.zeros(1, 3, 64, 48)).shape == (1, 1, 64, 48)


def test_augmentation_moves_photo_and_mask_together():
    # The garment pixels are pure red in the photo and 255 in the mask: after any
    # augmentation the two must still coincide (up to interpolated edge pixels).
    photo = np.full((80, 60, 3), 255, np.uint8)
    mask = np.zeros((80, 60), np.uint8)
    photo[20:50, 15:40] = (255, 0, 0)
    mask[20:50, 15:40] = 255
    settings = Augmentation(flip=0.5, rotate_degrees=10, scale=0.1, jitter=0.0)
    for seed in range(8):
        p, m, _, _ = augment(Image.fromarray(photo), Image.fromarray(mask), None, np.random.default_rng(seed), settings)
        p, m = np.asarray(p).astype(int), np.asarray(m)
        red = (p[..., 0] > 200) & (p[..., 1] < 60)
        inside = m > 200
        assert (red & inside).sum() / max(inside.sum(), 1) > 0.95
        assert (red & ~(m > 40)).sum() <= 0.02 * red.sum()


def test_sampler_shards_and_resumes():
    a = list(EpochSampler(10, seed=1, rank=0, world=2))
    b = list(EpochSampler(10, seed=1, rank=1, world=2))
    assert len(a) == len(b) == 5 and not {i for _, i in a} & {i for _, i in b}
    sampler = EpochSampler(10, seed=1)
    full = list(sampler)
    sampler.set_epoch(0, start=4)
    assert list(sampler) == full[4:]


def test_train_resume_continues_exactly(synthetic, tmp_path):
    straight = train(tiny_config(synthetic, tmp_path / "a", max_steps=7, attention="scse", ssim_weight=1.0))
    train(tiny_config(synthetic, tmp_path / "b", max_steps=3, attention="scse", ssim_weight=1.0))
    resumed = train(
        tiny_config(synthetic, tmp_path / "b", max_steps=7, attention="scse", ssim_weight=1.0),
        resume=tmp_path / "b" / "last.pt",
    )
    a = torch.load(straight / "last.pt", weights_only=True)
    b = torch.load(resumed / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == 7
    for part in ("model", "discriminator"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), f"{part}.{key} differs after resume"
    rows = [json.loads(line) for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [3, 5, 7]  # 5 steps per epoch: end of run, epoch 1, end
    assert {"val_ssim", "val_psnr", "train_g_l1", "samples_per_s"} <= set(rows[-1])
    assert (resumed / "metrics.csv").read_text().count("\n") == 4
    assert (resumed / "sheets" / "epoch_001.png").is_file() and (resumed / "best.pt").is_file()


@pytest.mark.parametrize(
    "extra",
    [[], ["--data-on-device", "--time-limit", "10", "--lr-schedule", "linear"]],
    ids=["loader", "data-on-device-timed"],
)
def test_ddp_with_two_gloo_processes(synthetic, tmp_path, extra):
    # The second case also runs the ranks' agreement on the clock (an all_reduce per step).
    out = tmp_path / "ddp"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "clothes_extractor",
            "-v",
            "train",
            "--data",
            str(synthetic),
            "--out",
            str(out),
            "--size",
            "64x48",
            "--depth",
            "3",
            "--ngf",
            "4",
            "--ndf",
            "8",
            "--batch-size",
            "2",
            "--max-steps",
            "3",
            "--workers",
            "0",
            "--val-limit",
            "2",
            "--device",
            "cpu",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "batch 2 x 2 process(es)" in done.stderr
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 3


def test_segmenter_trains_exports_and_evaluates(synthetic, tmp_path):
    run = train(tiny_config(synthetic, tmp_path / "seg", task="segmenter", epochs=1))
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert "val_iou" in row and "train_dice" in row
    from click.testing import CliRunner

    from clothes_extractor.cli import cli

    done = CliRunner().invoke(cli, ["export", str(run / "best.pt"), "-o", str(tmp_path / "seg.onnx")])
    assert done.exit_code == 0, done.output
    result = run_cli("evaluate", "--model", tmp_path / "seg.onnx", "--data", synthetic, "--split", "all")
    assert result.returncode == 0, result.stderr
    assert "iou" in result.stdout


def test_generator_end_to_end_train_export_evaluate(synthetic, tmp_path):
    """Train on synthetic triplets, export, and evaluate in a torch-free process: the
    evaluation of the exported model repeats the validation numbers of the checkpoint."""
    from click.testing import CliRunner

    from clothes_extractor.cli import cli

    run = train(tiny_config(synthetic, tmp_path / "gen", epochs=3, val_limit=None))
    checkpoint = torch.load(run / "best.pt", weights_only=True)
    done = CliRunner().invoke(cli, ["export", str(run / "best.pt"), "-o", str(tmp_path / "gen.onnx")])
    assert done.exit_code == 0, done.output
    report = tmp_path / "eval.json"
    result = run_cli(
        "evaluate",
        "--model",
        tmp_path / "gen.onnx",
        "--data",
        synthetic,
        "--split",
        "val",  # a split folder given directly is scored whole by default; training validated on its seeded share
        "--json",
        report,
        "--sheet",
        tmp_path / "sheet.png",
    )
    assert result.returncode == 0, result.stderr
    evaluated = json.loads(report.read_text())["metrics"]
    validated = checkpoint["summary"]["validation"]
    assert evaluated["ssim"] == pytest.approx(validated["ssim"], abs=2e-3)
    assert evaluated["psnr"] == pytest.approx(validated["psnr"], abs=0.05)
    info = run_cli("info", "--no-probe", "--model", tmp_path / "gen.onnx")
    assert '"train_samples": 23' in info.stdout or "train_samples" in info.stdout
    with Image.open(tmp_path / "sheet.png") as sheet:
        assert sheet.width > 4 * 48


HOLDER = """
import sys
from pathlib import Path

from clothes_extractor.runtime.files import held_folder

with held_folder(Path(sys.argv[1]), "busy"):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_run_folder_holds_one_run(synthetic, tmp_path):
    # A second train into a folder holding a run replaced its checkpoints and appended to its
    # metrics: refused unless --resume continues that run or --overwrite replaces it. A size
    # the depth cannot halve is refused before any work, without a traceback.
    from click.testing import CliRunner

    from clothes_extractor.cli import cli

    run = tmp_path / "run"
    common = ["train", "--data", str(synthetic), "-o", str(run), "--size", "64x48", "--depth", "3", "--ngf", "4"]
    common += ["--batch-size", "4", "--workers", "0", "--val-limit", "2"]
    runner = CliRunner()
    assert runner.invoke(cli, [*common, "--max-steps", "2", "--epochs", "7"]).exit_code == 0
    first = (run / "last.pt").read_bytes()
    again = runner.invoke(cli, [*common, "--max-steps", "1"])
    assert again.exit_code == 2 and f"-o {run} already holds a run (last.pt, best.pt" in again.output
    assert (run / "last.pt").read_bytes() == first and len((run / "metrics.jsonl").read_text().splitlines()) == 1
    ignored = runner.invoke(cli, [*common, "--max-steps", "3", "--lr-g", "1e-5", "--resume", str(run / "last.pt")])
    assert ignored.exit_code == 2 and "Error: --lr-g: a resumed run keeps its own settings" in ignored.output
    resumed = runner.invoke(cli, [*common, "--max-steps", "3", "--resume", str(run / "last.pt")])  # the same ones: fine
    assert resumed.exit_code == 0, resumed.output
    assert [json.loads(r)["step"] for r in (run / "metrics.jsonl").read_text().splitlines()] == [2, 3]
    assert torch.load(run / "last.pt", weights_only=True)["train_config"]["epochs"] == 7  # its own, not the default
    replaced = runner.invoke(cli, [*common, "--max-steps", "1", "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    assert [json.loads(r)["step"] for r in (run / "metrics.jsonl").read_text().splitlines()] == [1]
    assert torch.load(run / "best.pt", weights_only=True)["step"] == 1
    # a run still going (its data loading takes minutes on VITON, before any file is written):
    # a second train into its folder, even --resume or --overwrite, interleaved its metrics and
    # replaced its checkpoints until the 58th stop
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=cli_env(),
    )  # fmt: skip
    try:
        assert holder.stdout.readline() == "held\n"
        for extra in (["--resume", str(run / "last.pt")], ["--overwrite"]):
            busy = runner.invoke(cli, [*common, "--max-steps", "3", *extra])
            assert busy.exit_code == 1 and f"-o {run} is being trained right now by another process" in busy.output
        assert torch.load(run / "best.pt", weights_only=True)["step"] == 1
    finally:
        holder.communicate("", timeout=60)
    assert runner.invoke(cli, [*common, "--max-steps", "1", "--overwrite"]).exit_code == 0  # (its lock went with it)
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []  # the lock file goes with the run
    (tmp_path / "no-data").mkdir()  # an --init of another kind is said before the data loads (minutes on VITON)
    other = runner.invoke(cli, ["train", "--data", str(tmp_path / "no-data"), "-o", str(tmp_path / "flow"), "--arch",
                                "flow", "--size", "64x48", "--depth", "3", "--init", str(run / "best.pt")])  # fmt: skip
    assert other.exit_code == 1 and "holds a generator (unet); this run trains a generator (flow)" in other.output
    wider = runner.invoke(cli, ["train", "--data", str(tmp_path / "no-data"), "-o", str(tmp_path / "wide"), "--size",
                                "64x48", "--depth", "3", "--ngf", "8", "--init", str(run / "best.pt")])  # fmt: skip
    assert wider.exit_code == 1 and wider.output.rstrip().endswith(
        "other settings than this run's: --ngf 4 (this run: 8)"
    )
    odd = runner.invoke(cli, ["train", "--data", str(synthetic), "-o", str(tmp_path / "odd"), "--size", "64x48"])
    assert odd.exit_code == 2 and "multiples of 64; 64x48 is not" in odd.output and not (tmp_path / "odd").exists()


def test_data_a_run_cannot_use_is_said_in_a_line_and_the_folder_stays_usable(tmp_path):
    """A parser or try-on run on data without human parsings is refused before any work (it
    failed in the first batch, in a DataLoader worker, its traceback in the message); an
    unreadable photo found by a worker is said in one line; a folder left holding only the
    settings of a run that never saved a checkpoint takes the next run."""
    from click.testing import CliRunner

    from clothes_extractor.cli import cli
    from clothes_extractor.eval.overlap import training_split

    data = tmp_path / "data"
    write_synthetic(data, 6, seed=0, size=(64, 48))
    runner = CliRunner()
    common = ["train", "--data", str(data), "--size", "64x48", "--depth", "3", "--ngf", "4", "--batch-size", "2"]
    common += ["--max-steps", "1", "--val-limit", "1"]
    for extra, what in ((["--task", "segmenter", "--parser"], "a parser (--parser)"),
                        (["--task", "tryon", "--arch", "flow"], "try-on")):  # fmt: skip
        done = runner.invoke(cli, [*common, *extra, "-o", str(tmp_path / "run"), "--workers", "0"])
        assert done.exit_code == 1, done.output
        assert (
            f"training {what} needs a human parsing of each photo (VITON's image-parse/ or image-parse-v3/, "
            "Dress Code's label_maps/): 5 of 5 samples have none" in done.output
        )
    defaults = tiny_config(data, "unused")
    for n, sample in enumerate(training_split(data, defaults.val_fraction, defaults.seed, True)[0]):
        sample.photo.write_bytes(b"not a photo %d" % n)  # (not alike: copies of a validation photo are left out)
    done = runner.invoke(cli, [*common, "-o", str(tmp_path / "run"), "--workers", "1"])
    assert done.exit_code == 1 and done.output.startswith("Error: 5 training samples in a row cannot be read: photo ")
    assert "is not an image in a format Pillow can read" in done.output  # (no training set: said, not trained around)
    assert "Traceback" not in done.output and len(done.output.strip().splitlines()) == 1, done.output
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["config.json"]
    write_synthetic(tmp_path / "good", 6, seed=0, size=(64, 48))
    common[2] = str(tmp_path / "good")
    done = runner.invoke(cli, [*common, "-o", str(tmp_path / "run"), "--workers", "0"])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "run" / "last.pt").is_file()


def test_init_from_a_checkpoint_and_training_without_discriminator(synthetic, tmp_path):
    first = train(tiny_config(synthetic, tmp_path / "first", max_steps=2))
    # lr 0: the parameters must stay exactly those of --init; gan_weight 0: no discriminator.
    second = train(
        tiny_config(synthetic, tmp_path / "second", max_steps=2, init=str(first / "last.pt"), gan_weight=0.0, lr_g=0.0)
    )
    a = torch.load(first / "last.pt", weights_only=True)
    b = torch.load(second / "last.pt", weights_only=True)
    assert "discriminator" not in b and set(b["optimizers"]) == {"g"}
    params = {name for name, _ in UNet(UNetConfig(height=64, width=48, depth=3, ngf=4)).named_parameters()}
    for name in params:
        assert torch.equal(a["model"][name], b["model"][name]), name
    row = json.loads((second / "metrics.jsonl").read_text().splitlines()[-1])
    assert "train_g_l1" in row and "train_d" not in row
    # another kind or other settings: said in a line (the state dict's key lists were pages long)
    with pytest.raises(
        CheckpointError, match=r"last.pt holds a generator \(unet\); this run trains a generator \(flow\)"
    ):
        train(tiny_config(synthetic, tmp_path / "third", max_steps=1, init=str(first / "last.pt"), arch="flow"))
    with pytest.raises(CheckpointError, match=r"other settings than this run's: --ngf 4 \(this run: 8\)$"):
        train(tiny_config(synthetic, tmp_path / "fourth", max_steps=1, init=str(first / "last.pt"), ngf=8))


@pytest.mark.skipif(not VITON_VAL.is_file(), reason=f"{VITON_VAL} is absent")
@pytest.mark.parametrize("task", ["generator", "segmenter"])
def test_short_run_on_real_viton_pairs_trains_resumes_exports_evaluates(task, tmp_path):
    from click.testing import CliRunner

    from clothes_extractor.cli import cli

    split = cp_vton_subset(tmp_path / "viton", count=12) / "val"
    common = [
        "train",
        "--task",
        task,
        "--data",
        str(split),
        "--out",
        str(tmp_path / "run"),
        "--ngf",
        "4",
        "--ndf",
        "8",
        "--batch-size",
        "2",
        "--workers",
        "0",
        "--val-fraction",
        "0.2",
    ]
    runner = CliRunner()
    done = runner.invoke(cli, [*common, "--max-steps", "1"])
    assert done.exit_code == 0, done.output
    done = runner.invoke(cli, [*common, "--max-steps", "2", "--resume", str(tmp_path / "run" / "last.pt")])
    assert done.exit_code == 0, done.output
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["step"] == 2
    done = runner.invoke(cli, ["export", str(tmp_path / "run" / "last.pt"), "-o", str(tmp_path / "m.onnx")])
    assert done.exit_code == 0, done.output
    result = run_cli(
        "evaluate",
        "--model",
        tmp_path / "m.onnx",
        "--data",
        split,
        "--val-fraction",
        "0.2",
        "--json",
        tmp_path / "e.json",
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "e.json").read_text())["metrics"]
    assert set(metrics) == ({"ssim", "ms_ssim", "psnr", "gmsd", "sharpness"} if task == "generator" else {"iou"})


def test_flow_generator_trains_resumes_exports_and_evaluates(synthetic, tmp_path):
    """The warping generator end to end: every loss term moves, the run resumes exactly, the
    export answers at any photo size, and evaluate repeats the run's validation numbers."""
    from click.testing import CliRunner

    from clothes_extractor.cli import cli

    flow = dict(arch="flow", depth=3, ngf=4, top=4, ssim_weight=1.0, gan_weight=1.0, fm_weight=1.0, val_limit=None)
    flow.update(warp_edge_weight=1.0, warp_mask_weight=1.0, gms_weight=1.0, edge_weight=1.0)
    straight = train(tiny_config(synthetic, tmp_path / "a", max_steps=6, **flow))
    train(tiny_config(synthetic, tmp_path / "b", max_steps=3, **flow))
    resumed = train(tiny_config(synthetic, tmp_path / "b", max_steps=6, **flow), resume=tmp_path / "b" / "last.pt")
    a = torch.load(straight / "last.pt", weights_only=True)
    b = torch.load(resumed / "last.pt", weights_only=True)
    assert a["arch"] == "flow" and a["step"] == b["step"] == 6
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    row = json.loads((straight / "metrics.jsonl").read_text().splitlines()[-1])
    terms = {"g_l1", "g_ssim", "g_gms", "g_edge", "warp", "warp_edge", "warp_mask", "tv", "tv2", "composition", "alpha"}
    terms |= {"g_gan", "g_fm", "d"}
    assert {f"train_{t}" for t in terms} <= set(row)
    assert {"val_gmsd", "val_sharpness", "val_alpha_iou"} <= set(row)
    done = CliRunner().invoke(cli, ["export", str(straight / "best.pt"), "-o", str(tmp_path / "flow.onnx")])
    assert done.exit_code == 0, done.output
    assert "photo at 128x96" in done.output
    result = run_cli(
        "evaluate",
        "--model",
        tmp_path / "flow.onnx",
        "--data",
        synthetic,
        "--split",
        "val",
        "--json",
        tmp_path / "e.json",
    )
    assert result.returncode == 0, result.stderr
    evaluated = json.loads((tmp_path / "e.json").read_text())["metrics"]
    validated = torch.load(straight / "best.pt", weights_only=True)["summary"]["validation"]
    for name in ("ssim", "gmsd", "alpha_iou"):
        assert evaluated[name] == pytest.approx(validated[name], abs=2e-3), name


def test_the_mask_term_finds_the_garments_outline_in_the_photo():
    """--warp-mask-weight: the photo's garment mask as each grid samples it, against the catalog
    silhouette: nothing to blame where the grid samples the garment inside the silhouette and
    the rest outside it; the share of wrong pixels where it does not; no garment beyond the photo."""
    import dataclasses

    from clothes_extractor.train.architectures import build
    from clothes_extractor.train.flow import identity_grid
    from clothes_extractor.train.objectives import Objective

    config = tiny_config("unused", "unused", arch="flow", top=4, warp_mask_weight=1.0, gan_weight=0.0)
    model = build(config.architecture, dataclasses.asdict(config.network())).eval()
    objective = Objective(config, model, torch.device("cpu"), torch.contiguous_format)
    photo = torch.rand(1, 3, 64, 48) * 2 - 1
    garment = torch.zeros(1, 1, 64, 48)
    garment[..., 16:48, 12:36] = 1.0  # the garment in the photo, a 32x24 box

    def terms(alpha, grid, mask=garment, objective=objective):
        inputs = {"condition": torch.cat([photo, mask * 2 - 1], 1), "target": photo, "alpha": alpha}
        with torch.no_grad():
            out = objective.forward(model, inputs)
        return objective.losses(inputs, {**out, "grids": [grid]})

    def mask_term(*args, **kwargs):
        return terms(*args, **kwargs)["warp_mask"].item()

    identity = identity_grid(1, 64, 48, photo)
    assert mask_term(garment, identity) == pytest.approx(0.0, abs=1e-6)
    wider = garment.clone()
    wider[..., 16:48, 6:42] = 1.0  # a silhouette 12 columns wider than the garment the grid samples
    assert mask_term(wider, identity) == pytest.approx(12 * 32 / (64 * 48), abs=1e-6)
    zoomed = identity.clone()
    zoomed[:, 0] *= 24 / 36  # the grid stretches the garment's 24 columns over the silhouette's 36
    assert mask_term(wider, zoomed) < mask_term(wider, identity) / 5
    everything = torch.ones(1, 1, 64, 48)
    outside = identity.clone()
    outside[:, 0] += 3.0  # every sample to the right of the photo: no garment there
    assert mask_term(everything, outside, mask=everything) == pytest.approx(1.0, abs=1e-6)
    without = Objective(replace(config, warp_mask_weight=0.0), model, torch.device("cpu"), torch.contiguous_format)
    assert "warp_mask" not in terms(wider, identity, objective=without)


def test_flow_losses_on_known_inputs():
    from clothes_extractor.train.flow import identity_grid, warp
    from clothes_extractor.train.losses import feature_matching, flow_smoothness, grid_offsets_px, pyramid_warp_loss

    x = torch.rand(1, 3, 16, 12)
    grid = identity_grid(1, 16, 12, x)
    assert torch.allclose(warp(x, grid), x, atol=1e-6)  # the identity samples every pixel from itself
    assert flow_smoothness(grid)[0].item() == pytest.approx(0.0, abs=1e-6)
    shifted = grid.clone()
    shifted[:, 0] += 2 / 12  # one pixel to the right
    assert torch.allclose(grid_offsets_px(shifted)[:, 0], torch.ones(1, 16, 12), atol=1e-5)
    tv, second = flow_smoothness(shifted)
    assert tv.item() == pytest.approx(0.0, abs=1e-5)  # a translation is smooth
    scaled = grid.clone()
    scaled[:, 0] *= 1.2
    tv, second = flow_smoothness(scaled)
    assert tv.item() > 0.05 and second.item() == pytest.approx(0.0, abs=1e-5)  # a zoom is affine: no 2nd order
    target, alpha = x.clone(), torch.ones(1, 1, 16, 12)
    assert pyramid_warp_loss([grid], x, target, alpha).item() == pytest.approx(0.0, abs=1e-6)
    assert pyramid_warp_loss([shifted], x, target, alpha).item() > 0.01
    # the edge term: 0 for the same image and for a brightness shift (same edges), > 0 for a
    # shifted edge, and only where the weight covers both pixels of a difference
    from clothes_extractor.train.losses import gradient_l1

    assert gradient_l1(x, target, alpha).item() == pytest.approx(0.0, abs=1e-6)
    assert gradient_l1(x + 0.3, target, alpha).item() == pytest.approx(0.0, abs=1e-6)
    step = torch.zeros(1, 1, 4, 6)
    step[..., 3:] = 1.0  # an edge between columns 2 and 3
    moved = torch.zeros(1, 1, 4, 6)
    moved[..., 4:] = 1.0  # the same edge a pixel to the right
    everywhere = torch.ones(1, 1, 4, 6)
    # 8 of the 20 horizontal differences (2 a row) are off by 1, the vertical ones agree: (8/20 + 0) / 2
    assert gradient_l1(moved, step, everywhere).item() == pytest.approx(0.2)
    left = torch.zeros(1, 1, 4, 6)
    left[..., :3] = 1.0  # both edges lie outside the pixel pairs this covers
    assert gradient_l1(moved, step, left).item() == pytest.approx(0.0, abs=1e-6)
    features = [torch.ones(1, 2, 3, 3)]
    assert feature_matching(features, features).item() == 0.0
    assert feature_matching([f * 3 for f in features], features).item() == pytest.approx(2.0)


def test_better_source_loss_targets_whichever_source_is_nearer_the_truth():
    """``--composition better``: the composition mask's target is 1 where the sampled photo
    is nearer the catalog image (over a box), 0 where the rendering is, and 0 on ties."""
    from clothes_extractor.train.losses import better_source_loss

    target = torch.zeros(1, 3, 16, 12)
    sampled, rendered = target.clone(), target.clone()
    sampled[..., :, 6:] = 0.8  # the photo is wrong on the right half ...
    rendered[..., :, :6] = 0.5  # ... the rendering on the left half
    rendered[..., 12:, :] = target[..., 12:, :]  # and both are right at the bottom: a tie
    sampled[..., 12:, :] = target[..., 12:, :]
    right = torch.zeros(1, 1, 16, 12)
    right[..., :12, :6] = 1.0  # the photo where it is the better source, the rendering elsewhere

    def loss(logit, block=1):
        out = {"sampled": sampled, "rendered": rendered, "mask_logit": logit}
        return better_source_loss(out, target, block).item()

    confident = (right * 2 - 1) * 20  # logits that say exactly that
    assert loss(confident) == pytest.approx(0.0, abs=1e-6)
    assert loss(-confident) > 10  # the opposite choice
    assert loss(torch.zeros_like(right)) == pytest.approx(np.log(2), abs=1e-6)  # undecided
    # over a 3-pixel box the comparison is local: the left/right border stays where it is
    # (each side's error is the larger there), but the row of ties next to the photo's
    # lead now sees the lead (its box reaches into it), and goes to the photo
    spread = right.clone()
    spread[..., 12, :6] = 1.0
    assert loss((spread * 2 - 1) * 20, block=3) == pytest.approx(0.0, abs=1e-6)
    assert loss(confident, block=3) > 0.5
    with pytest.raises(ValueError, match="warping generator"):
        TrainConfig(task="tryon", arch="flow", composition="better")  # try-on has its own composition term


def test_flow_network_starts_as_the_identity_and_serves_any_size():
    from clothes_extractor.train.flow import FlowConfig, FlowGenerator, ServedFlowGenerator

    torch.manual_seed(0)
    model = FlowGenerator(FlowConfig(height=64, width=48, ngf=4, levels=3, top=4)).eval()
    condition = torch.rand(2, 4, 64, 48) * 2 - 1
    with torch.no_grad():
        fields = model(condition)
    # zero-initialised flow heads: the grid is the identity, so the photo is sampled in place
    # (but for a thin border, where upsampling a coarse grid clamps at the edge)
    inner = (slice(None), slice(None), slice(6, -6), slice(6, -6))
    assert torch.allclose(fields["sampled"][inner], condition[:, :3][inner], atol=1e-5)
    served = ServedFlowGenerator(model).eval()
    image = torch.randint(0, 256, (2, 64, 48, 3), dtype=torch.uint8)
    mask = torch.full((2, 64, 48, 1), 255, dtype=torch.uint8)
    with torch.no_grad():
        small, alpha = served(image, mask, image)
        big, big_alpha = served(image, mask, torch.randint(0, 256, (2, 200, 150, 3), dtype=torch.uint8))
    assert small.shape == (2, 64, 48, 3) and alpha.shape == (2, 64, 48, 1)
    assert big.shape == (2, 200, 150, 3) and big_alpha.shape == (2, 200, 150, 1)
    with pytest.raises(ValueError, match="multiples of 8; 60x48 is not: give such a size or --depth 2$"):
        FlowConfig(height=60, width=48, levels=3)
    with pytest.raises(ValueError, match="multiples of 64; 64x48 is not: give such a size or --depth 4$"):
        FlowConfig(height=64, width=48, levels=6)  # (the default depth at a small size: which depth fits)
    with pytest.raises(ValueError, match="multiples of 8; 62x48 is not: give such a size$"):  # (no depth fits)
        FlowConfig(height=62, width=48, levels=3)


@pytest.mark.skipif(not VITON_VAL.is_file(), reason=f"{VITON_VAL} is absent")
def test_a_parser_trains_on_parse_maps_with_negatives_and_framing(tmp_path):
    split = cp_vton_subset(tmp_path / "viton", count=12) / "val"
    config = TrainConfig(
        task="segmenter",
        parser=True,
        negatives=0.3,
        catalogs=0.3,
        framing=0.5,
        data=str(split),
        out=str(tmp_path / "run"),
        height=64,
        width=48,
        depth=3,
        ngf=4,
        batch_size=4,
        max_steps=3,
        workers=0,
        val_fraction=0.25,
        data_on_device=True,
        sheet_rows=0,
    )
    run = train(config)
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"train_ce", "train_dice", "val_iou", "val_parser_miou", "val_iou_upper"} <= set(row)
    assert torch.load(run / "last.pt", weights_only=True)["config"]["classes"] == 8
    with pytest.raises(ValueError, match="segmenter settings"):
        TrainConfig(task="generator", parser=True)


def test_a_parser_and_try_on_train_on_dress_code_label_maps(tmp_path):
    """Dress Code's full-body photos are parser and try-on data: its label maps, read as the
    parser's classes, are the targets and the region to dress (they were refused as having no
    LIP parse map)."""
    data = dress_code_folder(tmp_path / "dc", count=6).parent
    common = dict(max_steps=1, batch_size=2, val_limit=2, sheet_rows=0)
    parser = train(tiny_config(data, tmp_path / "parser", task="segmenter", parser=True, **common))
    row = json.loads((parser / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"val_parser_miou", "val_iou_upper", "val_iou_lower", "val_iou_arms"} <= set(row)
    tryon = train(tiny_config(data, tmp_path / "tryon", task="tryon", arch="flow", top=4, **common))
    assert torch.load(tryon / "last.pt", weights_only=True)["task"] == "tryon"


def test_negatives_and_framing_in_a_segmenter_batch():
    from clothes_extractor.train.scenes import with_negatives

    batch = {
        "image": torch.full((8, 32, 24, 3), 200, dtype=torch.uint8),
        "target": torch.full((8, 32, 24, 1), 255, dtype=torch.uint8),
        "labels": torch.full((8, 32, 24, 1), 3, dtype=torch.uint8),
    }
    out = with_negatives(batch, np.random.default_rng(0), 0.5)
    negative = out["target"].flatten(1).amax(1) == 0
    assert 0 < int(negative.sum()) < 8
    assert torch.equal(negative, out["labels"].flatten(1).amax(1) == 0)
    assert not torch.equal(out["image"][negative], batch["image"][negative])  # new photos there
    zoomed = augment_batch(
        {k: v for k, v in batch.items() if k != "labels"},
        np.random.default_rng(1),
        Augmentation(flip=0, rotate_degrees=0, scale=0, jitter=0, framing=1.0, zoom_out=0.3),
    )
    shares = (zoomed["target"] > 127).float().flatten(1).mean(1)
    assert (shares < 0.999).all() and (shares > 0.3**2 * 0.9).all()  # every photo shrank, within the range


def test_letterboxed_samples_are_crops_of_another_aspect_on_their_own_border_colour():
    from clothes_extractor.runtime.fitting import border_colour
    from clothes_extractor.train.scenes import with_letterbox

    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.integers(0, 256, (16, 32, 24, 3), dtype=np.uint8))
    target = torch.from_numpy(rng.integers(1, 256, (16, 32, 24, 1), dtype=np.uint8))  # garment everywhere
    out = with_letterbox({"image": image, "target": target}, np.random.default_rng(1), 1.0, (0.4, 2.4))
    bars = out["target"][..., 0] == 0
    wide = bars.all(dim=2).any(dim=1)  # whole rows of bars: a wide crop; else whole columns
    tall = bars.all(dim=1).any(dim=1)
    assert wide.any() and tall.any() and bool((wide ^ tall).all())  # every sample one or the other
    for i in range(16):
        kept = ~bars[i]
        rows, cols = kept.any(1).nonzero()[:, 0], kept.any(0).nonzero()[:, 0]
        crop = out["image"][i, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].numpy()
        assert kept.sum() == crop.shape[0] * crop.shape[1]  # one centred rectangle, kept at its scale
        assert abs((rows[0] + rows[-1]) - 31) <= 1 and abs((cols[0] + cols[-1]) - 23) <= 1
        assert (out["image"][i][bars[i]].numpy() == border_colour(crop)).all()
        found = [
            r
            for r in range(33 - crop.shape[0])
            for c in range(25 - crop.shape[1])
            if np.array_equal(image[i, r : r + crop.shape[0], c : c + crop.shape[1]].numpy(), crop)
        ]
        assert found  # a crop of the photo itself
    unchanged = with_letterbox({"image": image, "target": target}, np.random.default_rng(1), 0.0, (0.4, 2.4))
    assert torch.equal(unchanged["image"], image)


NEEDS_DATA_ON_DEVICE = "--catalogs, --full-length and --drawn change whole batches .* add --data-on-device"


def test_batch_changes_of_a_segmenter_need_the_data_on_the_device():
    with pytest.raises(ValueError, match=NEEDS_DATA_ON_DEVICE):
        TrainConfig(task="segmenter", letterbox=0.2)
    with pytest.raises(ValueError, match=NEEDS_DATA_ON_DEVICE):
        TrainConfig(task="segmenter", parser=True, backdrops=0.2)
    with pytest.raises(ValueError, match=NEEDS_DATA_ON_DEVICE):
        TrainConfig(task="segmenter", parser=True, catalogs=0.2)
    with pytest.raises(ValueError, match=NEEDS_DATA_ON_DEVICE):
        TrainConfig(task="segmenter", parser=True, busy=0.2)
    with pytest.raises(ValueError, match="retexture, catalogs, full-length and drawn are segmenter settings"):
        TrainConfig(task="generator", letterbox=0.2, data_on_device=True)
    with pytest.raises(ValueError, match="are segmenter settings"):
        TrainConfig(task="generator", catalogs=0.2, data_on_device=True)
    with pytest.raises(ValueError, match="--backdrops needs --parser"):
        TrainConfig(task="segmenter", backdrops=0.2, data_on_device=True)
    with pytest.raises(ValueError, match="--busy needs --parser"):
        TrainConfig(task="segmenter", busy=0.2, data_on_device=True)
    with pytest.raises(ValueError, match="--retexture needs --parser"):
        TrainConfig(task="segmenter", retexture=0.2, data_on_device=True)


def test_backdrops_replace_what_is_around_the_person_and_keep_neck_and_chest():
    """VITON's parse maps call neck and chest skin background: a new backdrop goes around the
    person, not through a gap between chin and collar."""
    from clothes_extractor.train.scenes import with_backdrops, with_scenes

    labels = torch.zeros((6, 64, 48, 1), dtype=torch.uint8)
    labels[:, 4:16, 18:30] = 2  # a face
    labels[:, 24:64, 10:38] = 3  # a top, 8 rows below the chin: the neck between is "background"
    labels[:, 30:40, 20:28] = 0  # a low neckline: chest skin, "background", inside the top's rows
    image = torch.full((6, 64, 48, 3), 230, dtype=torch.uint8)
    out = with_backdrops({"image": image, "labels": labels}, np.random.default_rng(0), 1.0)
    assert out["labels"] is labels  # the targets stay as they were
    kept = out["image"] == 230
    assert kept[:, 5:15, 19:29].all() and kept[:, 25:63, 11:37].all()  # face and top (within a pixel of the edge)
    assert kept[:, 17:23, 19:29].all() and kept[:, 30:40, 20:28].all()  # neck and chest: skin stays skin
    around = ~kept[:, :, :8].all(dim=-1)  # left of the top, the whole height
    assert around.float().mean() > 0.9  # a new backdrop (a backdrop colour of 230 is a rare draw)
    rng = np.random.default_rng(5)
    assert with_scenes({"image": image, "labels": labels}, rng, 0.0, 0.0, (0.4, 2.4), 0.0)["image"] is image
    assert rng.random() == np.random.default_rng(5).random()  # off: nothing drawn, the runs without it as they were


def _edges(images: np.ndarray) -> np.ndarray:
    """Each image's mean absolute difference between neighbouring pixels (levels)."""
    images = images.astype(np.float32)
    return np.abs(np.diff(images, axis=1)).mean(axis=(1, 2, 3)) + np.abs(np.diff(images, axis=2)).mean(axis=(1, 2, 3))


def test_busy_backdrops_are_busy_seeded_and_go_around_the_person():
    """A busy backdrop has structure everywhere (far more edges than the plain, gradient and
    blotched ones), differs from one draw to the next, repeats with its seed, and goes around
    the person as a plain one does; busy negatives are garment-free."""
    from clothes_extractor.train.busy import busy_photos
    from clothes_extractor.train.scenes import BACKDROP_KINDS, negative_photos, with_backdrops, with_negatives

    busy = busy_photos(24, 64, 48, np.random.default_rng(0))
    assert busy.shape == (24, 64, 48, 3) and busy.dtype == np.uint8
    assert np.array_equal(busy, busy_photos(24, 64, 48, np.random.default_rng(0)))
    plain = negative_photos(24, 64, 48, np.random.default_rng(0), BACKDROP_KINDS)
    assert np.median(_edges(busy)) > 4 * max(np.median(_edges(plain)), 0.5)
    assert len({image.tobytes() for image in busy}) == 24
    spread = busy.reshape(24, -1, 3).std(axis=1).mean(axis=1)
    assert (spread > 3).mean() > 0.9  # hardly any one flat colour

    labels = torch.zeros((24, 64, 48, 1), dtype=torch.uint8)
    labels[:, 4:16, 18:30] = 2  # a face
    labels[:, 24:64, 10:38] = 3  # a top
    image = torch.full((24, 64, 48, 3), 230, dtype=torch.uint8)
    out = with_backdrops({"image": image, "labels": labels}, np.random.default_rng(0), 1.0, busy=True)
    kept = out["image"] == 230
    assert kept[:, 5:15, 19:29].all() and kept[:, 25:63, 11:37].all()  # the person as it was
    walls = with_backdrops({"image": image, "labels": labels}, np.random.default_rng(0), 1.0)["image"]
    left = _edges(out["image"][:, :, :8].numpy()), _edges(walls[:, :, :8].numpy())  # left of the top
    assert np.median(left[0]) > 2.5 * max(np.median(left[1]), 0.5)

    batch = {"image": image, "labels": labels, "target": (labels == 3).to(torch.uint8) * 255}
    out = with_negatives(batch, np.random.default_rng(1), 1.0, busy=1.0)
    assert (out["labels"] == 0).all() and (out["target"] == 0).all()
    assert np.median(_edges(out["image"].numpy())) > 4 * max(np.median(_edges(plain)), 0.5)


def test_retexture_gives_the_garment_another_fabric_and_leaves_the_rest():
    """A retextured sample wears a busy pattern on its garment pixels only, shaded by the
    garment's light; labels stay; nothing is drawn when it is off."""
    from clothes_extractor.tasks import UPPER_CLASS
    from clothes_extractor.train.scenes import with_retexture, with_scenes

    labels = torch.zeros((16, 64, 48, 1), dtype=torch.uint8)
    labels[:, 4:16, 18:30] = 2  # a face
    labels[:, 24:64, 10:38] = UPPER_CLASS
    image = torch.full((16, 64, 48, 3), 230, dtype=torch.uint8)
    image[:, 24:64, 10:38] = 120  # a plain grey top
    out = with_retexture({"image": image, "labels": labels}, np.random.default_rng(0), 1.0)
    assert out["labels"] is labels
    assert torch.equal(out["image"][:, :22], image[:, :22]) and torch.equal(out["image"][:, :, :8], image[:, :, :8])
    top = out["image"][:, 26:62, 12:36].float()
    assert (top.flatten(1).std(1) > 3).float().mean() > 0.8  # a pattern where the top was one grey
    assert (top.mean((1, 2, 3)) - 120).abs().max() > 10  # and other colours
    rng = np.random.default_rng(5)
    assert with_scenes({"image": image, "labels": labels}, rng, 0.0, 0.0, (0.4, 2.4))["image"] is image
    assert rng.random() == np.random.default_rng(5).random()


def test_retexture_lower_gives_the_lower_clothes_another_fabric_and_leaves_the_top():
    """``--retexture-lower``: the lower clothes' pixels in another fabric, the top's and the
    rest as they were (a pattern is no sign of a top either); a parser's setting."""
    from clothes_extractor.tasks import PARSER_CLASSES, UPPER_CLASS
    from clothes_extractor.train.scenes import with_scenes

    lower = PARSER_CLASSES.index("lower")
    labels = torch.zeros((16, 64, 48, 1), dtype=torch.uint8)
    labels[:, 16:40, 10:38] = UPPER_CLASS
    labels[:, 40:64, 12:36] = lower
    image = torch.full((16, 64, 48, 3), 230, dtype=torch.uint8)
    image[:, 16:40, 10:38], image[:, 40:64, 12:36] = 120, 60  # a plain grey top, dark trousers
    out = with_scenes(
        {"image": image, "labels": labels}, np.random.default_rng(0), 0.0, 0.0, (0.4, 2.4), retexture_lower=1.0
    )
    assert torch.equal(out["image"][:, :39], image[:, :39]) and torch.equal(out["image"][:, :, :11], image[:, :, :11])
    trousers = out["image"][:, 42:62, 14:34].float()
    assert (trousers.flatten(1).std(1) > 3).float().mean() > 0.8  # a pattern where they were one grey
    assert out["labels"] is labels
    with pytest.raises(ValueError, match="--retexture-lower needs --parser"):
        TrainConfig(task="segmenter", retexture_lower=0.2, data_on_device=True)


def test_catalogs_put_the_garment_alone_in_a_photos_place():
    """A catalog sample is the garment and nothing of a person: its silhouette is the target
    and the garment class, the rest is background; the catalog planes leave the batch."""
    from clothes_extractor.tasks import UPPER_CLASS
    from clothes_extractor.train.scenes import with_catalogs, with_scenes

    silhouette = torch.zeros((8, 32, 24, 1), dtype=torch.uint8)
    silhouette[:, 4:28, 4:20] = 255
    batch = {
        "image": torch.full((8, 32, 24, 3), 90, dtype=torch.uint8),
        "target": torch.zeros((8, 32, 24, 1), dtype=torch.uint8),
        "labels": torch.full((8, 32, 24, 1), 2, dtype=torch.uint8),  # a face everywhere, to tell them apart
        "catalog": torch.full((8, 32, 24, 3), 250, dtype=torch.uint8),
        "catalog_mask": silhouette,
    }
    out = with_catalogs(batch, np.random.default_rng(0), 0.5)
    assert set(out) == {"image", "target", "labels"}
    alone = (out["image"] == 250).flatten(1).all(1)
    assert 0 < int(alone.sum()) < 8
    assert torch.equal(out["target"][alone], silhouette[alone])
    assert set(out["labels"][alone].unique().tolist()) == {0, UPPER_CLASS}
    assert torch.equal(out["labels"][alone] == UPPER_CLASS, silhouette[alone] == 255)
    assert (out["labels"][~alone] == 2).all() and (out["image"][~alone] == 90).all()  # the others as they were
    assert set(with_catalogs(batch, np.random.default_rng(0), 0.0)) == {"image", "target", "labels"}
    scenes = with_scenes(batch, np.random.default_rng(0), 0.0, 0.0, (0.4, 2.4), 0.0, 0.5)  # the catalogs go in there
    assert set(scenes) == {"image", "target", "labels"} and torch.equal(scenes["image"], out["image"])


@pytest.mark.skipif(not VITON_VAL.is_file(), reason=f"{VITON_VAL} is absent")
def test_a_dataset_with_catalogs_holds_each_catalog_image_and_its_silhouette(tmp_path):
    from clothes_extractor.eval.datasets import load_samples
    from clothes_extractor.runtime.silhouette import garment_silhouette
    from clothes_extractor.train.data import GarmentDataset

    split = cp_vton_subset(tmp_path / "viton", count=2) / "val"
    samples = load_samples(split, "all")
    contract = TrainConfig(task="segmenter", parser=True, data=str(split)).contract()
    item = {name: tensor.numpy() for name, tensor in GarmentDataset(samples, contract, catalogs=True)[0].items()}
    catalog = np.asarray(Image.open(samples[0].garment).convert("RGB").resize(contract.size[::-1]))
    assert item["catalog"].shape == item["image"].shape and item["catalog_mask"].shape == item["target"].shape
    assert np.abs(item["catalog"].astype(int) - catalog).mean() < 3  # VITON's cloth/ image (the same frame)
    assert np.array_equal(item["catalog_mask"][..., 0] > 0, garment_silhouette(item["catalog"]))
    assert 0.2 < (item["catalog_mask"] > 0).mean() < 0.9
    assert "catalog" not in GarmentDataset(samples, contract)[0]
    garmentless = [replace(samples[0], garment=None)]
    with pytest.raises(InputError, match="--catalogs needs each sample's catalog garment image"):
        GarmentDataset(garmentless, contract, catalogs=True)


def test_a_trained_unet_renders_for_the_warping_generator(synthetic, tmp_path, tiny_model_path):
    """The U-Net comes back from its ONNX file (BatchNorm folded) as the renderer; frozen, it
    stays as it was; the warping generator starts as good as it and exports whole."""
    from click.testing import CliRunner

    from clothes_extractor.cli import cli
    from clothes_extractor.train.renderer import unet_from_onnx

    net = unet_from_onnx(tiny_model_path)
    assert net.config.norm == "none" and net.config.ngf == 4
    flow = dict(arch="flow", depth=3, ngf=4, top=4, target_ngf=4, residual_px=2.0, renderer=str(tiny_model_path))
    flow.update(composition="better", composition_block=4)  # the mask learns where the photo beats the U-Net
    run = train(tiny_config(synthetic, tmp_path / "hybrid", max_steps=3, gan_weight=0.0, **flow))
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["config"]["renderer_ngf"] == 4 and state["config"]["residual_px"] == 2.0
    for name, value in net.state_dict().items():
        assert torch.equal(state["model"][f"renderer.{name}"], value), name  # frozen: untouched
    from clothes_extractor.train.architectures import build

    model = build("flow", state["config"])
    own = sum(1 for name, _ in model.named_parameters() if not name.startswith("renderer."))
    assert len(state["optimizers"]["g"]["param_groups"][0]["params"]) == own  # the renderer is not optimised
    done = CliRunner().invoke(cli, ["export", str(run / "last.pt"), "-o", str(tmp_path / "h.onnx")])
    assert done.exit_code == 0, done.output
    with pytest.raises(Exception, match="not a pix2pix U-Net"):
        unet_from_onnx(tmp_path / "h.onnx")


def test_a_trainable_renderer_learns_at_its_own_rate(synthetic, tmp_path, tiny_model_path):
    """``--renderer-trainable``: the renderer starts trained, and at the network's rate one step
    of the GPU recipe took the bundled U-Net's SSIM from 0.82 to 0.47 (40 training pairs); it gets
    ``--lr-renderer`` (its own parameter group), which the schedule decays like the rest."""
    from clothes_extractor.train.renderer import unet_from_onnx

    net = unet_from_onnx(tiny_model_path)
    flow = dict(arch="flow", depth=3, ngf=4, top=4, target_ngf=4, residual_px=2.0, renderer=str(tiny_model_path))
    settings = dict(max_steps=4, gan_weight=0.0, lr_schedule="linear", lr_g=1e-3, lr_renderer=1e-5)
    run = train(tiny_config(synthetic, tmp_path / "run", renderer_trainable=True, **settings, **flow))
    state = torch.load(run / "last.pt", weights_only=True)
    groups = state["optimizers"]["g"]["param_groups"]
    assert len(groups) == 2 and len(groups[1]["params"]) == len(list(net.parameters()))
    assert groups[1]["lr"] / groups[0]["lr"] == pytest.approx(1e-5 / 1e-3)  # both decayed by the same factor
    assert 0 < groups[0]["lr"] < 1e-3
    moved = [
        name for name, value in net.state_dict().items() if not torch.equal(state["model"][f"renderer.{name}"], value)
    ]
    assert moved  # it learns
    with pytest.raises(ValueError, match="--renderer-trainable fine-tunes a flow network.s --renderer"):
        TrainConfig(arch="flow", renderer_trainable=True)  # no renderer to fine-tune


def test_a_slim_checkpoint_builds_exports_and_starts_runs_but_does_not_resume(synthetic, tmp_path, tiny_model_path):
    """What a GPU lease brings back (scripts/gpu_lease.sh): the warping generator's weights as
    fp16 without the optimizers. It must build the same network (flow, not the U-Net that a
    checkpoint without its architecture means), export, and start a run; --resume says why not."""
    from click.testing import CliRunner

    from clothes_extractor.cli import cli
    from clothes_extractor.train.checkpoint import load_model, slim_checkpoint

    flow = dict(arch="flow", depth=3, ngf=4, top=4, target_ngf=4, residual_px=2.0, renderer=str(tiny_model_path))
    run = train(tiny_config(synthetic, tmp_path / "run", max_steps=2, gan_weight=1.0, **flow))
    slim = slim_checkpoint(run / "last.pt", tmp_path / "slim.pt")
    assert not {"optimizers", "discriminator", "scaler", "rng"} & set(slim)
    assert (tmp_path / "slim.pt").stat().st_size < 0.6 * (run / "last.pt").stat().st_size
    original, _ = load_model(run / "last.pt")
    copy, payload = load_model(tmp_path / "slim.pt", task="generator")
    assert payload["arch"] == "flow" and type(copy) is type(original)
    inputs = torch.rand(2, 4, 64, 48)
    with torch.no_grad():
        ours, theirs = original(inputs), copy(inputs)
    for name in ("garment", "alpha"):
        assert torch.allclose(ours[name], theirs[name], atol=0.02), name  # fp16 weights
    done = CliRunner().invoke(cli, ["export", str(tmp_path / "slim.pt"), "-o", str(tmp_path / "slim.onnx")])
    assert done.exit_code == 0, done.output
    started = train(tiny_config(synthetic, tmp_path / "next", max_steps=1, init=str(tmp_path / "slim.pt"), **flow))
    assert torch.load(started / "last.pt", weights_only=True)["step"] == 1
    resumed = CliRunner().invoke(
        cli, ["train", "--data", str(synthetic), "-o", str(tmp_path / "run"), "--resume", str(tmp_path / "slim.pt")]
    )
    assert resumed.exit_code == 1, resumed.output
    assert "without the training state" in resumed.output and f"--init {tmp_path / 'slim.pt'}" in resumed.output


def test_a_silhouette_head_learns_the_alpha_and_keeps_the_unets_garment(synthetic, tmp_path, tiny_model_path):
    """``--arch silhouette``: the U-Net (frozen) gives the garment, byte for byte as its own
    file does; only the head is trained (no discriminator), and the exported model has an
    alpha output that beats the all-garment guess after training; the U-Net can be read
    back from it as a renderer."""
    from clothes_extractor.eval.synthetic import seeded_photos
    from clothes_extractor.export.onnx_export import export_model
    from clothes_extractor.runtime.session import ModelSession
    from clothes_extractor.train.architectures import build
    from clothes_extractor.train.renderer import unet_from_onnx

    head = dict(arch="silhouette", depth=2, ngf=4, renderer=str(tiny_model_path), lr_g=3e-3, val_limit=None)
    run = train(tiny_config(synthetic, tmp_path / "s", max_steps=40, epochs=100, val_every=3, **head))
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["arch"] == "silhouette" and state["config"]["renderer_ngf"] == 4 and state["config"]["unet_features"]
    assert state["summary"]["renderer"]["file"] == tiny_model_path.name  # the U-Net's own provenance
    for name, value in unet_from_onnx(tiny_model_path).state_dict().items():
        assert torch.equal(state["model"][f"renderer.{name}"], value), name  # frozen: untouched
    model = build("silhouette", state["config"])
    own = sum(1 for name, _ in model.named_parameters() if not name.startswith("renderer."))
    assert len(state["optimizers"]["g"]["param_groups"][0]["params"]) == own
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    row = rows[-1]
    assert "train_alpha" in row and "train_d" not in row and "train_g_l1" not in row
    assert len(rows) >= 2 and len({r["val_ssim"] for r in rows}) == 1  # the garment never changes...
    best = torch.load(run / "best.pt", weights_only=True)["summary"]["validation"]["alpha_iou"]
    assert best == max(r["val_alpha_iou"] for r in rows)  # ...so the best checkpoint is the best alpha
    model.load_state_dict(state["model"])
    contract = export_model(model, tmp_path / "s.onnx")
    assert contract.alpha and not contract.catalog_resolution
    images, masks = seeded_photos(contract.size, 3, seed=2)
    with ModelSession(tiny_model_path, "cpu") as unet, ModelSession(tmp_path / "s.onnx", "cpu") as with_head:
        assert with_head.contract.alpha
        plain = unet.run(image=images, mask=masks)["garment"]
        both = with_head.run(image=images, mask=masks)
    assert np.array_equal(both["garment"], plain)
    assert both["alpha"].shape == (3, *contract.size, 1)
    # learned: better than calling the whole frame garment (the trivial guess)
    from clothes_extractor.eval.datasets import load_fitted, load_samples

    truths = [load_fitted(s, contract)["alpha"] > 127 for s in load_samples(synthetic, "val")]
    all_garment = float(np.mean([truth.mean() for truth in truths]))
    assert row["val_alpha_iou"] > all_garment + 0.1, (row["val_alpha_iou"], all_garment)
    # evaluate scores the file as training validated it, and its sheet shows the silhouettes
    from clothes_extractor.eval.evaluate import evaluate_model
    from clothes_extractor.eval.sheets import SILHOUETTE_BACKDROP

    with ModelSession(tmp_path / "s.onnx", "cpu") as session:
        result = evaluate_model(session, load_samples(synthetic, "val"), sheet_rows=1)
    assert result.metrics["alpha_iou"] == pytest.approx(row["val_alpha_iou"], abs=2e-3)
    h, w = contract.size
    sheet = np.asarray(result.sheet)
    assert sheet.shape[:2] == (h + 8, 6 * (w + 4) + 4)  # photo | mask | output | truth | cut-outs of both
    truth_cut = sheet[4 : 4 + h, 4 + 5 * (w + 4) : 4 + 5 * (w + 4) + w]
    assert (truth_cut[~truths[0][..., 0]] == SILHOUETTE_BACKDROP).all()  # outside the truth: the backdrop
    renderer = unet_from_onnx(tmp_path / "s.onnx")
    assert renderer.config.ngf == 4
    for wrong in (dict(renderer=None), dict(task="segmenter"), dict(renderer_trainable=True)):
        with pytest.raises(ValueError, match="--task generator and --renderer"):
            tiny_config(synthetic, tmp_path, **{**head, **wrong})


def test_tryon_network_keeps_the_person_outside_the_region_and_starts_at_the_identity():
    from clothes_extractor.train.tryon import ServedTryOn, TryOnConfig, TryOnGenerator, tryon_inputs

    torch.manual_seed(0)
    model = TryOnGenerator(TryOnConfig(height=64, width=48, ngf=4, levels=3, top=4)).eval()
    person = torch.rand(2, 3, 64, 48) * 2 - 1
    region = torch.zeros(2, 1, 64, 48)
    region[:, :, 16:48, 8:40] = 1
    garment, garment_mask = torch.rand(2, 3, 64, 48) * 2 - 1, torch.ones(2, 1, 64, 48)
    person_side, garment_side = tryon_inputs(person, region, garment, garment_mask)
    assert torch.all(person_side[:, :3][region.expand(-1, 3, -1, -1) > 0] == 0)  # the old top is painted out
    with torch.no_grad():
        out = model(person_side, garment_side)
    outside = region.expand(-1, 3, -1, -1) == 0
    assert torch.equal(out["image"][outside], person[outside])
    n, _, h, w = out["grid"].shape
    from clothes_extractor.train.flow import identity_grid

    assert torch.allclose(out["grid"], identity_grid(n, h, w, out["grid"]), atol=1e-6)  # zero flow heads
    assert torch.allclose(out["warped"], garment, atol=1e-5)
    served = ServedTryOn(model)
    uint8 = torch.randint(0, 256, (2, 64, 48, 3), dtype=torch.uint8)
    masks = torch.zeros(2, 64, 48, 1, dtype=torch.uint8)
    with torch.no_grad():
        dressed = served(uint8, masks, uint8, masks + 255)
    assert dressed.dtype == torch.uint8 and torch.equal(dressed, uint8)  # empty region: the photo itself
    with pytest.raises(ValueError, match="--arch flow"):
        TrainConfig(task="tryon", arch="unet")
    with pytest.raises(ValueError, match="a try-on sample is fitted whole"):  # (it was silently ignored)
        TrainConfig(task="tryon", arch="flow", framing=0.3)
    TrainConfig(task="tryon", arch="flow", lighting=0.3, grayscale=0.1)  # the changes a try-on sample takes


@pytest.mark.skipif(not VITON_VAL.is_file(), reason=f"{VITON_VAL} is absent")
def test_tryon_trains_on_viton_pairs_exports_and_evaluates(tmp_path):
    """Try-on end to end on real pairs and their parse maps: the warp, smoothness and
    composition terms train, the export matches PyTorch, evaluate scores it paired and
    draws the unpaired sheet."""
    from clothes_extractor.export.onnx_export import export_checked
    from clothes_extractor.train.checkpoint import load_model

    split = cp_vton_subset(tmp_path / "viton", count=8) / "val"
    config = TrainConfig(
        task="tryon",
        arch="flow",
        data=str(split),
        out=str(tmp_path / "run"),
        depth=5,
        ngf=4,
        top=4,
        residual_px=2.0,
        batch_size=2,
        max_steps=2,
        workers=0,
        val_fraction=0.25,
        gan_weight=0,
        ssim_weight=1,
        data_on_device=True,
        sheet_rows=2,
    )
    run = train(config)
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"train_g_l1", "train_warp", "train_tv", "train_composition", "val_ssim", "val_gmsd"} <= set(row)
    assert "train_alpha" not in row  # a try-on has no silhouette to learn
    model, _ = load_model(run / "last.pt")
    contract, checks = export_checked(model, tmp_path / "tryon.onnx", validate_on=split)
    assert contract.task == "tryon" and [spec.name for spec in contract.inputs] == [
        "person",
        "region",
        "garment",
        "garment_mask",
        "photo",
        "garment_photo",
    ]
    assert contract.catalog_resolution and contract.max_output == (1024, 768)
    assert len(checks) == 3 and all(check.passed for check in checks)  # seeded, at twice the size, the split
    result = run_cli(
        "evaluate",
        "--model",
        tmp_path / "tryon.onnx",
        "--data",
        split,
        "--split",
        "all",
        "--json",
        tmp_path / "e.json",
        "--unpaired-sheet",
        tmp_path / "unpaired.png",
    )
    assert result.returncode == 0, result.stderr
    scored = json.loads((tmp_path / "e.json").read_text())
    assert scored["samples"] == 8 and set(scored["metrics"]) == {"ssim", "ms_ssim", "psnr", "gmsd", "sharpness"}
    sheet = Image.open(tmp_path / "unpaired.png")
    assert sheet.size[0] > 4 * sheet.size[1] / 6  # six rows of person + four (garment, output) pairs


def steps_watched_for_host_reads(monkeypatch) -> list[str]:
    """Every read of a tensor's values on the host (``item``, ``float(t)``, ``bool(t)``, ``tolist``,
    ``numpy``, ``cpu``) made during a run's epochs, outside its validation, with the losses read
    only when logged (as on a GPU: ``Run.report_every``). On a GPU each such read waits for every
    kernel queued before it."""
    import traceback

    from clothes_extractor.train.loop import Run

    reads: list[str] = []
    watching = [False]

    def watched(name):
        original = getattr(torch.Tensor, name)

        def read(self, *args, **kwargs):
            # (Adam's step count lives on the host where it is not fused, as on this CPU: reading it
            # waits for nothing; on a GPU the run's Adam is fused and keeps it on the device)
            if watching[0] and not any("torch/optim/" in frame.filename for frame in traceback.extract_stack()):
                reads.append(name)
            return original(self, *args, **kwargs)

        return read

    for name in ("item", "tolist", "numpy", "cpu", "__float__", "__int__", "__bool__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, watched(name))
    epoch = Run._epoch

    def watched_epoch(self):
        self.report_every = 10**6
        watching[0] = True
        try:
            return epoch(self)
        finally:
            watching[0] = False

    monkeypatch.setattr(Run, "_epoch", watched_epoch)
    return reads


def test_a_training_step_reads_nothing_back_from_the_device(synthetic, tmp_path, tiny_model_path, monkeypatch):
    """The warping generator's steps (its data on the device, augmented there, framing, the
    composition's "better" target) and a U-Net's with a discriminator queue their work and
    never read a value back: the losses are summed where they are, read at validation."""
    reads = steps_watched_for_host_reads(monkeypatch)
    flow = dict(arch="flow", depth=3, ngf=4, top=4, target_ngf=4, residual_px=2.0, renderer=str(tiny_model_path))
    flow.update(composition="better", composition_block=4, framing=0.5, lighting=0.5, gan_weight=0.0)
    runs = [
        train(tiny_config(synthetic, tmp_path / "flow", epochs=1, data_on_device=True, **flow)),
        train(tiny_config(synthetic, tmp_path / "unet", epochs=1, data_on_device=True, fm_weight=1.0, ssim_weight=1.0)),
    ]
    assert reads == []
    for run in runs:
        row = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
        assert row["step"] == 5 and row["train_g_l1"] > 0 and np.isfinite(row["train_g_l1"]), row


def test_host_values_reach_the_device_as_they_were():
    from clothes_extractor.train.distributed import to_device

    theta = np.array([[0.5, -1.25], [2.0, 3.5]])
    sent = to_device(theta, torch.device("cpu"), torch.float32)
    assert sent.dtype == torch.float32 and sent.tolist() == theta.tolist()
    assert to_device([3, 1, 2], torch.device("cpu")).tolist() == [3, 1, 2]
    assert to_device(np.array([True, False]), torch.device("cpu")).dtype == torch.bool


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU for PyTorch")
def test_a_training_step_on_a_gpu_never_waits_for_it(synthetic, tmp_path, tiny_model_path, monkeypatch):
    """On a GPU, the warping generator's epoch (AMP, fused Adam, data on the device) makes no
    call that waits for the GPU: PyTorch's sync debug mode raises at the first."""
    pytest.importorskip("pytorch_msssim", reason="the SSIM loss needs pytorch-msssim (the [train] extra)")
    from clothes_extractor.train.loop import Run

    epoch = Run._epoch

    def strict_epoch(self):
        if self.step == 0:  # the first step: cuDNN's search, the allocators' first blocks
            self.total_steps, total = 1, self.total_steps
            epoch(self)
            self.total_steps = total
        torch.cuda.set_sync_debug_mode("error")
        try:
            return epoch(self)
        finally:
            torch.cuda.set_sync_debug_mode("default")

    monkeypatch.setattr(Run, "_epoch", strict_epoch)
    flow = dict(arch="flow", depth=3, ngf=4, top=4, target_ngf=4, residual_px=2.0, renderer=str(tiny_model_path))
    flow.update(composition="better", composition_block=4, framing=0.5, lighting=0.5, gan_weight=0.0, ssim_weight=1.0)
    run = train(tiny_config(synthetic, tmp_path / "flow", epochs=1, data_on_device=True, device="cuda", **flow))
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["step"] == 5 and np.isfinite(row["train_g_l1"])


def test_metrics_csv_keeps_every_value_under_its_own_column(tmp_path):
    """A row validated at a time limit with no steps behind it has no ``train_`` values, and a
    later one may have more columns than the first: metrics.csv is written from every row, a
    column for each key, so each value stays under its name (appended under the first row's
    header, the validation scores of such a row sat under the training losses' names)."""
    from clothes_extractor.train.loop import _append_metrics

    rows = [
        {"epoch": 1, "step": 10, "train_g_l1": 0.5, "val_ssim": 0.6},
        {"epoch": 1.1, "step": 11, "val_ssim": 0.61},
        {"epoch": 2, "step": 20, "train_g_l1": 0.4, "val_ssim": 0.62, "val_alpha_iou": 0.8},
    ]
    for row in rows:
        _append_metrics(tmp_path / "metrics.jsonl", tmp_path / "metrics.csv", row)
    with open(tmp_path / "metrics.csv", newline="", encoding="utf-8") as handle:
        read = list(csv.DictReader(handle))
    assert [r["val_ssim"] for r in read] == ["0.6", "0.61", "0.62"]
    assert [r["train_g_l1"] for r in read] == ["0.5", "", "0.4"]
    assert [r["val_alpha_iou"] for r in read] == ["", "", "0.8"]
    assert [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == rows
