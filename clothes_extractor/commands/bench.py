"""``clothes-extractor bench``: latency/throughput per provider and batch size; ``bench compare``."""

from __future__ import annotations

import dataclasses
import itertools
import json
import sys
from pathlib import Path

import click

from .common import reports_errors, require_torch


def _batch_sizes(_ctx, _param, value: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers") from None
    if not sizes or min(sizes) < 1:
        raise click.BadParameter("batch sizes must be positive integers")
    return sizes


def _cpu_streams(_ctx, _param, value: str) -> tuple[int | None, ...]:
    streams: list[int | None] = []
    for v in (v.strip() for v in value.split(",")):
        if v == "auto":
            streams.append(None)
        elif v.isdigit() and int(v) >= 1:
            streams.append(int(v))
        else:
            raise click.BadParameter(f"{v!r} is neither 'auto' nor a positive integer (e.g. --cpu-streams 1,2)")
    return tuple(dict.fromkeys(streams))


def _io_modes(_ctx, _param, value: str) -> tuple[str, ...]:
    from ..bench.runner import IO_MODES

    modes = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    wrong = [m for m in modes if m not in IO_MODES]
    if wrong or not modes:
        raise click.BadParameter(f"{value!r}: give one or more of {', '.join(IO_MODES)}, comma-separated")
    return modes


@click.group(invoke_without_command=True)
@click.option("--model", type=click.Path(path_type=Path, exists=True, dir_okay=False), help="Served ONNX model.")
@click.option(
    "--provider",
    type=click.Choice(["cpu", "cuda", "tensorrt", "all"]),
    default="cpu",
    show_default=True,
    help="all: every provider that starts here.",
)
@click.option("--batch-sizes", default="1,8,32", show_default=True, callback=_batch_sizes)
@click.option("--warmup-s", type=click.FloatRange(min=0), default=2.0, show_default=True)
@click.option("--min-runs", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--min-time-s", type=click.FloatRange(min=0), default=3.0, show_default=True)
@click.option(
    "--io",
    default="host",
    show_default=True,
    callback=_io_modes,
    help="GPU: numpy in/out one batch at a time (host), device-resident tensors (device), or numpy in/out "
    "as a stream with copies overlapping compute (pipelined); a list such as host,device,pipelined times "
    "each in the same run.",
)
@click.option("--cuda-graph", is_flag=True, help="GPU: IO binding with one CUDA graph per batch size.")
@click.option(
    "--cpu-streams",
    default="auto",
    show_default=True,
    callback=_cpu_streams,
    help="CPU: parts each batch runs as at once ('auto' or a number); a list such as 1,2 times each.",
)
@click.option(
    "--torch-baseline",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Checkpoint of the same network: time it in PyTorch in the same run.",
)
@click.option("--torch-compile", is_flag=True, help="Also time torch.compile (slow to compile).")
@click.option(
    "--interleave/--sequential",
    default=True,
    show_default=True,
    help="Time every engine and batch size round-robin, one run each per round, so drift on a shared "
    "machine hits all alike (ratios hold); --sequential times each in turn.",
)
@click.option(
    "--e2e",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="Also time `extract` end to end on this folder of photos.",
)
@click.option("--e2e-batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="extract's threads for --e2e.")
@click.option("--label", help="Name of this machine in comparisons (default: GPU or CPU name).")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), help="Write the result file (JSON).")
@click.pass_context
@reports_errors
def bench(
    ctx: click.Context,
    model: Path | None,
    provider: str,
    batch_sizes: tuple[int, ...],
    warmup_s: float,
    min_runs: int,
    min_time_s: float,
    io: tuple[str, ...],
    cuda_graph: bool,
    cpu_streams: tuple[int | None, ...],
    torch_baseline: Path | None,
    torch_compile: bool,
    interleave: bool,
    e2e: Path | None,
    e2e_batch_size: int,
    workers: int | None,
    label: str | None,
    out: Path | None,
) -> None:
    """Time a served model per provider and batch size (p50..p99, images/s, GPU copy split).

    With --torch-baseline the same network runs in PyTorch in the same process, so the
    table shows onnxruntime as a ratio to PyTorch measured side by side.
    """
    if ctx.invoked_subcommand is not None:
        return
    if model is None:
        raise click.UsageError("--model is required (or use `bench compare FILES`)")
    from ..bench.compare import SCHEMA, markdown_table
    from ..bench.fingerprint import machine_fingerprint, model_fingerprint
    from ..bench.runner import (
        BenchSettings,
        available_providers,
        bench_extract,
        peak_rss_mb,
        provider_timers,
        time_interleaved,
        time_sequential,
    )
    from ..runtime.pipeline import default_workers
    from ..runtime.session import open_session

    settings = BenchSettings(
        batch_sizes=batch_sizes, warmup_s=warmup_s, min_runs=min_runs, min_time_s=min_time_s, io=io[0]
    )
    engine = model.suffix == ".engine"
    engine_session = None
    if engine:  # a TensorRT engine runs on TensorRT alone, numpy in and out
        providers = ["tensorrt"]
        engine_session = open_session(model, "tensorrt")
        contract = engine_session.contract
    else:
        providers = available_providers() if provider == "all" else [provider]
        contract = open_session(model, "cpu").contract
    timers = []
    for name in providers:
        click.echo(f"preparing {'the TensorRT engine' if engine else f'onnxruntime {name}'} ...", err=True)
        # on the CPU (and for an engine) host and device memory are one: each io mode is the same run
        modes = io if name != "cpu" and not engine else io[:1]
        for streams, mode in itertools.product(cpu_streams if name == "cpu" and not engine else (None,), modes):
            timed = provider_timers(
                model, name, dataclasses.replace(settings, io=mode), cuda_graph, streams, engine_session
            )
            if len(cpu_streams) > 1 and streams is not None:  # tell the explicit counts apart from auto
                for timer in timed:
                    timer.row["engine"] += f"-{streams}-stream" + ("s" if streams > 1 else "")
            timers += timed
    if torch_baseline is not None:
        require_torch("--torch-baseline")
        import torch

        from ..bench.baseline import torch_timers

        device = "cuda" if any(p != "cpu" for p in providers) and torch.cuda.is_available() else "cpu"
        click.echo(f"preparing PyTorch on {device} ...", err=True)
        architecture = contract.training.get("architecture") or {}
        architecture = {**architecture, "task": contract.task}
        architecture.pop("name", None)
        timers += torch_timers(torch_baseline, settings, device, torch_compile, architecture)
    click.echo(
        f"timing {len(timers)} engine x batch size combinations {'interleaved' if interleave else 'in turn'} ...",
        err=True,
    )
    results = (time_interleaved if interleave else time_sequential)(timers, settings)
    record = {
        "schema": SCHEMA,
        "fingerprint": machine_fingerprint(label),
        "model": model_fingerprint(model, contract),
        "settings": {
            "batch_sizes": list(batch_sizes),
            "warmup_s": warmup_s,
            "min_runs": min_runs,
            "min_time_s": min_time_s,
            "io": list(io),
            "cpu_streams": ["auto" if n is None else n for n in cpu_streams],
        },
        "results": results,
        "e2e": None,
    }
    if e2e is not None:
        click.echo(f"timing extract end to end on {e2e} ...", err=True)
        from ..models import default_model

        e2e_streams = cpu_streams[0] if len(cpu_streams) == 1 else None
        segmenter = default_model("segmenter", providers[0])  # as extract: photos without a mask get one
        e2e_result = bench_extract(
            model, e2e, providers[0], e2e_batch_size, workers or default_workers(), segmenter, e2e_streams
        )
        model_only = next(
            (
                r["images_per_s"]
                for r in results
                if r["engine"] == "onnxruntime"
                and r["batch"] == e2e_batch_size
                and r["provider"] == e2e_result["provider"]
            ),
            None,
        )
        e2e_result["vs_model_only"] = e2e_result["images_per_s"] / model_only if model_only else None
        record["e2e"] = e2e_result
    record["peak_rss_mb"] = peak_rss_mb()
    click.echo(markdown_table([record]))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=2) + "\n")
        click.echo(f"wrote {out}", err=True)


@bench.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--markdown", type=click.Path(path_type=Path, dir_okay=False), help="Write the table here.")
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write a PNG of throughput and p99 latency against batch size.",
)
@reports_errors
def compare(files: tuple[Path, ...], markdown: Path | None, plot_path: Path | None) -> None:
    """Merge benchmark result FILES from several machines into one table (and plot)."""
    from ..bench.compare import load_results, markdown_table, plot

    results = load_results(list(files))
    table = markdown_table(results)
    if markdown is not None:
        markdown.write_text(table)
    else:
        sys.stdout.write(table)
    if plot_path is not None:
        plot(results, plot_path)
        click.echo(f"wrote {plot_path}", err=True)
