"""The ONNX side of quantization (`export.quantize`): reading and writing the model (with external data when
large), shape inference before quantizing, the facts the quantizer needs about the graph (the head MatMuls, the
embedding Gathers, the weight MatMuls, which nodes stay float) and the one rewrite done by hand, INT8 embedding
tables with a scale per row.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.external_data_helper import uses_external_data
from onnxruntime.quantization import quant_pre_process

log = logging.getLogger(__name__)

HEAD = "head"
EMBEDDINGS = "embeddings"
_FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16)
# ops a head's output may pass through on its way to the `logits` output (last-position select, reshapes,
# casts, a bias or a logit scale); the walk follows only their data input
_HEAD_UNARY = {"Identity", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Cast", "Gather", "Slice", "Transpose",
               "Expand", "Tanh"}  # fmt: skip
_HEAD_BINARY = {"Add", "Sub", "Mul", "Div"}
_HEAD_OPS = {"MatMul", "Gemm", "MatMulNBits", "MatMulInteger"}
# ops that carry `input_ids` unchanged to the embedding Gather
_IDS_PASS_THROUGH = {"Identity", "Cast", "Reshape", "Squeeze", "Unsqueeze", "Flatten"}


class QuantizeError(RuntimeError):
    """The model cannot be quantized as asked (missing or invalid file, unknown precision, nothing to quantize)."""


# ----------------------------------------------------------------------------------------------------------
# Graph facts
# ----------------------------------------------------------------------------------------------------------


def _constants(graph: onnx.GraphProto) -> set[str]:
    names = {init.name for init in graph.initializer}
    names.update(out for node in graph.node if node.op_type == "Constant" for out in node.output)
    return names


def find_head_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the MatMul/Gemm nodes that produce the `logits` output(s), traced back from the graph outputs.

    The walk passes through reshapes, casts, the last-position Gather/Slice, and elementwise ops with exactly
    one non-constant input (a bias or a logit scale); it stops at anything with two live inputs (a residual Add,
    a norm's Div), so it can never wander into the decoder's last layer.
    """
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    constants = _constants(graph)
    outputs = [o.name for o in graph.output if o.name.endswith("logits")]
    if not outputs:
        raise QuantizeError(f"the graph has no 'logits' output (outputs: {[o.name for o in graph.output]})")
    heads: list[str] = []
    for output in outputs:
        found, stack, seen = [], [output], set()
        while stack:
            node = producer.get(stack.pop())
            if node is None or id(node) in seen:
                continue
            seen.add(id(node))
            if node.op_type in _HEAD_OPS:
                found.append(node.name)
            elif node.op_type in _HEAD_UNARY:
                stack.append(node.input[0])
            elif node.op_type in _HEAD_BINARY:
                live = [i for i in node.input if i and i not in constants]
                if len(live) == 1:
                    stack.append(live[0])
        if not found:
            raise QuantizeError(f"could not trace the output {output!r} back to a MatMul/Gemm head")
        heads += [name for name in found if name not in heads]
    if any(not name for name in heads):
        raise QuantizeError("the head MatMul has no node name, so it cannot be excluded from quantization")
    return heads


def find_embedding_gathers(model: onnx.ModelProto, ids_input: str = "input_ids") -> list[str]:
    """Names of the Gather nodes that look up a float initializer table by `input_ids` (the token embeddings)."""
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    inits = {init.name: init for init in graph.initializer}

    def from_ids(name: str) -> bool:
        for _ in range(8):
            if name == ids_input:
                return True
            node = producer.get(name)
            if node is None or node.op_type not in _IDS_PASS_THROUGH:
                return False
            name = node.input[0]
        return False

    return [
        node.name
        for node in graph.node
        if node.op_type == "Gather"
        and node.input[0] in inits
        and inits[node.input[0]].data_type in _FLOAT_TYPES
        and len(inits[node.input[0]].dims) == 2
        and from_ids(node.input[1])
    ]


def weight_matmuls(model: onnx.ModelProto) -> list[str]:
    """Names of the MatMul nodes whose B input is a 2-D float initializer (the ones weight quantization touches)."""
    inits = {init.name: init for init in model.graph.initializer}
    return [
        node.name
        for node in model.graph.node
        if node.op_type == "MatMul"
        and node.input[1] in inits
        and inits[node.input[1]].data_type in _FLOAT_TYPES
        and len(inits[node.input[1]].dims) == 2
    ]


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    return dict(sorted(Counter(node.op_type for node in model.graph.node).items()))


def model_files(path: Path) -> list[Path]:
    """The model file and the external data files it references (what must be copied / listed with it)."""
    model = onnx.load(str(path), load_external_data=False)
    files = [path]
    for init in model.graph.initializer:
        if uses_external_data(init):
            location = next(e.value for e in init.external_data if e.key == "location")
            file = path.parent / location
            if file not in files:
                files.append(file)
    return files


def model_size(path: Path) -> int:
    return sum(f.stat().st_size for f in model_files(path))


# ----------------------------------------------------------------------------------------------------------
# Files, shape inference and the embedding rewrite
# ----------------------------------------------------------------------------------------------------------


def load_model(path: Path) -> onnx.ModelProto:
    if not path.is_file():
        raise QuantizeError(f"{path}: FP32 decoder not found")
    try:
        model = onnx.load(str(path), load_external_data=False)
        external = any(uses_external_data(init) for init in model.graph.initializer)
        if external:
            onnx.load_external_data_for_model(model, str(path.parent))
    except Exception as exc:  # onnx raises DecodeError, OSError, ValidationError, ...
        raise QuantizeError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    if not model.graph.node:
        raise QuantizeError(f"{path}: the ONNX graph is empty")
    return model


def save_model(model: onnx.ModelProto, path: Path, external: bool) -> None:
    data = path.with_name(path.name + ".data")
    data.unlink(missing_ok=True)
    if external:
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data.name, size_threshold=1024)  # fmt: skip
    else:
        onnx.save_model(model, str(path))


def preprocess(src: Path, dst: Path, external: bool) -> None:
    """Shape inference before quantizing (symbolic first; plain ONNX inference if the symbolic pass fails).

    Runs from the output's folder: ORT's symbolic pass drops a debug model into the current directory when it
    cannot infer every shape (it fails on some mask arithmetic, which plain ONNX inference handles).
    """
    src = src.resolve()
    options = dict(skip_optimization=True, save_as_external_data=external, all_tensors_to_one_file=True,
                   external_data_location=dst.name + ".data")  # fmt: skip
    cwd = os.getcwd()
    os.chdir(dst.parent)
    try:
        try:
            quant_pre_process(str(src), str(dst.resolve()), **options)
        except Exception as exc:
            log.info("symbolic shape inference incomplete (%s); using ONNX shape inference only", exc)
            quant_pre_process(str(src), str(dst.resolve()), skip_symbolic_shape=True, **options)
    finally:
        os.chdir(cwd)


def quantize_embeddings(model: onnx.ModelProto, gathers: Sequence[str]) -> list[str]:
    """Store each embedding table as INT8 with one scale per row: Gather(int8) -> Cast -> Mul(gathered scale).

    Tables that something other than these Gathers also reads (a tied head that was not folded into its own
    weight) are left float: quantizing a copy would make the file bigger, not smaller. Returns the names of
    the tables quantized.
    """
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    by_name = {node.name: node for node in graph.node}
    readers = Counter(i for node in graph.node for i in node.input)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    done: list[str] = []
    for name in gathers:
        node = by_name[name]
        table = node.input[0]
        if readers[table] > 1 or any(o.name == table for o in graph.output):
            log.info("embedding table %s has other readers; left float", table)
            continue
        if any(a.name == "axis" and a.i != 0 for a in node.attribute):
            continue
        init = inits[table]
        weights = numpy_helper.to_array(init)
        w32 = weights.astype(np.float32)
        scale = np.abs(w32).max(axis=1) / 127.0
        scale[scale == 0] = 1.0
        q = np.clip(np.rint(w32 / scale[:, None]), -127, 127).astype(np.int8)
        q_name, s_name = f"{table}_int8", f"{table}_row_scale"
        graph.initializer.remove(init)
        graph.initializer.extend(
            [numpy_helper.from_array(q, q_name), numpy_helper.from_array(scale.astype(weights.dtype), s_name)]
        )
        out, ids = node.output[0], node.input[1]
        prefix = name or table
        new = [
            helper.make_node("Gather", [q_name, ids], [f"{prefix}_q"], name=f"{prefix}_int8"),
            helper.make_node(
                "Cast", [f"{prefix}_q"], [f"{prefix}_qf"], name=f"{prefix}_cast", to=init.data_type
            ),
            helper.make_node("Gather", [s_name, ids], [f"{prefix}_s"], name=f"{prefix}_scale"),
        ]
        if opset >= 13:
            axes = f"{prefix}_axes"
            graph.initializer.append(numpy_helper.from_array(np.array([-1], dtype=np.int64), axes))
            new.append(
                helper.make_node("Unsqueeze", [f"{prefix}_s", axes], [f"{prefix}_s2"], name=f"{prefix}_unsq")
            )
        else:
            new.append(helper.make_node("Unsqueeze", [f"{prefix}_s"], [f"{prefix}_s2"], name=f"{prefix}_unsq",
                                        axes=[-1]))  # fmt: skip
        new.append(helper.make_node("Mul", [f"{prefix}_qf", f"{prefix}_s2"], [out], name=f"{prefix}_dequant"))
        index = list(graph.node).index(node)
        graph.node.remove(node)
        for offset, n in enumerate(new):
            graph.node.insert(index + offset, n)
        done.append(table)
    return done


def excluded_nodes(
    model: onnx.ModelProto, keep_fp32: Sequence[str], heads: list[str], path: Path
) -> list[str]:
    names = [node.name for node in model.graph.node if node.name]
    excluded = list(heads) if HEAD in keep_fp32 else []
    for pattern in keep_fp32:
        if pattern in (HEAD, EMBEDDINGS):
            continue
        matched = fnmatch.filter(names, pattern)
        if not matched:
            raise QuantizeError(f"{path}: keep_fp32 pattern {pattern!r} matches no node of the graph")
        excluded += [m for m in matched if m not in excluded]
    return excluded
