"""Just enough of ONNX's protobuf encoding to read a model's graph and write a new one.

The streaming embedding (`streaming.py`) is a rewrite of openWakeWord's two feature models
into one graph; onnxruntime loads it from bytes. The `onnx` package would do this, but it is a
large dependency for a Raspberry Pi, and the rewrite needs only a model's nodes (op, inputs,
outputs, attributes kept as read), its initializers (kept as read, with their names and dims)
and a few new tensors, attributes and typed inputs and outputs. Field numbers are those of
onnx.proto (ModelProto, GraphProto, NodeProto, TensorProto, AttributeProto, ValueInfoProto).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
FLOAT, INT64 = 1, 7  # TensorProto.DataType
_ATTR_INT, _ATTR_INTS = 2, 7  # AttributeProto.AttributeType


class WireError(ValueError):
    """The bytes are not a protobuf message of the expected shape."""


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(buf):
            raise WireError("truncated varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise WireError("varint too long")


def fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of each field of a message, in order: an int for a varint or a
    fixed-width field, bytes for a length-delimited one."""
    for number, value, _ in _spans(buf):
        yield number, value


def _spans(buf: bytes) -> Iterator[tuple[int, int | bytes, bytes]]:
    """Each field's number, value and whole encoding (key included), to copy it as it is."""
    i = 0
    while i < len(buf):
        start = i
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == _VARINT:
            value, i = _varint(buf, i)
        elif wire == _LEN:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise WireError("truncated field")
            value, i = buf[i : i + n], i + n
        elif wire == _I64:
            if i + 8 > len(buf):
                raise WireError("truncated field")
            value, i = struct.unpack_from("<q", buf, i)[0], i + 8
        elif wire == _I32:
            if i + 4 > len(buf):
                raise WireError("truncated field")
            value, i = struct.unpack_from("<i", buf, i)[0], i + 4
        else:
            raise WireError(f"wire type {wire}")
        yield number, value, buf[start:i]


def _ints(value: int | bytes) -> list[int]:
    """A repeated int64 field's value: one varint, or a packed run of them."""
    if isinstance(value, int):
        return [value - (1 << 64) if value >= 1 << 63 else value]
    out, i = [], 0
    while i < len(value):
        v, i = _varint(value, i)
        out.append(v - (1 << 64) if v >= 1 << 63 else v)
    return out


def _str(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise WireError("expected a string")
    return value.decode()


def _enc_varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
    return _enc_varint(number << 3 | _LEN) + _enc_varint(len(payload)) + payload


def _int_field(number: int, value: int) -> bytes:
    return _enc_varint(number << 3 | _VARINT) + _enc_varint(value)


def _str_field(number: int, text: str) -> bytes:
    return _len_field(number, text.encode())


@dataclass
class Node:
    op: str
    inputs: list[str]
    outputs: list[str]
    attributes: list[bytes] = field(default_factory=list)
    """Serialized AttributeProtos."""
    domain: str = ""

    def attribute(self, name: str) -> list[int] | None:
        """An int or ints attribute's value, or None when the node has no such attribute."""
        for raw in self.attributes:
            fs = list(fields(raw))
            if any(n == 1 and _str(v) == name for n, v in fs):
                return [x for n, v in fs if n in (3, 8) for x in _ints(v)]
        return None

    def encode(self) -> bytes:
        return (
            b"".join(_str_field(1, s) for s in self.inputs)
            + b"".join(_str_field(2, s) for s in self.outputs)
            + _str_field(4, self.op)
            + b"".join(_len_field(5, a) for a in self.attributes)
            + (_str_field(7, self.domain) if self.domain else b"")
        )


def int_attribute(name: str, value: int) -> bytes:
    return _str_field(1, name) + _int_field(3, value) + _int_field(20, _ATTR_INT)


@dataclass
class Graph:
    nodes: list[Node]
    initializers: dict[str, bytes]
    """Serialized TensorProtos by name."""
    dims: dict[str, tuple[int, ...]]
    """Each initializer's shape."""
    inputs: list[str]
    outputs: list[str]
    opsets: list[bytes]
    """Serialized OperatorSetIdProtos of the model."""
    ir_version: int
    raw: bytes = b""
    """The serialized GraphProto."""
    input_infos: list[bytes] = field(default_factory=list)
    output_infos: list[bytes] = field(default_factory=list)
    """Serialized ValueInfoProtos of the graph's inputs (initializers left out) and outputs."""

    def opset_versions(self) -> dict[str, int]:
        """Operator set version by domain ("" for the default one)."""
        out = {}
        for raw in self.opsets:
            fs = dict(fields(raw))
            domain, version = fs.get(1, b""), fs.get(2, 1)
            if isinstance(domain, bytes) and isinstance(version, int):
                out[domain.decode()] = version
        return out


def read_model(data: bytes) -> Graph:
    """A model's graph: its nodes, initializers, input and output names and opsets."""
    graph_bytes, opsets, ir_version = b"", [], 0
    for number, value in fields(data):
        if number == 1 and isinstance(value, int):
            ir_version = value
        elif number == 7 and isinstance(value, bytes):
            graph_bytes = value
        elif number == 8 and isinstance(value, bytes):
            opsets.append(value)
    if not graph_bytes:
        raise WireError("no graph")
    g = Graph([], {}, {}, [], [], opsets, ir_version, graph_bytes)
    infos: dict[str, bytes] = {}
    for number, value in fields(graph_bytes):
        if not isinstance(value, bytes):
            continue
        if number == 1:
            g.nodes.append(_read_node(value))
        elif number == 5:
            name, dims = _tensor_name_dims(value)
            g.initializers[name], g.dims[name] = value, dims
        elif number in (11, 12):
            name = next((_str(v) for n, v in fields(value) if n == 1), "")
            (g.inputs if number == 11 else g.outputs).append(name)
            infos[name] = value
    g.inputs = [n for n in g.inputs if n not in g.initializers]
    g.input_infos = [infos[n] for n in g.inputs]
    g.output_infos = [infos[n] for n in g.outputs]
    return g


def _read_node(buf: bytes) -> Node:
    node = Node("", [], [])
    for number, value in fields(buf):
        if number == 1:
            node.inputs.append(_str(value))
        elif number == 2:
            node.outputs.append(_str(value))
        elif number == 4:
            node.op = _str(value)
        elif number == 5 and isinstance(value, bytes):
            node.attributes.append(value)
        elif number == 7:
            node.domain = _str(value)
    return node


def _tensor_name_dims(buf: bytes) -> tuple[str, tuple[int, ...]]:
    name, dims = "", []
    for number, value in fields(buf):
        if number == 1:
            dims.extend(_ints(value))
        elif number == 8:
            name = _str(value)
    return name, tuple(dims)


def tensor(name: str, array: np.ndarray) -> bytes:
    """A serialized TensorProto holding `array` (float32 or int64)."""
    kind = {np.dtype(np.float32): FLOAT, np.dtype(np.int64): INT64}[array.dtype]
    return (
        b"".join(_int_field(1, d) for d in array.shape)
        + _int_field(2, kind)
        + _str_field(8, name)
        + _len_field(9, array.astype(array.dtype.newbyteorder("<")).tobytes())
    )


def rename_tensor(raw: bytes, name: str) -> bytes:
    """A serialized TensorProto with its name replaced."""
    return b"".join(whole for n, _, whole in _spans(raw) if n != 8) + _str_field(8, name)


def value_info(name: str, shape: tuple[int | str, ...]) -> bytes:
    """A float tensor's ValueInfoProto: fixed dims as ints, named ones as strings."""
    dims = b"".join(
        _len_field(1, _str_field(2, d) if isinstance(d, str) else _int_field(1, d)) for d in shape
    )
    tensor_type = _int_field(1, FLOAT) + _len_field(2, dims)
    return _str_field(1, name) + _len_field(2, _len_field(1, tensor_type))


def write_model(
    nodes: list[Node],
    initializers: list[bytes],
    inputs: list[bytes],
    outputs: list[bytes],
    opsets: list[bytes],
    ir_version: int,
    name: str,
    more: bytes = b"",
) -> bytes:
    """A serialized ModelProto of one graph. `inputs`, `outputs`: ValueInfoProtos; `more`:
    further GraphProto fields, already encoded (nodes after these, initializers)."""
    graph = (
        b"".join(_len_field(1, n.encode()) for n in nodes)
        + _str_field(2, name)
        + b"".join(_len_field(5, t) for t in initializers)
        + b"".join(_len_field(11, v) for v in inputs)
        + b"".join(_len_field(12, v) for v in outputs)
        + more
    )
    return (
        _int_field(1, ir_version)
        + _len_field(7, graph)
        + b"".join(_len_field(8, o) for o in opsets)
    )


def value_info_shape(raw: bytes) -> tuple[int | str, ...]:
    """A tensor ValueInfoProto's shape: ints for fixed dims, names (or "") for the others."""
    dims: list[int | str] = []
    for n, type_proto in fields(raw):
        if n != 2 or not isinstance(type_proto, bytes):
            continue
        for n2, tensor_type in fields(type_proto):
            if n2 != 1 or not isinstance(tensor_type, bytes):
                continue
            for n3, shape in fields(tensor_type):
                if n3 != 2 or not isinstance(shape, bytes):
                    continue
                for n4, dim in fields(shape):
                    if n4 == 1 and isinstance(dim, bytes):
                        d = dict(fields(dim))
                        value = d.get(1, d.get(2, b""))
                        dims.append(value if isinstance(value, int) else _str(value))
    return tuple(dims)


def renamed_graph(raw: bytes, rename: Callable[[str], str]) -> bytes:
    """A serialized GraphProto with every tensor name passed through `rename`: node inputs and
    outputs, initializers, inputs, outputs and value infos, in subgraphs (an If's branches)
    too. Node names, which nothing refers to, are dropped."""
    out = bytearray()
    for number, value, whole in _spans(raw):
        if number == 1 and isinstance(value, bytes):
            out += _len_field(1, _renamed_node(value, rename))
        elif number == 5 and isinstance(value, bytes):
            out += _len_field(5, rename_tensor(value, rename(_tensor_name_dims(value)[0])))
        elif number in (11, 12, 13) and isinstance(value, bytes):
            out += _len_field(number, renamed_value_info(value, rename))
        else:
            out += whole
    return bytes(out)


def _renamed_node(raw: bytes, rename: Callable[[str], str]) -> bytes:
    out = bytearray()
    for number, value, whole in _spans(raw):
        if number in (1, 2):
            name = _str(value)
            out += _str_field(number, rename(name) if name else "")
        elif number == 5 and isinstance(value, bytes):
            out += _len_field(5, _renamed_attribute(value, rename))
        elif number != 3:
            out += whole
    return bytes(out)


def _renamed_attribute(raw: bytes, rename: Callable[[str], str]) -> bytes:
    out = bytearray()
    for number, value, whole in _spans(raw):
        if number in (6, 11) and isinstance(value, bytes):  # g, graphs
            out += _len_field(number, renamed_graph(value, rename))
        else:
            out += whole
    return bytes(out)


def renamed_value_info(raw: bytes, rename: Callable[[str], str]) -> bytes:
    return b"".join(
        _str_field(1, rename(_str(v))) if n == 1 else whole for n, v, whole in _spans(raw)
    )


def graph_fields(raw: bytes, numbers: set[int]) -> bytes:
    """The fields of a serialized message with these numbers, encoded as they were."""
    return b"".join(whole for n, _, whole in _spans(raw) if n in numbers)
