"""Reading the parts of an ONNX file the runtime checks, without the onnx package.

An ONNX model is a protobuf ``ModelProto``. The runtime needs two of its fields before
it hands the bytes to onnxruntime: the metadata (field 14, where the contract lives) and
the graph (field 7, nodes and weights), whose SHA-256 the contract records at export. A
model whose weights were damaged (a bad copy, a flipped disk block) then fails with a
clear message instead of loading and writing black images. Only the top level of the
message is walked, so a 15 MB model is checked in a few milliseconds plus the hash.

``keep_outputs`` writes the model back with fewer outputs and without the nodes and
weights only the dropped ones need: onnxruntime runs every node of a graph whatever
outputs a run asks for, so a caller that never reads the silhouette would pay for it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ..errors import ModelError

_GRAPH_FIELD = 7
_METADATA_FIELD = 14
# GraphProto: node, initializer, output, value_info; NodeProto: input, output, attribute;
# AttributeProto: g, graphs; the name of a TensorProto (8) and of a ValueInfoProto (1).
_NODE, _INITIALIZER, _OUTPUT, _VALUE_INFO = 1, 5, 12, 13
_NODE_INPUT, _NODE_OUTPUT, _NODE_ATTRIBUTE = 1, 2, 5
_ATTRIBUTE_SUBGRAPHS = (6, 11)
_NAME_FIELD = {_INITIALIZER: 8, _OUTPUT: 1, _VALUE_INFO: 1}


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


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def encode(found: list[tuple[int, int, memoryview | bytes | int]]) -> bytes:
    """The message whose top level ``fields`` read as ``found``: the inverse of ``fields``."""
    out = bytearray()
    for number, wire, value in found:
        out += _encode_varint(number << 3 | wire)
        if wire == 0:
            out += _encode_varint(value)
        elif wire in (1, 5):
            out += value.to_bytes(8 if wire == 1 else 4, "little")
        else:
            out += _encode_varint(len(value)) + bytes(value)
    return bytes(out)


def _strings(message: memoryview, number: int) -> list[str]:
    return [bytes(v).decode("utf-8") for n, w, v in fields(message) if n == number and w == 2]


def keep_outputs(data: bytes, keep: set[str] | frozenset[str]) -> bytes:
    """The serialized model with only the graph outputs ``keep``, and only the nodes,
    weights and value infos they need (the graph's nodes are in topological order, as ONNX
    requires). A graph with subgraphs (If, Loop, Scan: their outer-scope reads are not node
    inputs) is kept whole. ``ValueError`` if ``keep`` names something that is not an output."""
    top = fields(data)
    (graph,) = [v for n, w, v in top if n == _GRAPH_FIELD and w == 2]
    parts = fields(graph)
    nodes = [fields(v) for n, w, v in parts if n == _NODE]
    outputs = {_strings(v, 1)[0] for n, w, v in parts if n == _OUTPUT}
    if not keep or not keep <= outputs:
        raise ValueError(f"the graph's outputs are {sorted(outputs)}, not a superset of {sorted(keep)}")
    attributes = (v for node in nodes for n, w, v in node if n == _NODE_ATTRIBUTE)
    if any(n in _ATTRIBUTE_SUBGRAPHS for a in attributes for n, _, _ in fields(a)):
        return bytes(data)
    needed, kept = set(keep), set()
    for index in reversed(range(len(nodes))):
        node = nodes[index]
        if needed & {bytes(v).decode("utf-8") for n, w, v in node if n == _NODE_OUTPUT}:
            kept.add(index)
            needed.update(bytes(v).decode("utf-8") for n, w, v in node if n == _NODE_INPUT)
    named = needed | {bytes(v).decode("utf-8") for i in kept for n, w, v in nodes[i] if n == _NODE_OUTPUT}
    pruned, index = [], 0
    for number, wire, value in parts:
        if number == _NODE:
            index += 1
            if index - 1 not in kept:
                continue
        elif number in _NAME_FIELD:
            (name,) = _strings(value, _NAME_FIELD[number])
            if name not in (keep if number == _OUTPUT else named):
                continue
        pruned.append((number, wire, value))
    new_graph = encode(pruned)
    return encode([(n, w, new_graph if n == _GRAPH_FIELD else v) for n, w, v in top])


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
        if bytes(data[:2]) == b"PK":  # a zip: what torch.save writes
            raise ModelError(
                f"{source} is not an ONNX model but a zip archive, as PyTorch saves (a training checkpoint?): "
                f"clothes-extractor export CHECKPOINT -o MODEL.onnx makes the served model"
            ) from None
        raise ModelError(f"{source} is not an ONNX model (its protobuf does not parse: {exc})") from None
    if len(graphs) != 1:
        raise ModelError(f"{source} is not an ONNX model (it has {len(graphs)} graphs)")
    return OnnxFile(data=bytes(data), metadata=metadata, graph_sha256=hashlib.sha256(graphs[0]).hexdigest())
