"""The training loop (generator, segmenter or parser, try-on), top to bottom in one class.

    clothes-extractor train --task generator --data DATA -o RUN [options]
    torchrun --nproc_per_node N -m clothes_extractor train ...      (DDP, one process per GPU)

A run folder holds ``config.json``, ``last.pt`` (every epoch and at the end), ``best.pt``
(best validation SSIM for the generator, alpha IoU for a silhouette head, IoU for the
segmenter), ``metrics.jsonl``, ``metrics.csv`` (a row per epoch) and ``sheets/epoch_NNN.png``.
``--resume RUN/last.pt`` continues exactly where the run stopped: weights, optimizers,
scaler, step, the data order and the random state. Ctrl-C or SIGTERM ends a run as its clock
does, validated and saved at the next step (``schedule.stop_requests``).
"""

from __future__ import annotations

import csv
import dataclasses
import gc
import io
import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Mapping

import torch

from .. import __version__
from ..errors import CheckpointError, ClothesExtractorError
from ..eval.datasets import layout_of
from ..eval.overlap import training_split
from ..runtime.files import write_atomic
from ..tasks import task_of
from .architectures import build
from .checkpoint import load_resumable, save_checkpoint
from .config import LR_SCHEDULES, TrainConfig
from .data import Augmentation, DeviceLoader, EpochSampler, GarmentDataset, LeftOut, Substituting, preload, readable
from .distributed import pick_device, rng_state, set_rng_state, start_distributed
from .networks import PatchDiscriminator, init_weights
from .objectives import Objective
from .renderer import renderer_record, unet_from_onnx
from .schedule import lr_factor, progress, stop_requests
from .served_init import calibrate_batchnorm, calibration_batch, load_init
from .validation import validate

__all__ = ["LR_SCHEDULES", "TrainConfig", "train", "validate"]

log = logging.getLogger(__name__)


def train(cfg: TrainConfig, resume: str | Path | None = None) -> Path:
    """Run training as ``cfg`` says; returns the run folder."""
    run = Run(cfg, resume)
    run.loop()
    return run.out


class Run:
    """One training run: set up in ``__init__`` (device, data, networks, resume), then ``loop``."""

    def __init__(self, cfg: TrainConfig, resume: str | Path | None = None):
        self.cfg = cfg
        self.dist = start_distributed("cuda" if cfg.device != "cpu" and torch.cuda.is_available() else "cpu")
        self.device = device = pick_device(cfg.device, self.dist.local_rank)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its fastest kernels
        self.use_amp = cfg.amp and device.type == "cuda"
        # A step's losses are read (the progress bar's, the log's) every step on the CPU; on a GPU only
        # when logged: reading one waits for the GPU, which then waits for Python to queue the next step.
        self.report_every = cfg.log_every if device.type == "cuda" else 1
        self.memory_format = (
            torch.channels_last if cfg.channels_last and device.type == "cuda" else torch.contiguous_format
        )
        self.out = Path(cfg.out)
        torch.manual_seed(cfg.seed)
        self._data()
        self._networks(resume)
        self.step, self.best = 0, -math.inf
        self.saved_step: int | None = None  # the step last.pt was last saved at, by this run
        if resume is not None:
            self._resume(resume)
        self.ddp_model, self.ddp_disc = self.model, self.discriminator
        if self.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [device.index] if device.type == "cuda" else None
            self.ddp_model = DDP(self.model, device_ids=ids)
            if self.discriminator is not None:
                self.ddp_disc = DDP(self.discriminator, device_ids=ids)
        if self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
            log.info(
                "%s: %d train / %d val samples, %d steps (%d per epoch), batch %d x %d process(es), %s%s",
                cfg.task, len(self.train_samples), len(self.val_samples), self.total_steps, self.steps_per_epoch,
                cfg.batch_size, self.dist.world, device, " + AMP" if self.use_amp else "",
            )  # fmt: skip

    def _data(self) -> None:
        """The runtime's records and fitting; a seeded validation split if the data has none."""
        cfg, device = self.cfg, self.device
        contract = cfg.contract()
        needs_garment = task_of(cfg.task).needs_garment
        train, val = training_split(Path(cfg.data), cfg.val_fraction, cfg.seed, needs_garment, cfg.keep_val_copies)
        self.train_samples, self.val_samples = train, val[: cfg.val_limit]  # copies of validation samples left out
        if len(self.train_samples) < cfg.batch_size * self.dist.world:
            raise ClothesExtractorError(
                f"{len(self.train_samples)} training samples cannot fill one batch of {cfg.batch_size} "
                f"x {self.dist.world} process(es); lower --batch-size"
            )
        augmentation = Augmentation.from_config(cfg) if cfg.augment else None
        train_set = GarmentDataset(self.train_samples, contract, augmentation, cfg.seed)
        self.sampler = EpochSampler(len(train_set), cfg.seed, rank=self.dist.rank, world=self.dist.world)
        val_set = GarmentDataset(self.val_samples, contract)
        val_batch = max(cfg.batch_size, 16)
        if cfg.data_on_device:
            started = time.perf_counter()
            stored = GarmentDataset(self.train_samples, contract, catalogs=cfg.catalogs > 0)  # (not augmented)
            train_arrays = preload(stored, device, cfg.workers)
            val_arrays = preload(val_set, device, cfg.workers)
            fill = contract.fit.pad_rgb
            self.loader = DeviceLoader(
                train_arrays, cfg.batch_size, self.sampler, augmentation, cfg.seed, fill, drop_last=True
            )
            self.val_loader = DeviceLoader(val_arrays, val_batch)
            size = sum(t.numel() for t in (*train_arrays.values(), *val_arrays.values())) / 1e9
            log.info("data on %s: %.2f GB, decoded in %.1f s", device, size, time.perf_counter() - started)
        else:
            # Own generators keep the loaders from drawing on (and so shifting) the global RNG.
            self.loader = torch.utils.data.DataLoader(
                Substituting(train_set),  # (an unreadable sample: the run goes on without it, said)
                batch_size=cfg.batch_size,
                sampler=self.sampler,
                num_workers=cfg.workers,
                drop_last=True,
                pin_memory=device.type == "cuda",
                generator=torch.Generator().manual_seed(cfg.seed),
                persistent_workers=False,
            )
            self.val_loader = torch.utils.data.DataLoader(
                readable(val_set, cfg.workers),  # (each sample read once now: a bad one named before training)
                batch_size=val_batch,
                num_workers=cfg.workers,
                generator=torch.Generator().manual_seed(cfg.seed),
            )
        self.left_out = LeftOut(limit=max(10, len(train_set) // 100))
        self.steps_per_epoch = len(train_set) // (cfg.batch_size * self.dist.world)
        self.total_steps = cfg.epochs * self.steps_per_epoch
        if cfg.max_steps is not None:
            self.total_steps = min(self.total_steps, cfg.max_steps)

    def _networks(self, resume: str | Path | None) -> None:
        cfg = self.cfg
        self.model = model = build(cfg.architecture, dataclasses.asdict(cfg.network()))
        if cfg.arch == "unet":
            init_weights(model)  # pix2pix's init; the flow network starts at the identity grid by its own init
        renders = getattr(model, "renderer", None) is not None and cfg.renderer
        self.renderer_record = renderer_record(cfg.renderer) if renders else None  # once; --resume: its own
        if getattr(model, "renderer", None) is not None and not cfg.renderer_trainable:
            model.renderer.requires_grad_(False)  # frozen: no gradients, no optimizer state
        model.to(self.device, memory_format=self.memory_format)
        # a trainable renderer learns at its own rate (it starts trained: at --lr-g one GPU step took SSIM 0.82->0.47)
        rendering = {id(p) for p in model.renderer.parameters()} if cfg.renderer_trainable else set()
        groups = [[p for p in model.parameters() if p.requires_grad and id(p) not in rendering]]
        self.rates_g = [cfg.lr_g] + ([cfg.lr_renderer] if rendering else [])
        if rendering:
            groups.append([p for p in model.renderer.parameters()])
        # fused on a GPU: one kernel for all the weights, and the AMP scaler's check for inf needs no wait for the GPU
        fused = True if self.device.type == "cuda" else None
        self.opt_g = torch.optim.Adam(
            [{"params": group, "lr": rate} for group, rate in zip(groups, self.rates_g, strict=True)],
            betas=(cfg.beta1, 0.999),
            fused=fused,
        )
        init = {}
        if cfg.init is not None and resume is None:  # another run's weights (same architecture), fresh optimizers
            init = load_init(cfg.init, model, "--init")  # a checkpoint, or a served model (BatchNorm unfolded)
            if not renders or cfg.renderer_trainable:  # (its fine-tuned renderer goes on; a frozen one is --renderer's)
                self.renderer_record = init.get("summary", {}).get("renderer", self.renderer_record)
        if renders and resume is None and (cfg.init is None or not cfg.renderer_trainable):  # (also over --init's)
            model.renderer.load_state_dict(unet_from_onnx(cfg.renderer).state_dict())
        self.objective = Objective(cfg, model, self.device, self.memory_format)
        if init.get("unfolded"):  # its BatchNorms' statistics, measured on this run's training pairs
            batch = calibration_batch(self.train_samples, cfg.contract())
            calibrate_batchnorm(
                model, init["unfolded"], lambda: self.objective.forward(model, self.objective.inputs(batch))
            )
        self.discriminator = self.opt_d = None
        if self.objective.adversarial:  # gan_weight 0: no discriminator
            self.discriminator = PatchDiscriminator(model.in_channels + model.out_channels, ndf=cfg.ndf)
            init_weights(self.discriminator)
            self.discriminator.to(self.device, memory_format=self.memory_format)
            betas = (cfg.beta1, 0.999)
            self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=cfg.lr_d, betas=betas, fused=fused)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.use_amp)

    def _resume(self, resume: str | Path) -> None:
        state = load_resumable(resume)
        if state.get("train_config", {}).get("task") != self.cfg.task:
            raise CheckpointError(f"{resume} is not a {self.cfg.task} training checkpoint")
        self.model.load_state_dict(state["model"])
        self.opt_g.load_state_dict(state["optimizers"]["g"])
        if self.discriminator is not None:
            self.discriminator.load_state_dict(state["discriminator"])
            self.opt_d.load_state_dict(state["optimizers"]["d"])
        self.scaler.load_state_dict(state["scaler"])
        self.step, self.best = state["step"], state["best_metric"]
        self.renderer_record = state.get("summary", {}).get("renderer", self.renderer_record)
        set_rng_state(state["rng"], self.device)
        log.info("resumed %s at step %d", resume, self.step)

    def _summary(self, metrics: dict) -> dict:  # what a checkpoint, and a model exported from it, record
        cfg, data = self.cfg, Path(self.cfg.data)
        return {
            "task": cfg.task,
            "data": {
                "name": data.name,
                "layout": layout_of(data / "train") or layout_of(data),
                "train_samples": len(self.train_samples),
                "val_samples": len(self.val_samples),
            },
            "steps": self.step,
            "epochs": round(self.step / self.steps_per_epoch, 3),
            "batch_size": cfg.batch_size,
            "validation": metrics,
            **({"renderer": self.renderer_record} if self.renderer_record else {}),  # the U-Net's provenance
            "package_version": __version__,
        }

    # -- the loop ----------------------------------------------------------------------------

    def loop(self) -> None:
        cfg = self.cfg
        self.progress = None
        if self.dist.main:
            from tqdm import tqdm

            self.progress = tqdm(total=self.total_steps, initial=self.step, unit="step", disable=None)
        self.model.train()
        if self.discriminator is not None:
            self.discriminator.train()
        # Base rates from the settings: a resumed optimizer's own lr is already scheduled.
        self.base_lr = [(opt, rates) for opt, rates in ((self.opt_g, self.rates_g), (self.opt_d, [cfg.lr_d])) if opt]
        self.run_started = time.perf_counter()
        time_up = False
        with stop_requests() as self.stop:
            while self.step < self.total_steps and not time_up:
                started = time.perf_counter()
                sums, count, seen, time_up = self._epoch()
                if self.device.type == "cuda":  # its steps were queued: the epoch's time is when they are done
                    torch.cuda.synchronize(self.device)
                # Here at the end of an epoch, or of the run (steps, clock or a signal): validate and checkpoint.
                finished = self.step >= self.total_steps or time_up
                epoch_done = math.ceil(self.step / self.steps_per_epoch) % cfg.val_every == 0
                if self.dist.main and (finished or epoch_done) and self.step != self.saved_step:
                    self._validate_and_save(sums, count, seen, time.perf_counter() - started)
        if self.progress is not None:
            self.progress.close()
        self.left_out.sum_up()
        if self.stop.requested:
            out_last = self.out / "last.pt"
            log.warning("stopped at step %d of %d: --resume %s goes on", self.step, self.total_steps, out_last)
        if self.dist.world > 1:
            import torch.distributed as dist

            dist.barrier()
            # DDP holds the process group: let it go while the interpreter is whole, or gloo's
            # threads die at exit, now and then with an abort ("terminate called ...", exit -6)
            self.ddp_model, self.ddp_disc = self.model, self.discriminator
            gc.collect()
            dist.destroy_process_group()
        self.stop.deliver()  # saved: now the signal's usual effect

    def _epoch(self) -> tuple[dict[str, float], int, int, bool]:
        """Steps until the epoch, the run or the clock ends: (loss sums, steps, samples, time up)."""
        cfg = self.cfg
        epoch, start = divmod(self.step, self.steps_per_epoch)
        self.sampler.set_epoch(epoch, start * cfg.batch_size)
        sums: dict[str, torch.Tensor] = {}  # on the device: read when the epoch is validated
        count, seen, started = 0, 0, time.perf_counter()
        for batch in self.left_out.batches(self.loader):
            elapsed = time.perf_counter() - self.run_started
            share = progress(
                self.step, self.total_steps, elapsed, cfg.time_limit_min, self.dist, self.device, self.stop.requested
            )
            if share >= 1.0:
                return sums, count, seen, True
            factor = lr_factor(cfg.lr_schedule, share)
            for opt, rates in self.base_lr:
                for group, rate in zip(opt.param_groups, rates, strict=True):
                    group["lr"] = rate * factor
            losses = self._step(batch)
            self.step += 1
            count += 1
            seen += len(next(iter(batch.values()))) * self.dist.world
            for name, value in losses.items():
                sums[name] = sums.get(name, 0.0) + value.double()
            self._report(losses, seen / (time.perf_counter() - started))
            if self.step >= self.total_steps:
                break
        return sums, count, seen, False

    def _step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One optimisation step; its losses stay on the device (reading them waits for the GPU)."""
        objective, scaler, amp = self.objective, self.scaler, self.use_amp
        inputs = objective.inputs(batch)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=amp):
            out = objective.forward(self.ddp_model, inputs)
            d_loss = objective.discriminator_loss(self.ddp_disc, inputs, out) if self.discriminator else None
        if d_loss is not None:
            self.opt_d.zero_grad(set_to_none=True)
            scaler.scale(d_loss).backward()
            scaler.step(self.opt_d)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=amp):
            losses = objective.losses(inputs, out, self.discriminator)
        self.opt_g.zero_grad(set_to_none=True)
        scaler.scale(losses.pop("total")).backward()
        scaler.step(self.opt_g)
        scaler.update()
        if d_loss is not None:
            losses["d"] = d_loss
        return {name: value.detach() for name, value in losses.items()}

    def _report(self, losses: dict[str, torch.Tensor], rate: float) -> None:
        if self.progress is None:
            return
        self.progress.update(1)
        if self.step % self.report_every:
            return
        values = {name: float(value) for name, value in losses.items()}
        self.progress.set_postfix({k: f"{v:.3f}" for k, v in values.items()})
        if self.step % self.cfg.log_every == 0:
            log.info("step %d: %s, %.1f samples/s", self.step, _fmt(values), rate)

    def _validate_and_save(self, sums: dict[str, torch.Tensor], count: int, seen: int, seconds: float) -> None:
        cfg, out = self.cfg, self.out
        if self.stop.requested:  # saved before validating too: a machine being taken away may not wait
            self._save({}, improved=False)
        metrics, sheet = validate(self.model, self.val_loader, self.device, cfg.sheet_rows)
        row = {
            "epoch": round(self.step / self.steps_per_epoch, 3),
            "step": self.step,
            **{f"train_{k}": float(v) / max(count, 1) for k, v in sums.items()},
            **{f"val_{k}": v for k, v in metrics.items()},
            "samples_per_s": seen / seconds if seconds else 0.0,
            "seconds": seconds,
        }
        if self.progress is not None and not self.progress.disable:
            self.progress.write(f"epoch {row['epoch']:.2f}: {_fmt(row)}")
        else:
            log.info("epoch %.2f: %s", row["epoch"], _fmt(row))
        _append_metrics(out / "metrics.jsonl", out / "metrics.csv", row)
        if sheet is not None:
            (out / "sheets").mkdir(exist_ok=True)
            sheet.save(out / "sheets" / f"epoch_{math.ceil(row['epoch']):03d}.png")
        value = metrics["alpha_iou" if cfg.arch == "silhouette" else task_of(cfg.task).main_metric]
        improved = value > self.best
        self.best = max(self.best, value)
        self._save(metrics, improved)

    def _save(self, metrics: dict[str, float], improved: bool) -> None:
        """``last.pt`` (and ``best.pt`` if ``improved``): everything ``--resume`` needs."""
        optimizers = {"g": self.opt_g.state_dict(), **({"d": self.opt_d.state_dict()} if self.opt_d else {})}
        state = {
            "train_config": dataclasses.asdict(self.cfg),
            "optimizers": optimizers,
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "epoch": round(self.step / self.steps_per_epoch, 3),
            "best_metric": self.best,
            "rng": rng_state(self.device),
            "summary": self._summary(metrics),
        }
        if self.discriminator is not None:
            state["discriminator"] = self.discriminator.state_dict()
        save_checkpoint(self.out / "last.pt", self.model, **state)
        self.saved_step = self.step if metrics else None  # validated: nothing more to do at this step
        if improved:
            save_checkpoint(self.out / "best.pt", self.model, **state)


def _fmt(values: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())


def _append_metrics(jsonl_path: Path, csv_path: Path, row: dict[str, Any]) -> None:
    """``row`` onto ``metrics.jsonl``; ``metrics.csv`` written again from all its rows, with a
    column for every key any of them has (a row validated with no steps behind it, at a time
    limit, has no ``train_`` values: appended under the first row's header, its values would
    sit in the wrong columns)."""
    with open(jsonl_path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")
    rows = [json.loads(line) for line in jsonl_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    columns = list(dict.fromkeys(key for each in rows for key in each))
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(csv_path, table.getvalue().encode("utf-8"), sync=False)
