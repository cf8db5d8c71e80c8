"""``clothes-extractor bench``: latency/throughput per provider and batch size; ``bench compare``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..runtime.limits import LARGEST_BATCH
from .common import CheckpointPath, LocalPath, parse_size, reports_errors, require_torch, verbose_option


def _batch_sizes(_ctx, _param, value: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers") from None
    if not sizes or min(sizes) < 1:
        raise click.BadParameter("batch sizes must be positive integers")
    return tuple(dict.fromkeys(sizes))  # each once, in the order given


def _plot_path(_ctx, _param, value: Path | None) -> Path | None:
    from ..bench.compare import PLOT_FORMATS

    if value is not None and value.suffix.lower().lstrip(".") not in PLOT_FORMATS:
        raise click.BadParameter(f"{value}: name a {', '.join('.' + f for f in PLOT_FORMATS)} file")
    return value


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
@click.option(
    "--model",
    default="generator",
    show_default=True,
    help="Served ONNX model, or a bundled one by task (generator, segmenter).",
)
@click.option(
    "--provider",
    type=click.Choice(["auto", "cpu", "cuda", "tensorrt", "rtx", "all"]),
    default="auto",
    show_default=True,
    help="auto: the best that starts here; all: every provider that starts here.",
)
@click.option("--batch-sizes", default="1,8,32", show_default=True, callback=_batch_sizes)
@click.option(
    "--photo-size",
    default=None,
    help="Photo-resolution models (a warping generator, a try-on network): the photo (and output) size, "
    "HEIGHTxWIDTH [default: the model size].",
)
@click.option(
    "--outputs",
    default=None,
    help="Time the model cut to these outputs, comma-separated (garment: what extract runs on a white "
    "background) [default: all of them].",
)
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
    type=CheckpointPath(path_type=Path, exists=True),
    help="Checkpoint (or run folder: its best.pt, else last.pt) of the same network: time it in PyTorch in the "
    "same run.",
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
    type=LocalPath(path_type=Path, exists=True, file_okay=False),
    help="Also time `extract` end to end on this folder of photos, and the host's ceiling in the same run.",
)
@click.option("--e2e-batch-size", type=click.IntRange(1, LARGEST_BATCH), default=8, show_default=True)
@click.option(
    "--decode",
    type=click.Choice(("auto", "host", "gpu")),
    default="auto",
    show_default=True,
    help="extract's --decode for --e2e (the host ceiling always decodes on the host).",
)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="extract's workers for --e2e.")
@click.option("--processes/--threads", default=None, help="extract's worker kind for --e2e [default: as extract].")
@click.option("--label", help="Name of this machine in comparisons (default: GPU or CPU name).")
@click.option(
    "-o",
    "--output",
    "--out",
    "out",
    type=LocalPath(path_type=Path, dir_okay=False),
    help="Write the result file (JSON).",
)
@verbose_option
@click.pass_context
@reports_errors
def bench(ctx: click.Context, model: str, batch_sizes: tuple[int, ...], out: Path | None, **options) -> None:
    """Time a served model per provider and batch size (p50..p99, images/s, GPU copy split).

    With --torch-baseline the same network runs in PyTorch in the same process, so the
    table shows onnxruntime as a ratio to PyTorch measured side by side.
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..bench.compare import markdown_table
    from ..bench.runner import BenchSettings
    from ..bench.suite import BenchRequest, run_bench
    from ..models import TASKS, model_for
    from ..runtime.files import check_writable_file, write_atomic
    from ..runtime.options import default_workers

    if out is not None:
        check_writable_file(out, "--output", (".json",))
    outputs = tuple(name.strip() for name in options["outputs"].split(",")) if options["outputs"] else None
    if outputs is not None and options["torch_baseline"] is not None:
        raise click.UsageError("--outputs and --torch-baseline exclude each other: PyTorch computes every output")
    if options["torch_baseline"] is not None:
        require_torch("--torch-baseline")
    path = model_for(model, gpu=options["provider"] not in ("cpu", "auto")) if model in TASKS else Path(model)
    if path is None or not path.is_file():
        raise click.BadParameter(f"{model}: no such model file (or bundled model)", param_hint="--model")
    if options["photo_size"]:
        from ..runtime.session import contract_of

        contract = contract_of(path)
        if not contract.catalog_resolution:  # (its feeds have no photo: the size would be ignored)
            raise click.BadParameter(
                f"{path.name} answers at {contract.height}x{contract.width} only: it has no photo input to size; "
                "--photo-size is for photo-resolution models (a warping generator, a try-on network)",
                param_hint="--photo-size",
            )
    request = BenchRequest(
        model=path,
        provider=options["provider"],
        settings=BenchSettings(
            batch_sizes=batch_sizes,
            warmup_s=options["warmup_s"],
            min_runs=options["min_runs"],
            min_time_s=options["min_time_s"],
            io=options["io"][0],
        ),
        io=options["io"],
        cuda_graph=options["cuda_graph"],
        cpu_streams=options["cpu_streams"],
        photo_size=parse_size(options["photo_size"], "--photo-size") if options["photo_size"] else None,
        outputs=outputs,
        torch_baseline=options["torch_baseline"],
        torch_compile=options["torch_compile"],
        interleave=options["interleave"],
        e2e=options["e2e"],
        e2e_batch_size=options["e2e_batch_size"],
        e2e_decode=options["decode"],
        workers=options["workers"] or default_workers(),
        processes=options["processes"],
        label=options["label"],
    )
    record = run_bench(request, say=lambda line: click.echo(line, err=True))
    if out is not None:  # the result first: a table that fails to print must not lose it
        write_atomic(out, (json.dumps(record, indent=2) + "\n").encode())
        click.echo(f"wrote {out}", err=True)
    click.echo(markdown_table([record]))


@bench.command()
@click.argument("files", nargs=-1, required=True, type=LocalPath(path_type=Path, exists=True, dir_okay=False))
@click.option("--markdown", type=LocalPath(path_type=Path, dir_okay=False), help="Write the table here.")
@click.option(
    "--plot",
    "plot_path",
    type=LocalPath(path_type=Path, dir_okay=False),
    callback=_plot_path,
    help="Write a plot of throughput and p99 latency against batch size (.png, .svg, .pdf, .jpg, .webp).",
)
@reports_errors
def compare(files: tuple[Path, ...], markdown: Path | None, plot_path: Path | None) -> None:
    """Merge benchmark result FILES from several machines into one table (and plot).

    Files that are not benchmark results (another JSON in the folder) are skipped with a
    note; results of different models are merged with a warning."""
    from ..bench.compare import load_results, markdown_table, models_differ, plot
    from ..runtime.files import write_atomic

    skipped: list[str] = []
    results = load_results(list(files), skipped)
    for reason in skipped:
        click.echo(f"skipped {reason}", err=True)
    warning = models_differ(results)
    if warning:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    table = markdown_table(results)
    if markdown is not None:
        write_atomic(markdown, table.encode())
    else:
        sys.stdout.write(table)
    if plot_path is not None:
        plot(results, plot_path)
        click.echo(f"wrote {plot_path}", err=True)
