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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
FLOAT, INT64 = 1, 7  # TensorProto.DataType
_ATTR_INT = 2  # AttributeProto.AttributeType


class WireError(ValueError):
    """The bytes are not a protobuf message of the expected shape."""


def _varint(buf: Buf, i: int) -> tuple[int, int]:
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


Buf = bytes | memoryview
"""Encoded bytes; fields are read as views into the model's bytes, not copies."""


def fields(buf: Buf) -> Iterator[tuple[int, int | memoryview]]:
    """(field number, value) of each field of a message, in order: an int for a varint or a
    fixed-width field, a view of the bytes for a length-delimited one."""
    for number, value, _ in _spans(buf):
        yield number, value


def _spans(buf: Buf) -> Iterator[tuple[int, int | memoryview, memoryview]]:
    """Each field's number, value and whole encoding (key included), to copy it as it is."""
    buf = memoryview(buf)
    i = 0
    while i < len(buf):
        start = i
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        value: int | memoryview
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


def _ints(value: int | memoryview) -> list[int]:
    """A repeated int64 field's value: one varint, or a packed run of them."""
    if isinstance(value, int):
        return [value - (1 << 64) if value >= 1 << 63 else value]
    out, i = [], 0
    while i < len(value):
        v, i = _varint(value, i)
        out.append(v - (1 << 64) if v >= 1 << 63 else v)
    return out


def _str(value: int | memoryview) -> str:
    if not isinstance(value, memoryview):
        raise WireError("expected a string")
    return bytes(value).decode()


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


def _len_field(number: int, payload: Buf) -> bytes:
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
    attributes: list[Buf] = field(default_factory=list)
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
    initializers: dict[str, Buf]
    """Serialized TensorProtos by name."""
    dims: dict[str, tuple[int, ...]]
    """Each initializer's shape."""
    inputs: list[str]
    outputs: list[str]
    opsets: list[Buf]
    """Serialized OperatorSetIdProtos of the model."""
    ir_version: int
    raw: Buf = b""
    """The serialized GraphProto."""
    input_infos: list[Buf] = field(default_factory=list)
    output_infos: list[Buf] = field(default_factory=list)
    """Serialized ValueInfoProtos of the graph's inputs (initializers left out) and outputs."""

    def opset_versions(self) -> dict[str, int]:
        """Operator set version by domain ("" for the default one)."""
        out = {}
        for raw in self.opsets:
            fs = dict(fields(raw))
            domain, version = fs.get(1, memoryview(b"")), fs.get(2, 1)
            if isinstance(domain, memoryview) and isinstance(version, int):
                out[bytes(domain).decode()] = version
        return out


def read_model(data: Buf) -> Graph:
    """A model's graph: its nodes, initializers, input and output names and opsets."""
    graph_bytes: Buf = b""
    opsets: list[Buf] = []
    ir_version = 0
    for number, value in fields(data):
        if number == 1 and isinstance(value, int):
            ir_version = value
        elif number == 7 and isinstance(value, memoryview):
            graph_bytes = value
        elif number == 8 and isinstance(value, memoryview):
            opsets.append(value)
    if not graph_bytes:
        raise WireError("no graph")
    g = Graph([], {}, {}, [], [], opsets, ir_version, graph_bytes)
    infos: dict[str, Buf] = {}
    for number, value in fields(graph_bytes):
        if not isinstance(value, memoryview):
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


def _read_node(buf: Buf) -> Node:
    node = Node("", [], [])
    for number, value in fields(buf):
        if number == 1:
            node.inputs.append(_str(value))
        elif number == 2:
            node.outputs.append(_str(value))
        elif number == 4:
            node.op = _str(value)
        elif number == 5 and isinstance(value, memoryview):
            node.attributes.append(value)
        elif number == 7:
            node.domain = _str(value)
    return node


def _tensor_name_dims(buf: Buf) -> tuple[str, tuple[int, ...]]:
    name, dims = "", []
    for number, value in fields(buf):
        if number == 1:
            dims.extend(_ints(value))
        elif number == 8:
            name = _str(value)
    return name, tuple(dims)


def tensor_array(raw: Buf) -> np.ndarray:
    """A serialized float32 or int64 TensorProto's values (raw or packed), in its shape."""
    dims: list[int] = []
    kind, data = 0, b""
    for number, value in fields(raw):
        if number == 1:
            dims.extend(_ints(value))
        elif number == 2 and isinstance(value, int):
            kind = value
        elif number in (4, 9) and isinstance(value, memoryview):
            data = bytes(value)  # float32: raw or packed alike
        elif number == 7:
            data = np.array(_ints(value), dtype="<i8").tobytes()
    dtypes = {FLOAT: ("<f4", np.float32), INT64: ("<i8", np.int64)}
    if kind not in dtypes:
        raise WireError(f"a tensor of type {kind}, not float or int64")
    wire_type, dtype = dtypes[kind]
    return np.frombuffer(data, dtype=wire_type).astype(dtype).reshape(dims)


def tensor(name: str, array: np.ndarray) -> bytes:
    """A serialized TensorProto holding `array` (float32 or int64)."""
    kind = {np.dtype(np.float32): FLOAT, np.dtype(np.int64): INT64}[array.dtype]
    return (
        b"".join(_int_field(1, d) for d in array.shape)
        + _int_field(2, kind)
        + _str_field(8, name)
        + _len_field(9, array.astype(array.dtype.newbyteorder("<")).tobytes())
    )


def rename_tensor(raw: Buf, name: str) -> bytes:
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
    initializers: Sequence[Buf],
    inputs: Sequence[Buf],
    outputs: Sequence[Buf],
    opsets: Sequence[Buf],
    ir_version: int,
    name: str,
    more: Buf = b"",
) -> bytes:
    """A serialized ModelProto of one graph. `inputs`, `outputs`: ValueInfoProtos; `more`:
    further GraphProto fields, already encoded (nodes after these, initializers).

    The parts are joined once at the end: the weights (megabytes) are copied once."""
    graph: list[Buf] = []
    for n in nodes:
        graph += _len_parts(1, [n.encode()])
    graph.append(_str_field(2, name))
    for number, messages in ((5, initializers), (11, inputs), (12, outputs)):
        for m in messages:
            graph += _len_parts(number, [m])
    graph.append(more)
    model = [_int_field(1, ir_version), *_len_parts(7, graph)]
    for o in opsets:
        model += _len_parts(8, [o])
    return b"".join(model)


def _len_parts(number: int, parts: list[Buf]) -> list[Buf]:
    """A length-delimited field as its key and length, then its payload's parts as they are."""
    size = sum(len(p) for p in parts)
    return [_enc_varint(number << 3 | _LEN) + _enc_varint(size), *parts]


def value_info_shape(raw: Buf) -> tuple[int | str, ...]:
    """A tensor ValueInfoProto's shape: ints for fixed dims, names (or "") for the others."""
    dims: list[int | str] = []
    for n, type_proto in fields(raw):
        if n != 2 or not isinstance(type_proto, memoryview):
            continue
        for n2, tensor_type in fields(type_proto):
            if n2 != 1 or not isinstance(tensor_type, memoryview):
                continue
            for n3, shape in fields(tensor_type):
                if n3 != 2 or not isinstance(shape, memoryview):
                    continue
                for n4, dim in fields(shape):
                    if n4 == 1 and isinstance(dim, memoryview):
                        d = dict(fields(dim))
                        value = d.get(1, d.get(2, memoryview(b"")))
                        dims.append(value if isinstance(value, int) else _str(value))
    return tuple(dims)


def renamed_graph(raw: Buf, rename: Callable[[str], str]) -> bytes:
    """A serialized GraphProto with every tensor name passed through `rename`: node inputs and
    outputs, initializers, inputs, outputs and value infos, in subgraphs (an If's branches)
    too. Node names, which nothing refers to, are dropped."""
    out = bytearray()
    for number, value, whole in _spans(raw):
        if number == 1 and isinstance(value, memoryview):
            out += _len_field(1, _renamed_node(value, rename))
        elif number == 5 and isinstance(value, memoryview):
            out += _len_field(5, rename_tensor(value, rename(_tensor_name_dims(value)[0])))
        elif number in (11, 12, 13) and isinstance(value, memoryview):
            out += _len_field(number, renamed_value_info(value, rename))
        else:
            out += whole
    return bytes(out)


def _renamed_node(raw: Buf, rename: Callable[[str], str]) -> bytes:
    out = bytearray()
    for number, value, whole in _spans(raw):
        if number in (1, 2):
            name = _str(value)
            out += _str_field(number, rename(name) if name else "")
        elif number == 5 and isinstance(value, memoryview):
            out += _len_field(5, _renamed_attribute(value, rename))
        elif number != 3:
            out += whole
    return bytes(out)


def _renamed_attribute(raw: Buf, rename: Callable[[str], str]) -> bytes:
    out = bytearray()
    for number, value, whole in _spans(raw):
        if number in (6, 11) and isinstance(value, memoryview):  # g, graphs
            out += _len_field(number, renamed_graph(value, rename))
        else:
            out += whole
    return bytes(out)


def renamed_value_info(raw: Buf, rename: Callable[[str], str]) -> bytes:
    return b"".join(
        _str_field(1, rename(_str(v))) if n == 1 else whole for n, v, whole in _spans(raw)
    )


def graph_fields(raw: Buf, numbers: set[int]) -> bytes:
    """The fields of a serialized message with these numbers, encoded as they were."""
    return b"".join(whole for n, _, whole in _spans(raw) if n in numbers)
