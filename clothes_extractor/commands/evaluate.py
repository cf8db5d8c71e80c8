"""``clothes-extractor evaluate``: score a served model on a dataset split (no torch)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..runtime.providers import PROVIDER_CHOICES
from .common import LocalPath, Progress, batch_size_option, reports_errors, verbose_option
from .reports import check_side_files, save_image

SPLIT_CHOICES = ["val", "validation", "test", "train", "all"]


@click.command()
@click.option(
    "--model",
    default="generator",
    show_default=True,
    help="Served ONNX model, or a bundled one by task: generator, segmenter, tryon.",
)
@click.option("--data", required=True, type=LocalPath(path_type=Path, exists=True, file_okay=False))
@click.option(
    "--split",
    type=click.Choice(SPLIT_CHOICES),
    default=None,
    help="val/validation/test: a root's validation folder (or a seeded share, as in training, of data "
    "without one); all: every sample  [default: val for a root with one, else all]",
)
@click.option(
    "--val-fraction",
    type=float,
    default=0.05,
    show_default=True,
    help="As in training, for data without a validation split.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="As in training, for the seeded split.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N samples.")
@click.option(
    "--held-out",
    "held_out_only",
    is_flag=True,
    help="Score only the validation pairs whose photo and catalog image are not copies of a training "
    "pair's (the held-out means are printed beside the split's anyway).",
)
@click.option("--provider", type=click.Choice(PROVIDER_CHOICES), default="auto", show_default=True)
@batch_size_option("pair")
@click.option(
    "--resolution",
    type=click.Choice(["model", "native"]),
    default="model",
    show_default=True,
    help="native: a generator is scored at each catalog image's own size (a model-size one's output "
    "upsampled, bicubic), a try-on at the person's window's own size (up to 1024x768, as tryon dresses it); "
    "a segmenter runs as extract runs it (zoomed second look included) and is scored at the photo's own size.",
)
@click.option(
    "--masks",
    type=click.Choice(["labels", "segmenter"]),
    default=None,
    help="A generator's masks (a try-on's region to dress). labels: each pair's own (its parse or label map, or "
    "mask file): the model alone. segmenter: those extract finds with the segmenter, each pair scored as extract "
    "writes it (its zoomed look, its framing, a garment shown alone cut out; a pair in which it finds no garment "
    "fails), with the IoU of the mask used (mask_iou) beside; a try-on: the region the parser finds, each pair "
    "scored as tryon writes it (the whole photo; a pair it refuses fails).  [default: labels; segmenter with "
    "--segmenter, or for pairs without masks: photo/ and garment/]",
)
@click.option(
    "--segmenter",
    "segmenter_model",
    metavar="FILE",
    help="The segmenter (a try-on's parser) of --masks segmenter: a served ONNX model (default: the bundled one).",
)
@click.option(
    "--grayscale",
    is_flag=True,
    help="Turn every photo and catalog image black and white first: how the model does on black-and-white "
    "photos (the truths in black and white too).",
)
@click.option(
    "--light",
    metavar="GAIN|R,G,B",
    help="Show every photo in another light first: its channels times GAIN (0.5: a stop darker) or R,G,B "
    "(1.15,1,0.7: a warm lamp); the catalog images keep their colours (a try-on's truth is its photo).",
)
@click.option(
    "-o",
    "--output",
    "--json",
    "json_path",
    type=LocalPath(path_type=Path, dir_okay=False),
    help="Also write the result, per-pair scores included, as JSON.",
)
@click.option("--sheet", type=LocalPath(path_type=Path, dir_okay=False), help="Write a contact sheet PNG.")
@click.option("--sheet-rows", type=click.IntRange(min=0), default=8, show_default=True, help="First pairs on it.")
@click.option(
    "--worst", type=click.IntRange(min=0), default=0, show_default=True, help="Then the N worst-scored pairs."
)
@click.option(
    "--unpaired-sheet",
    type=LocalPath(path_type=Path, dir_okay=False),
    help="Try-on: a sheet of persons each in four other pairs' garments (.png/.jpg/.webp).",
)
@click.option(
    "--perceptual",
    "perceptual_files",
    multiple=True,
    type=LocalPath(exists=True, dir_okay=False, path_type=Path),
    help="A learned distance (LPIPS, DISTS) exported to ONNX, scored beside the others and named by its "
    "file's stem; repeatable. None is bundled: README, Perceptual metrics.",
)
@verbose_option
@reports_errors
def evaluate(
    model: str,
    data: Path,
    split: str | None,
    val_fraction: float,
    seed: int,
    limit: int | None,
    held_out_only: bool,
    provider: str,
    batch_size: int,
    resolution: str,
    masks: str | None,
    segmenter_model: str | None,
    grayscale: bool,
    light: str | None,
    json_path: Path | None,
    sheet: Path | None,
    sheet_rows: int,
    worst: int,
    unpaired_sheet: Path | None,
    perceptual_files: tuple[Path, ...],
) -> None:
    """Mean SSIM / MS-SSIM / PSNR / GMSD / sharpness (generator; try-on, paired: each person
    in their own garment) or IoU (segmenter; per class for a parser) of MODEL over a dataset
    split. Pairs that cannot be read are reported and the rest is scored; the exit code is
    1 if any failed."""
    from ..api import new_session
    from ..eval.datasets import default_split, load_samples
    from ..eval.evaluate import evaluate_model
    from ..eval.overlap import held_out_samples, seen_in_training
    from ..runtime.files import check_writable_file, write_atomic
    from ..tasks import task_of

    images = (".png", ".jpg", ".webp")
    for path, what, suffixes in (
        (json_path, "--output", (".json",)),
        (sheet, "--sheet", images),
        (unpaired_sheet, "--unpaired-sheet", images),
    ):
        if path is not None:
            check_writable_file(path, what, suffixes)
    check_side_files([data], sheet=sheet, unpaired_sheet=unpaired_sheet)
    if sheet is not None and sheet_rows == 0 and worst == 0:
        raise click.UsageError("--sheet with --sheet-rows 0 and no --worst N would show nothing")
    change = _photo_change(grayscale, light)
    session = new_session(model, provider)
    task = session.contract.task
    if unpaired_sheet is not None and task != "tryon":
        raise click.UsageError(f"--unpaired-sheet is for try-on models; {session.path.name} is a {task}")
    _check_masks(masks, segmenter_model, session)
    perceptual = _open_perceptual(perceptual_files, session)
    split = split or default_split(data)
    samples = load_samples(
        data, split, val_fraction=val_fraction, seed=seed, require_garment=task_of(task).needs_garment
    )
    compared = (data, split, samples, val_fraction, seed, task_of(task).needs_garment)
    seen = set() if held_out_only else seen_in_training(*compared)
    if held_out_only:
        samples = held_out_samples(*compared)
        if samples is None:
            raise click.UsageError(
                f"--held-out needs a validation split and a training split to compare with in {data}"
            )
    samples = samples[:limit]
    unmasked = task in ("generator", "tryon") and all(sample.mask_kind == "none" for sample in samples)
    segmenter = _open_segmenter(masks or ("segmenter" if unmasked else None), segmenter_model, provider)
    progress = Progress(len(samples), "pair", "evaluate")
    try:
        result = evaluate_model(
            session,
            samples,
            batch_size=batch_size,
            sheet_rows=sheet_rows if sheet else 0,
            worst=worst if sheet else 0,
            resolution=resolution,
            perceptual=perceptual,
            change=change,
            segmenter=segmenter,
            progress=progress.update,
        )
    finally:
        progress.close()
        if segmenter is not None:
            segmenter.close()
    pairs = f"{result.samples} held-out pairs" if held_out_only else f"{result.samples} pairs"
    scale = _how_scored(session, resolution, change, segmenter)
    click.echo(f"{task} {session.path.name} on {data} ({split}, {pairs}, {session.provider}, {scale}):")
    kept = _echo_means(result, seen, held_out_only)
    if json_path is not None:
        payload = result.to_json()
        if kept is not None:
            for row in payload["per_sample"]:
                row["seen_in_training"] = row["sample"] in seen
            payload.update(seen_in_training=result.samples - kept["samples"], held_out=kept)
        payload.update(
            model=str(session.path),
            data=str(data),
            split=split,
            resolution=resolution,
            masks="segmenter" if segmenter is not None else "labels",
            segmenter=str(segmenter.path) if segmenter is not None else None,
            grayscale=grayscale,
            light=list(change.light) if change.light else None,
            held_out_only=held_out_only,
        )
        write_atomic(json_path, (json.dumps(payload, indent=2) + "\n").encode())
    if sheet is not None and result.sheet is not None:
        save_image(sheet, result.sheet)
    if unpaired_sheet is not None:
        from ..eval.evaluate import unpaired_sheet as make_unpaired

        save_image(unpaired_sheet, make_unpaired(session, samples, change=change))
    for failure in result.failures[:20]:
        click.echo(f"error: {failure['sample']}: {failure['error']}", err=True)
    if result.failures:
        click.echo(f"{len(result.failures)} pair(s) could not be scored", err=True)
        sys.exit(1)


def _how_scored(session, resolution: str, change, segmenter) -> str:
    """How the pairs were scored, in the heading's words: the resolution, the photos' change,
    the masks where they are the segmenter's."""
    contract = session.contract
    how = resolution
    if resolution == "native" and contract.task in ("generator", "tryon") and not contract.catalog_resolution:
        how = f"native: the {contract.height}x{contract.width} output upsampled"
    how += f", {change.describe()}" if change else ""
    if segmenter is not None:
        runs = "tryon runs it: regions" if contract.task == "tryon" else "extract runs it: masks"
        how += f", as {runs} by {segmenter.path.name}"
    return how


def _photo_change(grayscale: bool, light: str | None):
    """``--grayscale`` and ``--light`` as a ``PhotoChange``."""
    from ..eval.changes import PhotoChange

    try:
        return PhotoChange(grayscale, None if light is None else PhotoChange.parse_light(light))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--light") from None


def _echo_means(result, seen: set[str] | None, held_out_only: bool) -> dict | None:
    """Print the means, with those over the held-out pairs beside them where some pairs are
    copies of training pairs (``seen``: their names); the held-out block for ``-o``."""
    from ..eval.overlap import held_out

    kept = held_out(result.per_sample, seen) if seen is not None else None
    if seen:
        click.echo(
            f"  {result.samples - kept['samples']} of these pairs are copies of training pairs (photo or catalog "
            f"image, byte for byte); held out: the other {kept['samples']}"
        )
    elif seen is not None and not held_out_only:
        click.echo("  none of these pairs is a copy of a training pair")
    fewer = result.fewer()  # (a class in some pairs' maps only, a mask IoU without its mask file)
    for name, value in result.metrics.items():
        other = kept["metrics"].get(name) if seen else None
        line = f"  {name:10s} {value:.4f}" + (f"   held out {other:.4f}" if other is not None else "")
        click.echo(line + (f"   (over {fewer[name]} of the {result.samples} pairs)" if name in fewer else ""))
    return kept


def _check_masks(masks: str | None, model: str | None, session) -> None:
    """``UsageError`` for ``--masks`` / ``--segmenter`` that contradict each other or the model."""
    task = session.contract.task
    if masks == "labels" and model is not None:
        raise click.UsageError("--segmenter finds the masks of --masks segmenter, not of --masks labels")
    if (masks == "segmenter" or model is not None) and task not in ("generator", "tryon"):
        hint = " (a segmenter runs as extract runs it with --resolution native)" if task == "segmenter" else ""
        raise click.UsageError(
            f"--masks segmenter scores a generator (a try-on) as extract (tryon) runs it; {session.path.name} is "
            f"a {task}{hint}"
        )


def _open_segmenter(masks: str | None, model: str | None, provider: str):
    """The segmenter of ``--masks segmenter`` (``--segmenter``, or the bundled one; pairs without
    masks get it unasked), open on ``provider``; None for the pairs' own masks."""
    if masks is None and model is None or masks == "labels":
        return None
    from ..api import new_session

    segmenter = new_session(model or "segmenter", provider)
    try:
        segmenter.require_task("segmenter")
    except BaseException:
        segmenter.close()
        raise
    return segmenter


def _open_perceptual(files: tuple[Path, ...], session) -> list:
    """The ``--perceptual`` metrics, open on the model's provider; each named by its file's
    stem, which may not repeat or shadow a built-in metric."""
    if not files:
        return []
    task = session.contract.task
    if task not in ("generator", "tryon"):
        raise click.UsageError(f"--perceptual scores images: a generator's or a try-on's, not a {task}'s")
    from ..eval.perceptual import PerceptualMetric

    built_in = {"ssim", "psnr", "ms_ssim", "gmsd", "sharpness", "alpha_iou", "mask_iou", "zoomed", "alone"}
    names = [path.stem for path in files]
    clash = sorted({n for n in names if n in built_in or names.count(n) > 1})
    if clash:
        raise click.UsageError(f"--perceptual: rename {', '.join(clash)}: a metric is named by its file's stem")
    return [PerceptualMetric.open(path, session.provider) for path in files]
