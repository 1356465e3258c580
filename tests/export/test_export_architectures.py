"""The table of supported decoder families: every family the tests build is in it, and a module whose attention
disagrees with its family's entry (q/k norms, q/k/v bias) is refused instead of exported with the wrong math."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from shadow_edge.export.architectures import (  # noqa: E402
    ARCHITECTURES,
    SUPPORTED_MODEL_TYPES,
    UnsupportedArchitecture,
    architecture_of,
    check_attention,
)
from tiny_models import FAMILIES, tiny_kwargs  # noqa: E402
from torch import nn  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402


def attention_of(family: str) -> tuple[nn.Module, object]:
    model = AutoModelForCausalLM.from_config(FAMILIES[family](**tiny_kwargs(layers=1)))
    return model.model.layers[0].self_attn, model.config


def test_table_lists_the_tested_families_once():
    assert set(SUPPORTED_MODEL_TYPES) == set(FAMILIES) == set(ARCHITECTURES)
    assert "SmolLM2" in ARCHITECTURES["llama"].models
    with pytest.raises(
        UnsupportedArchitecture, match=r"model_type 'gpt2' is not supported \(supported: llama"
    ):
        architecture_of("gpt2", "the base")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_real_modules_match_their_entry(family):
    attention, config = attention_of(family)
    check_attention(attention, config, ARCHITECTURES[family], family)


def test_qwen3_attention_without_qk_norm_is_refused():
    attention, config = attention_of("qwen3")
    attention.q_norm = None
    with pytest.raises(UnsupportedArchitecture, match="needs q_norm / k_norm"):
        check_attention(attention, config, ARCHITECTURES["qwen3"], "layer 0")


def test_qwen2_attention_without_bias_is_refused():
    attention, config = attention_of("qwen2")
    for name in ("q_proj", "k_proj", "v_proj"):
        getattr(attention, name).bias = None
    with pytest.raises(UnsupportedArchitecture, match="always biased"):
        check_attention(attention, config, ARCHITECTURES["qwen2"], "layer 0")


def test_llama_bias_follows_the_config():
    attention, config = attention_of("llama")
    config.attention_bias = True
    with pytest.raises(UnsupportedArchitecture, match="only with attention_bias"):
        check_attention(attention, config, ARCHITECTURES["llama"], "layer 0")
