"""One benchmark run as a library function: what ``bench`` does, given its request."""

from __future__ import annotations

import dataclasses
import itertools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .compare import SCHEMA
from .e2e import bench_extract
from .fingerprint import machine_fingerprint, model_fingerprint
from .runner import (
    BenchSettings,
    available_providers,
    peak_rss_mb,
    provider_timers,
    time_interleaved,
    time_sequential,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchRequest:
    model: Path
    provider: str = "auto"  # auto: the best that starts; all: every one that starts
    settings: BenchSettings = field(default_factory=BenchSettings)
    io: tuple[str, ...] = ("host",)
    cuda_graph: bool = False
    cpu_streams: tuple[int | None, ...] = (None,)
    photo_size: tuple[int, int] | None = None  # catalog-resolution generators: the photo (output) size
    outputs: tuple[str, ...] | None = None  # the model cut to these outputs (None: all)
    torch_baseline: Path | None = None
    torch_compile: bool = False
    interleave: bool = True
    e2e: Path | None = None
    e2e_batch_size: int = 8
    e2e_decode: str = "host"  # as extract's --decode
    workers: int = 8
    processes: bool | None = None
    label: str | None = None


def _providers(request: BenchRequest) -> list[str]:
    if request.provider == "all":
        return available_providers()
    if request.provider == "auto":
        return available_providers()[:1]
    return [request.provider]


def run_bench(request: BenchRequest, say: Callable[[str], None] = log.info) -> dict[str, Any]:
    """Time the request's model (and optionally PyTorch and ``extract``); the result record."""
    from ..runtime.session import contract_of

    contract = contract_of(request.model)
    providers = _providers(request)
    timers = []
    for name in providers:
        say(f"preparing onnxruntime {name} ...")
        modes = request.io if name != "cpu" else request.io[:1]  # on the CPU every io mode is the same run
        streams_list = request.cpu_streams if name == "cpu" else (None,)
        for streams, mode in itertools.product(streams_list, modes):
            timed = provider_timers(
                request.model,
                name,
                dataclasses.replace(request.settings, io=mode),
                request.cuda_graph,
                streams,
                request.photo_size,
                request.outputs,
            )
            if len(request.cpu_streams) > 1 and streams is not None:  # tell the explicit counts apart from auto
                for timer in timed:
                    timer.row["engine"] += f"-{streams}-stream" + ("s" if streams > 1 else "")
            timers += timed
    if request.torch_baseline is not None:
        timers += _torch_timers(request, contract, providers, say)
    order = "interleaved" if request.interleave else "in turn"
    say(f"timing {len(timers)} engine x batch size combinations {order} ...")
    results = (time_interleaved if request.interleave else time_sequential)(timers, request.settings)
    record = {
        "schema": SCHEMA,
        "fingerprint": machine_fingerprint(request.label),
        "model": model_fingerprint(request.model, contract),
        "settings": {
            **dataclasses.asdict(request.settings),
            "io": list(request.io),
            "cpu_streams": ["auto" if n is None else n for n in request.cpu_streams],
            "photo_size": list(request.photo_size) if request.photo_size else None,
            "outputs": list(request.outputs) if request.outputs else None,
        },
        "results": results,
        "e2e": None,
    }
    if request.e2e is not None:
        record["e2e"] = _e2e(request, providers[0], results, say)
    record["peak_rss_mb"] = peak_rss_mb()
    return record


def _torch_timers(request: BenchRequest, contract: Any, providers: list[str], say: Callable[[str], None]) -> list:
    import torch

    from .baseline import torch_timers

    device = "cuda" if any(p != "cpu" for p in providers) and torch.cuda.is_available() else "cpu"
    say(f"preparing PyTorch on {device} ...")
    architecture = dict(contract.training.get("architecture") or {})
    architecture["task"] = contract.task
    architecture.pop("name", None)
    return torch_timers(
        request.torch_baseline,
        request.settings,
        device,
        request.torch_compile,
        architecture,
        contract=contract,
        photo_size=request.photo_size,
    )


def _e2e(request: BenchRequest, provider: str, results: list[dict], say: Callable[[str], None]) -> dict[str, Any]:
    from ..models import model_for

    say(f"timing extract end to end on {request.e2e} (and the host ceiling) ...")
    streams = request.cpu_streams[0] if len(request.cpu_streams) == 1 else None
    segmenter = model_for("segmenter", gpu=provider != "cpu")  # as extract: photos without a mask get one
    e2e = bench_extract(
        request.model,
        request.e2e,
        provider,
        request.e2e_batch_size,
        request.workers,
        segmenter,
        streams,
        request.processes,
        decode=request.e2e_decode,
    )
    model_only = next(
        (
            r["images_per_s"]
            for r in results
            if r["engine"] == "onnxruntime"
            and r["batch"] == request.e2e_batch_size
            and r["provider"] == e2e["provider"]
        ),
        None,
    )
    e2e["vs_model_only"] = e2e["images_per_s"] / model_only if model_only else None
    return e2e
