"""``clothes-extractor export``: checkpoint -> served ONNX model, checked against PyTorch."""

from __future__ import annotations

from pathlib import Path

import click

from .common import parse_size, reports_errors, require_torch


@click.command()
@click.argument("checkpoint", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "-o", "--output", required=True, type=click.Path(path_type=Path, dir_okay=False), help="The ONNX model to write."
)
@click.option(
    "--untrained", is_flag=True, help="Export a randomly initialised network instead of a checkpoint (to try things)."
)
@click.option(
    "--task",
    type=click.Choice(["generator", "segmenter"]),
    default="generator",
    show_default=True,
    help="With --untrained: which network.",
)
@click.option("--size", default="256x192", show_default=True, help="HEIGHTxWIDTH, with --untrained.")
@click.option("--ngf", type=click.IntRange(min=1), default=16, show_default=True, help="Width, with --untrained.")
@click.option("--depth", type=click.IntRange(min=2), default=6, show_default=True, help="Depth, with --untrained.")
@click.option("--seed", type=int, default=0, show_default=True, help="Weights seed, with --untrained.")
@click.option(
    "--precision",
    type=click.Choice(["fp32", "fp16"]),
    default="fp32",
    show_default=True,
    help="Arithmetic inside the graph; inputs and outputs stay uint8.",
)
@click.option(
    "--weights",
    type=click.Choice(["fp32", "fp16"]),
    default=None,
    help="How the weights are stored [default: as --precision]. --precision fp32 --weights fp16: "
    "half the file, fp32 speed on the CPU (onnxruntime widens them once, at load).",
)
@click.option(
    "--validate-on",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="Also compare with PyTorch on up to 16 real photos of this dataset.",
)
@click.option("--opset", type=click.IntRange(min=13), default=17, show_default=True)
@click.option("--tensorrt", is_flag=True, help="Also build a TensorRT engine (MODEL.engine + MODEL.engine.json).")
@click.option("--trt-batch", default="1,32,128", show_default=True, help="Engine batch profile MIN,OPT,MAX.")
@reports_errors
def export(
    checkpoint: Path | None,
    output: Path,
    untrained: bool,
    task: str,
    size: str,
    ngf: int,
    depth: int,
    seed: int,
    precision: str,
    weights: str | None,
    validate_on: Path | None,
    opset: int,
    tensorrt: bool,
    trt_batch: str,
) -> None:
    """Export a generator or segmenter CHECKPOINT to a served ONNX model.

    BatchNorm is folded, the pre/post-processing goes into the graph, the contract into
    the metadata, and the result is compared with PyTorch on seeded inputs.
    """
    if (checkpoint is None) == (not untrained):
        raise click.UsageError("give either a CHECKPOINT or --untrained (not both)")
    if precision == "fp16" and weights == "fp32":
        raise click.UsageError("--precision fp16 computes on fp16 weights: --weights fp32 needs --precision fp32")
    try:
        profile = tuple(int(v) for v in trt_batch.split(","))
    except ValueError:
        profile = ()
    if len(profile) != 3:
        raise click.BadParameter(f"{trt_batch!r} is not MIN,OPT,MAX", param_hint="--trt-batch")
    if tensorrt:
        from ..export.tensorrt import import_tensorrt

        import_tensorrt()  # before any work: a missing TensorRT fails fast
    require_torch("export", "export")
    import torch

    from ..export.onnx_export import dataset_inputs, export_model, validate_export
    from ..train.checkpoint import load_model
    from ..train.networks import UNet, UNetConfig

    if untrained:
        height, width = parse_size(size)
        try:
            config = UNetConfig(task=task, height=height, width=width, ngf=ngf, depth=depth)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--size/--depth") from None
        torch.manual_seed(seed)
        model = UNet(config).eval()
        training = {"data": None, "note": f"untrained: random weights, seed {seed}"}
    else:
        model, payload = load_model(checkpoint)
        training = payload.get("summary", {})
    contract = export_model(model, output, precision=precision, weights=weights, opset=opset, training=training)
    size_mb = output.stat().st_size / 1e6
    stored = f", {weights} weights" if weights and weights != precision else ""
    click.echo(
        f"wrote {contract.task} {output} ({contract.height}x{contract.width}, {precision}{stored}, {size_mb:.1f} MB)"
    )
    checks = [("seeded inputs", None)]
    if validate_on is not None:
        checks.append((f"photos of {validate_on}", dataset_inputs(validate_on, contract)))
    for label, inputs in checks:
        try:
            result = validate_export(model, output, inputs=inputs)
        except Exception:
            output.unlink(missing_ok=True)  # a model that fails its check is not left behind
            raise
        click.echo(
            f"onnxruntime vs PyTorch fp32 on {result.samples} {label}: max |error| {result.max_abs}, "
            f"mean {result.mean_abs:.4f} (tolerance {result.max_abs_tolerance} / {result.mean_abs_tolerance})"
        )
    if tensorrt:
        from ..export.tensorrt import build_engine

        engine = output.with_suffix(".engine")
        sidecar = build_engine(
            output,
            engine,
            min_batch=profile[0],
            opt_batch=profile[1],
            max_batch=profile[2],
            fp16=precision == "fp16",
            timing_cache=output.with_suffix(".timing-cache"),
        )
        click.echo(f"wrote {engine} for {sidecar['gpu']['name']} (TensorRT {sidecar['tensorrt']})")
