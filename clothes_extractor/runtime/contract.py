"""The contract a served model carries in its ONNX metadata, and its validation.

The runtime hard-codes nothing about a model: input size, how photos are fitted to it,
colours and precision all come from one JSON document stored under ``METADATA_KEY`` in
the model's ``metadata_props``. The graph's own inputs and outputs are checked against the
task's fixed I/O (uint8 NHWC tensors with a dynamic batch axis), so a model that says one
thing and does another is refused before any photo is read.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Collection, Mapping, Sequence

from ..errors import ContractError
from .settings import unknown_key

FORMAT_VERSION = 3
# 1: before catalog resolution, alpha and the weights checksum; 2: before the fit's ``pad``
READABLE_VERSIONS = (1, 2, 3)
METADATA_KEY = "clothes_extractor.contract"


@dataclass(frozen=True)
class TensorSpec:
    """One uint8 [N, H, W, channels] tensor of a served graph.

    ``resolution`` "model": H x W is the contract's size; "photo": any size, the photo crop's
    own (catalog-resolution generators take the crop at its resolution and answer at it);
    "image": 1 x 1, one value per image (a parser's ``alone``).
    """

    name: str
    channels: int
    resolution: str = "model"

    def plane(self, model_size: tuple[int, int], photo_size: tuple[int, int] | None = None) -> tuple[int, int]:
        """(H, W) of this tensor for a model of ``model_size`` fed a ``photo`` of ``photo_size``."""
        if self.resolution == "image":
            return 1, 1
        if self.resolution == "photo":
            if photo_size is None:
                raise ValueError(f"{self.name} takes the photo's size, and no photo was given")
            return photo_size
        return model_size


# The serving protocol of each task: the tensors its graph takes and gives, and how photos
# are fitted to it. Optional features (a contract flag each) add tensors; see ``io_of``.
TASK_INPUTS = {
    "generator": (TensorSpec("image", 3), TensorSpec("mask", 1)),
    "segmenter": (TensorSpec("image", 3),),
    # try-on: the person, the region to dress anew (upper clothes and arms), the catalog
    # garment and its silhouette
    "tryon": (
        TensorSpec("person", 3),
        TensorSpec("region", 1),
        TensorSpec("garment", 3),
        TensorSpec("garment_mask", 1),
    ),
}
TASK_OUTPUTS = {
    "generator": (TensorSpec("garment", 3),),
    "segmenter": (TensorSpec("mask", 1),),
    "tryon": (TensorSpec("image", 3),),
}
# What a photo-resolution model (``catalog_resolution``) also takes, at the photo's resolution:
# a generator the fitted window of the photo; a try-on model the person's window and the
# catalog garment letterboxed at that same size (it answers at that size).
PHOTO_INPUTS = {
    "generator": (TensorSpec("photo", 3, "photo"),),
    "tryon": (TensorSpec("photo", 3, "photo"), TensorSpec("garment_photo", 3, "photo")),
}
# How each task's inputs are fitted to the model size: the generator crops to the
# garment's mask; the segmenter, which has no mask yet, and try-on see whole photos.
TASK_FIT = {"generator": "mask_box_letterbox", "segmenter": "letterbox", "tryon": "letterbox"}
# What fills the frame outside the photo: the segmenter learned zoomed-out photos that go on
# in their own backdrop's colour (``train.augment``), so it sees a photo of another aspect
# padded so; the others learned (and the generator's crop is filled) with ``pad_rgb``.
TASK_PAD = {"generator": "rgb", "segmenter": "border", "tryon": "rgb"}
TASKS = tuple(TASK_INPUTS)

FIT_METHODS = ("mask_box_letterbox", "letterbox")
PAD_MODES = ("rgb", "border")
PRECISIONS = ("fp32", "fp16")


def _rgb(value: Any, what: str) -> tuple[int, int, int]:
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 3
        or not all(isinstance(c, int) and 0 <= c <= 255 for c in value)
    ):
        raise ContractError(f"{what} must be three integers 0-255, got {value!r}")
    return tuple(value)  # type: ignore[return-value]


def _reject_unknown(data: Mapping[str, Any], cls: type, where: str) -> None:
    problem = unknown_key(data, cls)
    if problem is not None:
        raise ContractError(f"unknown field {problem} in {where}")


@dataclass(frozen=True)
class FitSettings:
    """How a photo and its garment mask are fitted to the model's input size.

    ``mask_box_letterbox``: take the box around the mask's pixels >= ``mask_threshold``,
    grow it by ``margin`` (a fraction of the box's size) on every side, widen it to the
    model's aspect ratio, crop, resize, and fill whatever lies outside the photo with
    ``pad_rgb`` (mask: 0). ``letterbox``: the whole photo, resized to fit and padded.
    ``pad`` "border" (a segmenter's letterbox): the padding is the photo's own border colour
    instead, the median of its edge pixels (``fitting.letterbox_for``), as if the backdrop
    went on: a landscape photo of a plain wall stays a plain wall, not a green band between
    two white ones, which a parser takes for a garment on white.
    """

    method: str = "mask_box_letterbox"
    margin: float = 0.1
    pad_rgb: tuple[int, int, int] = (255, 255, 255)
    mask_threshold: int = 128
    pad: str = "rgb"

    def __post_init__(self) -> None:
        if self.method not in FIT_METHODS:
            raise ContractError(f"unknown fit method {self.method!r}; this version knows {', '.join(FIT_METHODS)}")
        if not (isinstance(self.margin, (int, float)) and 0 <= self.margin <= 2):
            raise ContractError(f"fit margin must be a number in [0, 2], got {self.margin!r}")
        if not (isinstance(self.mask_threshold, int) and 1 <= self.mask_threshold <= 255):
            raise ContractError(f"fit mask_threshold must be an integer in [1, 255], got {self.mask_threshold!r}")
        if self.pad not in PAD_MODES:
            raise ContractError(f"fit pad must be one of {', '.join(PAD_MODES)}, got {self.pad!r}")
        object.__setattr__(self, "pad_rgb", _rgb(self.pad_rgb, "fit pad_rgb"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FitSettings":
        _reject_unknown(data, cls, "the fit settings")
        return cls(**data)


@dataclass(frozen=True)
class ModelContract:
    """What a served model promises: its task, input size, fitting, colours, provenance.

    ``catalog_resolution`` (generators and try-on models): the graph also takes the photo at
    any resolution (``PHOTO_INPUTS``: a generator the fitted window of the photo, a try-on
    model the person's window and the garment letterboxed at that size) and answers at that
    resolution (up to ``max_output``, height x width, by default). ``alpha``: it also gives the garment's
    silhouette (``alpha``, 255 = garment), for transparent or coloured backgrounds.
    ``labels`` (segmenters that parse the whole person): the class names of its ``labels``
    output, a class index per pixel. ``alone`` (parsers): it also gives ``alone`` [N, 1, 1, 1],
    how likely (x 255) the photo shows a garment alone (a catalog image, a flat lay) rather
    than worn. ``weights_sha256``: SHA-256 of the serialized graph
    (weights and nodes), checked at load.
    """

    task: str
    height: int
    width: int
    fit: FitSettings = field(default_factory=FitSettings)
    background_rgb: tuple[int, int, int] = (255, 255, 255)
    precision: str = "fp32"
    category: str = "upper"
    package_version: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    catalog_resolution: bool = False
    alpha: bool = False
    max_output: tuple[int, int] | None = None
    labels: tuple[str, ...] = ()
    alone: bool = False
    weights_sha256: str = ""
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.format_version not in READABLE_VERSIONS:
            raise ContractError(
                f"contract format {self.format_version!r} is not one this clothes-extractor "
                f"reads ({', '.join(map(str, READABLE_VERSIONS))}); install the clothes-extractor version "
                "that exported the model, or export it again with this one"
            )
        if self.task not in TASK_INPUTS:
            raise ContractError(f"unknown task {self.task!r}; this version serves {', '.join(TASK_INPUTS)}")
        for name in ("height", "width"):
            value = getattr(self, name)
            if not (isinstance(value, int) and 8 <= value <= 8192):
                raise ContractError(f"input {name} must be an integer in [8, 8192], got {value!r}")
        if self.fit.method != TASK_FIT[self.task]:
            raise ContractError(f"a {self.task} is fitted with {TASK_FIT[self.task]!r}, not {self.fit.method!r}")
        if self.fit.pad == "border" and self.task != "segmenter":
            raise ContractError(f"fit pad 'border' is a segmenter's letterbox; a {self.task} pads with pad_rgb")
        if self.precision not in PRECISIONS:
            raise ContractError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        object.__setattr__(self, "background_rgb", _rgb(self.background_rgb, "background_rgb"))
        if not isinstance(self.training, dict):
            raise ContractError(f"training summary must be an object, got {self.training!r}")
        self._check_features()
        if self.max_output is not None:
            if not (
                isinstance(self.max_output, (list, tuple))
                and len(self.max_output) == 2
                and all(isinstance(v, int) and v >= 8 for v in self.max_output)
            ):
                raise ContractError(f"max_output must be [height, width] (integers >= 8), got {self.max_output!r}")
            object.__setattr__(self, "max_output", tuple(self.max_output))
        if not isinstance(self.weights_sha256, str):
            raise ContractError(f"weights_sha256 must be a string, got {self.weights_sha256!r}")

    def _check_features(self) -> None:
        """The optional features (each adds tensors) belong to their task."""
        if self.catalog_resolution and self.task not in PHOTO_INPUTS:
            raise ContractError(f"catalog_resolution is a feature of {' and '.join(PHOTO_INPUTS)} models")
        if self.alpha and self.task != "generator":
            raise ContractError("alpha is a generator feature")
        if not (isinstance(self.labels, (list, tuple)) and all(isinstance(n, str) for n in self.labels)):
            raise ContractError(f"labels must be a list of class names, got {self.labels!r}")
        if self.labels and self.task != "segmenter":
            raise ContractError("labels are a segmenter feature (a human parser)")
        object.__setattr__(self, "labels", tuple(self.labels))
        if self.alone is not False and (self.alone is not True or not self.labels):
            raise ContractError(f"alone must be true or false, and is a parser's feature (labels), got {self.alone!r}")

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of every model-size input and output tensor."""
        return self.height, self.width

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        """The tensors the graph takes, in order."""
        extra = PHOTO_INPUTS[self.task] if self.catalog_resolution else ()
        return (*TASK_INPUTS[self.task], *extra)

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        """The tensors the graph gives, in order: the task's main output first."""
        resolution = "photo" if self.catalog_resolution else "model"
        found = tuple(dataclasses.replace(spec, resolution=resolution) for spec in TASK_OUTPUTS[self.task])
        if self.alpha:
            found += (TensorSpec("alpha", 1, resolution),)
        if self.labels:
            found += (TensorSpec("labels", 1),)
        if self.alone:
            found += (TensorSpec("alone", 1, "image"),)
        return found

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_metadata(self) -> dict[str, str]:
        """The ``metadata_props`` entries that carry this contract."""
        return {METADATA_KEY: json.dumps(self.to_json(), sort_keys=True)}

    @classmethod
    def from_metadata(cls, props: Mapping[str, str], source: str = "the model") -> "ModelContract":
        raw = props.get(METADATA_KEY)
        if raw is None:
            raise ContractError(
                f"{source} has no clothes-extractor contract (metadata key {METADATA_KEY!r} "
                "is missing): it was not exported by clothes-extractor. Export the checkpoint "
                "with `clothes-extractor export`"
            )
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ContractError(f"{source}: the contract is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ContractError(f"{source}: the contract must be a JSON object, got {raw[:80]!r}")
        try:
            _reject_unknown(data, cls, "the contract")
            if "format_version" not in data:
                raise ContractError("the contract has no format_version")
            fit = data.get("fit", {})
            if not isinstance(fit, dict):
                raise ContractError(f"fit must be an object, got {fit!r}")
            return cls(**{**data, "fit": FitSettings.from_dict(fit)})
        except TypeError as exc:  # a required field is missing
            raise ContractError(f"{source}: incomplete contract ({exc})") from None
        except ContractError as exc:
            raise ContractError(f"{source}: {exc}") from None

    def check_graph(
        self,
        inputs: Sequence[tuple[str, str, Sequence[Any]]],
        outputs: Sequence[tuple[str, str, Sequence[Any]]],
        source: str = "the model",
        serving: Collection[str] | None = None,
    ) -> None:
        """Check the graph's (name, onnx type, shape) inputs and outputs against the contract
        (``serving``: of its outputs, only these, the graph having been cut to them).

        Collects every mismatch and raises one ``ContractError`` listing them all.
        """
        problems: list[str] = []
        served = tuple(spec for spec in self.outputs if serving is None or spec.name in serving)
        for kind, got, want in (("input", inputs, self.inputs), ("output", outputs, served)):
            got_by_name = {name: (dtype, shape) for name, dtype, shape in got}
            if set(got_by_name) != {spec.name for spec in want}:
                names = sorted(spec.name for spec in want)
                problems.append(f"{kind}s are {sorted(got_by_name)}, the {self.task} contract needs {names}")
                continue
            for spec in want:
                dtype, shape = got_by_name[spec.name]
                problems += self._tensor_problems(kind, spec, dtype, shape)
        if problems:
            raise ContractError(f"{source} does not match its {self.task} contract: " + "; ".join(problems))

    def _tensor_problems(self, kind: str, spec: TensorSpec, dtype: str, shape: Sequence[Any]) -> list[str]:
        problems = []
        if dtype != "tensor(uint8)":
            problems.append(f"{kind} {spec.name!r} is {dtype}, must be tensor(uint8)")
        h, w = {"model": self.size, "image": (1, 1)}.get(spec.resolution, ("height", "width"))
        expected = [None, *(None if isinstance(v, str) else v for v in (h, w)), spec.channels]
        if len(shape) != 4 or any(e is not None and s != e for s, e in zip(shape, expected, strict=True)):
            problems.append(f"{kind} {spec.name!r} has shape {list(shape)}, must be [batch, {h}, {w}, {spec.channels}]")
        elif isinstance(shape[0], int) and shape[0] > 0:
            problems.append(f"{kind} {spec.name!r} has a fixed batch of {shape[0]}; the batch axis must be dynamic")
        elif spec.resolution == "photo" and any(isinstance(v, int) and v > 0 for v in shape[1:3]):
            problems.append(f"{kind} {spec.name!r} has a fixed size {list(shape[1:3])}; it must take any size")
        return problems
