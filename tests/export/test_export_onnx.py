"""ONNX export graphs with explicit KV caches compute what peft / transformers compute, and the ONNX files match them.

Table: tiny random Llama / Qwen2 / Qwen3 bases x {"mirror" shadow (same width, shares the base embeddings, identity
projection), "explicit" shadow (a smaller checkpoint given as `shadow_model`: own embeddings, linear projection)} x
{detached, attached}. Every shadow parameter (injection W_up included, which peft zero-initializes) is perturbed so
the shadow path changes the numbers. Checks: the torch graph equals peft's forward / the detached HF model; the ONNX
file equals the torch graph at untraced shapes, with left padding, and over a cached greedy decode that also equals
full recomputation and peft's own `generate`; a restricted head is exactly those rows of the full head.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft.tuners.shadow", reason="needs peft with ShadowPEFT")
ort = pytest.importorskip("onnxruntime")

from peft import ShadowConfig, get_peft_model  # noqa: E402
from shadow_edge.export.convert import export_decoder_onnx  # noqa: E402
from shadow_edge.export.decoder_graph import (  # noqa: E402
    AttachedClassifier,
    AttachedDecoder,
    DetachedClassifier,
    DetachedDecoder,
    graph_for,
)
from shadow_edge.export.detached import detached_causal_lm, detached_sequence_classifier  # noqa: E402
from shadow_edge.export.validate_decoder import validate_decoder  # noqa: E402
from shadow_edge.runtime.manifest import CacheSpec  # noqa: E402
from tiny_models import FAMILIES, tiny_kwargs  # noqa: E402
from torch import nn  # noqa: E402
from transformers import (  # noqa: E402
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    LlamaConfig,
    MistralConfig,
)

torch.set_num_threads(1)

TINY = tiny_kwargs(layers=3)
SMALL_SHADOW = dict(
    hidden_size=16, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, intermediate_size=32
)
BASES = FAMILIES
SHADOWS = ("mirror", "explicit")
MODES = ("detached", "attached")
CASES = [(b, s) for b in BASES for s in SHADOWS]
IDS = [f"{b}-{s}" for b, s in CASES]
TOL = 1e-4
HEAD_IDS = [7, 3, 120, 55, 7, 64]  # out of order, with a repeat


def perturb(module: nn.Module, seed: int, scale: float = 0.3) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "shadow" in name:
                p.add_(torch.randn(p.shape, generator=gen) * scale)


@pytest.fixture(scope="module")
def shadow_dir(tmp_path_factory):
    """A smaller checkpoint of each family, to be loaded as an explicit `shadow_model`."""

    def make(base_name: str) -> str:
        out = tmp_path_factory.mktemp(f"shadow-{base_name}")
        torch.manual_seed(7)
        AutoModel.from_config(BASES[base_name](**{**TINY, **SMALL_SHADOW})).save_pretrained(out)
        return str(out)

    return functools.cache(make)


@pytest.fixture(scope="module")
def shadow_model(shadow_dir):
    @functools.cache
    def build(base_name: str, shadow: str, task: str = "CAUSAL_LM"):
        index = CASES.index((base_name, shadow))
        torch.manual_seed(300 + index)
        cfg = BASES[base_name](**TINY, tie_word_embeddings=base_name != "qwen2")
        if task == "SEQ_CLS":
            cfg.num_labels = 3
            base = AutoModelForSequenceClassification.from_config(cfg)
        else:
            base = AutoModelForCausalLM.from_config(cfg)
        kwargs = (
            {"shadow_num_hidden_layers": 2} if shadow == "mirror" else {"shadow_model": shadow_dir(base_name)}
        )
        model = get_peft_model(base, ShadowConfig(task_type=task, **kwargs))
        perturb(model, seed=400 + index)
        return model.eval()

    return build


def left_padded(batch: int = 3, length: int = 8, pads=(0, 3, 6), seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 128, (batch, length), generator=gen)
    mask = torch.ones_like(ids)
    for row, pad in enumerate(pads):
        mask[row, :pad] = 0
    return ids.masked_fill(mask == 0, 0), mask, (mask.cumsum(-1) - 1).clamp(min=0)


def empty_past(graph, batch: int) -> list[torch.Tensor]:
    return [
        torch.zeros(batch, c["kv_heads"], 0, c["head_dim"])
        for c in graph.caches
        for _ in range(2 * c["layers"])
    ]


def run_graph(graph, ids, mask, positions):
    with torch.no_grad():
        return graph(ids, mask, positions, *empty_past(graph, ids.shape[0]))


def make_graph(model, mode: str, **kwargs):
    if mode == "detached":
        return DetachedDecoder(detached_causal_lm(model), kwargs.get("head_token_ids"))
    return AttachedDecoder(model, **kwargs)


# ------------------------------------------------------------------------------------------- torch graph vs peft


@pytest.mark.parametrize(("base_name", "shadow"), CASES, ids=IDS)
def test_attached_graph_matches_peft_forward(base_name, shadow, shadow_model):
    model = shadow_model(base_name, shadow)
    graph = AttachedDecoder(model, shadow_logits=True)
    ids, mask, positions = left_padded()
    with torch.no_grad():
        want = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, -1]
        detached = model.base_model.unload_shadow()(
            input_ids=ids, attention_mask=mask, position_ids=positions
        )
        with model.disable_adapter():
            plain = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, -1]
    logits, shadow_logits, *present = run_graph(graph, ids, mask, positions)
    assert want.abs().max() > 0.1
    assert (want - plain).abs().max() > 1e-2  # the injection really changes the base's output
    torch.testing.assert_close(logits, want, atol=1e-5, rtol=0)
    torch.testing.assert_close(shadow_logits, detached.logits[:, -1], atol=1e-5, rtol=0)
    base_layers = TINY["num_hidden_layers"]
    shadow_layers = 2
    assert [c["name"] for c in graph.caches] == ["base", "shadow"]
    assert [c["layers"] for c in graph.caches] == [base_layers, shadow_layers]
    assert len(present) == 2 * (base_layers + shadow_layers)
    kv = 2 if shadow == "mirror" else 1
    assert present[-1].shape == (3, kv, 8, 8)
    assert graph.caches[1] == {"name": "shadow", "layers": 2, "kv_heads": kv, "head_dim": 8}


@pytest.mark.parametrize(("base_name", "shadow"), CASES, ids=IDS)
def test_detached_graph_matches_hf_model(base_name, shadow, shadow_model):
    model = shadow_model(base_name, shadow)
    hf = detached_causal_lm(model).eval()
    graph = DetachedDecoder(hf)
    ids, mask, positions = left_padded()
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, -1]
    logits, *present = run_graph(graph, ids, mask, positions)
    torch.testing.assert_close(logits, want, atol=1e-5, rtol=0)
    assert graph.caches == [hf_cache(hf)]
    assert len(present) == 4


def hf_cache(model) -> dict:
    cfg = model.config
    return {
        "name": "shadow",
        "layers": cfg.num_hidden_layers,
        "kv_heads": cfg.num_key_value_heads,
        "head_dim": 8,
    }


@pytest.mark.parametrize("mode", MODES)
def test_torch_incremental_decode_equals_full_recomputation(mode, shadow_model):
    graph = make_graph(shadow_model("qwen3", "explicit"), mode)
    ids, mask, positions = left_padded()
    full = run_graph(graph, ids, mask, positions)[0]
    with torch.no_grad():
        out = graph(ids[:, :5], mask[:, :5], positions[:, :5], *empty_past(graph, 3))
        for step in range(5, 8):
            out = graph(ids[:, step : step + 1], mask[:, : step + 1], positions[:, step : step + 1], *out[1:])
    torch.testing.assert_close(out[0], full, atol=1e-5, rtol=0)


def test_validation_tolerance_is_absolute_plus_relative_to_the_logit_scale(shadow_model, tmp_path):
    graph = make_graph(shadow_model("llama", CASES[0][1]), MODES[0])
    export_decoder_onnx(graph, tmp_path / "decoder.onnx")
    exact = validate_decoder(tmp_path / "decoder.onnx", graph, atol=1e-12, threads=1)
    assert exact["logit_scale"] > 0 and exact["tolerance"] == 1e-12
    assert not exact["passed"]  # float32 ONNX never matches torch to 1e-12
    rtol = 2 * exact["max_abs_logit_diff"] / exact["logit_scale"]
    scaled = validate_decoder(tmp_path / "decoder.onnx", graph, atol=1e-12, rtol=rtol, threads=1)
    assert scaled["tolerance"] == pytest.approx(1e-12 + rtol * scaled["logit_scale"])
    assert scaled["passed"] == (scaled["max_torch_incremental_vs_full"] <= scaled["tolerance"])


# ---------------------------------------------------------------------------------------------- ONNX vs torch


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("base_name", "shadow"), CASES, ids=IDS)
def test_onnx_export_matches_torch(base_name, shadow, mode, shadow_model, tmp_path):
    graph = make_graph(shadow_model(base_name, shadow), mode)
    info = export_decoder_onnx(graph, tmp_path / "decoder.onnx")
    assert info["files"] == ["decoder.onnx"] and not info["external_data"]
    assert info["input_names"][:3] == ["input_ids", "attention_mask", "position_ids"]
    report = validate_decoder(tmp_path / "decoder.onnx", graph, atol=TOL, threads=1)
    assert report["max_abs_logit_diff"] <= TOL
    assert report["max_abs_present_diff"] <= TOL
    assert report["max_abs_incremental_diff"] <= TOL
    assert report["greedy_tokens_match"] and report["passed"]
    shapes = {(c["batch"], c["sequence"], c["past"]) for c in report["checks"] if c["check"] == "forward"}
    assert {1, 3} <= {b for b, _, _ in shapes} and {1, 7} <= {s for _, s, _ in shapes}
    assert 0 in {p for *_, p in shapes} and max(p for *_, p in shapes) > 3


def ort_greedy(path, graph, ids, mask, steps: int) -> torch.Tensor:
    """Greedy decoding the way the runtime does it: prompt once, then one token per step with the caches."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names, outputs = graph.input_names(), graph.output_names()
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    feed = [ids, mask, positions, *empty_past(graph, ids.shape[0])]
    generated = ids
    for _ in range(steps):
        out = dict(
            zip(
                outputs,
                session.run(outputs, {n: t.numpy() for n, t in zip(names, feed, strict=True)}),
                strict=True,
            )
        )
        token = torch.from_numpy(out["logits"].argmax(-1))[:, None]
        generated = torch.cat((generated, token), dim=1)
        mask = torch.cat((mask, torch.ones_like(token)), dim=1)
        present = [torch.from_numpy(out[n]) for n in outputs if n.startswith("present.")]
        feed = [token, mask, mask.sum(-1, keepdim=True) - 1, *present]
    return generated


@pytest.mark.parametrize(("base_name", "shadow"), [("llama", "mirror"), ("qwen2", "explicit")])
def test_onnx_attached_greedy_equals_peft_generate(base_name, shadow, shadow_model, tmp_path):
    model = shadow_model(base_name, shadow)
    graph = AttachedDecoder(model)
    export_decoder_onnx(graph, tmp_path / "a.onnx")
    ids, mask, _ = left_padded(batch=2, pads=(0, 3))
    with torch.no_grad():
        want = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=6,
            min_new_tokens=6,
            do_sample=False,
            use_cache=True,
        )
    assert torch.equal(ort_greedy(tmp_path / "a.onnx", graph, ids, mask, steps=6), want)


@pytest.mark.parametrize("mode", MODES)
def test_restricted_head_is_rows_of_full_head(mode, shadow_model, tmp_path):
    model = shadow_model("qwen3", "mirror")
    extra = {"shadow_logits": True} if mode == "attached" else {}
    full = make_graph(model, mode, **extra)
    restricted = make_graph(model, mode, head_token_ids=HEAD_IDS, **extra)
    export_decoder_onnx(restricted, tmp_path / "r.onnx")
    report = validate_decoder(tmp_path / "r.onnx", restricted, atol=TOL, threads=1)
    assert report["passed"], report
    ids, mask, positions = left_padded()
    feed = (ids, mask, positions, *empty_past(full, 3))
    session = ort.InferenceSession(str(tmp_path / "r.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {n: t.numpy() for n, t in zip(restricted.input_names(), feed, strict=True)})
    want = run_graph(full, ids, mask, positions)
    assert got[0].shape == (3, len(HEAD_IDS))
    np.testing.assert_allclose(got[0], want[0][:, HEAD_IDS].numpy(), atol=TOL, rtol=0)
    if mode == "attached":
        np.testing.assert_allclose(got[1], want[1][:, HEAD_IDS].numpy(), atol=TOL, rtol=0)
    for a, b in zip(
        got[1 + len(extra) :], want[1 + len(extra) :], strict=True
    ):  # the caches do not depend on the head
        np.testing.assert_allclose(a, b.numpy(), atol=TOL, rtol=0)


def test_external_data_export(shadow_model, tmp_path):
    graph = AttachedDecoder(shadow_model("llama", "explicit"))
    info = export_decoder_onnx(graph, tmp_path / "big.onnx", external_data=True)
    assert info["files"] == ["big.onnx", "big.onnx.data"] and info["external_data"]
    assert info["file_bytes"]["big.onnx.data"] >= 0.9 * info["weight_bytes"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "big.onnx",
        "big.onnx.data",
    ]  # no scratch left behind
    assert validate_decoder(tmp_path / "big.onnx", graph, atol=TOL, threads=1)["passed"]


# ------------------------------------------------------------------------------------------------ sequence cls


@pytest.mark.parametrize("shadow", SHADOWS)
@pytest.mark.parametrize("mode", MODES)
def test_sequence_classifier_graphs(mode, shadow, shadow_model, tmp_path):
    model = shadow_model("qwen3", shadow, task="SEQ_CLS")
    graph = graph_for(model, mode, shadow_logits=mode == "attached")
    assert isinstance(graph, DetachedClassifier if mode == "detached" else AttachedClassifier)
    ids, mask, _ = left_padded()
    right_mask = mask.flip(-1)  # right padding with the pad id: HF pools the same token
    right_ids = ids.flip(-1)
    with torch.no_grad():
        for batch_ids, batch_mask in ((ids, mask), (right_ids, right_mask)):
            got = graph(batch_ids, batch_mask)
            if mode == "detached":
                want = detached_sequence_classifier(model).eval()(
                    input_ids=batch_ids, attention_mask=batch_mask
                )
                torch.testing.assert_close(got, want.logits, atol=1e-5, rtol=0)
            else:
                want = model(input_ids=batch_ids, attention_mask=batch_mask).logits
                shadow_want = model.base_model.unload_shadow()(input_ids=batch_ids, attention_mask=batch_mask)
                torch.testing.assert_close(got[0], want, atol=1e-5, rtol=0)
                torch.testing.assert_close(got[1], shadow_want.logits, atol=1e-5, rtol=0)
    assert graph.caches == [] and graph.input_names() == ["input_ids", "attention_mask"]
    info = export_decoder_onnx(graph, tmp_path / "cls.onnx")
    assert info["output_names"] == ["logits", *(["shadow_logits"] if mode == "attached" else [])]
    report = validate_decoder(tmp_path / "cls.onnx", graph, atol=TOL, threads=1)
    assert report["passed"] and report["max_abs_logit_diff"] <= TOL


# --------------------------------------------------------------------------------------------- names and errors


@pytest.mark.parametrize("mode", MODES)
def test_io_names_follow_the_manifest_contract(mode, shadow_model):
    graph = make_graph(
        shadow_model("llama", "mirror"), mode, **({"shadow_logits": True} if mode == "attached" else {})
    )
    specs = [CacheSpec(**c) for c in graph.caches]
    assert graph.input_names() == [
        "input_ids",
        "attention_mask",
        "position_ids",
        *(n for s in specs for n in s.input_names()),
    ]
    extra = ["shadow_logits"] if mode == "attached" else []
    assert graph.output_names() == ["logits", *extra, *(n for s in specs for n in s.output_names())]
    assert graph.input_names()[3] == f"past.{specs[0].name}.0.key"
    assert set(graph.dynamic_axes()) == set(graph.input_names()) | set(graph.output_names())


def test_partial_contiguous_adaptation_matches_peft():
    torch.manual_seed(3)
    base = AutoModelForCausalLM.from_config(LlamaConfig(**{**TINY, "num_hidden_layers": 4}))
    model = get_peft_model(
        base, ShadowConfig(task_type="CAUSAL_LM", target_modules=["model.layers.1", "model.layers.2"])
    )
    perturb(model, seed=5)
    model.eval()
    graph = AttachedDecoder(model)
    assert graph.core.base.adapted == [False, True, True, False]
    ids, mask, positions = left_padded()
    with torch.no_grad():
        want = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, -1]
    torch.testing.assert_close(run_graph(graph, ids, mask, positions)[0], want, atol=1e-5, rtol=0)


def test_errors(shadow_model):
    model = shadow_model("llama", "mirror")
    with pytest.raises(ValueError, match=r"head_token_ids: \[128, -1\] are not token ids of the 128-row"):
        AttachedDecoder(model, head_token_ids=[5, 128, -1])
    with pytest.raises(ValueError, match="head_token_ids is empty"):
        DetachedDecoder(detached_causal_lm(model), head_token_ids=[])
    with pytest.raises(ValueError, match="unknown export mode 'merged'"):
        graph_for(model, "merged")
    graph = DetachedDecoder(detached_causal_lm(model))
    ids, mask, positions = left_padded()
    with pytest.raises(ValueError, match=r"takes 4 past tensors \(shadow: 2 layers x key/value\), got 2"):
        graph(ids, mask, positions, *empty_past(graph, 3)[:2])
    with pytest.raises(NotImplementedError, match="model_type 'mistral'"):
        DetachedDecoder(AutoModelForCausalLM.from_config(MistralConfig(**TINY)))
    with pytest.raises(ValueError, match="SEQ_CLS adapter: use AttachedClassifier"):
        AttachedDecoder(shadow_model("qwen3", "mirror", task="SEQ_CLS"))

    base = AutoModelForCausalLM.from_config(LlamaConfig(**TINY))
    gappy = get_peft_model(
        base, ShadowConfig(task_type="CAUSAL_LM", target_modules=["model.layers.0", "model.layers.2"])
    )
    with pytest.raises(NotImplementedError, match=r"adapted blocks \[0, 2\] are not contiguous"):
        AttachedDecoder(gappy)
