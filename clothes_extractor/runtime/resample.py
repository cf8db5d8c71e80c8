"""Crop + resize + pad of a photo where it already lies (a GPU's memory), as an ONNX graph.

``extract --decode gpu`` decodes JPEGs into GPU memory; cropping and resizing them there
needs no library beyond onnxruntime: the resampling is written as a small graph (gather
the source rows and columns each output pixel reads, weight, sum) whose weights come from
the host. The weights are Pillow's own for its antialiased bilinear filter (a triangle
whose support grows with the shrink factor), so a crop made here matches
``fitting.crop_resize`` of the same decoded pixels to within a level (Pillow rounds its
intermediate rows to 8 bits; this keeps them in float). Parts of the window outside the
photo get the fill colour, as ``crop_resize`` pastes onto a filled canvas.

The graph is built here from protobuf fields (``onnxfile.encode``): no onnx package at run
time. It reads the photo as rows of bytes (``[height, row_bytes]``), so a decoder's padded
row pitch is bound as it is, without a copy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .fitting import Box
from .onnxfile import encode

_FLOAT, _UINT8, _INT64 = 1, 2, 7  # TensorProto data types
_OPSET = 17


# -- the weights ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Taps:
    """For each output sample along one axis: which source samples it reads, with what
    weight, and whether it lies inside the photo at all (outside: the fill colour)."""

    index: np.ndarray  # int64 [n, k]
    weight: np.ndarray  # float32 [n, k]
    inside: np.ndarray  # float32 [n]


def pillow_taps(lo: float, hi: float, in_size: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's bilinear resampling weights for ``n`` samples of the source span [lo, hi) of
    an axis ``in_size`` long (``ImagingResample``'s ``precompute_coeffs``, vectorized)."""
    scale = (hi - lo) / n
    filter_scale = max(scale, 1.0)
    support = 1.0 * filter_scale  # the triangle's support, widened when shrinking (antialias)
    center = lo + (np.arange(n) + 0.5) * scale
    first = np.maximum(np.trunc(center - support + 0.5), 0).astype(np.int64)  # C's (int) truncates
    end = np.minimum(np.trunc(center + support + 0.5), in_size).astype(np.int64)
    k = int(math.ceil(support)) * 2 + 1
    index = first[:, None] + np.arange(k)[None, :]
    weight = np.clip(1.0 - np.abs((index - center[:, None] + 0.5) / filter_scale), 0.0, None)
    weight[index >= end[:, None]] = 0.0
    total = weight.sum(axis=1, keepdims=True)
    weight = np.divide(weight, total, out=np.zeros_like(weight), where=total > 0)
    return np.minimum(index, in_size - 1), weight.astype(np.float32)


def axis_taps(w0: float, w1: float, in_size: int, out_size: int) -> Taps:
    """The taps of one axis of ``crop_resize``: the window [w0, w1) of a source ``in_size``
    long onto ``out_size`` samples; the part of the window the source covers is resized into
    the output span it lands on (rounded as ``crop_resize`` rounds it), the rest is fill."""
    scale = out_size / (w1 - w0)
    i0, i1 = max(w0, 0.0), min(w1, float(in_size))
    index = np.zeros((out_size, 1), np.int64)
    weight = np.zeros((out_size, 1), np.float32)
    inside = np.zeros(out_size, np.float32)
    if i1 <= i0:
        return Taps(index, weight, inside)
    d0, d1 = round((i0 - w0) * scale), min(round((i1 - w0) * scale), out_size)
    if d1 <= d0:
        return Taps(index, weight, inside)
    part_index, part_weight = pillow_taps(i0, i1, in_size, d1 - d0)
    index = np.zeros((out_size, part_index.shape[1]), np.int64)
    weight = np.zeros((out_size, part_index.shape[1]), np.float32)
    index[d0:d1], weight[d0:d1], inside[d0:d1] = part_index, part_weight, 1.0
    return Taps(index, weight, inside)


# -- the graph ------------------------------------------------------------------------------


def _text(number: int, value: str) -> tuple[int, int, bytes]:
    return number, 2, value.encode("utf-8")


def _value_info(name: str, elem_type: int, dims: list[int | str]) -> bytes:
    dims_fields = [(1, 2, encode([(1, 0, d)] if isinstance(d, int) else [_text(2, d)])) for d in dims]
    tensor = encode([(1, 0, elem_type), (2, 2, encode(dims_fields))])
    return encode([_text(1, name), (2, 2, encode([(1, 2, tensor)]))])


def _initializer(name: str, array: np.ndarray) -> bytes:
    elem_type = {np.dtype(np.float32): _FLOAT, np.dtype(np.int64): _INT64}[array.dtype]
    dims = [(1, 0, d) for d in array.shape]
    return encode([*dims, (2, 0, elem_type), _text(8, name), (9, 2, array.tobytes())])


def _node(op: str, inputs: list[str], outputs: list[str], **attributes: int) -> bytes:
    found = [_text(1, i) for i in inputs] + [_text(2, o) for o in outputs] + [_text(4, op)]
    for name, value in attributes.items():
        found.append((5, 2, encode([_text(1, name), (3, 0, value), (20, 0, 2)])))  # type INT
    return encode(found)


def crop_resize_model() -> bytes:
    """The serialized resampling graph (see the module's docstring for its inputs)."""
    nodes = [
        _node("Slice", ["photo", "zero_1", "row_bytes", "one_1"], ["rows"]),
        _node("Reshape", ["rows", "hw3"], ["image_u8"]),
        _node("Cast", ["image_u8"], ["image"], to=_FLOAT),
        _node("Gather", ["image", "row_index"], ["picked_rows"], axis=0),  # [oh, k, w, 3]
        _node("Mul", ["picked_rows", "row_weight"], ["weighted_rows"]),
        _node("ReduceSum", ["weighted_rows", "one_1"], ["tall"], keepdims=0),  # [oh, w, 3]
        _node("Gather", ["tall", "col_index"], ["picked_cols"], axis=1),  # [oh, ow, k, 3]
        _node("Mul", ["picked_cols", "col_weight"], ["weighted_cols"]),
        _node("ReduceSum", ["weighted_cols", "two_1"], ["resized"], keepdims=0),  # [oh, ow, 3]
        _node("Mul", ["row_inside", "col_inside"], ["inside"]),  # [oh, ow, 1]
        _node("Sub", ["one_f", "inside"], ["outside"]),
        _node("Mul", ["outside", "fill"], ["padding"]),
        _node("Add", ["resized", "padding"], ["painted"]),
        _node("Add", ["painted", "half_f"], ["biased"]),
        _node("Clip", ["biased", "zero_f", "top_f"], ["clipped"]),
        _node("Floor", ["clipped"], ["levels"]),
        _node("Cast", ["levels"], ["out"], to=_UINT8),
    ]
    constants = {
        "zero_1": np.array([0], np.int64),
        "one_1": np.array([1], np.int64),
        "two_1": np.array([2], np.int64),
        "hw3": np.array([0, -1, 3], np.int64),
        "one_f": np.array(1.0, np.float32),
        "half_f": np.array(0.5, np.float32),
        "zero_f": np.array(0.0, np.float32),
        "top_f": np.array(255.0, np.float32),
    }
    inputs = [
        _value_info("photo", _UINT8, ["height", "row_pitch"]),
        _value_info("row_bytes", _INT64, [1]),  # width * 3: the row's pixels without the pitch's padding
        _value_info("row_index", _INT64, ["out_height", "row_taps"]),
        _value_info("row_weight", _FLOAT, ["out_height", "row_taps", 1, 1]),
        _value_info("col_index", _INT64, ["out_width", "col_taps"]),
        _value_info("col_weight", _FLOAT, [1, "out_width", "col_taps", 1]),
        _value_info("row_inside", _FLOAT, ["out_height", 1, 1]),
        _value_info("col_inside", _FLOAT, [1, "out_width", 1]),
        _value_info("fill", _FLOAT, [3]),
    ]
    graph = encode(
        [(1, 2, n) for n in nodes]
        + [_text(2, "crop_resize")]
        + [(5, 2, _initializer(name, value)) for name, value in constants.items()]
        + [(11, 2, i) for i in inputs]
        + [(12, 2, _value_info("out", _UINT8, ["out_height", "out_width", 3]))]
    )
    opset = encode([_text(1, ""), (2, 0, _OPSET)])
    return encode([(1, 0, 8), _text(2, "clothes-extractor"), (7, 2, graph), (8, 2, opset)])


def crop_feeds(window: Box, photo_size: tuple[int, int], size: tuple[int, int], fill) -> dict[str, np.ndarray]:
    """The graph's inputs but the photo, for ``window`` (x0, y0, x1, y1) of a photo of
    ``photo_size`` (width, height) at ``size`` (height, width), outside painted ``fill``."""
    rows = axis_taps(window[1], window[3], photo_size[1], size[0])
    cols = axis_taps(window[0], window[2], photo_size[0], size[1])
    return {
        "row_bytes": np.array([photo_size[0] * 3], np.int64),
        "row_index": rows.index,
        "row_weight": rows.weight[:, :, None, None],
        "col_index": cols.index,
        "col_weight": cols.weight[None, :, :, None],
        "row_inside": rows.inside[:, None, None],
        "col_inside": cols.inside[None, :, None],
        "fill": np.asarray(fill, np.float32).reshape(3),
    }


# -- running it -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceFrame:
    """A decoded RGB photo in some device's memory: rows of ``row_pitch`` bytes, the first
    ``width * 3`` of each the pixels. ``owner`` keeps the memory alive (the decoder's image,
    or a numpy array for a frame in host memory)."""

    pointer: int
    width: int
    height: int
    row_pitch: int
    device: str  # "cuda" or "cpu", as onnxruntime names it
    device_id: int
    owner: Any

    @classmethod
    def from_array(cls, array: np.ndarray) -> "DeviceFrame":
        """A frame over a host uint8 [h, w, 3] array (rows may be strided, pixels not)."""
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3 or array.strides[1:] != (3, 1):
            raise ValueError(f"a frame is uint8 [h, w, 3] with packed pixels, got {array.dtype} {array.shape}")
        return cls(array.ctypes.data, array.shape[1], array.shape[0], array.strides[0], "cpu", 0, array)

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


class Resampler:
    """Crops of device frames: one onnxruntime session of the graph above, on the device the
    frames are on. ``crop_resize`` returns host arrays (what the models' batches take)."""

    def __init__(self, provider: str = "cpu"):
        from .providers import create_session

        self.session, got = create_session(crop_resize_model(), provider, source="the crop-resize graph")
        self.device = "cpu" if got == "cpu" else "cuda"

    def crop_resize(self, frame: DeviceFrame, window: Box, size: tuple[int, int], fill) -> np.ndarray:
        """uint8 [h, w, 3]: ``window`` (x0, y0, x1, y1, frame pixels) of ``frame`` at ``size``
        (h, w), outside the frame painted ``fill``."""
        if frame.device != self.device:
            raise ValueError(f"a frame in {frame.device} memory given to a resampler on {self.device}")
        binding = self.session.io_binding()
        binding.bind_input(
            "photo", frame.device, frame.device_id, np.uint8, [frame.height, frame.row_pitch], frame.pointer
        )
        for name, value in crop_feeds(window, frame.size, size, fill).items():
            binding.bind_cpu_input(name, value)
        binding.bind_output("out", "cpu")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]


@dataclass(frozen=True)
class DevicePhoto:
    """A decoded photo on a device, croppable like a Pillow image by ``fitting`` (which
    calls ``crop_resize`` on anything that is not a Pillow image)."""

    frame: DeviceFrame
    resampler: Resampler
    mode = "RGB"

    @property
    def width(self) -> int:
        return self.frame.width

    @property
    def height(self) -> int:
        return self.frame.height

    @property
    def size(self) -> tuple[int, int]:
        return self.frame.size

    def crop_resize(self, window: Box, size: tuple[int, int], fill) -> np.ndarray:
        return self.resampler.crop_resize(self.frame, window, size, fill)
