"""The training loop, generator (pix2pix) or segmenter, top to bottom in one file.

    clothes-extractor train --task generator --data DATA --out RUN [options]
    torchrun --nproc_per_node N -m clothes_extractor train ...      (DDP, one process per GPU)

A run folder holds ``config.json``, ``last.pt`` (every epoch and at the end), ``best.pt``
(best validation SSIM for the generator, IoU for the segmenter), ``metrics.jsonl`` and
``metrics.csv`` (one row per epoch) and ``sheets/epoch_NNN.png`` contact sheets.
``--resume RUN/last.pt`` continues exactly where the run stopped: weights, optimizers,
scaler, step, the data order and the random state.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from .. import __version__
from ..errors import CheckpointError, ClothesExtractorError
from ..runtime.contract import TASK_FIT, FitSettings, ModelContract
from ..runtime.datasets import layout_of, load_samples
from ..runtime.evaluate import MAIN_METRIC, MetricTotals, contact_sheet, sheet_row
from ..settings import unknown_key
from .checkpoint import load_checkpoint, save_checkpoint
from .data import Augmentation, DeviceLoader, EpochSampler, GarmentDataset, preload
from .losses import GANLoss, dice_loss, ssim
from .metrics import score_batch
from .networks import (
    PatchDiscriminator,
    UNet,
    UNetConfig,
    generator_input,
    init_weights,
    mask_to_weight,
    photo_to_unit,
    served,
)

log = logging.getLogger(__name__)

LR_SCHEDULES = ("constant", "linear")


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a run; the fields are the ``train`` command's options."""

    task: str = "generator"
    data: str = ""
    out: str = ""
    epochs: int = 10
    max_steps: int | None = None
    batch_size: int = 8
    height: int = 256
    width: int = 192
    ngf: int = 16
    depth: int = 6
    attention: str = "none"
    dropout: bool = True
    ndf: int = 64
    lr_g: float = 2e-4
    lr_d: float = 2e-5  # the seed project found D must learn ~10x slower than G
    beta1: float = 0.5
    l1_weight: float = 100.0
    gan_mode: str = "lsgan"
    gan_weight: float = 1.0
    ssim_weight: float = 0.0
    val_fraction: float = 0.05
    val_limit: int | None = None  # validate on the first N samples only (quick runs)
    val_every: int = 1  # validate and checkpoint every N epochs (and at the end)
    lr_schedule: str = "constant"  # or "linear": constant for the first half, then linearly to 0 (pix2pix)
    time_limit_min: float | None = None  # stop (validate, checkpoint) after this many minutes
    data_on_device: bool = False  # decode the data once, keep it on the device, augment there
    augment: bool = True
    device: str = "auto"
    amp: bool = True  # CUDA only
    channels_last: bool = True  # CUDA only
    workers: int = 2
    seed: int = 0
    sheet_rows: int = 8
    log_every: int = 50
    init: str | None = None  # start from this checkpoint's network weights

    def __post_init__(self) -> None:
        if self.task not in TASK_FIT:
            raise ValueError(f"task must be one of {', '.join(TASK_FIT)}, got {self.task!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        for name in ("epochs", "batch_size", "val_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError("max_steps must be >= 1")
        if self.time_limit_min is not None and self.time_limit_min <= 0:
            raise ValueError("time_limit_min must be > 0")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        problem = unknown_key(data, cls)
        if problem is not None:
            raise ValueError(f"unknown training setting {problem}")
        return cls(**data)

    def network(self) -> UNetConfig:
        return UNetConfig(
            task=self.task,
            height=self.height,
            width=self.width,
            ngf=self.ngf,
            depth=self.depth,
            dropout=self.dropout and self.task == "generator",
            attention=self.attention,
        )

    def contract(self) -> ModelContract:
        """The contract the exported model will carry: training fits data by it."""
        return ModelContract(
            task=self.task, height=self.height, width=self.width, fit=FitSettings(method=TASK_FIT[self.task])
        )


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _start_distributed(device_kind: str) -> Distributed:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; without them this is a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Distributed()
    import torch.distributed as dist

    dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return Distributed(rank=dist.get_rank(), world=world, local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def _device(requested: str, local_rank: int) -> torch.device:
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ClothesExtractorError("--device cuda, but PyTorch sees no CUDA GPU here")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def _rng_state(device: torch.device) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _summary(cfg: TrainConfig, train_n: int, val_n: int, step: int, steps_per_epoch: int, metrics: dict) -> dict:
    data = Path(cfg.data)
    return {
        "task": cfg.task,
        "data": {
            "name": data.name,
            "layout": layout_of(data / "train") or layout_of(data),
            "train_samples": train_n,
            "val_samples": val_n,
        },
        "steps": step,
        "epochs": round(step / steps_per_epoch, 3),
        "batch_size": cfg.batch_size,
        "validation": metrics,
        "package_version": __version__,
    }


@torch.no_grad()
def validate(model: UNet, loader, device: torch.device, sheet_rows: int) -> tuple[dict[str, float], Any]:
    """Metrics of the served model (uint8 in and out, as exported) over the whole loader."""
    task = model.config.task
    was_training = model.training
    wrapped = served(model)
    totals = MetricTotals()
    rows: list[list[np.ndarray]] = []
    for batch in loader:
        inputs = [batch[name].to(device) for name in ("image", "mask") if name in batch]
        outputs = wrapped(*inputs)
        totals.add(score_batch(task, outputs, batch["target"]))  # on the device, runtime.metrics' numbers
        wanted = sheet_rows - len(rows)
        if wanted > 0:
            arrays = {name: tensor[:wanted].cpu().numpy() for name, tensor in batch.items()}
            for i, output in enumerate(outputs[:wanted].cpu().numpy()):
                rows.append(sheet_row(task, {k: v[i] for k, v in arrays.items()}, output))
    model.train(was_training)
    return totals.means(), (contact_sheet(rows) if rows else None)


def train(cfg: TrainConfig, resume: str | Path | None = None) -> Path:
    """Run training as ``cfg`` says; returns the run folder."""
    dist_info = _start_distributed("cuda" if cfg.device != "cpu" and torch.cuda.is_available() else "cpu")
    device = _device(cfg.device, dist_info.local_rank)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its fastest kernels
    use_amp = cfg.amp and device.type == "cuda"
    memory_format = torch.channels_last if cfg.channels_last and device.type == "cuda" else torch.contiguous_format
    out = Path(cfg.out)
    torch.manual_seed(cfg.seed)

    # Data: the runtime's records and fitting; a seeded validation split if the data has none.
    contract = cfg.contract()
    needs_garment = cfg.task == "generator"
    train_samples = load_samples(
        Path(cfg.data), "train", val_fraction=cfg.val_fraction, seed=cfg.seed, require_garment=needs_garment
    )
    val_samples = load_samples(
        Path(cfg.data), "val", val_fraction=cfg.val_fraction, seed=cfg.seed, require_garment=needs_garment
    )[: cfg.val_limit]
    if len(train_samples) < cfg.batch_size * dist_info.world:
        raise ClothesExtractorError(
            f"{len(train_samples)} training samples cannot fill one batch of {cfg.batch_size} "
            f"x {dist_info.world} process(es); lower --batch-size"
        )
    augmentation = Augmentation() if cfg.augment else None
    train_set = GarmentDataset(train_samples, contract, augmentation, cfg.seed)
    sampler = EpochSampler(len(train_set), cfg.seed, rank=dist_info.rank, world=dist_info.world)
    val_set = GarmentDataset(val_samples, contract)
    val_batch = max(cfg.batch_size, 16)
    if cfg.data_on_device:
        started = time.perf_counter()
        train_arrays = preload(GarmentDataset(train_samples, contract), device, cfg.workers)
        val_arrays = preload(val_set, device, cfg.workers)
        fill = contract.fit.pad_rgb
        loader = DeviceLoader(train_arrays, cfg.batch_size, sampler, augmentation, cfg.seed, fill, drop_last=True)
        val_loader = DeviceLoader(val_arrays, val_batch)
        log.info(
            "data on %s: %d + %d samples, %.2f GB, decoded in %.1f s",
            device,
            len(train_samples),
            len(val_samples),
            sum(t.numel() for t in (*train_arrays.values(), *val_arrays.values())) / 1e9,
            time.perf_counter() - started,
        )
    else:
        # Own generators keep the loaders from drawing on (and so shifting) the global RNG.
        loader = torch.utils.data.DataLoader(
            train_set,
            batch_size=cfg.batch_size,
            sampler=sampler,
            num_workers=cfg.workers,
            drop_last=True,
            pin_memory=device.type == "cuda",
            generator=torch.Generator().manual_seed(cfg.seed),
            persistent_workers=False,
        )
        val_loader = torch.utils.data.DataLoader(
            val_set,
            batch_size=val_batch,
            num_workers=cfg.workers,
            generator=torch.Generator().manual_seed(cfg.seed),
        )
    steps_per_epoch = len(train_set) // (cfg.batch_size * dist_info.world)
    total_steps = cfg.epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)

    # Networks and optimizers.
    model = UNet(cfg.network())
    init_weights(model)
    model.to(device, memory_format=memory_format)
    opt_g = torch.optim.Adam(model.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, 0.999))
    if cfg.init is not None and resume is None:
        # Start from another run's weights (same architecture); optimizers start fresh.
        try:
            model.load_state_dict(load_checkpoint(cfg.init)["model"])
        except RuntimeError as exc:
            raise CheckpointError(f"--init {cfg.init} is another architecture than this run's: {exc}") from None
    discriminator = opt_d = None
    adversarial = cfg.task == "generator" and cfg.gan_weight > 0  # gan_weight 0: L1 (+ SSIM) only, no D
    if adversarial:
        discriminator = PatchDiscriminator(model.in_channels + model.out_channels, ndf=cfg.ndf)
        init_weights(discriminator)
        discriminator.to(device, memory_format=memory_format)
        opt_d = torch.optim.Adam(discriminator.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, 0.999))
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)
    gan_loss = GANLoss(cfg.gan_mode)

    step, best = 0, -math.inf
    if resume is not None:
        state = load_checkpoint(resume)
        if state.get("train_config", {}).get("task") != cfg.task:
            raise CheckpointError(f"{resume} is not a {cfg.task} training checkpoint")
        model.load_state_dict(state["model"])
        opt_g.load_state_dict(state["optimizers"]["g"])
        if discriminator is not None:
            discriminator.load_state_dict(state["discriminator"])
            opt_d.load_state_dict(state["optimizers"]["d"])
        scaler.load_state_dict(state["scaler"])
        step, best = state["step"], state["best_metric"]
        _set_rng_state(state["rng"], device)
        log.info("resumed %s at step %d", resume, step)

    ddp_model, ddp_disc = model, discriminator
    if dist_info.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        ddp_model = DDP(model, device_ids=ids)
        if discriminator is not None:
            ddp_disc = DDP(discriminator, device_ids=ids)

    if dist_info.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
        log.info(
            "%s: %d train / %d val samples, %d steps (%d per epoch), batch %d x %d process(es), %s%s",
            cfg.task,
            len(train_samples),
            len(val_samples),
            total_steps,
            steps_per_epoch,
            cfg.batch_size,
            dist_info.world,
            device,
            " + AMP" if use_amp else "",
        )

    def train_step(batch: dict[str, torch.Tensor]) -> dict[str, float]:
        photo = photo_to_unit(batch["image"].to(device, non_blocking=True)).contiguous(memory_format=memory_format)
        with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            if cfg.task == "segmenter":
                target = mask_to_weight(batch["target"].to(device, non_blocking=True))
                logits = ddp_model(photo)
                bce = F.binary_cross_entropy_with_logits(logits.float(), target)
                dice = dice_loss(logits.float(), target)
                loss = bce + dice
                losses = {"bce": bce, "dice": dice}
            else:
                weight = mask_to_weight(batch["mask"].to(device, non_blocking=True))
                target = photo_to_unit(batch["target"].to(device, non_blocking=True))
                condition = generator_input(photo, weight)
                fake = ddp_model(condition)
                losses = {}
                if adversarial:
                    # Discriminator: real and fake in one forward (one DDP forward per backward).
                    both = ddp_disc(torch.cat([condition, condition]), torch.cat([target, fake.detach()]))
                    real_logits, fake_logits = both.chunk(2)
                    loss_d = 0.5 * (gan_loss(real_logits.float(), True) + gan_loss(fake_logits.float(), False))
        if cfg.task == "generator":
            if adversarial:
                opt_d.zero_grad(set_to_none=True)
                scaler.scale(loss_d).backward()
                scaler.step(opt_d)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                loss_l1 = F.l1_loss(fake.float(), target)
                loss = cfg.l1_weight * loss_l1
                losses["g_l1"] = loss_l1
                if adversarial:
                    loss_gan = gan_loss(ddp_disc(condition, fake).float(), True)
                    loss = loss + cfg.gan_weight * loss_gan
                    losses.update(d=loss_d, g_gan=loss_gan)
                if cfg.ssim_weight:
                    loss_ssim = 1 - ssim(fake.float(), target)
                    loss = loss + cfg.ssim_weight * loss_ssim
                    losses["g_ssim"] = loss_ssim
        opt_g.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt_g)
        scaler.update()
        return {name: float(value.detach()) for name, value in losses.items()}

    csv_path, jsonl_path = out / "metrics.csv", out / "metrics.jsonl"
    progress = None
    if dist_info.main:
        from tqdm import tqdm

        progress = tqdm(total=total_steps, initial=step, unit="step", disable=None, dynamic_ncols=True)
    model.train()
    if discriminator is not None:
        discriminator.train()
    # Base rates from the settings: a resumed optimizer's own lr is already scheduled.
    base_lr = [(opt, rate) for opt, rate in ((opt_g, cfg.lr_g), (opt_d, cfg.lr_d)) if opt is not None]
    run_started = time.perf_counter()
    time_up = False
    while step < total_steps and not time_up:
        epoch, start = divmod(step, steps_per_epoch)
        sampler.set_epoch(epoch, start * cfg.batch_size)
        sums: dict[str, float] = {}
        count, started, seen = 0, time.perf_counter(), 0
        for batch in loader:
            progress_share = _progress(cfg, step, total_steps, time.perf_counter() - run_started, dist_info, device)
            time_up = progress_share >= 1.0
            if time_up:
                break
            factor = _lr_factor(cfg.lr_schedule, progress_share)
            for opt, rate in base_lr:
                for group in opt.param_groups:
                    group["lr"] = rate * factor
            losses = train_step(batch)
            step += 1
            count += 1
            seen += len(batch["image"]) * dist_info.world
            for name, value in losses.items():
                sums[name] = sums.get(name, 0.0) + value
            if progress is not None:
                progress.update(1)
                progress.set_postfix({k: f"{v:.3f}" for k, v in losses.items()})
                if step % cfg.log_every == 0:
                    rate = seen / (time.perf_counter() - started)
                    log.info("step %d: %s, %.1f samples/s", step, _fmt(losses), rate)
            if step >= total_steps:
                break
        # Here at the end of an epoch, or of the run: validate and checkpoint.
        seconds = time.perf_counter() - started
        finished = step >= total_steps or time_up
        if dist_info.main and (finished or math.ceil(step / steps_per_epoch) % cfg.val_every == 0):
            metrics, sheet = validate(model, val_loader, device, cfg.sheet_rows)
            row = {
                "epoch": round(step / steps_per_epoch, 3),
                "step": step,
                **{f"train_{k}": v / max(count, 1) for k, v in sums.items()},
                **{f"val_{k}": v for k, v in metrics.items()},
                "samples_per_s": seen / seconds if seconds else 0.0,
                "seconds": seconds,
            }
            if progress is not None and not progress.disable:
                progress.write(f"epoch {row['epoch']:.2f}: {_fmt(row)}")
            else:
                log.info("epoch %.2f: %s", row["epoch"], _fmt(row))
            _append_metrics(jsonl_path, csv_path, row)
            if sheet is not None:
                (out / "sheets").mkdir(exist_ok=True)
                sheet.save(out / "sheets" / f"epoch_{math.ceil(row['epoch']):03d}.png")
            value = metrics[MAIN_METRIC[cfg.task]]
            improved = value > best
            best = max(best, value)
            state = {
                "train_config": dataclasses.asdict(cfg),
                "optimizers": {"g": opt_g.state_dict(), **({"d": opt_d.state_dict()} if opt_d else {})},
                "scaler": scaler.state_dict(),
                "step": step,
                "epoch": row["epoch"],
                "best_metric": best,
                "rng": _rng_state(device),
                "summary": _summary(cfg, len(train_samples), len(val_samples), step, steps_per_epoch, metrics),
            }
            if discriminator is not None:
                state["discriminator"] = discriminator.state_dict()
            save_checkpoint(out / "last.pt", model, **state)
            if improved:
                save_checkpoint(out / "best.pt", model, **state)
    if progress is not None:
        progress.close()
    if dist_info.world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return out


def _progress(
    cfg: TrainConfig, step: int, total_steps: int, elapsed_s: float, dist_info: Distributed, device: torch.device
) -> float:
    """How far the run is, 0..1: by steps, or by the clock where that is further on.

    Under DDP the ranks agree on the furthest value, so all stop together and use the same rate.
    """
    share = step / total_steps
    if cfg.time_limit_min is not None:
        share = max(share, elapsed_s / (60 * cfg.time_limit_min))
    if dist_info.world > 1 and cfg.time_limit_min is not None:
        import torch.distributed as dist

        value = torch.tensor([share], dtype=torch.float64, device=device)  # NCCL reduces CUDA tensors
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        share = float(value)
    return share


def _lr_factor(schedule: str, progress: float) -> float:
    """Learning-rate multiplier at ``progress`` (0..1) of the run."""
    if schedule == "linear":
        return min(1.0, 2.0 * (1.0 - progress))  # pix2pix: constant, then linearly to 0 over the second half
    return 1.0


def _fmt(values: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())


def _append_metrics(jsonl_path: Path, csv_path: Path, row: dict[str, Any]) -> None:
    with open(jsonl_path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")
    new = not csv_path.exists()
    with open(csv_path, "a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)
