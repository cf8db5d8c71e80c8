"""Timing served models in onnxruntime (``e2e``: the end-to-end ``extract`` pipeline). No PyTorch.

Every measurement warms up first (``warmup_s``; the first run of each batch size, which
includes cuDNN's algorithm search or TensorRT's engine build, is reported on its own),
then times runs until both ``min_runs`` and ``min_time_s`` are reached. GPU work is timed
with synchronisation: IO binding's copies and runs return only when the device is done.
"""

from __future__ import annotations

import itertools
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..eval.synthetic import synthetic_feeds
from ..runtime.hardware import nvidia_smi
from ..runtime.providers import PROVIDERS, SessionSettings, probe_provider
from ..runtime.session import ModelSession
from .stats import latency_stats, throughput

log = logging.getLogger(__name__)

IO_MODES = ("host", "device", "pipelined")
PIPELINE_BATCHES = 16  # batches per timed stream in "pipelined" mode
ORT_DEVICE = {"cpu": "cpu", "cuda": "cuda", "tensorrt": "cuda", "rtx": "cuda"}


@dataclass(frozen=True)
class BenchSettings:
    batch_sizes: tuple[int, ...] = (1, 8, 32)
    warmup_s: float = 2.0
    min_runs: int = 20
    min_time_s: float = 3.0
    # host: numpy in and out, one batch at a time; device: inputs and outputs stay on the
    # device; pipelined: numpy in and out, a stream of batches with copies overlapping compute
    io: str = "host"

    def __post_init__(self) -> None:
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise ValueError(f"batch sizes must be >= 1, got {self.batch_sizes}")
        if self.io not in IO_MODES:
            raise ValueError(f"io must be one of {', '.join(IO_MODES)}, got {self.io!r}")
        if self.min_runs < 1 or self.min_time_s < 0 or self.warmup_s < 0:
            raise ValueError("min_runs must be >= 1 and the times >= 0")


def timed_runs(run_once: Callable[[], dict[str, float]], settings: BenchSettings) -> list[dict[str, float]]:
    """Warm up, then call ``run_once`` until both minimums are met; its per-run timings.

    ``run_once`` returns seconds per stage (at least ``total``).
    """
    start = time.perf_counter()
    while time.perf_counter() - start < settings.warmup_s:
        run_once()
    runs: list[dict[str, float]] = []
    start = time.perf_counter()
    while len(runs) < settings.min_runs or time.perf_counter() - start < settings.min_time_s:
        runs.append(run_once())
    return runs


def _host_runner(session: ModelSession, feeds: dict[str, np.ndarray]) -> Callable[[], dict[str, float]]:
    def run_once() -> dict[str, float]:
        t0 = time.perf_counter()
        session.run(**feeds)
        return {"total": time.perf_counter() - t0}

    return run_once


def _gpu_runner(
    session: ModelSession, feeds: dict[str, np.ndarray], io: str, cuda_graph: bool
) -> Callable[[], dict[str, float]]:
    """IO binding on the GPU: upload, compute and download timed apart (host), or compute only (device).

    With ``cuda_graph`` (a session made with CUDA graphs), runs replay that batch size's graph.
    """
    from .iobinding import BoundRunner

    runner = BoundRunner(session, cuda_graph=cuda_graph)
    buffers, batch = runner.upload(feeds)
    runner.compute(buffers)  # the first run (a graph's capture)

    def run_once() -> dict[str, float]:
        t0 = time.perf_counter()
        if io == "host":
            runner.upload(feeds)
        t1 = time.perf_counter()
        runner.compute(buffers)
        t2 = time.perf_counter()
        if io == "host":
            runner.download(buffers, batch)
        t3 = time.perf_counter()
        if io == "host":
            return {"total": t3 - t0, "upload": t1 - t0, "compute": t2 - t1, "download": t3 - t2}
        return {"total": t2 - t1, "compute": t2 - t1}

    return run_once


def _pipelined_runner(
    session: ModelSession, feeds: dict[str, np.ndarray], device: str, cuda_graph: bool
) -> Callable[[], dict[str, float]]:
    """A stream of ``PIPELINE_BATCHES`` batches through ``PipelinedRunner``; seconds per batch."""
    from .iobinding import PipelinedRunner

    runner = PipelinedRunner(session, cuda_graph, device=device)
    runner.warm_up([len(next(iter(feeds.values())))])

    def run_once() -> dict[str, float]:
        t0 = time.perf_counter()
        for _ in runner.map(itertools.repeat(feeds, PIPELINE_BATCHES)):
            pass
        return {"total": (time.perf_counter() - t0) / PIPELINE_BATCHES}

    return run_once


def summarise(runs: list[dict[str, float]], batch: int) -> dict[str, Any]:
    totals = [r["total"] for r in runs]
    result: dict[str, Any] = {
        "runs": len(runs),
        "latency_ms": latency_stats(totals),
        "images_per_s": throughput(batch, totals),
    }
    stages = [k for k in runs[0] if k != "total"]
    result["split_ms"] = {k: latency_stats([r[k] for r in runs]) for k in stages} if stages else None
    return result


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process so far, MB (getrusage: KiB on Linux, bytes on
    macOS); None where there is no getrusage (Windows)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0)


def gpu_memory_mb() -> float | None:
    """GPU memory this process holds, as nvidia-smi reports it; None without a driver."""
    import os

    for line in nvidia_smi("--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"):
        pid, _, used = line.partition(",")
        if pid.strip() == str(os.getpid()):
            return float(used)
    return None


def available_providers() -> list[str]:
    """The providers that really start here, fastest first."""
    return [p for p in ("tensorrt", "cuda", "cpu") if probe_provider(p)[0]]


@dataclass
class Timer:
    """One engine x batch size, ready to time: its result row so far and one run of it."""

    row: dict[str, Any]
    run_once: Callable[[], dict[str, float]]
    memory_mb: Callable[[], float | None] = gpu_memory_mb  # GPU memory to report once timed

    def result(self, runs: list[dict[str, float]]) -> dict[str, Any]:
        return {**self.row, **summarise(runs, self.row["batch"]), "gpu_memory_mb": self.memory_mb()}


def time_sequential(timers: list[Timer], settings: BenchSettings) -> list[dict[str, Any]]:
    """Each timer warmed up and timed in turn."""
    return [timer.result(timed_runs(timer.run_once, settings)) for timer in timers]


INTERLEAVE_SLICE_S = 0.25  # each engine's turn in a round
INTERLEAVE_SETTLE_S = 0.05  # pause between turns


def time_interleaved(timers: list[Timer], settings: BenchSettings) -> list[dict[str, Any]]:
    """Round-robin: every timer gets a turn of ``INTERLEAVE_SLICE_S`` seconds of runs per
    round (or ``min_time_s``, if that is shorter: at 0, a turn is one run), until each has
    ``min_runs`` runs and ``min_time_s`` seconds of them, so drift on a shared machine
    (other jobs, clocks, thermals) falls on every engine alike and their ratios hold. Each
    turn starts with a pause of ``INTERLEAVE_SETTLE_S`` and a run that is
    not recorded: the previous engine's idle threads go on spinning for 10-50 ms
    (onnxruntime's do), which slows whichever engine runs next. Without the pause, of three
    identical onnxruntime sessions timed with PyTorch at batch 1 on 2 cores, the one after
    PyTorch ran 10% faster than the two after another session; with it they agree within 3%."""
    if not timers:
        return []
    deadline = time.perf_counter() + settings.warmup_s
    while time.perf_counter() < deadline:
        for timer in timers:
            timer.run_once()
    runs: list[list[dict[str, float]]] = [[] for _ in timers]
    spent = [0.0] * len(timers)
    turn_s = min(INTERLEAVE_SLICE_S, settings.min_time_s)
    while any(len(r) < settings.min_runs or s < settings.min_time_s for r, s in zip(runs, spent, strict=True)):
        for i, timer in enumerate(timers):
            time.sleep(INTERLEAVE_SETTLE_S)  # the previous engine's idle threads stop spinning
            timer.run_once()  # not recorded: the first run after a switch
            turn, start = 0.0, len(runs[i])
            while len(runs[i]) == start or turn < turn_s:  # at least one run per turn
                run = timer.run_once()
                runs[i].append(run)
                turn += run["total"]
            spent[i] += turn
    return [timer.result(r) for timer, r in zip(timers, runs, strict=True)]


def provider_timers(
    model_path: Path,
    provider: str,
    settings: BenchSettings,
    cuda_graph: bool = False,
    cpu_streams: int | None = None,
    photo_size: tuple[int, int] | None = None,
    outputs: tuple[str, ...] | None = None,
) -> list[Timer]:
    """A timer per batch size for ``provider``, its session created and first run done
    (``cpu_streams``: see ``SessionSettings``; None is its default). A catalog-resolution
    generator gets its photo at ``photo_size`` (default: the model size); ``outputs``: the
    model cut to these (see ``ModelSession``)."""
    cuda_graph = cuda_graph and ORT_DEVICE[provider] == "cuda"
    t0 = time.perf_counter()
    # no padding: every batch size is timed at its own shape
    session_settings = SessionSettings(cuda_graph=cuda_graph, pad_batches=False, cpu_streams=cpu_streams)
    session = ModelSession(model_path, provider, settings=session_settings, outputs=outputs)
    session_ms = (time.perf_counter() - t0) * 1000
    timers = []
    for batch in settings.batch_sizes:
        feeds = synthetic_feeds(session.contract, batch, photo_size=photo_size)
        if settings.io == "pipelined" and ORT_DEVICE[provider] == "cuda":
            run_once = _pipelined_runner(session, feeds, "cuda", cuda_graph)
        elif ORT_DEVICE[provider] == "cuda":
            run_once = _gpu_runner(session, feeds, settings.io, cuda_graph)
        else:
            run_once = _host_runner(session, feeds)  # on the CPU, host and device memory are one
        first = run_once()["total"] * 1000
        row = {
            "engine": "onnxruntime-cuda-graph" if cuda_graph else "onnxruntime",
            "provider": session.provider,
            "ort_provider": PROVIDERS[session.provider],
            "io": settings.io if ORT_DEVICE[provider] == "cuda" else "host",
            "cpu_streams": session.cpu_streams,
            "batch": batch,
            "outputs": session.output_names,
            "output": list(feeds["photo"].shape[1:3]) if "photo" in feeds else list(session.contract.size),
            "session_ms": session_ms,
            "first_run_ms": first,
        }
        timers.append(Timer(row, run_once))
    return timers
