"""PyTorch network -> served ONNX model (the contract in ``runtime.contract``), and its check.

Small steps, each usable alone:

- ``fold_batchnorm``: BatchNorm folded into the Conv/ConvTranspose before it
  (onnxruntime fuses Conv+BN itself but never ConvTranspose+BN);
- ``export_model``: wrap the network with the uint8 NHWC pre/post-processing of its task
  (``architectures.served``), export with a dynamic batch axis (and, for a warping
  generator, dynamic photo and output sizes: GridSample, opset 16+), write the contract
  (with the graph's SHA-256) into ``metadata_props``, optionally store an fp32 graph's
  weights as fp16 (``store_weights_fp16``), run the checker, write atomically;
- ``validate_export``: run the file in onnxruntime (CPU) and the unfolded PyTorch model
  on the same inputs, compare every uint8 output, raise listing every failed check;
- ``export_checked``: both, and a model that fails its check is not left behind.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .. import __version__
from ..errors import ClothesExtractorError, ExportError, InputError, MissingDependencyError
from ..eval.synthetic import synthetic_feeds
from ..runtime.contract import FitSettings, ModelContract
from ..runtime.files import write_atomic
from ..runtime.fitting import DEFAULT_MAX_OUTPUT
from ..runtime.onnxfile import graph_digest
from ..tasks import PARSER_CLASSES, task_of
from ..train.architectures import SERVED_NAMES, architecture_of, served
from ..train.networks import conv_bn_pairs
from .tolerances import LABEL_TOLERANCES, tolerances_for

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17

DTYPES = {"fp32": torch.float32, "fp16": torch.float16}
WEIGHTS_KEY = "clothes_extractor.weights"  # metadata: how the weights are stored, when not as computed


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise MissingDependencyError("onnx", "export", "Exporting a model") from None
    return onnx


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """Fold every BatchNorm2d that directly follows a Conv2d/ConvTranspose2d, in place.

    The module must be in eval mode (folding uses the running statistics).
    """
    if module.training:
        raise ValueError("fold_batchnorm needs a module in eval mode")
    for conv_name, norm_name in list(conv_bn_pairs(module)):
        parent_name, _, conv_leaf = conv_name.rpartition(".")
        parent = module.get_submodule(parent_name)
        conv, norm = parent.get_submodule(conv_leaf), module.get_submodule(norm_name)
        transpose = isinstance(conv, nn.ConvTranspose2d)
        setattr(parent, conv_leaf, fuse_conv_bn_eval(conv, norm, transpose=transpose))
        setattr(parent, norm_name.rpartition(".")[2], nn.Identity())
    return module


def build_contract(
    model: nn.Module,
    *,
    precision: str = "fp32",
    fit: FitSettings | None = None,
    training: dict[str, Any] | None = None,
) -> ModelContract:
    config = model.config
    arch = architecture_of(model)
    warping = arch == "flow"
    photo_resolution = warping or arch == "tryon-flow"  # (they move pixels: at the photo's own resolution)
    return ModelContract(
        task=config.task,
        height=config.height,
        width=config.width,
        fit=fit or FitSettings(method=task_of(config.task).fit, pad=task_of(config.task).pad),
        precision=precision,
        package_version=__version__,
        training={"architecture": {"name": SERVED_NAMES[arch], **dataclasses.asdict(config)}, **(training or {})},
        catalog_resolution=photo_resolution,
        alpha=warping or arch == "silhouette",
        max_output=DEFAULT_MAX_OUTPUT if photo_resolution else None,
        labels=PARSER_CLASSES if getattr(config, "classes", 0) else (),
        alone=getattr(config, "alone", False),
    )


def store_weights_fp16(proto: Any) -> int:
    """Store the fp32 weights and biases of every Conv / ConvTranspose of ``proto`` as fp16,
    each behind a Cast back to fp32, in place; the number of tensors converted.

    The file halves and the arithmetic stays fp32: onnxruntime folds the Casts into fp32
    constants when it loads the model (as does TensorRT's parser), so a CPU runs it at
    fp32 speed; only the weights are rounded to fp16, once.
    """
    import onnx
    from onnx import numpy_helper

    graph = proto.graph
    weights = {name for node in graph.node if node.op_type in ("Conv", "ConvTranspose") for name in node.input[1:]}
    casts = []
    for index, tensor in enumerate(graph.initializer):
        if tensor.name not in weights or tensor.data_type != onnx.TensorProto.FLOAT:
            continue
        stored = numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float16), f"{tensor.name}.fp16")
        casts.append(
            onnx.helper.make_node(
                "Cast", [stored.name], [tensor.name], to=onnx.TensorProto.FLOAT, name=f"{tensor.name}.to_fp32"
            )
        )
        graph.initializer[index].CopyFrom(stored)
    nodes = [*casts, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    return len(casts)


def _trace_to_onnx(wrapped: nn.Module, contract: ModelContract, opset: int) -> bytes:
    h, w = contract.size
    examples, axes = [], {}
    for spec in contract.inputs:
        if spec.resolution == "photo":
            # another size than the model's, so that nothing of the photo path is traced as "the same size"
            examples.append(torch.zeros(2, h + h // 2, w + w // 2, spec.channels, dtype=torch.uint8))
            axes[spec.name] = {0: "batch", 1: "height", 2: "width"}
        else:
            examples.append(torch.zeros(2, h, w, spec.channels, dtype=torch.uint8))
            axes[spec.name] = {0: "batch"}
    for spec in contract.outputs:
        axes[spec.name] = {0: "batch", 1: "height", 2: "width"} if spec.resolution == "photo" else {0: "batch"}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter: one fast trace, exact for these networks (no data-dependent control flow).
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapped,
            tuple(examples),
            buffer,
            input_names=[spec.name for spec in contract.inputs],
            output_names=[spec.name for spec in contract.outputs],
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )
    return buffer.getvalue()


def _declare_shapes(proto: Any, contract: ModelContract) -> None:
    """Write the contract's shapes onto the graph's inputs and outputs: the tracer leaves some
    axes it could not infer (a channel count behind a transpose) as anonymous symbols."""
    specs = {spec.name: spec for spec in (*contract.inputs, *contract.outputs)}
    for value in (*proto.graph.input, *proto.graph.output):
        spec = specs.get(value.name)
        if spec is None:
            continue
        sizes = spec.plane(contract.size, ("height", "width"))
        dims = value.type.tensor_type.shape.dim
        for dim, size in zip(dims, ("batch", *sizes, spec.channels), strict=True):
            dim.Clear()
            if isinstance(size, int):
                dim.dim_value = size
            else:
                dim.dim_param = size


def export_model(
    model: nn.Module,
    path: str | Path,
    *,
    precision: str = "fp32",
    weights: str | None = None,
    opset: int = DEFAULT_OPSET,
    fit: FitSettings | None = None,
    training: dict[str, Any] | None = None,
) -> ModelContract:
    """Write ``model`` (a U-Net generator or segmenter, or a warping generator) as a served
    ONNX model at ``path``; its contract.

    ``fp16`` computes in half precision inside the graph (BatchNorm is folded in fp32
    first); the inputs and outputs stay uint8 either way. ``weights`` is how the weights
    are stored (default: as computed); ``fp32`` arithmetic on ``fp16`` weights gives a
    file half the size that runs at fp32 speed (see ``store_weights_fp16``).
    """
    onnx = _import_onnx()
    path = Path(path)
    if precision not in DTYPES:
        raise ExportError(f"precision must be one of {', '.join(DTYPES)}, got {precision!r}")
    weights = weights or precision
    if weights not in DTYPES:
        raise ExportError(f"weights must be stored as one of {', '.join(DTYPES)}, got {weights!r}")
    if precision == "fp16" and weights == "fp32":
        raise ExportError("an fp16 graph computes on fp16 weights: fp32 weights go with --precision fp32")
    if architecture_of(model) in ("flow", "tryon-flow") and opset < 16:
        raise ExportError(f"a warping network needs GridSample, opset 16 or later (got {opset})")
    contract = build_contract(model, precision=precision, fit=fit, training=training)
    folded = fold_batchnorm(copy.deepcopy(model).eval()).to(DTYPES[precision])
    proto = onnx.load_from_string(_trace_to_onnx(served(folded, DTYPES[precision]), contract, opset))
    _declare_shapes(proto, contract)
    proto.producer_name = "clothes-extractor"
    proto.producer_version = __version__
    proto.doc_string = task_of(contract.task).description
    extra = {}
    if weights != precision and store_weights_fp16(proto):
        extra[WEIGHTS_KEY] = weights
    # The contract records the digest of the graph as it is now; metadata lives outside the graph.
    contract = dataclasses.replace(contract, weights_sha256=graph_digest(proto.SerializeToString()))
    for key, value in {**contract.to_metadata(), **extra}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the exported graph fails the ONNX checker: {exc}") from None
    write_atomic(path, proto.SerializeToString())
    log.info("exported %s %s (%dx%d, opset %d)", contract.task, path, *contract.size, opset)
    return contract


@dataclass(frozen=True)
class ValidationResult:
    max_abs: int
    mean_abs: float
    samples: int
    max_abs_tolerance: int
    mean_abs_tolerance: float
    label: str = "seeded inputs"
    labels_changed: float | None = None  # a parser: share of pixels whose class differs
    labels_tolerance: float = 0.0

    @property
    def passed(self) -> bool:
        labels_ok = self.labels_changed is None or self.labels_changed <= self.labels_tolerance
        return self.max_abs <= self.max_abs_tolerance and self.mean_abs <= self.mean_abs_tolerance and labels_ok


def seeded_inputs(contract: ModelContract, count: int, seed: int = 0, photo_size=None) -> dict[str, np.ndarray]:
    return synthetic_feeds(contract, count, seed, photo_size)


def dataset_inputs(data_dir: Path, contract: ModelContract, count: int = 16) -> dict[str, np.ndarray]:
    """Up to ``count`` real photos and masks of a dataset, fitted as serving fits them: the first
    that can be read (one that cannot, its mask file missing, is passed over and said);
    ``InputError`` where none can."""
    from ..eval.datasets import load_fitted, load_samples

    samples = load_samples(Path(data_dir), "all", require_garment=task_of(contract.task).needs_garment)
    arrays, unread = [], []
    for sample in samples:
        try:
            arrays.append(load_fitted(sample, contract))
        except ClothesExtractorError as exc:
            unread.append(f"{sample.photo}: {exc}")
        if len(arrays) == count:
            break
    if unread:
        log.warning("%d sample(s) of %s passed over, they cannot be read: %s", len(unread), data_dir, unread[0])
    if not arrays:
        raise InputError(f"no sample of {data_dir} can be read to validate the export with: {unread[0]}")
    return {spec.name: np.stack([a[spec.name] for a in arrays]) for spec in contract.inputs}


def tolerance_key(precision: str, metadata: dict[str, str]) -> str:
    """The ``TOLERANCES`` entry of a file computing in ``precision`` with this metadata."""
    weights = metadata.get(WEIGHTS_KEY, precision)
    return precision if weights == precision else f"{precision}/{weights}-weights"


def validate_export(
    model: nn.Module,
    path: str | Path,
    *,
    samples: int = 4,
    seed: int = 0,
    inputs: dict[str, np.ndarray] | None = None,
    label: str = "seeded inputs",
    max_abs_tolerance: int | None = None,
    mean_abs_tolerance: float | None = None,
    outputs: list[str] | None = None,
) -> ValidationResult:
    """Compare the ONNX file at ``path`` (onnxruntime, CPU) with ``model`` (PyTorch fp32).

    Uses ``inputs`` (uint8 arrays by input name) when given, else ``samples`` seeded ones.
    Tolerances default to those of the file's precision and weight storage. Every output (or
    those in ``outputs``: what ``model`` gives where the file holds more, as a silhouette
    model holds a U-Net) is compared (one of one value per image, such as a parser's
    ``alone``, by its largest error only: a rounding flip of one level there is a mean of
    1 / N); raises ``ExportError`` listing every failed check.
    """
    from ..runtime.session import ModelSession

    with ModelSession(path, provider="cpu", outputs=outputs) as session:
        contract, specs = session.contract, session.output_specs
        table = tolerances_for(contract)
        key = tolerance_key(contract.precision, session.metadata)
        default_max, default_mean = table[key]
        max_tol = default_max if max_abs_tolerance is None else max_abs_tolerance
        mean_tol = default_mean if mean_abs_tolerance is None else mean_abs_tolerance
        feeds = inputs if inputs is not None else seeded_inputs(contract, samples, seed)
        got = session.run(**feeds)
    reference_model = served(copy.deepcopy(model).float())
    with torch.no_grad():
        expected = reference_model(*(torch.from_numpy(feeds[spec.name]) for spec in contract.inputs))
    expected = expected if isinstance(expected, tuple) else (expected,)
    problems, worst_max, means, flipped = [], 0, [], None
    for spec, want in zip(specs, expected, strict=True):
        want = want.numpy()
        have = got[spec.name]
        if have.shape != want.shape or have.dtype != want.dtype:
            problems.append(
                f"{spec.name} is {have.dtype} {list(have.shape)}, PyTorch gives {want.dtype} {list(want.shape)}"
            )
            continue
        if spec.name == "labels":
            flipped = float(np.mean(have != want))
            if flipped > LABEL_TOLERANCES[key]:
                problems.append(f"labels: {flipped:.2%} of the pixels change class (> {LABEL_TOLERANCES[key]:.2%})")
            continue
        diff = np.abs(have.astype(np.int16) - want.astype(np.int16))
        worst_max = max(worst_max, int(diff.max()))
        if spec.resolution != "image":  # (one value per image: a rounding flip of one is a mean of 1 / N)
            means.append(float(diff.mean()))
    result = ValidationResult(
        worst_max,
        max(means, default=0.0),
        len(next(iter(feeds.values()))),
        max_tol,
        mean_tol,
        label,
        flipped,
        LABEL_TOLERANCES[key],
    )
    if result.max_abs > max_tol:
        problems.append(f"max |error| {result.max_abs} > {max_tol}")
    if result.mean_abs > mean_tol:
        problems.append(f"mean |error| {result.mean_abs:.4f} > {mean_tol}")
    if problems:
        raise ExportError(
            f"{path} does not match PyTorch on {result.samples} {label} (uint8 outputs): " + "; ".join(problems)
        )
    return result


def export_checked(
    model: nn.Module,
    path: str | Path,
    *,
    validate_on: Path | None = None,
    **export_options: Any,
) -> tuple[ModelContract, list[ValidationResult]]:
    """``export_model``, then ``validate_export`` on seeded inputs (for a warping generator
    also with the photo at twice the model size) and, with ``validate_on``, on up to 16 real
    photos of that dataset. A model that fails is deleted; the error lists the failures."""
    path = Path(path)
    contract = export_model(model, path, **export_options)
    checks: list[tuple[str, dict[str, np.ndarray] | None]] = [("seeded inputs", None)]
    if contract.catalog_resolution:
        big = (contract.height * 2, contract.width * 2)
        checks.append((f"seeded inputs, photo at {big[0]}x{big[1]}", seeded_inputs(contract, 2, 1, big)))
    if validate_on is not None:
        checks.append((f"photos of {validate_on}", dataset_inputs(validate_on, contract)))
    results = []
    try:
        for label, inputs in checks:
            results.append(validate_export(model, path, inputs=inputs, label=label))
    except BaseException:
        path.unlink(missing_ok=True)  # a model that fails its check is not left behind
        raise
    return contract, results


def untrained_model(task: str, arch: str, size: tuple[int, int], ngf: int, depth: int, seed: int = 0) -> nn.Module:
    """A randomly initialised network (to try the pipeline without training): ``depth`` is the
    U-Net's levels or the warping generator's grid levels. ``ValueError`` for impossible shapes."""
    from ..train.architectures import build

    if task == "tryon":
        if arch != "flow":
            raise ValueError("a try-on network is built from the warping generator's modules: use --arch flow")
        arch = "tryon-flow"
    config = {"task": task, "height": size[0], "width": size[1], "ngf": ngf}
    config.update({"depth": depth} if arch == "unet" else {"levels": depth})
    torch.manual_seed(seed)
    return build(arch, config).eval()
