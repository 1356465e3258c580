"""Tiny random decoder configurations shared by the model tests (the architectures the exporter supports)."""

from __future__ import annotations

from transformers import LlamaConfig, Qwen2Config, Qwen3Config

FAMILIES = {"llama": LlamaConfig, "qwen2": Qwen2Config, "qwen3": Qwen3Config}


def tiny_kwargs(layers: int = 3, vocab_size: int = 128) -> dict:
    """Config keyword arguments of a tiny decoder: grouped-query attention (4 heads, 2 KV heads), head_dim 8."""
    return dict(
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        vocab_size=vocab_size,
        head_dim=8,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )
