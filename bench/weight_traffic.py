"""How many bytes of weights one decode step reads, from an ONNX file, without the `onnx` package.

The memory-bandwidth bound of a decoder step is (bytes of weights it must stream from memory) / (memory bandwidth).
A decode step (one new token) reads every weight matrix once, whatever its storage: a float32 MatMul weight costs
4 bytes per element, an INT8 (MatMulInteger / MatMulNBits) weight 1 byte plus its scales and zero points, an INT4
blob half a byte. Counting the stored bytes of every initializer a node consumes gives exactly that, with one
exception: a table only ever *looked up* (`Gather` data: token embeddings, their per-row INT8 scales, rotary
cos/sin tables) costs one row per token, not the table.

Why a hand-written reader and not the `onnx` package: `onnx.load(path, load_external_data=False)` would give the
same nodes and initializer shapes, but `shadow-bench` runs on the robot, whose install is the runtime's (numpy,
onnxruntime, tokenizers: no `onnx`), and onnxruntime does not expose initializers. `onnx.load` would also parse
every embedded raw tensor into this process's memory (the whole FP32 decoder, ~160 MB) while the bench is measuring
memory. So this module reads the few protobuf fields it needs (graph nodes and initializer shapes/types) straight
from the file's wire format, through `mmap`: raw tensor bytes are skipped, never loaded, and weights in external
data files are sized from their shapes. The tests build their models with `onnx` and check this reader against
them.
"""

from __future__ import annotations

import math
import mmap
from dataclasses import dataclass, field
from pathlib import Path

# TensorProto.DataType -> bits per element (onnx.proto3). STRING (8) has no fixed size and is not counted.
_BITS = {
    1: 32,  # FLOAT
    2: 8,  # UINT8
    3: 8,  # INT8
    4: 16,  # UINT16
    5: 16,  # INT16
    6: 32,  # INT32
    7: 64,  # INT64
    9: 8,  # BOOL
    10: 16,  # FLOAT16
    11: 64,  # DOUBLE
    12: 32,  # UINT32
    13: 64,  # UINT64
    14: 64,  # COMPLEX64
    15: 128,  # COMPLEX128
    16: 16,  # BFLOAT16
    17: 8,  # FLOAT8E4M3FN
    18: 8,  # FLOAT8E4M3FNUZ
    19: 8,  # FLOAT8E5M2
    20: 8,  # FLOAT8E5M2FNUZ
    21: 4,  # UINT4
    22: 4,  # INT4
    23: 4,  # FLOAT4E2M1
}
# Ops whose input 0 is a table read one row (or a few) per index.
LOOKUP_OPS = frozenset({"Gather", "GatherBlockQuantized"})

# protobuf field numbers (onnx.proto)
_MODEL_GRAPH = 7
_GRAPH_NODE, _GRAPH_INITIALIZER = 1, 5
_NODE_INPUT, _NODE_OUTPUT, _NODE_OP_TYPE, _NODE_ATTRIBUTE = 1, 2, 4, 5
_ATTRIBUTE_NAME, _ATTRIBUTE_TENSOR = 1, 5
_TENSOR_DIMS, _TENSOR_DATA_TYPE, _TENSOR_NAME = 1, 2, 8


class WeightReadError(ValueError):
    """The file is not an ONNX model this reader understands (truncated, not protobuf, no graph)."""


@dataclass(frozen=True)
class Initializer:
    name: str
    data_type: int
    dims: tuple[int, ...]

    @property
    def numel(self) -> int:
        return math.prod(self.dims)

    @property
    def nbytes(self) -> int:
        bits = _BITS.get(self.data_type, 0)
        return (self.numel * bits + 7) // 8


@dataclass(frozen=True)
class Node:
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...] = ()
    value: Initializer | None = None  # a Constant node's tensor (named after its output)


@dataclass
class WeightTraffic:
    """Stored weight bytes of a decoder graph and the bytes one decode step (one token per sequence) reads."""

    stored_bytes: int = 0  # every initializer, as stored (the size of the weights on disk, roughly)
    per_token_bytes: int = 0  # what one decode step reads: every consumed initializer, lookup tables one row
    lookup_table_bytes: int = 0  # stored bytes of tables only looked up (embeddings, rotary tables)
    initializers: int = 0  # initializers and Constant-node tensors
    by_dtype: dict[str, int] = field(default_factory=dict)  # per-token bytes per storage type

    def to_json(self) -> dict[str, object]:
        return {
            "stored_bytes": self.stored_bytes,
            "per_token_bytes": self.per_token_bytes,
            "lookup_table_bytes": self.lookup_table_bytes,
            "initializers": self.initializers,
            "per_token_bytes_by_dtype": dict(sorted(self.by_dtype.items())),
        }


_DTYPE_NAMES = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 10: "float16", 16: "bfloat16"}
_DTYPE_NAMES.update({21: "uint4", 22: "int4"})


class _Reader:
    """Protobuf wire-format fields of one message: (field number, wire type, value or (start, end) span)."""

    def __init__(self, buf: mmap.mmap | bytes, start: int, end: int) -> None:
        self.buf, self.pos, self.end = buf, start, end

    def _varint(self) -> int:
        result = shift = 0
        buf, pos = self.buf, self.pos
        while True:
            if pos >= self.end or shift > 63:
                raise WeightReadError("truncated or malformed protobuf varint")
            byte = buf[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                self.pos = pos
                return result
            shift += 7

    def fields(self):
        while self.pos < self.end:
            key = self._varint()
            number, wire = key >> 3, key & 7
            if wire == 0:
                yield number, wire, self._varint()
            elif wire == 1:
                self.pos += 8
                yield number, wire, None
            elif wire == 2:
                length = self._varint()
                start = self.pos
                self.pos += length
                if self.pos > self.end:
                    raise WeightReadError("truncated protobuf field (file cut short?)")
                yield number, wire, (start, self.pos)
            elif wire == 5:
                self.pos += 4
                yield number, wire, None
            else:
                raise WeightReadError(f"unsupported protobuf wire type {wire} (not an ONNX model?)")
        if self.pos != self.end:
            raise WeightReadError("truncated protobuf message")

    def packed_varints(self, span: tuple[int, int]) -> list[int]:
        sub = _Reader(self.buf, *span)
        values = []
        while sub.pos < sub.end:
            values.append(sub._varint())
        return values


def _text(buf: mmap.mmap | bytes, span: tuple[int, int]) -> str:
    return bytes(buf[span[0] : span[1]]).decode("utf-8", errors="replace")


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _tensor(buf: mmap.mmap | bytes, span: tuple[int, int]) -> Initializer:
    reader = _Reader(buf, *span)
    name, data_type, dims = "", 0, []
    for number, wire, value in reader.fields():
        if number == _TENSOR_DIMS:
            if wire == 2:
                dims.extend(_signed64(v) for v in reader.packed_varints(value))
            elif wire == 0:
                dims.append(_signed64(value))
        elif number == _TENSOR_DATA_TYPE and wire == 0:
            data_type = value
        elif number == _TENSOR_NAME and wire == 2:
            name = _text(buf, value)
    return Initializer(name, data_type, tuple(dims))


def _node(buf: mmap.mmap | bytes, span: tuple[int, int]) -> Node:
    inputs, outputs, op_type, tensors = [], [], "", []
    for number, wire, value in _Reader(buf, *span).fields():
        if wire != 2:
            continue
        if number == _NODE_INPUT:
            inputs.append(_text(buf, value))
        elif number == _NODE_OUTPUT:
            outputs.append(_text(buf, value))
        elif number == _NODE_OP_TYPE:
            op_type = _text(buf, value)
        elif number == _NODE_ATTRIBUTE:
            tensors.append(value)
    constant = None
    if op_type == "Constant" and outputs:
        for attribute in tensors:
            for number, wire, value in _Reader(buf, *attribute).fields():
                if number == _ATTRIBUTE_TENSOR and wire == 2:
                    t = _tensor(buf, value)
                    constant = Initializer(outputs[0], t.data_type, t.dims)
    return Node(op_type, tuple(inputs), tuple(outputs), constant)


def read_graph(path: str | Path) -> tuple[list[Node], list[Initializer]]:
    """The main graph's nodes (op type, inputs) and initializers (name, type, shape) of the ONNX file at `path`."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise WeightReadError(f"{path}: cannot open it ({exc.strerror or exc})") from None
    if size == 0:
        raise WeightReadError(f"{path}: empty file")
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        try:
            return _parse_model(buf)
        except WeightReadError as exc:
            raise WeightReadError(f"{path}: {exc}") from None


def _parse_model(buf: mmap.mmap | bytes) -> tuple[list[Node], list[Initializer]]:
    graph = None
    for number, wire, value in _Reader(buf, 0, len(buf)).fields():
        if number == _MODEL_GRAPH and wire == 2:
            graph = value
    if graph is None:
        raise WeightReadError("no graph in this file (not an ONNX model?)")
    nodes, inits = [], []
    for number, wire, value in _Reader(buf, *graph).fields():
        if wire != 2:
            continue
        if number == _GRAPH_NODE:
            nodes.append(_node(buf, value))
        elif number == _GRAPH_INITIALIZER:
            inits.append(_tensor(buf, value))
    return nodes, inits


def weight_traffic(path: str | Path) -> WeightTraffic:
    """Stored and per-decode-step weight bytes of the ONNX graph at `path` (module docstring)."""
    nodes, inits = read_graph(path)
    uses: dict[str, list[tuple[str, int]]] = {}
    for node in nodes:
        for index, name in enumerate(node.inputs):
            if name:
                uses.setdefault(name, []).append((node.op_type, index))
    # A Constant node holding a tensor is a weight like an initializer (some exporters store small weights so).
    inits = inits + [node.value for node in nodes if node.value is not None]
    traffic = WeightTraffic(initializers=len(inits))
    for init in inits:
        size = init.nbytes
        traffic.stored_bytes += size
        consumers = uses.get(init.name, [])
        if not consumers:
            continue  # unused: never read
        if all(op in LOOKUP_OPS and index == 0 for op, index in consumers) and init.dims and init.dims[0] > 0:
            traffic.lookup_table_bytes += size
            size = -(-size // init.dims[0])  # one row per token
        traffic.per_token_bytes += size
        dtype = _DTYPE_NAMES.get(init.data_type, f"type{init.data_type}")
        traffic.by_dtype[dtype] = traffic.by_dtype.get(dtype, 0) + size
    return traffic
