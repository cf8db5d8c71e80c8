"""The ``clothes-extractor`` command line. Each command parses, calls the library, reports.

Heavy imports (onnxruntime, torch) happen inside the command that needs them, so
``--help`` and the runtime commands work on an install without PyTorch.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

import click

from . import __version__
from .errors import ClothesExtractorError, OutputError

PROVIDER_CHOICES = ("auto", "tensorrt", "cuda", "cpu")  # runtime.session.PROVIDER_CHOICES
FORMATS = ("png", "jpg", "webp")
MAX_FAILURES_SHOWN = 20
EXIT_INTERRUPTED = 130


def reports_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the library's typed errors into one-line messages and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ClothesExtractorError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="clothes-extractor")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """Turn photos of people wearing a garment into flat catalog images of the garment."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def _check_output_dir(out_dir: Path) -> None:
    """Fail before any work if results cannot be written to ``out_dir``."""
    import tempfile

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise OutputError(
            f"cannot write to the output folder {out_dir}: {exc.strerror or exc}; "
            "choose another -o folder or fix its permissions"
        ) from None


def _open_report(path: Path | None):
    if path is None:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "w", encoding="utf-8", buffering=1)
    except OSError as exc:
        raise OutputError(f"cannot write the report file {path}: {exc.strerror or exc}") from None


def _resolve_model(model: Path | None) -> Path:
    if model is not None:
        return model
    from .models import default_generator

    bundled = default_generator()
    if bundled is None:
        raise click.UsageError(
            "no --model given, and this install bundles no default model yet. Export one "
            "with `clothes-extractor export CHECKPOINT -o model.onnx` and pass --model model.onnx"
        )
    return bundled


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder for the garment images (created if missing).",
)
@click.option(
    "--model",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Served ONNX model (default: the model bundled with the package).",
)
@click.option(
    "--provider",
    type=click.Choice(PROVIDER_CHOICES),
    default="auto",
    show_default=True,
    help="Execution provider; auto tries tensorrt, cuda, cpu. A named one must start.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Reader and writer threads each  [default: CPU count, at most 8]",
)
@click.option(
    "--masks",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder of garment masks named like the photos (any image format and size).",
)
@click.option("-r", "--recursive", is_flag=True, help="Also take photos in subfolders.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="png", show_default=True)
@click.option("--quality", type=click.IntRange(1, 100), default=95, show_default=True, help="JPEG/WebP quality.")
@click.option("--overwrite", is_flag=True, help="Redo photos whose output already exists.")
@click.option(
    "--report", type=click.Path(path_type=Path, dir_okay=False), help="Write a JSON Lines report, one object per input."
)
@reports_errors
def extract(
    inputs: tuple[Path, ...],
    out_dir: Path,
    model: Path | None,
    provider: str,
    batch_size: int,
    workers: int | None,
    masks: Path | None,
    recursive: bool,
    fmt: str,
    quality: int,
    overwrite: bool,
    report: Path | None,
) -> None:
    """Extract the garment of every photo in INPUTS (files, folders, dataset folders).

    Each photo needs a garment mask, looked up in this order: --masks DIR (same name,
    any format), the parse map of a VITON-HD (image/ + image-parse-v3/) or CP-VTON
    (image/ + image-parse/) dataset folder, the photo's alpha channel. Finished outputs
    are skipped on a rerun; the exit code is 0 only if every photo succeeded.
    """
    from tqdm import tqdm

    from .runtime import ExtractOptions, MaskIndex, ModelSession, find_jobs, run_extraction
    from .runtime.pipeline import default_workers

    options = ExtractOptions(
        batch_size=batch_size, workers=workers or default_workers(), fmt=fmt, quality=quality, overwrite=overwrite
    )
    _check_output_dir(out_dir)
    model_path = _resolve_model(model)
    mask_index = MaskIndex(masks) if masks is not None else None
    jobs = find_jobs(inputs, out_dir, fmt, mask_index, recursive)
    if not jobs:
        hint = "" if recursive else " (add --recursive to look in subfolders)"
        raise click.ClickException(f"no photos found in {', '.join(map(str, inputs))}{hint}")
    session = ModelSession(model_path, provider)
    report_file = _open_report(report)
    click.echo(
        f"extracting {len(jobs)} photo(s) with {model_path.name} on {session.provider} "
        f"(batch {options.batch_size}, {options.workers} workers) -> {out_dir}",
        err=True,
    )
    failures: list[Any] = []
    progress = tqdm(total=len(jobs), unit="photo", disable=None, file=sys.stderr)

    def on_result(result: Any) -> None:
        if result.status == "error" and len(failures) < MAX_FAILURES_SHOWN:
            failures.append(result)
        if report_file is not None:
            report_file.write(json.dumps(result.to_json()) + "\n")
        progress.update(1)

    try:
        summary = run_extraction(session, jobs, options, on_result)
    except KeyboardInterrupt:
        progress.close()
        click.echo("interrupted: finished outputs are complete; run the same command again to resume", err=True)
        sys.exit(EXIT_INTERRUPTED)
    finally:
        progress.close()
        if report_file is not None:
            report_file.close()
    for failure in failures:
        click.echo(f"error: {failure.input}: {failure.error}", err=True)
    if summary.failed > len(failures):
        click.echo(
            f"... and {summary.failed - len(failures)} more errors"
            + (f", all in {report}" if report else "; --report FILE lists them all"),
            err=True,
        )
    rate = summary.ok / summary.seconds if summary.seconds > 0 else 0.0
    click.echo(
        f"done in {summary.seconds:.1f} s: {summary.ok} extracted ({rate:.1f} photos/s), "
        f"{summary.skipped} skipped (already done), {summary.failed} failed",
        err=True,
    )
    if summary.failed:
        sys.exit(1)


@cli.command()
@click.option(
    "--model", type=click.Path(path_type=Path, dir_okay=False), help="Also show this model's contract and metadata."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--no-probe", is_flag=True, help="Do not start each provider to check that it works.")
@reports_errors
def info(model: Path | None, as_json: bool, no_probe: bool) -> None:
    """Versions, onnxruntime build, which providers start here, GPU, and a model's contract."""
    from .runtime.environment import environment_info

    data = environment_info(probe=not no_probe)
    if model is not None:
        from .runtime import ModelSession

        session = ModelSession(model, "cpu")
        data["model"] = {
            "path": str(model),
            "contract": json.loads(next(iter(session.contract.to_metadata().values()))),
            "metadata": {k: v for k, v in session.metadata.items()},
        }
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        for key, value in data.items():
            if key in ("warning", "model", "providers"):
                continue
            if isinstance(value, dict):
                value = ", ".join(f"{k} {v}" for k, v in value.items()) or "none"
            elif isinstance(value, list):
                value = ", ".join(value) or "none"
            click.echo(f"{key}: {value}")
        click.echo("providers:")
        for name, state in data["providers"].items():
            click.echo(f"  {name}: {state}")
        if model is not None:
            contract = data["model"]["contract"]
            click.echo(f"model: {model}")
            for key, value in contract.items():
                click.echo(f"  {key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}")
    if data.get("warning"):
        click.secho(f"WARNING: {data['warning']}", fg="red", bold=True, err=True)


@cli.command()
@click.argument("checkpoint", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "-o", "--output", required=True, type=click.Path(path_type=Path, dir_okay=False), help="The ONNX model to write."
)
@click.option(
    "--untrained",
    is_flag=True,
    help="Export a randomly initialised generator instead of a checkpoint (to try the pipeline).",
)
@click.option("--size", default="256x192", show_default=True, help="HEIGHTxWIDTH, with --untrained.")
@click.option("--ngf", type=click.IntRange(min=1), default=16, show_default=True, help="Width, with --untrained.")
@click.option("--depth", type=click.IntRange(min=2), default=6, show_default=True, help="Depth, with --untrained.")
@click.option("--seed", type=int, default=0, show_default=True, help="Weights seed, with --untrained.")
@click.option("--opset", type=click.IntRange(min=13), default=17, show_default=True)
@reports_errors
def export(
    checkpoint: Path | None, output: Path, untrained: bool, size: str, ngf: int, depth: int, seed: int, opset: int
) -> None:
    """Export a generator CHECKPOINT to a served ONNX model and check it against PyTorch."""
    if (checkpoint is None) == (not untrained):
        raise click.UsageError("give either a CHECKPOINT or --untrained (not both)")
    try:
        import torch
    except ImportError:
        raise click.ClickException('export needs PyTorch: pip install "clothes-extractor[export]"') from None
    from .export.onnx_export import export_generator, validate_export
    from .train.checkpoint import load_generator
    from .train.networks import GeneratorConfig, UNetGenerator

    if untrained:
        try:
            height, width = (int(v) for v in size.lower().split("x"))
            config = GeneratorConfig(height=height, width=width, ngf=ngf, depth=depth)
        except ValueError as exc:
            raise click.BadParameter(
                str(exc) if "x" in size.lower() else f"{size!r} is not HEIGHTxWIDTH", param_hint="--size"
            ) from None
        torch.manual_seed(seed)
        generator = UNetGenerator(config).eval()
        training = {"data": None, "note": f"untrained: random weights, seed {seed}"}
    else:
        generator, payload = load_generator(checkpoint)
        training = payload.get("summary", {})
    contract = export_generator(generator, output, opset=opset, training=training)
    result = validate_export(generator, output)
    click.echo(
        f"wrote {output} ({contract.height}x{contract.width}, {output.stat().st_size / 1e6:.1f} MB); "
        f"onnxruntime vs PyTorch on {result.samples} inputs: max |error| {result.max_abs}, "
        f"mean {result.mean_abs:.4f} (tolerance {result.max_abs_tolerance} / {result.mean_abs_tolerance})"
    )


def main() -> None:
    # Images over Pillow's limit are refused with our own message; its warning is noise.
    from PIL import Image

    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    cli()


if __name__ == "__main__":
    main()
