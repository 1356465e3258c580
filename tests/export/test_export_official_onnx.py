"""ONNX export of checkpoints written in the official `shadow-peft` dialect reproduces `OfficialShadowModel`.

Table: tiny random Llama / Qwen2 / Qwen3 bases x {"mirror" (the package's implicit shadow: the base's architecture
with 2 layers, sharing the base embeddings, no projection), "projected" (an explicit narrower shadow model with its own
embeddings and a linear projection)} x {causal LM, sequence classification} x {detached, attached}. Each checkpoint is
built, perturbed everywhere (injection, update MLPs, shared LayerNorm, backbone, heads), saved with the package's file
layout and loaded back from disk with `load_official_model`, as the exporter does. Then `graph_for` -> ONNX ->
`validate_decoder` (fp32, 1e-4), and the ONNX outputs are compared with the official model's own forward: attached
logits and shadow logits, detached logits, a cached decode (prefill then one token at a time with both caches) against
full recomputation, and the package's classifier pooling (position sum(mask) - 1) on left-padded rows.

The numerics of `OfficialShadowModel` itself against the real package are tested in tests/test_official_dialect.py.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft.tuners.shadow", reason="needs peft with ShadowPEFT")
ort = pytest.importorskip("onnxruntime")

from shadow_edge.export.convert import export_decoder_onnx  # noqa: E402
from shadow_edge.export.decoder_graph import (  # noqa: E402
    AttachedClassifier,
    AttachedDecoder,
    DetachedClassifier,
    DetachedDecoder,
    graph_for,
)
from shadow_edge.export.official import (  # noqa: E402
    OfficialShadowConfig,
    build_official_model,
    load_official_model,
    save_official_checkpoint,
)
from shadow_edge.export.validate_decoder import validate_decoder  # noqa: E402
from tiny_models import FAMILIES, tiny_kwargs  # noqa: E402
from torch import nn  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
)

torch.set_num_threads(1)

TINY = tiny_kwargs(layers=3)
NARROW = dict(
    hidden_size=16, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, intermediate_size=32
)
SHADOWS = ("mirror", "projected")
TASKS = ("causal_lm", "seq_cls")
MODES = ("detached", "attached")
CASES = [(f, s, t) for f in FAMILIES for s in SHADOWS for t in TASKS]
TOL = 1e-4
HEAD_IDS = [7, 3, 120, 55, 7, 64]  # out of order, with a repeat
PREFILL = 5


def perturb(modules: list[nn.Module], seed: int, scale: float = 0.3) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in modules:
            for param in module.parameters():
                param.add_(torch.randn(param.shape, generator=gen) * scale)


def trained_modules(model) -> list[nn.Module]:
    """Everything the package trains and saves for these checkpoints (see `checkpoint_config`)."""
    modules = [model.shadow_backbone, model.shadow_projection, model.shadow_norm, model.shadow_head]
    for layer in model.adapted_layers:
        modules += [
            layer.shadow_down,
            layer.shadow_up,
            layer.shadow_update_transform,
            layer.shadow_update_gate,
        ]
    if model.task == "seq_cls" or "lm_head" in model.config.modules_to_save:
        modules.append(model.base_head)
    return modules


def checkpoint_config(shadow: str, task: str) -> OfficialShadowConfig:
    if task == "seq_cls":  # an empty modules_to_save saves (and so trains) both classifier heads
        return OfficialShadowConfig(num_shadow_layers=2, gate_hidden_size=5)
    if shadow == "mirror":  # tied base: only the separate shadow head is trained
        return OfficialShadowConfig(num_shadow_layers=2, modules_to_save=["shadow_lm_head"])
    return OfficialShadowConfig(
        injection_hidden_size=4, gate_hidden_size=3, modules_to_save=["lm_head", "shadow_lm_head"]
    )


@pytest.fixture(scope="module")
def official_model(tmp_path_factory):
    """(family, shadow, task) -> an OfficialShadowModel loaded from a saved checkpoint directory + base directory."""

    @functools.cache
    def load(family: str, shadow: str, task: str):
        index = CASES.index((family, shadow, task))
        root = tmp_path_factory.mktemp(f"official-{family}-{shadow}-{task}")
        torch.manual_seed(500 + index)
        extra = {"num_labels": 3} if task == "seq_cls" else {}
        cfg = FAMILIES[family](**TINY, tie_word_embeddings=shadow == "mirror", **extra)
        auto = AutoModelForCausalLM if task == "causal_lm" else AutoModelForSequenceClassification
        auto.from_config(cfg).save_pretrained(root / "base")
        shadow_dir = None
        if shadow == "projected":
            shadow_dir = root / "shadow"
            FAMILIES[family](**{**TINY, **NARROW}).save_pretrained(shadow_dir)
        model = build_official_model(
            auto.from_pretrained(root / "base"),
            checkpoint_config(shadow, task),
            task,
            shadow_model=shadow_dir,
            share_embeddings=None if shadow_dir is None else False,
        )
        perturb(trained_modules(model), seed=600 + index)
        save_official_checkpoint(model, root / "adapter")
        # what the exporter does: a checkpoint directory + a base directory (+ the explicit shadow's config)
        return load_official_model(root / "base", root / "adapter", shadow_model=shadow_dir)

    return load


def padded(batch_pads: tuple[int, ...], length: int, seed: int):
    """Ids (padding = pad id 0, real tokens never 0), mask and mask-derived positions; pad < 0 pads on the right."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, TINY["vocab_size"], (len(batch_pads), length), generator=gen)
    mask = torch.ones_like(ids)
    for row, pad in enumerate(batch_pads):
        if pad > 0:
            mask[row, :pad] = 0
        elif pad < 0:
            mask[row, pad:] = 0
    return ids.masked_fill(mask == 0, 0), mask, (mask.cumsum(-1) - 1).clamp(min=0)


def empty_past(graph, batch: int) -> list[np.ndarray]:
    return [
        np.zeros((batch, c["kv_heads"], 0, c["head_dim"]), dtype=np.float32)
        for c in graph.caches
        for _ in range(2 * c["layers"])
    ]


class Onnx:
    def __init__(self, path, graph) -> None:
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.inputs, self.outputs = graph.input_names(), graph.output_names()

    def __call__(self, *args) -> dict[str, np.ndarray]:
        feed = {
            n: a.numpy() if isinstance(a, torch.Tensor) else a for n, a in zip(self.inputs, args, strict=True)
        }
        return dict(zip(self.outputs, self.session.run(self.outputs, feed), strict=True))


def check_causal_lm(model, graph, onnx: Onnx, mode: str) -> None:
    """ONNX prefill + one-token steps with the caches == the official model's full forward at every step."""
    ids, mask, positions = padded((0, 1, 3), length=9, seed=11)
    with torch.no_grad():
        if mode == "attached":
            out = model(ids, mask, positions)
            want = {"logits": out.logits, "shadow_logits": out.shadow_logits}
        else:
            want = {"logits": model.detached_forward(ids, mask, positions)}
    assert set(want) == {"logits", *graph.extra_outputs}
    got = onnx(ids[:, :PREFILL], mask[:, :PREFILL], positions[:, :PREFILL], *empty_past(graph, 3))
    for t in range(PREFILL - 1, ids.shape[1]):
        assert mask[:, t].all()  # every row is real from the prefill's last position on
        for name, logits in want.items():
            np.testing.assert_allclose(
                got[name], logits[:, t].numpy(), atol=TOL, rtol=0, err_msg=f"{name} @ {t}"
            )
        if t + 1 < ids.shape[1]:
            present = [got[n] for n in onnx.outputs if n.startswith("present.")]
            got = onnx(ids[:, t + 1 : t + 2], mask[:, : t + 2], positions[:, t + 1 : t + 2], *present)
    assert float(np.abs(want["logits"][:, -1].numpy()).max()) > 0.1


def check_classifier(model, graph, onnx: Onnx, mode: str) -> None:
    """Unpadded, left- and right-padded rows: the ONNX classifier == the official model's (package's) pooling."""
    ids, mask, _ = padded((0, 3, -3), length=8, seed=12)
    with torch.no_grad():
        if mode == "attached":
            out = model(ids, mask)
            want = {"logits": out.logits, "shadow_logits": out.shadow_logits}
        else:
            want = {"logits": model.detached_forward(ids, mask)}
        # The package pools the shadow at sum(mask) - 1: on the left-padded row that is not the last token, so
        # pooling the last real token instead would differ there (the comparison below can tell them apart).
        seed = model.shadow_seed(ids, mask)
        last = model.shadow_head(seed[:, -1])
    shadow_name = "shadow_logits" if mode == "attached" else "logits"
    assert (last[1] - want[shadow_name][1]).abs().max() > 1e-3
    got = onnx(ids, mask)
    assert set(got) == set(want)
    for name, logits in want.items():
        assert got[name].shape == (3, 3)
        np.testing.assert_allclose(got[name], logits.numpy(), atol=TOL, rtol=0, err_msg=name)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("family", "shadow", "task"), CASES, ids=["-".join(c) for c in CASES])
def test_onnx_export_matches_official_model(family, shadow, task, mode, official_model, tmp_path):
    model = official_model(family, shadow, task)
    graph = graph_for(model, mode, shadow_logits=mode == "attached")
    expected = {
        ("causal_lm", "detached"): DetachedDecoder,
        ("causal_lm", "attached"): AttachedDecoder,
        ("seq_cls", "detached"): DetachedClassifier,
        ("seq_cls", "attached"): AttachedClassifier,
    }[task, mode]
    assert type(graph) is expected
    if mode == "attached":
        assert graph.core.base.adapted == [False, True, True]  # the package adapts blocks 1..L-1
    if task == "causal_lm":
        shadow_kv = 2 if shadow == "mirror" else 1
        caches = (
            [("shadow", 2, shadow_kv)] if mode == "detached" else [("base", 3, 2), ("shadow", 2, shadow_kv)]
        )
        assert [(c["name"], c["layers"], c["kv_heads"]) for c in graph.caches] == caches

    info = export_decoder_onnx(graph, tmp_path / "model.onnx")
    assert (
        info["output_names"][: 1 + (mode == "attached")]
        == ["logits", "shadow_logits"][: 1 + (mode == "attached")]
    )
    report = validate_decoder(tmp_path / "model.onnx", graph, atol=TOL, threads=1)
    assert report["passed"], {k: v for k, v in report.items() if k != "checks"}
    assert report["max_abs_logit_diff"] <= TOL

    onnx = Onnx(tmp_path / "model.onnx", graph)
    if task == "causal_lm":
        check_causal_lm(model, graph, onnx, mode)
    else:
        check_classifier(model, graph, onnx, mode)


def test_restricted_head_is_rows_of_both_full_heads(official_model):
    model = official_model("qwen3", "projected", "causal_lm")
    full = graph_for(model, "attached", shadow_logits=True)
    restricted = graph_for(model, "attached", head_token_ids=HEAD_IDS, shadow_logits=True)
    detached_full = graph_for(model, "detached")
    detached = graph_for(model, "detached", head_token_ids=HEAD_IDS)
    ids, mask, positions = padded((0, 2, 4), length=7, seed=13)
    with torch.no_grad():
        want = full(ids, mask, positions, *map(torch.from_numpy, empty_past(full, 3)))
        got = restricted(ids, mask, positions, *map(torch.from_numpy, empty_past(full, 3)))
        want_detached = detached_full(ids, mask, positions, *map(torch.from_numpy, empty_past(detached, 3)))
        got_detached = detached(ids, mask, positions, *map(torch.from_numpy, empty_past(detached, 3)))
    assert got[0].shape == (3, len(HEAD_IDS))
    torch.testing.assert_close(got[0], want[0][:, HEAD_IDS], atol=1e-6, rtol=0)  # base lm_head rows
    torch.testing.assert_close(got[1], want[1][:, HEAD_IDS], atol=1e-6, rtol=0)  # shadow_lm_head rows
    torch.testing.assert_close(got_detached[0], want_detached[0][:, HEAD_IDS], atol=1e-6, rtol=0)
    assert (want[0] - want[1]).abs().max() > 1e-2  # base and shadow heads really differ


def test_graph_for_refuses_bad_requests(official_model):
    classifier = official_model("llama", "mirror", "seq_cls")
    for mode in MODES:
        with pytest.raises(ValueError, match="head_token_ids restricts an LM head"):
            graph_for(classifier, mode, head_token_ids=[1, 2])
    with pytest.raises(ValueError, match="unknown export mode 'merged'"):
        graph_for(classifier, "merged")
    with pytest.raises(ValueError, match="SEQ_CLS adapter: use AttachedClassifier"):
        AttachedDecoder(classifier)
    with pytest.raises(ValueError, match=r"head_token_ids: \[128\] are not token ids of the 128-row"):
        graph_for(official_model("llama", "mirror", "causal_lm"), "attached", head_token_ids=[5, 128])
