"""Reading the parts of an ONNX file the runtime checks, without the onnx package.

An ONNX model is a protobuf ``ModelProto``. The runtime needs two of its fields before
it hands the bytes to onnxruntime: the metadata (field 14, where the contract lives) and
the graph (field 7, nodes and weights), whose SHA-256 the contract records at export. A
model whose weights were damaged (a bad copy, a flipped disk block) then fails with a
clear message instead of loading and writing black images. Only the top level of the
message is walked, so a 15 MB model is checked in a few milliseconds plus the hash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ..errors import ModelError

_GRAPH_FIELD = 7
_METADATA_FIELD = 14


def _varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(data: bytes | memoryview) -> list[tuple[int, int, memoryview | int]]:
    """The (field number, wire type, value) of one protobuf message's top level; a
    length-delimited value is a view of its bytes. ``ValueError`` on malformed input."""
    view = memoryview(data)
    pos, found = 0, []
    while pos < len(view):
        key, pos = _varint(view, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(view, pos)
        elif wire == 1:
            value, pos = int.from_bytes(view[pos : pos + 8], "little"), pos + 8
        elif wire == 2:
            length, pos = _varint(view, pos)
            if pos + length > len(view):
                raise ValueError(f"field {number} runs past the end of the data")
            value, pos = view[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = int.from_bytes(view[pos : pos + 4], "little"), pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > len(view):
            raise ValueError("truncated field")
        found.append((number, wire, value))
    return found


@dataclass(frozen=True)
class OnnxFile:
    data: bytes  # the whole file, for onnxruntime
    metadata: dict[str, str]
    graph_sha256: str


def graph_digest(data: bytes) -> str:
    """SHA-256 of the serialized graph of an ONNX model's bytes."""
    return read_onnx(data, "the model").graph_sha256


def read_onnx(data: bytes, source: str) -> OnnxFile:
    """The metadata and graph digest of a serialized ONNX model; ``ModelError`` if it is not one."""
    try:
        top = fields(data)
        metadata = {}
        graphs = [value for number, wire, value in top if number == _GRAPH_FIELD and wire == 2]
        for number, wire, value in top:
            if number == _METADATA_FIELD and wire == 2:
                entry = {n: bytes(v).decode("utf-8") for n, w, v in fields(value) if w == 2}
                metadata[entry.get(1, "")] = entry.get(2, "")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"{source} is not an ONNX model (its protobuf does not parse: {exc})") from None
    if len(graphs) != 1:
        raise ModelError(f"{source} is not an ONNX model (it has {len(graphs)} graphs)")
    return OnnxFile(data=bytes(data), metadata=metadata, graph_sha256=hashlib.sha256(graphs[0]).hexdigest())
