"""``clothes-extractor evaluate``: score an exported model on a dataset split (no torch)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..runtime.session import PROVIDER_CHOICES
from .common import reports_errors


@click.command()
@click.option("--model", required=True, type=click.Path(path_type=Path, dir_okay=False), help="Served ONNX model.")
@click.option("--data", required=True, type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--split", type=click.Choice(["val", "train", "all"]), default="val", show_default=True)
@click.option(
    "--val-fraction",
    type=float,
    default=0.05,
    show_default=True,
    help="As in training, for data without a validation split.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="As in training, for the seeded split.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N samples.")
@click.option("--provider", type=click.Choice(PROVIDER_CHOICES), default="auto", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False), help="Also write the result.")
@click.option("--sheet", type=click.Path(path_type=Path, dir_okay=False), help="Write a contact sheet PNG.")
@click.option("--sheet-rows", type=click.IntRange(min=1), default=8, show_default=True)
@reports_errors
def evaluate(
    model: Path,
    data: Path,
    split: str,
    val_fraction: float,
    seed: int,
    limit: int | None,
    provider: str,
    batch_size: int,
    json_path: Path | None,
    sheet: Path | None,
    sheet_rows: int,
) -> None:
    """Mean SSIM / MS-SSIM / PSNR (generator) or IoU (segmenter) of MODEL over a dataset split."""
    from tqdm import tqdm

    from ..runtime.datasets import load_samples
    from ..runtime.evaluate import evaluate_model
    from ..runtime.session import open_session

    session = open_session(model, provider)
    task = session.contract.task
    samples = load_samples(data, split, val_fraction=val_fraction, seed=seed, require_garment=task == "generator")
    samples = samples[:limit]
    with tqdm(total=len(samples), unit="pair", disable=None, file=sys.stderr) as bar:
        result = evaluate_model(
            session, samples, batch_size=batch_size, sheet_rows=sheet_rows if sheet else 0, progress=bar.update
        )
    click.echo(f"{task} {model.name} on {data} ({split}, {result.samples} pairs, {session.provider}):")
    for name, value in result.metrics.items():
        click.echo(f"  {name:8s} {value:.4f}")
    if json_path is not None:
        payload = {**result.to_json(), "model": str(model), "data": str(data), "split": split}
        json_path.write_text(json.dumps(payload, indent=2) + "\n")
    if sheet is not None and result.sheet is not None:
        result.sheet.save(sheet)
