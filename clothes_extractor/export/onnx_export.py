"""PyTorch U-Net -> served ONNX model (the contract in ``runtime.contract``), and its check.

Three small steps, each usable alone:

- ``fold_batchnorm``: BatchNorm folded into the Conv/ConvTranspose before it
  (onnxruntime fuses Conv+BN itself but never ConvTranspose+BN);
- ``export_model``: wrap the network with the uint8 NHWC pre/post-processing of its task
  (``ServedGenerator``, ``ServedSegmenter``), export with a dynamic batch axis, write the
  contract into ``metadata_props``, optionally store an fp32 graph's weights as fp16
  (``store_weights_fp16``), run the checker;
- ``validate_export``: run the file in onnxruntime (CPU) and the unfolded PyTorch model
  on the same seeded inputs, compare the uint8 outputs, raise if over tolerance.
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
from ..errors import ExportError, MissingDependencyError
from ..runtime.contract import TASK_FIT, TASK_IO, FitSettings, ModelContract
from ..train.networks import UNet, served

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17

# Tolerances on the uint8 outputs of the exported graph against eager PyTorch fp32, as
# (max |error|, mean |error|) in output levels. fp32: folding BatchNorm and onnxruntime's
# kernels change the last bits, which flips the rounding of a value sitting at .5: off by
# one, rarely two. fp16: 11-bit mantissas through a dozen conv layers can move a pixel by
# a few levels; the bound leaves room for that (measured on 256x192 ngf-16 generators on
# onnxruntime's CPU provider: max 1, mean 0.04).
# fp32 arithmetic on weights stored as fp16 ("fp32/fp16-weights"): each weight rounded to
# 11 bits once (measured on the trained 256x192 ngf-16 and ngf-32 generators against PyTorch
# fp32: max 1, mean 0.009-0.016 on seeded inputs and 16 VITON photos).
TOLERANCES = {"fp32": (2, 0.05), "fp16": (16, 1.0), "fp32/fp16-weights": (4, 0.1)}
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
    for child in module.children():
        fold_batchnorm(child)
    if isinstance(module, nn.Sequential):
        layers = list(module)
        for i in range(len(layers) - 1):
            conv, norm = layers[i], layers[i + 1]
            if isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(norm, nn.BatchNorm2d):
                module[i] = fuse_conv_bn_eval(conv, norm, transpose=isinstance(conv, nn.ConvTranspose2d))
                module[i + 1] = nn.Identity()
    return module


DOC_STRINGS = {
    "generator": "clothes-extractor garment generator: photo + garment mask -> catalog garment",
    "segmenter": "clothes-extractor garment segmenter: photo -> garment mask",
}


def build_contract(
    model: UNet,
    *,
    precision: str = "fp32",
    fit: FitSettings | None = None,
    training: dict[str, Any] | None = None,
) -> ModelContract:
    config = model.config
    return ModelContract(
        task=config.task,
        height=config.height,
        width=config.width,
        fit=fit or FitSettings(method=TASK_FIT[config.task]),
        precision=precision,
        package_version=__version__,
        training={"architecture": {"name": "pix2pix-unet", **dataclasses.asdict(config)}, **(training or {})},
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


def export_model(
    model: UNet,
    path: str | Path,
    *,
    precision: str = "fp32",
    weights: str | None = None,
    opset: int = DEFAULT_OPSET,
    fit: FitSettings | None = None,
    training: dict[str, Any] | None = None,
) -> ModelContract:
    """Write ``model`` (generator or segmenter) as a served ONNX model at ``path``; its contract.

    ``fp16`` computes in half precision inside the graph (BatchNorm is folded in fp32
    first); the inputs and output stay uint8 either way. ``weights`` is how the weights
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
    contract = build_contract(model, precision=precision, fit=fit, training=training)
    folded = fold_batchnorm(copy.deepcopy(model).eval()).to(DTYPES[precision])
    wrapped = served(folded, DTYPES[precision])
    h, w = contract.size
    inputs, outputs = TASK_IO[contract.task]
    example = tuple(torch.zeros(2, h, w, channels, dtype=torch.uint8) for channels in inputs.values())
    buffer = io.BytesIO()
    batch_axis = {0: "batch"}
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter: one fast trace, and it is exact for this plain CNN.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapped,
            example,
            buffer,
            input_names=list(inputs),
            output_names=list(outputs),
            dynamic_axes={name: batch_axis for name in (*inputs, *outputs)},
            opset_version=opset,
            dynamo=False,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    proto.producer_name = "clothes-extractor"
    proto.producer_version = __version__
    proto.doc_string = DOC_STRINGS[contract.task]
    metadata = contract.to_metadata()
    if weights != precision and store_weights_fp16(proto):
        metadata[WEIGHTS_KEY] = weights
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the exported graph fails the ONNX checker: {exc}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.partial")
    try:
        temp.write_bytes(proto.SerializeToString())
        temp.replace(path)
    finally:
        temp.unlink(missing_ok=True)
    log.info("exported %s %s (%dx%d, opset %d)", contract.task, path, h, w, opset)
    return contract


@dataclass(frozen=True)
class ValidationResult:
    max_abs: int
    mean_abs: float
    samples: int
    max_abs_tolerance: int
    mean_abs_tolerance: float

    @property
    def passed(self) -> bool:
        return self.max_abs <= self.max_abs_tolerance and self.mean_abs <= self.mean_abs_tolerance


def seeded_inputs(size: tuple[int, int], count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic photos (smooth colour fields + noise) and soft rectangular masks."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    images = np.empty((count, h, w, 3), np.uint8)
    masks = np.zeros((count, h, w, 1), np.uint8)
    for i in range(count):
        phase = rng.uniform(0, 2 * np.pi, 3)
        freq = rng.uniform(0.02, 0.2, 3)
        field = np.stack([np.sin(xx * freq[c] + yy * freq[(c + 1) % 3] + phase[c]) for c in range(3)], -1)
        noisy = 127.5 + 100 * field + rng.normal(0, 12, (h, w, 3))
        images[i] = np.clip(noisy, 0, 255).astype(np.uint8)
        y0, x0 = rng.integers(0, h // 3), rng.integers(0, w // 3)
        y1, x1 = rng.integers(2 * h // 3, h + 1), rng.integers(2 * w // 3, w + 1)
        masks[i, y0:y1, x0:x1, 0] = 255
        masks[i, y0:y1, x0, 0] = 128  # a soft edge
    return images, masks


def dataset_inputs(data_dir: Path, contract: ModelContract, count: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``count`` real photos and masks of a dataset, fitted as serving fits them."""
    from ..runtime.datasets import fit_sample, load_sample, load_samples

    samples = load_samples(Path(data_dir), "all", require_garment=contract.task == "generator")[:count]
    arrays = [fit_sample(*load_sample(s), contract) for s in samples]
    images = np.stack([a["image"] for a in arrays])
    masks = np.stack([a["mask"] if "mask" in a else np.zeros((*contract.size, 1), np.uint8) for a in arrays])
    return images, masks


def tolerance_key(precision: str, metadata: dict[str, str]) -> str:
    """The ``TOLERANCES`` entry of a file computing in ``precision`` with this metadata."""
    weights = metadata.get(WEIGHTS_KEY, precision)
    return precision if weights == precision else f"{precision}/{weights}-weights"


def validate_export(
    model: UNet,
    path: str | Path,
    *,
    samples: int = 4,
    seed: int = 0,
    inputs: tuple[np.ndarray, np.ndarray] | None = None,
    max_abs_tolerance: int | None = None,
    mean_abs_tolerance: float | None = None,
) -> ValidationResult:
    """Compare the ONNX file at ``path`` (onnxruntime, CPU) with ``model`` (PyTorch fp32).

    Uses ``inputs`` (uint8 images, masks) when given, else ``samples`` seeded ones; a
    segmenter takes only the images. Tolerances default to those of the file's precision
    and weight storage (``TOLERANCES``). Raises ``ExportError`` listing every failed check.
    """
    from ..runtime.session import ModelSession

    session = ModelSession(path, provider="cpu")
    default_max, default_mean = TOLERANCES[tolerance_key(session.contract.precision, session.metadata)]
    max_abs_tolerance = default_max if max_abs_tolerance is None else max_abs_tolerance
    mean_abs_tolerance = default_mean if mean_abs_tolerance is None else mean_abs_tolerance
    if inputs is None:
        inputs = seeded_inputs(session.contract.size, samples, seed)
    images, masks = inputs
    feeds = {"image": images, "mask": masks}
    feeds = {name: feeds[name] for name in TASK_IO[session.contract.task][0]}
    reference_model = served(copy.deepcopy(model).float())
    with torch.no_grad():
        expected = reference_model(*(torch.from_numpy(a) for a in feeds.values())).numpy()
    got = session.run(**feeds)
    if got.shape != expected.shape or got.dtype != expected.dtype:
        raise ExportError(
            f"{path} does not match PyTorch: it gives {got.dtype} {list(got.shape)}, "
            f"PyTorch gives {expected.dtype} {list(expected.shape)}"
        )
    problems = []
    diff = np.abs(got.astype(np.int16) - expected.astype(np.int16))
    result = ValidationResult(
        max_abs=int(diff.max()),
        mean_abs=float(diff.mean()),
        samples=len(images),
        max_abs_tolerance=max_abs_tolerance,
        mean_abs_tolerance=mean_abs_tolerance,
    )
    if result.max_abs > max_abs_tolerance:
        problems.append(f"max |error| {result.max_abs} > {max_abs_tolerance}")
    if result.mean_abs > mean_abs_tolerance:
        problems.append(f"mean |error| {result.mean_abs:.4f} > {mean_abs_tolerance}")
    if problems:
        raise ExportError(
            f"{path} does not match PyTorch on {result.samples} inputs (uint8 outputs): " + "; ".join(problems)
        )
    return result
