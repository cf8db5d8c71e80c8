"""The same network in PyTorch, timed like the runtime: uint8 NHWC numpy in and out.

Variants: eager fp32 everywhere; on CUDA also eager fp16 with channels_last and, with
``compile``, ``torch.compile`` of that. The served wrapper (normalisation, masking, the
uint8 mapping) is part of every variant, as it is part of the exported graph.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from .runner import BenchSettings, Timer


def torch_variants(device: str, compile_: bool) -> list[tuple[str, str, bool, bool]]:
    """(name, dtype, channels_last, compiled) of each variant worth timing on ``device``."""
    variants = [("torch-eager-fp32", "fp32", False, False)]
    if device == "cuda":
        variants.append(("torch-eager-fp16-cl", "fp16", True, False))
        if compile_:
            variants.append(("torch-compile-fp16-cl", "fp16", True, True))
    elif compile_:
        variants.append(("torch-compile-fp32", "fp32", False, True))
    return variants


def torch_timers(
    checkpoint: Path,
    settings: BenchSettings,
    device: str = "cpu",
    compile_: bool = False,
    architecture: dict[str, Any] | None = None,
) -> list[Timer]:
    """A timer per variant x batch size of ``checkpoint`` in PyTorch, first run done."""
    import dataclasses

    import torch

    from ..errors import CheckpointError
    from ..train.checkpoint import load_model
    from ..train.networks import served

    model, _ = load_model(checkpoint)
    if architecture is not None:
        mine = dataclasses.asdict(model.config)
        differ = {k: (v, mine.get(k)) for k, v in architecture.items() if k in mine and mine[k] != v}
        if differ:
            raise CheckpointError(
                f"{checkpoint} is not the benchmarked model's network (model vs checkpoint: {differ}); "
                "a baseline must time the same network"
            )
    h, w = model.config.size
    timers = []
    for name, precision, channels_last, compiled in torch_variants(device, compile_):
        dtype = torch.float16 if precision == "fp16" else torch.float32
        net = load_model(checkpoint)[0].to(device=device, dtype=dtype)
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        wrapped = served(net, dtype)
        if compiled:
            wrapped = torch.compile(wrapped)
        for batch in settings.batch_sizes:
            rng = np.random.default_rng(0)
            image = rng.integers(0, 256, (batch, h, w, 3), dtype=np.uint8)
            mask = np.zeros((batch, h, w, 1), np.uint8)
            mask[:, h // 5 : 4 * h // 5, w // 5 : 4 * w // 5] = 255
            inputs = [image, mask] if model.config.task == "generator" else [image]

            def run_once(wrapped=wrapped, inputs=inputs) -> dict[str, float]:
                t0 = time.perf_counter()
                with torch.inference_mode():
                    out = wrapped(*(torch.from_numpy(a).to(device, non_blocking=True) for a in inputs))
                    out.cpu().numpy()  # .cpu() synchronises the device
                return {"total": time.perf_counter() - t0}

            first = run_once()["total"] * 1000
            row = {
                "engine": name,
                "provider": device,
                "io": "host",
                "batch": batch,
                "session_ms": None,
                "first_run_ms": first,
            }
            memory = (lambda: torch.cuda.max_memory_allocated() / 2**20) if device == "cuda" else (lambda: None)
            timers.append(Timer(row, run_once, memory))
    return timers
