"""Quantized decoders load in onnxruntime, carry the expected quantized ops, keep the head float, agree with FP32.

Models: tiny random Llama / Qwen2 / Qwen3 exported with the project's own decoder graph (skipped where that export
is unavailable) and a decoder written directly in ONNX (`tiny_onnx_decoder`), whose weight columns differ in range
as real LLM weights do. Agreement is measured teacher-forced over a prefill and 7 cached decode steps, two rows,
one left-padded.

Stated tolerances (logits vs FP32, every step and row): minimum cosine >= 0.99 for int8 (dynamic), >= 0.999 for
int8 with 8-bit MatMulNBits, >= 0.97 for int8-qdq (ranges from 6 random calibration prompts) and int4; greedy top-1 agreement >= 0.85 for int8 (dynamic),
>= 0.9 for int8 (MatMulNBits), >= 0.75 for int8-qdq, >= 0.5 for int4. Random tiny models have
near-tied logits (top-2 margins of 0.01 standard deviations), so a few flips are expected, and 4-bit blocks of
untrained Gaussian weights move logits by up to half a standard deviation; the export's validation on the trained
model is where command accuracy per precision is measured.
"""

from __future__ import annotations

import functools

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper
from shadow_edge.calibration.decode_steps import DecodeStepReader
from shadow_edge.export.quantize import (
    QuantizeError,
    QuantizeSettings,
    find_embedding_gathers,
    find_head_nodes,
    quantize_decoder,
    weight_matmuls,
)
from shadow_edge.runtime.manifest import CacheSpec
from tiny_onnx_decoder import TinyDecoder, build

PRECISIONS = ("int8", "int8-qdq", "int4")
# table rows: (precision, options); "int8-nbits" is INT8 with int8_method="nbits" (8-bit MatMulNBits)
VARIANTS = {"int8": {}, "int8-nbits": {"int8_method": "nbits"}, "int8-qdq": {}, "int4": {}}
MIN_COSINE = {"int8": 0.99, "int8-nbits": 0.999, "int8-qdq": 0.97, "int4": 0.97}
MIN_TOP1 = {"int8": 0.85, "int8-nbits": 0.9, "int8-qdq": 0.75, "int4": 0.5}
SYNTHETIC = TinyDecoder(vocab=256, hidden=64, heads=4, layers=2, mlp=128, channel_spread=0.3, seed=1)
HF_TINY = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=128,
    vocab_size=256,
    head_dim=16,
    pad_token_id=0,
    eos_token_id=1,
    bos_token_id=2,
)
MODELS = ("synthetic", "llama", "qwen2", "qwen3")


@functools.cache
def _hf_model(name: str, directory: str) -> tuple[str, tuple[CacheSpec, ...]]:
    torch = pytest.importorskip("torch")
    decoder_graph = pytest.importorskip("shadow_edge.export.decoder_graph")
    convert = pytest.importorskip("shadow_edge.export.convert")
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config, Qwen3Config

    config = {"llama": LlamaConfig, "qwen2": Qwen2Config, "qwen3": Qwen3Config}[name](**HF_TINY)
    torch.manual_seed(MODELS.index(name))
    graph = decoder_graph.DetachedDecoder(AutoModelForCausalLM.from_config(config).eval())
    path = f"{directory}/decoder.onnx"
    convert.export_decoder_onnx(graph, path)
    return path, tuple(CacheSpec(**c) for c in graph.caches)


@pytest.fixture(scope="module")
def fp32_model(tmp_path_factory):
    """(path, caches) of one FP32 model by name, built once per module."""

    def get(name: str) -> tuple[str, tuple[CacheSpec, ...]]:
        directory = tmp_path_factory.getbasetemp() / f"quantize-{name}"
        if name == "synthetic":
            if not (directory / "decoder.onnx").exists():
                build(SYNTHETIC, directory / "decoder.onnx")
            return str(directory / "decoder.onnx"), tuple(SYNTHETIC.caches)
        directory.mkdir(exist_ok=True)
        return _hf_model(name, str(directory))

    return get


def session(path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def teacher_forced_logits(path, caches, vocab: int = 256, prompt: int = 6, steps: int = 7) -> np.ndarray:
    """Logits [steps + 1, 2, N] for a prefill of `prompt` tokens then `steps` cached single-token steps."""
    tokens = np.random.default_rng(0).integers(3, vocab, (2, prompt + steps))
    mask = np.ones((2, prompt), np.int64)
    mask[1, :2] = 0
    feed = {
        "input_ids": tokens[:, :prompt],
        "attention_mask": mask,
        "position_ids": np.clip(mask.cumsum(1) - 1, 0, None),
    }
    past = [n for c in caches for n in c.input_names()]
    for cache in caches:
        for name in cache.input_names():
            feed[name] = np.zeros((2, cache.kv_heads, 0, cache.head_dim), np.float32)
    run, out = session(path), []
    for position in range(prompt, prompt + steps + 1):
        logits, *presents = run.run(None, feed)
        out.append(logits)
        mask = np.concatenate([mask, np.ones((2, 1), np.int64)], axis=1)
        feed = {"input_ids": tokens[:, position : position + 1], "attention_mask": mask,
                "position_ids": mask.sum(1, keepdims=True) - 1}  # fmt: skip
        feed.update(zip(past, presents, strict=True))
    return np.asarray(out)


def agreement(quantized: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    cosine = (
        (quantized * reference).sum(-1)
        / np.linalg.norm(quantized, axis=-1)
        / np.linalg.norm(reference, axis=-1)
    )
    return float(cosine.min()), float((quantized.argmax(-1) == reference.argmax(-1)).mean())


def reader_for(path, caches, prompts: int = 6) -> DecodeStepReader:
    rng = np.random.default_rng(7)
    tokens = [list(map(int, rng.integers(3, 256, int(rng.integers(3, 8))))) for _ in range(prompts)]
    return DecodeStepReader(path, tokens, list(caches), eos_id=1, max_new_tokens=5, threads=1)


def quantize(name: str, precision: str, fp32_model, tmp_path, **options) -> tuple[str, dict]:
    path, caches = fp32_model(name)
    reader = reader_for(path, caches) if precision == "int8-qdq" else None
    out = tmp_path / f"{name}-{precision}.onnx"
    return str(out), quantize_decoder(path, out, precision, reader, QuantizeSettings(**options))


def initializer(model: onnx.ModelProto, name: str) -> onnx.TensorProto | None:
    return next((i for i in model.graph.initializer if i.name == name), None)


# ---------------------------------------------------------------------------------------------- the table


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", MODELS)
def test_quantized_model_loads_and_agrees_with_fp32(name, variant, fp32_model, tmp_path):
    path, caches = fp32_model(name)
    precision = variant.removesuffix("-nbits")
    out, report = quantize(name, precision, fp32_model, tmp_path, **VARIANTS[variant])
    model = onnx.load(out)
    counts = report["op_counts"]
    n_weights = report["weight_matmuls"]
    assert n_weights == len(weight_matmuls(onnx.load(path))) >= 15  # 7 per layer + the head
    assert report["weight_matmuls_quantized"] == n_weights - 1
    if variant == "int8":
        assert counts["MatMulInteger"] == n_weights - 1
        assert counts["DynamicQuantizeLinear"] >= 2 * 3  # q/k/v share an input; o, gate/up, down do not
        assert report["per_channel"] is True
    elif variant == "int8-qdq":
        assert report["calibration_samples"] > 6  # the decode steps are there, not only 6 prefills
        weights = [
            n for n in model.graph.node if n.op_type == "DequantizeLinear" and initializer(model, n.input[0])
        ]
        assert len(weights) == n_weights - 1
        for node in model.graph.node:
            if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
                zero = numpy_helper.to_array(initializer(model, node.input[2]))
                assert zero.dtype == np.int8 and not zero.any()  # symmetric INT8, as TensorRT requires
        for node in weights:  # per output channel: one scale per column of the weight
            scale = numpy_helper.to_array(initializer(model, node.input[1]))
            assert scale.ndim == 1 and scale.size == initializer(model, node.input[0]).dims[1]
    else:
        assert counts["MatMulNBits"] == n_weights - 1
        for node in model.graph.node:
            if node.op_type == "MatMulNBits":
                attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
                assert attrs["bits"] == (4 if variant == "int4" else 8) and attrs["block_size"] == 32
                assert len(node.input) < 4 or not node.input[3]  # symmetric: no zero points
    # the head is still a float MatMul
    (head,) = find_head_nodes(model)
    head_node = next(n for n in model.graph.node if n.name == head)
    assert head_node.op_type == "MatMul"
    assert initializer(model, head_node.input[1]).data_type == onnx.TensorProto.FLOAT
    assert report["kept_float"] == [head]

    cosine, top1 = agreement(teacher_forced_logits(out, caches), teacher_forced_logits(path, caches))
    assert cosine >= MIN_COSINE[variant], (cosine, top1)
    assert top1 >= MIN_TOP1[variant], (cosine, top1)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_embeddings_int8_by_default_float_on_request(precision, fp32_model, tmp_path):
    path, caches = fp32_model("synthetic")
    reference = teacher_forced_logits(path, caches)
    _, default = quantize("synthetic", precision, fp32_model, tmp_path)
    assert default["embeddings"] == "int8 per-row"
    assert default["embedding_tables_quantized"] == ["model.embed_tokens.weight"]  # not the position table
    kept_out, kept = quantize(
        "synthetic", precision, fp32_model, tmp_path / "kept", keep_fp32=("head", "embeddings")
    )
    assert kept["embeddings"] == "float"
    model = onnx.load(kept_out)
    assert find_embedding_gathers(model) == ["/model/embed_tokens/Gather"]
    assert default["size_bytes"]["quantized"] < kept["size_bytes"]["quantized"]
    # the row-wise INT8 table costs little accuracy next to the weights' own quantization
    default_cos, _ = agreement(
        teacher_forced_logits(tmp_path / f"synthetic-{precision}.onnx", caches), reference
    )
    kept_cos, _ = agreement(teacher_forced_logits(kept_out, caches), reference)
    assert default_cos >= kept_cos - 0.01


def test_head_exclusion_is_real(fp32_model, tmp_path):
    """With nothing kept float the head is quantized too, so the default really did exclude it."""
    out, report = quantize("synthetic", "int8", fp32_model, tmp_path, keep_fp32=())
    assert report["op_counts"]["MatMulInteger"] == report["weight_matmuls"]
    assert report["kept_float"] == []
    out, report = quantize("synthetic", "int8", fp32_model, tmp_path, keep_fp32=("head", "/model/layers.0/*"))
    assert report["op_counts"]["MatMulInteger"] == report["weight_matmuls"] - 8  # layer 0's 7 + head
    assert "/model/layers.0/mlp/down_proj/MatMul" in report["kept_float"]


def test_per_channel_is_not_worse_than_per_tensor(tmp_path):
    """On weights whose output channels differ in range (as in real LLMs) per-channel INT8 loses less."""
    spec = TinyDecoder(vocab=256, hidden=64, heads=4, layers=2, mlp=128, channel_spread=1.0, seed=5)
    path = build(spec, tmp_path / "spread.onnx")
    reference = teacher_forced_logits(path, spec.caches)
    errors = {}
    for per_channel in (True, False):
        out = tmp_path / f"pc-{per_channel}.onnx"
        quantize_decoder(
            path,
            out,
            "int8",
            settings=QuantizeSettings(per_channel=per_channel, keep_fp32=("head", "embeddings")),
        )
        errors[per_channel] = float(np.abs(teacher_forced_logits(out, spec.caches) - reference).mean())
    assert errors[True] < errors[False], errors


def test_int8_is_at_most_30_percent_of_fp32_when_weights_dominate(tmp_path):
    spec = TinyDecoder(vocab=512, hidden=256, heads=4, layers=4, mlp=1024, seed=2)
    path = build(spec, tmp_path / "big.onnx")
    ratios = {}
    for precision in ("int8", "int4"):
        report = quantize_decoder(path, tmp_path / f"big-{precision}.onnx", precision)
        assert report["size_bytes"]["quantized"] == (tmp_path / f"big-{precision}.onnx").stat().st_size
        ratios[precision] = report["size_ratio"]
    assert ratios["int8"] <= 0.30, ratios
    assert ratios["int4"] < ratios["int8"], ratios


def test_external_data_in_and_out(tmp_path):
    """A model stored with external data quantizes to the same numbers as the same model stored inline."""
    spec = TinyDecoder(seed=6)
    external = build(spec, tmp_path / "ext" / "decoder.onnx", external_data=True)
    inline = build(spec, tmp_path / "inline" / "decoder.onnx")
    assert (tmp_path / "ext" / "decoder.onnx.data").is_file()
    for precision in ("int8", "int4"):
        out = tmp_path / "out" / f"{precision}.onnx"
        report = quantize_decoder(external, out, precision)
        data = out.parent / (out.name + ".data")
        assert report["files"] == [out.name, data.name]
        assert report["size_bytes"]["quantized"] == out.stat().st_size + data.stat().st_size
        reference = quantize_decoder(inline, tmp_path / f"inline-{precision}.onnx", precision)
        assert reference["files"] == [f"inline-{precision}.onnx"]
        np.testing.assert_allclose(
            teacher_forced_logits(out, spec.caches, vocab=spec.vocab),
            teacher_forced_logits(tmp_path / f"inline-{precision}.onnx", spec.caches, vocab=spec.vocab),
            atol=1e-5,
        )
    # and no stray files from the pre-processing next to the output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "int4.onnx", "int4.onnx.data", "int8.onnx", "int8.onnx.data"
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------- head tracing


def _graph(nodes, inits, output="logits"):
    inputs = [helper.make_tensor_value_info("hidden", onnx.TensorProto.FLOAT, ["b", "s", 4])]
    outputs = [helper.make_tensor_value_info(output, onnx.TensorProto.FLOAT, None)]
    tensors = [numpy_helper.from_array(np.ones(shape, np.float32), name) for name, shape in inits.items()]
    tensors.append(numpy_helper.from_array(np.array(-1, np.int64), "last"))
    return helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, tensors))


@pytest.mark.parametrize(
    ("nodes", "heads"),
    [
        ([helper.make_node("Gather", ["hidden", "last"], ["h"], axis=1, name="pick"),
          helper.make_node("MatMul", ["h", "W"], ["logits"], name="head")], ["head"]),
        ([helper.make_node("MatMul", ["hidden", "W"], ["x"], name="head"),
          helper.make_node("Add", ["x", "b"], ["y"], name="bias"),
          helper.make_node("Gather", ["y", "last"], ["logits"], axis=1, name="pick")], ["head"]),
        ([helper.make_node("MatMul", ["hidden", "W"], ["x"], name="head"),
          helper.make_node("Div", ["x", "c"], ["y"], name="d"), helper.make_node("Tanh", ["y"], ["t"], name="t"),
          helper.make_node("Mul", ["t", "c"], ["logits"], name="softcap")], ["head"]),
        ([helper.make_node("MatMul", ["hidden", "W"], ["a"], name="down"),
          helper.make_node("Add", ["a", "hidden"], ["logits"], name="residual")], None),
        ([helper.make_node("Identity", ["hidden"], ["logits"], name="id")], None),
    ],
    ids=["last-then-head", "head-bias-then-last", "softcap", "residual-is-not-a-head", "no-head"],
)  # fmt: skip
def test_find_head_nodes(nodes, heads):
    model = _graph(nodes, {"W": (4, 8), "b": (8,), "c": ()})
    if heads is None:
        with pytest.raises(QuantizeError, match="could not trace"):
            find_head_nodes(model)
    else:
        assert find_head_nodes(model) == heads


def test_find_head_nodes_needs_a_logits_output():
    model = _graph(
        [helper.make_node("MatMul", ["hidden", "W"], ["scores"], name="head")], {"W": (4, 8)}, "scores"
    )
    with pytest.raises(QuantizeError, match="no 'logits' output"):
        find_head_nodes(model)


# ---------------------------------------------------------------------------------------------- bad input


def test_bad_inputs(fp32_model, tmp_path):
    path, caches = fp32_model("synthetic")
    out = tmp_path / "q.onnx"
    with pytest.raises(QuantizeError, match="missing.onnx: FP32 decoder not found"):
        quantize_decoder(tmp_path / "missing.onnx", out, "int8")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\x01 definitely not protobuf" * 10)
    with pytest.raises(QuantizeError, match="garbage.onnx: not a readable ONNX model"):
        quantize_decoder(garbage, out, "int8")
    with pytest.raises(QuantizeError, match="unknown precision 'int2'"):
        quantize_decoder(path, out, "int2")
    with pytest.raises(QuantizeError, match="fp32 needs no quantization"):
        quantize_decoder(path, out, "fp32")
    with pytest.raises(QuantizeError, match="needs a calibration_reader"):
        quantize_decoder(path, out, "int8-qdq")
    with pytest.raises(QuantizeError, match="unknown int8_method 'fast'"):
        quantize_decoder(path, out, "int8", settings=QuantizeSettings(int8_method="fast"))
    with pytest.raises(QuantizeError, match="block_size"):
        quantize_decoder(path, out, "int4", settings=QuantizeSettings(block_size=48))
    with pytest.raises(QuantizeError, match="calibrate_method"):
        quantize_decoder(
            path, out, "int8-qdq", reader_for(path, caches), QuantizeSettings(calibrate_method="magic")
        )
    with pytest.raises(QuantizeError, match="pattern '/model/nothing/\\*' matches no node"):
        quantize_decoder(path, out, "int8", settings=QuantizeSettings(keep_fp32=("head", "/model/nothing/*")))
    with pytest.raises(QuantizeError, match="overwrite the FP32 input"):
        quantize_decoder(path, path, "int8")
    with pytest.raises(QuantizeError, match="no weight MatMul left"):
        quantize_decoder(path, out, "int8", settings=QuantizeSettings(keep_fp32=("head", "*MatMul")))
    assert not out.exists()


def test_calibration_reader_without_samples(fp32_model, tmp_path):
    path, _ = fp32_model("synthetic")

    class Empty:
        def get_next(self):
            return None

    with pytest.raises(QuantizeError, match="gave no samples"):
        quantize_decoder(path, tmp_path / "q.onnx", "int8-qdq", Empty())
