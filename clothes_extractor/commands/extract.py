"""``clothes-extractor extract``: a folder of photos -> garment images."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import OutputError
from ..runtime.session import PROVIDER_CHOICES
from .common import EXIT_INTERRUPTED, reports_errors

FORMATS = ("png", "jpg", "webp")
MAX_FAILURES_SHOWN = 20
SHEET_ROWS = 8


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


@click.command()
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
    "--cpu-streams",
    type=click.IntRange(min=1),
    default=None,
    help="CPU: run each batch as this many parts at once, each on its share of the cores; "
    "1 runs it whole  [default: 2 on 2+ cores]",
)
@click.option(
    "--segmenter",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Segmenter model for photos without a mask (default: the bundled one).",
)
@click.option("--no-segmenter", is_flag=True, help="Never segment: a photo without a mask is an error.")
@click.option(
    "--save-masks",
    type=click.Path(path_type=Path, file_okay=False),
    help="Save the mask used for each photo here (<name>.png; reusable with --masks).",
)
@click.option(
    "--sheet",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write a contact sheet PNG (photo | mask | garment) of the first photos extracted.",
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
    cpu_streams: int | None,
    segmenter: Path | None,
    no_segmenter: bool,
    save_masks: Path | None,
    sheet: Path | None,
    masks: Path | None,
    recursive: bool,
    fmt: str,
    quality: int,
    overwrite: bool,
    report: Path | None,
) -> None:
    """Extract the garment of every photo in INPUTS (files, folders, dataset folders).

    Each photo's garment mask comes from, in this order: --masks DIR (same name, any
    format), the parse map of a VITON-HD (image/ + image-parse-v3/) or CP-VTON (image/ +
    image-parse/) dataset folder, the photo's alpha channel, and last the segmenter.
    Finished outputs are skipped on a rerun; the exit code is 0 only if every photo
    succeeded.
    """
    from tqdm import tqdm

    from ..models import open_model
    from ..runtime import ExtractOptions, MaskIndex, find_jobs, run_extraction
    from ..runtime.pipeline import default_workers
    from ..runtime.session import SessionSettings

    if no_segmenter and segmenter is not None:
        raise click.UsageError("--segmenter and --no-segmenter exclude each other")
    options = ExtractOptions(
        batch_size=batch_size, workers=workers or default_workers(), fmt=fmt, quality=quality, overwrite=overwrite
    )
    _check_output_dir(out_dir)
    if save_masks is not None:
        _check_output_dir(save_masks)
    mask_index = MaskIndex(masks) if masks is not None else None
    jobs = find_jobs(inputs, out_dir, fmt, mask_index, recursive, save_masks)
    if not jobs:
        hint = "" if recursive else " (add --recursive to look in subfolders)"
        raise click.ClickException(f"no photos found in {', '.join(map(str, inputs))}{hint}")
    settings = SessionSettings(cpu_streams=cpu_streams)
    session = open_model(model, "generator", provider, settings)
    if session is None:
        raise click.UsageError(
            "no --model given, and this install bundles no default model. Export one with "
            "`clothes-extractor export CHECKPOINT -o model.onnx` and pass --model model.onnx"
        )
    segmenter_session = None if no_segmenter else open_model(segmenter, "segmenter", provider, settings)
    report_file = _open_report(report)
    using = f"{session.path.name}" + (f" + {segmenter_session.path.name}" if segmenter_session else "")
    streams = f" in {session.cpu_streams} streams" if session.cpu_streams > 1 else ""
    click.echo(
        f"extracting {len(jobs)} photo(s) with {using} on {session.provider} "
        f"(batch {options.batch_size}{streams}, {options.workers} workers) -> {out_dir}",
        err=True,
    )
    failures: list[Any] = []
    finished: list[Any] = []  # the first results, for --sheet
    progress = tqdm(total=len(jobs), unit="photo", disable=None, file=sys.stderr)

    def on_result(result: Any) -> None:
        if result.status == "error" and len(failures) < MAX_FAILURES_SHOWN:
            failures.append(result)
        if result.status == "ok" and sheet is not None and len(finished) < SHEET_ROWS:
            finished.append(result)
        if report_file is not None:
            report_file.write(json.dumps(result.to_json()) + "\n")
        progress.update(1)

    try:
        summary = run_extraction(session, jobs, options, on_result, segmenter_session)
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
    if sheet is not None and finished:
        from ..runtime.evaluate import extraction_sheet

        extraction_sheet(finished, session.contract.size).save(sheet)
        click.echo(f"contact sheet: {sheet}", err=True)
    rate = summary.ok / summary.seconds if summary.seconds > 0 else 0.0
    click.echo(
        f"done in {summary.seconds:.1f} s: {summary.ok} extracted ({rate:.1f} photos/s), "
        f"{summary.skipped} skipped (already done), {summary.failed} failed",
        err=True,
    )
    if summary.failed:
        sys.exit(1)
