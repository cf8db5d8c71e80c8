"""Training: losses, augmentation, the loop (resume, DDP), and train -> export -> evaluate."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from clothes_extractor.data.synth import write_synthetic
from clothes_extractor.train.data import Augmentation, EpochSampler, augment
from clothes_extractor.train.loop import TrainConfig, train
from clothes_extractor.train.losses import GANLoss, dice_loss, ssim
from clothes_extractor.train.networks import PatchDiscriminator, UNet, UNetConfig
from conftest import VITON_VAL, cp_vton_subset, run_cli


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
    from clothes_extractor.runtime.metrics import ssim as numpy_ssim

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (2, 40, 40, 3), dtype=np.uint8)
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    ta, tb = (torch.from_numpy(x).permute(0, 3, 1, 2).double() / 127.5 - 1 for x in (a, b))
    assert ssim(ta, tb).item() == pytest.approx(float(numpy_ssim(a, b).mean()), abs=1e-6)


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
        p, m, _ = augment(Image.fromarray(photo), Image.fromarray(mask), None, np.random.default_rng(seed), settings)
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


def test_ddp_with_two_gloo_processes(synthetic, tmp_path):
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
    assert 0.0 <= row["val_iou"] <= 1.0 and "train_dice" in row
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
    assert set(metrics) == ({"ssim", "ms_ssim", "psnr"} if task == "generator" else {"iou"})
