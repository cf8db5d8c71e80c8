"""``clothes-extractor data``: synthetic triplets and downsampled dataset copies."""

from __future__ import annotations

from pathlib import Path

import click

from .common import parse_size, reports_errors, verbose_option


@click.group()
def data() -> None:
    """Make datasets: synthetic triplets, smaller copies of real ones."""


@data.command()
@click.argument("dest", type=click.Path(path_type=Path, file_okay=False))
@click.option("-n", "count", type=click.IntRange(min=1), required=True, help="How many triplets.")
@click.option("--size", default="256x192", show_default=True, help="HEIGHTxWIDTH.")
@click.option("--seed", type=int, default=0, show_default=True)
@verbose_option
@reports_errors
def synth(dest: Path, count: int, size: str, seed: int) -> None:
    """Write N deterministic synthetic triplets (photo/, mask/, garment/) to DEST."""
    from ..data.synth import write_synthetic

    written = write_synthetic(dest, count, seed, parse_size(size))
    click.echo(f"wrote {written} triplets to {dest} (photo/, mask/, garment/)")


@data.command()
@click.argument("src", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.argument("dst", type=click.Path(path_type=Path, file_okay=False))
@click.option("--size", required=True, help="Output HEIGHTxWIDTH, or HEIGHT (the width keeps each image's aspect).")
@click.option("--files", type=click.IntRange(min=1), default=None, help="Keep only the first N samples per split.")
@verbose_option
@reports_errors
def downsample(src: Path, dst: Path, size: str, files: int | None) -> None:
    """Copy the dataset SRC (any supported layout) to DST at a smaller height."""
    from ..data.downsample import downsample_dataset

    if size.isdigit():
        height = int(size)
    else:
        height, _ = parse_size(size)  # the width follows the images' own aspect
    if height < 8:
        raise click.BadParameter(f"{size!r}: the height must be at least 8", param_hint="--size")

    written = downsample_dataset(src, dst, height, files)
    click.echo(f"wrote {written} samples to {dst} at height {height}")
