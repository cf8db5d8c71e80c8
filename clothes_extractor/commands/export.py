"""``clothes-extractor export``: checkpoint -> served ONNX model, checked against PyTorch."""

from __future__ import annotations

from pathlib import Path

import click

from .common import CheckpointPath, LocalPath, given_options, parse_size, reports_errors, require_torch, verbose_option


def _batch_profile(_ctx, _param, value: str) -> tuple[int, int, int]:
    try:
        profile = tuple(int(v) for v in value.split(","))
    except ValueError:
        profile = ()
    if len(profile) != 3 or not 1 <= profile[0] <= profile[1] <= profile[2]:
        raise click.BadParameter(f"{value!r} is not MIN,OPT,MAX with 1 <= MIN <= OPT <= MAX")
    return profile  # type: ignore[return-value]


@click.command()
@click.argument("checkpoint", required=False, type=CheckpointPath(path_type=Path))
@click.option(
    "-o", "--output", required=True, type=LocalPath(path_type=Path, dir_okay=False), help="The ONNX model to write."
)
@click.option(
    "--untrained", is_flag=True, help="Export a randomly initialised network instead of a checkpoint (to try things)."
)
@click.option(
    "--task",
    type=click.Choice(["generator", "segmenter", "tryon"]),
    default="generator",
    show_default=True,
    help="With --untrained: which network (tryon: with --arch flow).",
)
@click.option(
    "--arch", type=click.Choice(["unet", "flow"]), default="unet", show_default=True, help="With --untrained."
)
@click.option("--size", default="256x192", show_default=True, help="HEIGHTxWIDTH, with --untrained.")
@click.option("--ngf", type=click.IntRange(min=2), default=16, show_default=True, help="Width, with --untrained.")
@click.option("--depth", type=click.IntRange(min=2), default=6, show_default=True, help="Depth, with --untrained.")
@click.option("--seed", type=int, default=0, show_default=True, help="Weights seed, with --untrained.")
@click.option(
    "--precision",
    type=click.Choice(["fp32", "fp16"]),
    default="fp32",
    show_default=True,
    help="Arithmetic inside the graph; inputs and outputs stay uint8 (a served model written again: its own).",
)
@click.option(
    "--weights",
    type=click.Choice(["fp32", "fp16"]),
    default=None,
    help="How the weights are stored [default: as --precision; a served model written again: as it stores "
    "them]. --precision fp32 --weights fp16: "
    "half the file, fp32 speed on the CPU (onnxruntime widens them once, at load).",
)
@click.option(
    "--validate-on",
    type=LocalPath(path_type=Path, exists=True, file_okay=False),
    help="Also compare with PyTorch on up to 16 real photos of this dataset.",
)
@click.option("--opset", type=click.IntRange(min=13), default=17, show_default=True)
@click.option(
    "--tensorrt",
    is_flag=True,
    help="Also build the TensorRT engine for this GPU (onnxruntime's TensorRT provider caches it).",
)
@click.option(
    "--trt-batch",
    default="1,32,128",
    show_default=True,
    callback=_batch_profile,
    help="Engine batch profile MIN,OPT,MAX.",
)
@verbose_option
@reports_errors
def export(
    checkpoint: Path | None,
    output: Path,
    untrained: bool,
    task: str,
    arch: str,
    size: str,
    ngf: int,
    depth: int,
    seed: int,
    precision: str,
    weights: str | None,
    validate_on: Path | None,
    opset: int,
    tensorrt: bool,
    trt_batch: tuple[int, int, int],
) -> None:
    """Export a generator, segmenter or try-on CHECKPOINT (RUN/best.pt or last.pt, or the run
    folder RUN: its best.pt, else its last.pt) to a served ONNX model.

    BatchNorm is folded, the pre/post-processing goes into the graph, the contract (with
    the graph's checksum) into the metadata, and the result is compared with PyTorch on
    seeded inputs; a model that fails the comparison is deleted. A served model (.onnx)
    as CHECKPOINT is read back and written again with this version's wrapper and contract
    (an older try-on file gains the photo-resolution inputs).
    """
    if (checkpoint is None) == (not untrained):
        raise click.UsageError("give either a CHECKPOINT or --untrained (not both)")
    _check_untrained_only(checkpoint)
    if precision == "fp16" and weights == "fp32":
        raise click.UsageError("--precision fp16 computes on fp16 weights: --weights fp32 needs --precision fp32")
    if output.suffix.lower() != ".onnx":
        raise click.UsageError(f"-o {output}: an exported model is an .onnx file")
    require_torch("export", "export")
    from ..export.onnx_export import export_checked
    from ..train.checkpoint import load_model
    from ..train.served_init import is_served, model_from_served

    if untrained:
        model, training = _untrained(task, arch, size, ngf, depth, seed)
    elif is_served(checkpoint):  # a served model again, with this version's wrapper and contract
        model, training = model_from_served(checkpoint)
        precision, weights = _stored_as(checkpoint, precision, weights)
    else:
        model, payload = load_model(checkpoint)
        training = payload.get("summary", {})
    contract, results = export_checked(
        model, output, validate_on=validate_on, precision=precision, weights=weights, opset=opset, training=training
    )
    size_mb = output.stat().st_size / 1e6
    stored = f", {weights} weights" if weights and weights != precision else ""
    click.echo(
        f"wrote {contract.task} {output} ({contract.height}x{contract.width}, {precision}{stored}, {size_mb:.1f} MB)"
    )
    for result in results:
        labels = ""
        if result.labels_changed is not None:
            labels = (
                f"; labels changed on {result.labels_changed:.3%} of pixels (tolerance {result.labels_tolerance:.1%})"
            )
        click.echo(
            f"onnxruntime vs PyTorch fp32 on {result.samples} {result.label}: max |error| {result.max_abs}, "
            f"mean {result.mean_abs:.4f} (tolerance {result.max_abs_tolerance} / {result.mean_abs_tolerance}){labels}"
        )
    if tensorrt:
        from ..export.tensorrt import build_tensorrt_cache

        cache = build_tensorrt_cache(output, trt_batch, fp16=precision == "fp16")
        click.echo(f"TensorRT engine built and cached in {cache}")


def _stored_as(path: Path, precision: str, weights: str | None) -> tuple[str, str | None]:
    """--precision and --weights of a served model written again: the file's own, where the
    command line does not give them (an fp16 file stays fp16, one of fp16 weights half size)."""
    from ..export.onnx_export import WEIGHTS_KEY
    from ..runtime.contract import ModelContract
    from ..runtime.onnxfile import read_onnx

    given = {param.name for param in given_options()}
    metadata = read_onnx(path.read_bytes(), str(path)).metadata  # (the file read once, for both)
    if "precision" not in given:
        precision = ModelContract.from_metadata(metadata, source=str(path)).precision
    if "weights" not in given and "precision" not in given:
        weights = metadata.get(WEIGHTS_KEY, precision)
    if precision == "fp16" and weights == "fp32":
        raise click.UsageError(f"{path} computes in fp16: --weights fp32 needs --precision fp32")
    return precision, weights


def _untrained(task: str, arch: str, size: str, ngf: int, depth: int, seed: int):
    from ..export.onnx_export import untrained_model

    height, width = parse_size(size)
    try:
        model = untrained_model(task, arch, (height, width), ngf, depth, seed)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--size/--depth/--arch") from None
    return model, {"data": None, "note": f"untrained: random weights, seed {seed}"}


UNTRAINED_ONLY = ("task", "arch", "size", "ngf", "depth", "seed")


def _check_untrained_only(checkpoint: Path | None) -> None:
    """A checkpoint carries its own network: --size and the others describe an --untrained one,
    and were ignored with a CHECKPOINT."""
    if checkpoint is None:
        return
    given = [param.name for param in given_options() if param.name in UNTRAINED_ONLY]
    if given:
        options = ", ".join(f"--{name}" for name in given)
        raise click.UsageError(
            f"{options}: for an --untrained network; {checkpoint} is exported as it was trained "
            "(a model of another size: train one at that size)"
        )
