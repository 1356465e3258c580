"""The detached shadow exported as an ordinary HF checkpoint computes exactly what peft's `unload_shadow()` computes.

Table: tiny random Llama / Qwen2 / Qwen3 causal-LM bases (tied, plus an untied Qwen2) x {same-width mirror sharing
the base embeddings (identity projection), narrow mirror with its own embeddings and a projection folded into the
head}. Every shadow parameter is perturbed so no weight is zero / identity by accident.
"""

from __future__ import annotations

import copy
import functools
import json
import time

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft.tuners.shadow", reason="needs peft with ShadowPEFT")

from peft import LoraConfig, PeftModel, ShadowConfig, get_peft_model  # noqa: E402
from shadow_edge.export.detached import (  # noqa: E402
    DETACHED_INFO_FILE,
    detached_causal_lm,
    detached_model,
    detached_sequence_classifier,
    save_detached,
)
from tiny_models import tiny_kwargs  # noqa: E402
from torch import nn  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    LlamaConfig,
    Qwen2Config,
    Qwen3Config,
)

torch.set_num_threads(1)

TINY = tiny_kwargs(layers=4)
BASES = {
    "llama": (LlamaConfig, True),
    "qwen2": (Qwen2Config, True),
    "qwen3": (Qwen3Config, True),
    "qwen2-untied": (Qwen2Config, False),
}
SHADOWS = {
    "same-width": {},
    "narrow": dict(shadow_hidden_size=16, shadow_num_attention_heads=2, shadow_intermediate_size=32),
}
CASES = [(b, s) for b in BASES for s in SHADOWS]
IDS = [f"{b}-{s}" for b, s in CASES]


def base_config(name: str):
    cls, tied = BASES[name]
    return cls(**TINY, tie_word_embeddings=tied)


def perturb(module: nn.Module, seed: int, scale: float = 0.3) -> None:
    """Add noise to every parameter (norm weights, projection included) so nothing is zero/identity by accident."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)


def shadow_params(model) -> nn.ModuleList:
    tuner = model.base_model
    return nn.ModuleList(
        [*tuner.shadow_backbone.values(), *tuner.shadow_projection.values(), *tuner.shadow_head.values()]
    )


@functools.cache
def case(base_name: str, shadow_name: str):
    """(peft model, base state before wrapping, base config, shadow overrides) for one table row."""
    index = CASES.index((base_name, shadow_name))
    torch.manual_seed(100 + index)
    cfg = base_config(base_name)
    base = AutoModelForCausalLM.from_config(cfg)
    base_state = copy.deepcopy(base.state_dict())
    overrides = SHADOWS[shadow_name]
    model = get_peft_model(base, ShadowConfig(task_type="CAUSAL_LM", shadow_num_hidden_layers=2, **overrides))
    perturb(shadow_params(model), seed=200 + index)
    model.eval()
    return model, base_state, cfg, overrides


def padded_batch(vocab: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """Three rows: full, left-padded, right-padded (pad id 0, masked)."""
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(3, vocab, (3, 9), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, :4] = 0
    mask[2, 6:] = 0
    return ids.masked_fill(mask == 0, 0), mask


def reference(model):
    return model.base_model.unload_shadow().eval()


@pytest.mark.parametrize(("base_name", "shadow_name"), CASES, ids=IDS)
def test_logits_match_unload_shadow(base_name, shadow_name):
    model, _, cfg, overrides = case(base_name, shadow_name)
    detached = detached_causal_lm(model).eval()

    narrow = bool(overrides)
    assert (
        type(detached).__name__ == type(model.base_model.model).__name__
    )  # same family, a plain *ForCausalLM
    assert detached.config.num_hidden_layers == 2
    assert detached.config.hidden_size == (16 if narrow else 32)
    assert detached.config.vocab_size == 128
    tied = (
        detached.get_output_embeddings().weight.data_ptr()
        == detached.get_input_embeddings().weight.data_ptr()
    )
    assert detached.config.tie_word_embeddings is tied is (cfg.tie_word_embeddings and not narrow)
    assert model.base_model._shadow_share_embeddings["default"] is not narrow
    assert isinstance(model.base_model.shadow_projection["default"], nn.Linear if narrow else nn.Identity)
    assert not any(p.requires_grad for p in detached.parameters())

    ids, mask = padded_batch()
    with torch.no_grad():
        ours = detached(input_ids=ids, attention_mask=mask).logits
        ref = reference(model)(input_ids=ids, attention_mask=mask).logits
    real = mask.bool()
    assert ref[real].abs().max() > 0.1  # not a degenerate model
    torch.testing.assert_close(ours[real], ref[real], atol=1e-5, rtol=0)
    # the export owns its tensors: changing the adapter afterwards does not change it
    assert all(p.data_ptr() != q.data_ptr() for p in detached.parameters() for q in model.parameters())


@pytest.mark.parametrize(("base_name", "shadow_name"), CASES, ids=IDS)
def test_greedy_generate_matches(base_name, shadow_name):
    model, *_ = case(base_name, shadow_name)
    detached = detached_causal_lm(model).eval()
    ids, mask = padded_batch()
    ids, mask = ids[:2], mask[:2]  # left padding only, as for generation
    kwargs = dict(attention_mask=mask, max_new_tokens=8, min_new_tokens=8, do_sample=False, use_cache=True)
    with torch.no_grad():
        ours = detached.generate(ids, **kwargs)
        ref = reference(model).generate(ids, **kwargs)
    assert ours.shape == (2, 17)
    assert torch.equal(ours, ref)


@pytest.mark.parametrize(("base_name", "shadow_name"), CASES, ids=IDS)
def test_save_detached_roundtrip(base_name, shadow_name, tmp_path):
    model, _, _, overrides = case(base_name, shadow_name)
    out = save_detached(model, tmp_path / "detached", adapter_path="adapters/x")
    reloaded = AutoModelForCausalLM.from_pretrained(out).eval()
    ids, mask = padded_batch()
    with torch.no_grad():
        ours = reloaded(input_ids=ids, attention_mask=mask).logits
        ref = reference(model)(input_ids=ids, attention_mask=mask).logits
    real = mask.bool()
    torch.testing.assert_close(ours[real], ref[real], atol=1e-5, rtol=0)

    info = json.loads((out / DETACHED_INFO_FILE).read_text())
    assert info["adapter_path"] == "adapters/x"
    assert info["shadow_layers"] == 2
    assert info["projection_folded"] is bool(overrides)
    assert info["shared_base_embeddings"] is not bool(overrides)
    assert info["task_type"] == "CAUSAL_LM"


@pytest.mark.parametrize(("base_name", "shadow_name"), CASES, ids=IDS)
def test_reloaded_adapter_gives_same_detached_model(base_name, shadow_name, tmp_path):
    model, base_state, cfg, _ = case(base_name, shadow_name)
    model.save_pretrained(tmp_path / "adapter")
    fresh = AutoModelForCausalLM.from_config(cfg)
    fresh.load_state_dict(base_state)
    loaded = PeftModel.from_pretrained(fresh, tmp_path / "adapter")
    want = detached_causal_lm(model).state_dict()
    got = detached_causal_lm(loaded).state_dict()
    assert want.keys() == got.keys()
    for key in want:
        assert torch.equal(want[key], got[key]), key


def test_tokenizer_is_saved_alongside(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<s>": 2, **{f"w{i}": i for i in range(3, 128)}}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", eos_token="</s>", bos_token="<s>")
    model, *_ = case("llama", "same-width")
    out = save_detached(model, tmp_path / "d", tokenizer=tok)
    assert AutoTokenizer.from_pretrained(out)("w5 w7")["input_ids"] == [5, 7]
    assert json.loads((out / DETACHED_INFO_FILE).read_text())["adapter_path"] is None


def test_lm_head_trained_through_modules_to_save():
    """A base head trained via `modules_to_save=["lm_head"]` is what the detached model uses (untied)."""
    torch.manual_seed(5)
    base = AutoModelForCausalLM.from_config(base_config("llama"))
    model = get_peft_model(
        base, ShadowConfig(task_type="CAUSAL_LM", shadow_num_hidden_layers=2, modules_to_save=["lm_head"])
    )
    perturb(shadow_params(model), seed=3)
    perturb(model.base_model.model.lm_head.modules_to_save["default"], seed=4)
    model.eval()
    detached = detached_causal_lm(model).eval()
    assert not detached.config.tie_word_embeddings
    ids, mask = padded_batch()
    with torch.no_grad():
        ours = detached(input_ids=ids, attention_mask=mask).logits
        ref = reference(model)(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(ours[mask.bool()], ref[mask.bool()], atol=1e-5, rtol=0)


@pytest.mark.parametrize("shadow_name", list(SHADOWS))
def test_sequence_classifier(shadow_name):
    torch.manual_seed(11)
    cfg = base_config("qwen3")
    cfg.num_labels = 3
    base = AutoModelForSequenceClassification.from_config(cfg)
    model = get_peft_model(
        base, ShadowConfig(task_type="SEQ_CLS", shadow_num_hidden_layers=2, **SHADOWS[shadow_name])
    )
    perturb(shadow_params(model), seed=6)
    model.eval()
    detached = detached_model(model).eval()
    assert type(detached).__name__ == "Qwen3ForSequenceClassification"
    assert detached.config.num_labels == 3
    ids, mask = padded_batch()
    ids, mask = ids[[0, 2]], mask[[0, 2]]  # right padding with the pad id: both poolings pick the same token
    with torch.no_grad():
        ours = detached(input_ids=ids, attention_mask=mask).logits
        ref = reference(model)(input_ids=ids, attention_mask=mask).logits
    assert ours.shape == (2, 3)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="SEQ_CLS adapter, not CAUSAL_LM"):
        detached_causal_lm(model)
    with pytest.raises(ValueError, match="use detached_causal_lm"):
        detached_sequence_classifier(case("llama", "same-width")[0])


def fresh_shadow(shadow_name: str = "same-width", **config):
    base = AutoModelForCausalLM.from_config(base_config("llama"))
    return get_peft_model(base, ShadowConfig(shadow_num_hidden_layers=1, **SHADOWS[shadow_name], **config))


def test_error_not_shadow():
    with pytest.raises(ValueError, match="expected a peft PeftModel"):
        detached_causal_lm(AutoModelForCausalLM.from_config(base_config("llama")))
    base = AutoModelForCausalLM.from_config(base_config("llama"))
    lora = get_peft_model(base, LoraConfig(task_type="CAUSAL_LM", target_modules=["q_proj"]))
    with pytest.raises(ValueError, match="not ShadowPEFT"):
        detached_causal_lm(lora)


@pytest.mark.parametrize("task_type", [None, "FEATURE_EXTRACTION"])
def test_error_unknown_task(task_type):
    with pytest.raises(ValueError, match="unsupported ShadowPEFT task type"):
        detached_model(fresh_shadow(task_type=task_type))


def test_error_nonlinear_projection():
    model = fresh_shadow("narrow", task_type="CAUSAL_LM")
    model.base_model.shadow_projection["default"] = nn.Sequential(nn.Linear(16, 32, bias=False), nn.GELU())
    with pytest.raises(ValueError, match="only nn.Identity or a bias-free nn.Linear"):
        detached_causal_lm(model)
    model.base_model.shadow_projection["default"] = nn.Linear(16, 32, bias=True)
    with pytest.raises(ValueError, match="projection has a bias"):
        detached_causal_lm(model)


def test_error_shared_embeddings_of_other_width():
    model = fresh_shadow("narrow", task_type="CAUSAL_LM")
    model.base_model._shadow_share_embeddings["default"] = True
    with pytest.raises(
        ValueError, match="shares the base input embeddings .width 32. but its hidden size is 16"
    ):
        detached_causal_lm(model)


def test_onnx_export_matches_pytorch(tmp_path):
    pytest.importorskip("optimum.onnxruntime")
    from optimum.exporters.onnx import main_export
    from optimum.onnxruntime import ORTModelForCausalLM

    start = time.monotonic()
    model, *_ = case("qwen3", "narrow")
    src = save_detached(model, tmp_path / "detached")
    main_export(str(src), output=tmp_path / "onnx", task="text-generation-with-past", do_validation=False)
    ort = ORTModelForCausalLM.from_pretrained(tmp_path / "onnx")
    ids, mask = padded_batch()
    ids, mask = ids[:2], mask[:2]
    torch_model = AutoModelForCausalLM.from_pretrained(src).eval()
    with torch.no_grad():
        want = torch_model(input_ids=ids, attention_mask=mask).logits
    got = ort(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(got[mask.bool()], want[mask.bool()], atol=1e-4, rtol=0)
    kwargs = dict(attention_mask=mask, max_new_tokens=8, min_new_tokens=8, do_sample=False)
    assert torch.equal(ort.generate(ids, **kwargs), torch_model.generate(ids, **kwargs))
    assert time.monotonic() - start < 60
