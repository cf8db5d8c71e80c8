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
from typing import Any, Mapping, Sequence

from ..errors import ContractError
from ..settings import unknown_key

FORMAT_VERSION = 1
METADATA_KEY = "clothes_extractor.contract"

# name -> channel count of the uint8 [N, H, W, C] tensors each task's graph takes and gives.
TASK_IO: dict[str, tuple[dict[str, int], dict[str, int]]] = {
    "generator": ({"image": 3, "mask": 1}, {"garment": 3}),
    "segmenter": ({"image": 3}, {"mask": 1}),
}
# How each task's inputs are fitted to the model size: the generator crops to the
# garment's mask; the segmenter, which has no mask yet, sees the whole photo.
TASK_FIT = {"generator": "mask_box_letterbox", "segmenter": "letterbox"}

FIT_METHODS = ("mask_box_letterbox", "letterbox")
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
    """

    method: str = "mask_box_letterbox"
    margin: float = 0.1
    pad_rgb: tuple[int, int, int] = (255, 255, 255)
    mask_threshold: int = 128

    def __post_init__(self) -> None:
        if self.method not in FIT_METHODS:
            raise ContractError(f"unknown fit method {self.method!r}; this version knows {', '.join(FIT_METHODS)}")
        if not (isinstance(self.margin, (int, float)) and 0 <= self.margin <= 2):
            raise ContractError(f"fit margin must be a number in [0, 2], got {self.margin!r}")
        if not (isinstance(self.mask_threshold, int) and 1 <= self.mask_threshold <= 255):
            raise ContractError(f"fit mask_threshold must be an integer in [1, 255], got {self.mask_threshold!r}")
        object.__setattr__(self, "pad_rgb", _rgb(self.pad_rgb, "fit pad_rgb"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FitSettings":
        _reject_unknown(data, cls, "the fit settings")
        return cls(**data)


@dataclass(frozen=True)
class ModelContract:
    """What a served model promises: its task, input size, fitting, colours, provenance."""

    task: str
    height: int
    width: int
    fit: FitSettings = field(default_factory=FitSettings)
    background_rgb: tuple[int, int, int] = (255, 255, 255)
    precision: str = "fp32"
    category: str = "upper"
    package_version: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.format_version != FORMAT_VERSION:
            raise ContractError(
                f"contract format {self.format_version!r} is not the one this clothes-extractor "
                f"reads ({FORMAT_VERSION}); install the clothes-extractor version that exported "
                "the model, or export it again with this one"
            )
        if self.task not in TASK_IO:
            raise ContractError(f"unknown task {self.task!r}; this version serves {', '.join(TASK_IO)}")
        for name in ("height", "width"):
            value = getattr(self, name)
            if not (isinstance(value, int) and 8 <= value <= 8192):
                raise ContractError(f"input {name} must be an integer in [8, 8192], got {value!r}")
        if self.fit.method != TASK_FIT[self.task]:
            raise ContractError(f"a {self.task} is fitted with {TASK_FIT[self.task]!r}, not {self.fit.method!r}")
        if self.precision not in PRECISIONS:
            raise ContractError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        object.__setattr__(self, "background_rgb", _rgb(self.background_rgb, "background_rgb"))
        if not isinstance(self.training, dict):
            raise ContractError(f"training summary must be an object, got {self.training!r}")

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of every input and output tensor."""
        return self.height, self.width

    def to_metadata(self) -> dict[str, str]:
        """The ``metadata_props`` entries that carry this contract."""
        return {METADATA_KEY: json.dumps(dataclasses.asdict(self), sort_keys=True)}

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
    ) -> None:
        """Check the graph's (name, onnx type, shape) inputs and outputs against the task.

        Collects every mismatch and raises one ``ContractError`` listing them all.
        """
        want_in, want_out = TASK_IO[self.task]
        problems: list[str] = []
        for kind, got, want in (("input", inputs, want_in), ("output", outputs, want_out)):
            got_by_name = {name: (dtype, shape) for name, dtype, shape in got}
            if set(got_by_name) != set(want):
                problems.append(f"{kind}s are {sorted(got_by_name)}, the {self.task} contract needs {sorted(want)}")
                continue
            for name, channels in want.items():
                dtype, shape = got_by_name[name]
                if dtype != "tensor(uint8)":
                    problems.append(f"{kind} {name!r} is {dtype}, must be tensor(uint8)")
                expected = [None, self.height, self.width, channels]
                if len(shape) != 4 or any(e is not None and s != e for s, e in zip(shape, expected, strict=True)):
                    problems.append(
                        f"{kind} {name!r} has shape {list(shape)}, must be "
                        f"[batch, {self.height}, {self.width}, {channels}]"
                    )
                elif isinstance(shape[0], int) and shape[0] > 0:
                    problems.append(f"{kind} {name!r} has a fixed batch of {shape[0]}; the batch axis must be dynamic")
        if problems:
            raise ContractError(f"{source} does not match its {self.task} contract: " + "; ".join(problems))
