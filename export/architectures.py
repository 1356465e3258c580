"""The decoder families the exporter supports, and what differs between them: one table, read by the input checks
(`checkpoint`), the official dialect (`official`) and the export graphs (`decoder_graph`).

All three are pre-norm decoders with RMSNorm, rotary position embeddings, grouped-query attention and a SwiGLU MLP,
so one tensor-only block (`decoder_graph`) computes every one of them. The differences the graphs must honour are
in the attention:

- **qwen3** normalises queries and keys per head (RMSNorm over head_dim, `q_norm` / `k_norm`) before RoPE;
- **qwen2** always has a bias on the q/k/v projections (o_proj has none); llama and qwen3 have one only when the
  config says `attention_bias`;
- **qwen2 / qwen3** can turn on sliding-window attention (`use_sliding_window`), which the graphs refuse.

The SmolLM / SmolLM2 models are Llama (`model_type` "llama").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # torch only where a module is inspected: the input checks import this table without it
    from torch import nn


@dataclass(frozen=True)
class Architecture:
    """What the export graphs need to know about one decoder family."""

    model_type: str  # the HF config's `model_type`
    models: tuple[str, ...]  # model families people know by name
    qk_norm: bool  # RMSNorm over head_dim on queries and keys before RoPE
    qkv_bias: Literal["always", "config"]  # bias on q/k/v: always, or when `config.attention_bias` is set

    def expects_qkv_bias(self, config: Any) -> bool:
        return self.qkv_bias == "always" or bool(getattr(config, "attention_bias", False))


ARCHITECTURES: dict[str, Architecture] = {
    "llama": Architecture("llama", ("Llama", "SmolLM", "SmolLM2"), qk_norm=False, qkv_bias="config"),
    "qwen2": Architecture("qwen2", ("Qwen2", "Qwen2.5"), qk_norm=False, qkv_bias="always"),
    "qwen3": Architecture("qwen3", ("Qwen3",), qk_norm=True, qkv_bias="config"),
}
SUPPORTED_MODEL_TYPES = tuple(ARCHITECTURES)


class UnsupportedArchitecture(NotImplementedError):
    """A decoder the export graphs do not compute (unknown family, or a variant of a known one)."""


def supported() -> str:
    """`llama, qwen2, qwen3`, for messages."""
    return ", ".join(SUPPORTED_MODEL_TYPES)


def architecture_of(model_type: Any, what: str = "the model") -> Architecture:
    """The table entry for `model_type`; UnsupportedArchitecture naming `what` otherwise."""
    if model_type not in ARCHITECTURES:
        raise UnsupportedArchitecture(
            f"{what}: model_type {model_type!r} is not supported (supported: {supported()})"
        )
    return ARCHITECTURES[model_type]


def check_attention(attention: nn.Module, config: Any, arch: Architecture, where: str) -> None:
    """The attention module has the shape its family's entry says (q/k norms, q/k/v bias): a model whose modules
    disagree with its config would otherwise be exported with the wrong math, silently."""
    has_norm = (
        getattr(attention, "q_norm", None) is not None and getattr(attention, "k_norm", None) is not None
    )
    if has_norm != arch.qk_norm:
        raise UnsupportedArchitecture(
            f"{where}: {arch.model_type} attention {'needs' if arch.qk_norm else 'has no'} q_norm / k_norm, "
            f"but this module {'has' if has_norm else 'lacks'} them"
        )
    biases = [getattr(attention, name).bias is not None for name in ("q_proj", "k_proj", "v_proj")]
    if len(set(biases)) != 1 or biases[0] != arch.expects_qkv_bias(config):
        raise UnsupportedArchitecture(
            f"{where}: q/k/v projection biases {biases} do not match {arch.model_type} "
            f"({'always biased' if arch.qkv_bias == 'always' else 'biased only with attention_bias'})"
        )


def decoder_of(model: nn.Module) -> nn.Module:
    """The decoder stack (`model.model` for Llama / Qwen2 / Qwen3 causal LMs) holding `.layers` and `.norm`."""
    from torch import nn

    decoder = model.get_decoder() if hasattr(model, "get_decoder") else getattr(model, "model", None)
    if decoder is None or not isinstance(getattr(decoder, "layers", None), nn.ModuleList):
        raise ValueError(
            f"{type(model).__name__}: cannot find the decoder layers (expected model.model.layers)"
        )
    return decoder
