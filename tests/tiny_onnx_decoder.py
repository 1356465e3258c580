"""A small decoder ONNX written directly with onnx.helper, following the runtime's decoder I/O contract.

Used by the quantization and calibration tests so they do not depend on torch export: token + learned position
embeddings (Gather), pre-norm attention with a KV cache (past.{cache}.{i}.key/value in, present.* out, causal
and left-padding masks from `attention_mask`), a SiLU-gated MLP, and a head MatMul on the last position only
(`logits` [B, head_size]). Weight columns get log-normal scales so that, as in real LLMs, output channels
differ in range (this is what per-channel quantization is for).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from shadow_edge.runtime.manifest import CacheSpec, past_name, present_name


@dataclass(frozen=True)
class TinyDecoder:
    vocab: int = 96
    hidden: int = 32
    heads: int = 2
    layers: int = 2
    mlp: int = 64
    head_size: int | None = None  # rows of `logits`; None = full vocabulary
    cache: str = "shadow"
    channel_spread: float = 0.6  # std of log column scales
    max_positions: int = 128
    seed: int = 0

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def caches(self) -> list[CacheSpec]:
        return [CacheSpec(self.cache, self.layers, self.heads, self.head_dim)]


class _Graph:
    def __init__(self, rng: np.random.Generator):
        self.rng, self.nodes, self.inits, self.count = rng, [], [], 0

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def weight(self, name: str, rows: int, cols: int, spread: float, gain: float = 1.0) -> str:
        w = self.rng.normal(0, gain / np.sqrt(rows), (rows, cols)) * np.exp(
            self.rng.normal(0, spread, (1, cols))
        )
        return self.const(name, w.astype(np.float32))

    def op(
        self, op_type: str, inputs: list[str], name: str | None = None, output: str | None = None, **attrs
    ):
        self.count += 1
        name = name or f"/{op_type}_{self.count}"
        output = output or f"{name}_out"
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=name, **attrs))
        return output


def build(spec: TinyDecoder, path: str | Path, external_data: bool = False) -> Path:
    """Write the decoder to `path` and return it."""
    rng = np.random.default_rng(spec.seed)
    g = _Graph(rng)
    E, H, D = spec.hidden, spec.heads, spec.head_dim
    c = g.const
    eps = c("eps", np.array(1e-5, np.float32))
    c("axes_0", np.array([0], np.int64))
    c("axes_1", np.array([1], np.int64))
    c("axes_12", np.array([1, 2], np.int64))
    c("heads_shape", np.array([0, 0, H, D], np.int64))
    c("merge_shape", np.array([0, 0, E], np.int64))
    c("idx1", np.array(1, np.int64))
    c("zero_i", np.array(0, np.int64))
    c("one_i", np.array(1, np.int64))
    c("last", np.array(-1, np.int64))
    c("zero_f", np.array(0.0, np.float32))
    c("neg_f", np.array(-1e4, np.float32))
    c("inv_sqrt_d", np.array(1 / np.sqrt(D), np.float32))

    emb = c("model.embed_tokens.weight", rng.normal(0, 1, (spec.vocab, E)).astype(np.float32))
    pos = c("model.embed_positions.weight", rng.normal(0, 0.3, (spec.max_positions, E)).astype(np.float32))
    x = g.op("Gather", [emb, "input_ids"], name="/model/embed_tokens/Gather")
    x = g.op("Add", [x, g.op("Gather", [pos, "position_ids"], name="/model/embed_positions/Gather")])

    # mask bias [B, 1, S, T]: key j visible to query i (absolute position P + i) iff j <= P + i and unpadded
    total = g.op("Gather", [g.op("Shape", ["attention_mask"]), "idx1"])
    new = g.op("Gather", [g.op("Shape", ["input_ids"]), "idx1"])
    past = g.op("Sub", [total, new])
    kpos = g.op("Unsqueeze", [g.op("Range", ["zero_i", total, "one_i"]), "axes_0"])
    qpos = g.op("Unsqueeze", [g.op("Range", [past, total, "one_i"]), "axes_1"])
    causal = g.op("LessOrEqual", [kpos, qpos])
    padded = g.op("Unsqueeze", [g.op("Cast", ["attention_mask"], to=TensorProto.BOOL), "axes_12"])
    bias = g.op("Where", [g.op("And", [causal, padded]), "zero_f", "neg_f"])

    def norm(x: str, name: str) -> str:
        w = c(f"{name}.weight", (1 + rng.normal(0, 0.1, E)).astype(np.float32))
        ms = g.op("ReduceMean", [g.op("Mul", [x, x])], axes=[-1], keepdims=1)
        return g.op("Mul", [g.op("Div", [x, g.op("Sqrt", [g.op("Add", [ms, eps])])]), w])

    def linear(x: str, name: str, rows: int, cols: int, gain: float = 1.0) -> str:
        w = g.weight(f"{name}.weight", rows, cols, spec.channel_spread, gain)
        return g.op(
            "MatMul", [x, w], name="/" + name.replace(".", "/").replace("layers/", "layers.") + "/MatMul"
        )

    residual_gain = 1 / np.sqrt(2 * spec.layers)  # GPT-2 style: keeps the residual stream from blowing up
    for i in range(spec.layers):
        p = f"model.layers.{i}"
        h = norm(x, f"{p}.input_layernorm")

        def split(t: str) -> str:
            return g.op("Transpose", [g.op("Reshape", [t, "heads_shape"])], perm=[0, 2, 1, 3])

        q = split(linear(h, f"{p}.self_attn.q_proj", E, E))
        k = split(linear(h, f"{p}.self_attn.k_proj", E, E))
        v = split(linear(h, f"{p}.self_attn.v_proj", E, E))
        key = g.op(
            "Concat", [past_name(spec.cache, i, "key"), k], axis=2, output=present_name(spec.cache, i, "key")
        )
        value = g.op("Concat", [past_name(spec.cache, i, "value"), v], axis=2,
                     output=present_name(spec.cache, i, "value"))  # fmt: skip
        scores = g.op("Mul", [g.op("MatMul", [q, g.op("Transpose", [key], perm=[0, 1, 3, 2])]), "inv_sqrt_d"])
        probs = g.op("Softmax", [g.op("Add", [scores, bias])], axis=-1)
        attn = g.op(
            "Reshape", [g.op("Transpose", [g.op("MatMul", [probs, value])], perm=[0, 2, 1, 3]), "merge_shape"]
        )
        x = g.op("Add", [x, linear(attn, f"{p}.self_attn.o_proj", E, E, residual_gain)])
        h = norm(x, f"{p}.post_attention_layernorm")
        gate = linear(h, f"{p}.mlp.gate_proj", E, spec.mlp)
        up = linear(h, f"{p}.mlp.up_proj", E, spec.mlp)
        act = g.op("Mul", [g.op("Mul", [gate, g.op("Sigmoid", [gate])]), up])
        x = g.op("Add", [x, linear(act, f"{p}.mlp.down_proj", spec.mlp, E, residual_gain)])

    last = g.op("Gather", [norm(x, "model.norm"), "last"], axis=1)
    rows = spec.head_size or spec.vocab
    head = c("lm_head.weight", (rng.normal(0, 1 / np.sqrt(E), (E, rows)) * 3).astype(np.float32))
    g.op("MatMul", [last, head], name="/lm_head/MatMul", output="logits")

    def value_info(name: str, dtype: int, shape: list) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, dtype, shape)

    inputs = [
        value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
        value_info("attention_mask", TensorProto.INT64, ["batch", "total"]),
        value_info("position_ids", TensorProto.INT64, ["batch", "seq"]),
    ]
    outputs = [value_info("logits", TensorProto.FLOAT, ["batch", rows])]
    for i in range(spec.layers):
        for kind in ("key", "value"):
            inputs.append(
                value_info(past_name(spec.cache, i, kind), TensorProto.FLOAT, ["batch", H, "past", D])
            )
            outputs.append(
                value_info(present_name(spec.cache, i, kind), TensorProto.FLOAT, ["batch", H, "total", D])
            )
    graph = helper.make_graph(g.nodes, "tiny_decoder", inputs, outputs, g.inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tiny_onnx_decoder"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if external_data:
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=path.name + ".data")  # fmt: skip
    else:
        onnx.save_model(model, str(path))
    return path
