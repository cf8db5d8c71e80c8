"""The same network in PyTorch, timed like the runtime: uint8 NHWC numpy in and out.

Variants: eager fp32 everywhere (the network as trained); on CUDA also the tuned fp16
paths: BatchNorm folded into the convolutions (as the exported model has it), channels_last,
cuDNN's autotuner on, run eagerly, replayed as a CUDA graph per batch size (PyTorch's
fastest path on an H200, see ../shared/gpu/README.md; timed with numpy in/out and
device-resident, io "device") and, with ``compile``, ``torch.compile`` of it. The served
wrapper (normalisation, masking, the uint8 mapping) is part of every variant, as it is part
of the exported graph.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .runner import BenchSettings, Timer

log = logging.getLogger(__name__)


def torch_variants(device: str, compile_: bool) -> list[tuple[str, str, bool, str]]:
    """(name, dtype, channels_last, how: eager, graph or compile) of each variant worth timing on ``device``."""
    variants = [("torch-eager-fp32", "fp32", False, "eager")]
    if device == "cuda":
        variants.append(("torch-eager-fp16-cl", "fp16", True, "eager"))
        variants.append(("torch-graph-fp16-cl", "fp16", True, "graph"))
        if compile_:
            variants.append(("torch-compile-fp16-cl", "fp16", True, "compile"))
    elif compile_:
        variants.append(("torch-compile-fp32", "fp32", False, "compile"))
    return variants


def _graph_runners(wrapped, inputs: list[np.ndarray], device: str) -> dict[str, Callable[[], dict[str, float]]]:
    """``wrapped`` captured as a CUDA graph on static device inputs: a run per io ("host", "device")."""
    import torch

    static = [torch.from_numpy(a).to(device) for a in inputs]
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.inference_mode(), torch.cuda.stream(side):
        for _ in range(3):  # warm-up on a side stream before capture, as torch.cuda.graphs asks
            wrapped(*static)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.inference_mode(), torch.cuda.graph(graph):
        out = wrapped(*static)
    outs = out if isinstance(out, tuple) else (out,)

    def host() -> dict[str, float]:
        t0 = time.perf_counter()
        for tensor, array in zip(static, inputs, strict=True):
            tensor.copy_(torch.from_numpy(array))
        graph.replay()
        for tensor in outs:
            tensor.cpu().numpy()  # .cpu() synchronises the device
        return {"total": time.perf_counter() - t0}

    def resident() -> dict[str, float]:
        t0 = time.perf_counter()
        graph.replay()
        torch.cuda.synchronize()
        return {"total": time.perf_counter() - t0}

    return {"host": host, "device": resident}


def torch_timers(
    checkpoint: Path,
    settings: BenchSettings,
    device: str = "cpu",
    compile_: bool = False,
    architecture: dict[str, Any] | None = None,
    contract: Any = None,
    photo_size: tuple[int, int] | None = None,
) -> list[Timer]:
    """A timer per variant x batch size of ``checkpoint`` in PyTorch, first run done, on the
    same seeded inputs as the onnxruntime timers (``contract``: the benchmarked model's)."""
    import dataclasses

    import torch

    from ..errors import CheckpointError
    from ..eval.synthetic import synthetic_feeds
    from ..export.onnx_export import build_contract, fold_batchnorm
    from ..train.architectures import served
    from ..train.checkpoint import load_model

    model, _ = load_model(checkpoint)
    if architecture is not None:
        mine = dataclasses.asdict(model.config)
        differ = {k: (v, mine.get(k)) for k, v in architecture.items() if k in mine and mine[k] != v}
        if differ:
            raise CheckpointError(
                f"{checkpoint} is not the benchmarked model's network (model vs checkpoint: {differ}); "
                "a baseline must time the same network"
            )
    contract = contract or build_contract(model)
    if device == "cuda":
        torch.backends.cudnn.benchmark = True  # what ORT's exhaustive cuDNN search does for its side
    timers = []
    for name, precision, channels_last, how in torch_variants(device, compile_):
        dtype = torch.float16 if precision == "fp16" else torch.float32
        net = load_model(checkpoint)[0]
        if precision == "fp16":
            net = fold_batchnorm(net)  # folded in fp32, then halved, as the fp16 export does
        net = net.to(device=device, dtype=dtype)
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        wrapped = served(net, dtype)
        if how == "compile":
            wrapped = torch.compile(wrapped)
        for batch in settings.batch_sizes:
            feeds = synthetic_feeds(contract, batch, photo_size=photo_size)
            inputs = [feeds[spec.name] for spec in contract.inputs]

            def run_once(wrapped=wrapped, inputs=inputs) -> dict[str, float]:
                t0 = time.perf_counter()
                with torch.inference_mode():
                    out = wrapped(*(torch.from_numpy(a).to(device, non_blocking=True) for a in inputs))
                    for tensor in out if isinstance(out, tuple) else (out,):
                        tensor.cpu().numpy()  # .cpu() synchronises the device
                return {"total": time.perf_counter() - t0}

            t0 = time.perf_counter()
            try:
                runs = _graph_runners(wrapped, inputs, device) if how == "graph" else {"host": run_once}
            except RuntimeError as exc:  # a failed capture leaves the other variants' timings standing
                log.warning("%s at batch %d not timed: CUDA graph capture failed: %s", name, batch, exc)
                continue
            capture_ms = (time.perf_counter() - t0) * 1000
            for io, run in runs.items():
                first = capture_ms if how == "graph" else run()["total"] * 1000
                row = {
                    "engine": name,
                    "provider": device,
                    "io": io,
                    "batch": batch,
                    "session_ms": None,
                    "first_run_ms": first,  # graphs: the capture, warm-up included
                }
                memory = (lambda: torch.cuda.max_memory_allocated() / 2**20) if device == "cuda" else (lambda: None)
                timers.append(Timer(row, run, memory))
    return timers
