"""The pieces the export graphs (`export.decoder_graph`) are built from, on plain tensors only: the causal mask, one
Llama / Qwen2 / Qwen3 decoder layer with explicit K/V tensors (HF's eager attention math), a stack of such layers that
runs ShadowPEFT's injection / update around the adapted blocks, linear heads (optionally restricted to some rows),
and the classifier poolings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from shadow_edge.export.architectures import architecture_of, check_attention, decoder_of
from torch import nn

# ---------------------------------------------------------------------------------------------------- tensor helpers


def causal_mask(attention_mask: torch.Tensor, new_tokens: int, dtype: torch.dtype) -> torch.Tensor:
    """Additive [B, 1, S, P+S] mask: query i (at absolute index P+i) sees key j iff j <= P+i and key j is real.

    Fully masked rows (query positions that are left padding) get a uniform softmax instead of NaN; their outputs
    only ever reach other padding positions.
    """
    total = attention_mask.shape[1]
    key_pos = torch.arange(total, device=attention_mask.device)
    query_pos = torch.arange(new_tokens, device=attention_mask.device) + (total - new_tokens)
    allowed = (key_pos[None, :] <= query_pos[:, None])[None, None] & attention_mask[:, None, None, :].bool()
    return (~allowed).to(dtype) * torch.finfo(dtype).min


def _rotate_half(x: torch.Tensor, half: int) -> torch.Tensor:
    # `half` is a Python int (head_dim // 2), so the exported Slices have constant bounds
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def block_forward(
    block: nn.Module,
    hidden: torch.Tensor,
    rope: tuple[torch.Tensor, torch.Tensor],
    mask: torch.Tensor,
    past_key: torch.Tensor | None,
    past_value: torch.Tensor | None,
    kv_heads: int,
    qk_norm: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One Llama / Qwen2 / Qwen3 decoder layer (pre-norm attention + pre-norm MLP); returns (hidden, key, value),
    key/value being the whole cache after this step. Same math as HF's eager attention.

    Grouped-query attention without HF's `repeat_kv` copy: queries are laid out [B, kv_heads, groups, S, d] (query
    head h = kv * groups + g, HF's order) and multiply the [B, kv_heads, 1, T, d] keys by broadcasting. `rope` is
    (cos, sin) as [B, 1, S, d]; `mask` is [B, 1, 1, S, T]. `qk_norm`: the family normalises queries and keys per
    head (`architectures`); q/k/v biases need no flag, the projections carry them.
    """
    attn = block.self_attn
    dim = int(attn.head_dim)
    groups = attn.q_proj.out_features // dim // kv_heads
    residual = hidden
    x = block.input_layernorm(hidden)
    batch, length = x.shape[:2]
    query = attn.q_proj(x).view(batch, length, kv_heads, groups, dim)
    key = attn.k_proj(x).view(batch, length, kv_heads, dim)
    value = attn.v_proj(x).view(batch, length, kv_heads, dim).transpose(1, 2)
    if qk_norm:  # Qwen3: RMSNorm over head_dim before RoPE
        query, key = attn.q_norm(query), attn.k_norm(key)
    query, key = query.permute(0, 2, 3, 1, 4), key.transpose(1, 2)
    cos, sin = rope
    query = query * cos[:, :, None] + _rotate_half(query, dim // 2) * sin[:, :, None]
    key = key * cos + _rotate_half(key, dim // 2) * sin
    if past_key is not None:
        key = torch.cat((past_key, key), dim=2)
        value = torch.cat((past_value, value), dim=2)
    scores = torch.matmul(query, key[:, :, None].transpose(3, 4)) * attn.scaling + mask
    probs = F.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    out = torch.matmul(probs, value[:, :, None]).permute(0, 3, 1, 2, 4)  # [B, S, kv_heads, groups, d]
    hidden = residual + attn.o_proj(out.reshape(batch, length, -1))
    hidden = hidden + block.mlp(block.post_attention_layernorm(hidden))
    return hidden, key, value


# ------------------------------------------------------------------------------------------------------- components


class LayerStack(nn.Module):
    """The decoder layers, rotary embedding and final norm of one HF decoder, run on explicit K/V tensors.

    For the attached base, the adapted layers are ShadowPEFT-wrapped blocks (peft's `ShadowLayer` or the official
    dialect's `OfficialShadowLayer`): such a layer injects the shadow state before its block and advances it after
    (the layer's own `shadow_inject` / `shadow_update`); the rest run the frozen block.
    """

    def __init__(self, decoder: nn.Module, name: str, adapter: str | None = None) -> None:
        super().__init__()
        config = decoder.config
        self.architecture = architecture_of(config.model_type, f"{name} decoder")
        self.name = name
        self.adapter = adapter
        self.layers = decoder.layers[: config.num_hidden_layers]
        self.rotary_emb = decoder.rotary_emb
        self.norm = decoder.norm
        self.adapted: list[bool] = []
        # the frozen blocks (a ShadowLayer's base_layer); a plain list, they are registered through `layers`
        self._blocks: list[nn.Module] = []
        for index, layer in enumerate(self.layers):
            wrapped = is_shadow_layer(layer)
            if wrapped and layer.disable_adapters:
                raise ValueError(f"{name} decoder layer {index}: the ShadowPEFT adapter is disabled")
            self.adapted.append(wrapped and adapter is not None and adapter in layer.shadow_down)
            block = layer.base_layer if wrapped else layer
            self._blocks.append(block)
            check_attention(block.self_attn, config, self.architecture, f"{name} decoder layer {index}")
            if getattr(block.self_attn, "sliding_window", None) is not None:
                raise NotImplementedError(
                    f"{name} decoder layer {index}: sliding-window attention is not supported"
                )
        first = self.adapted.index(True) if any(self.adapted) else 0
        if any(self.adapted) and not all(self.adapted[first : first + sum(self.adapted)]):
            raise NotImplementedError(
                f"{name} decoder: the ShadowPEFT-adapted blocks {[i for i, a in enumerate(self.adapted) if a]} are "
                "not contiguous; the shadow state rides one contiguous run of blocks"
            )
        attn = self._blocks[0].self_attn
        self.kv_heads = attn.k_proj.out_features // attn.head_dim
        self.head_dim = int(attn.head_dim)

    @property
    def cache(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "layers": len(self.layers),
            "kv_heads": self.kv_heads,
            "head_dim": self.head_dim,
        }

    def forward(
        self,
        hidden: torch.Tensor,
        position_ids: torch.Tensor,
        mask: torch.Tensor,
        past: Sequence[torch.Tensor] | None,
        shadow: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run every layer; returns the last layer's hidden states (before the final norm) and the flat present."""
        cos, sin = self.rotary_emb(hidden, position_ids)
        rope = (cos[:, None], sin[:, None])  # broadcast over heads; shaped once for every layer
        mask = mask[:, :, None]  # and over query groups
        present: list[torch.Tensor] = []
        for index, layer in enumerate(self.layers):
            past_key, past_value = (None, None) if past is None else (past[2 * index], past[2 * index + 1])
            if self.adapted[index]:
                hidden = layer.shadow_inject(hidden, shadow, self.adapter)
            hidden, key, value = block_forward(
                self._blocks[index],
                hidden,
                rope,
                mask,
                past_key,
                past_value,
                self.kv_heads,
                self.architecture.qk_norm,
            )
            if self.adapted[index]:
                shadow = layer.shadow_update(hidden, shadow, self.adapter)
            present += [key, value]
        return hidden, present


class Head(nn.Module):
    """A linear head, optionally restricted to the rows `token_ids` (row i of the output = token token_ids[i])."""

    def __init__(self, linear: nn.Module, token_ids: Sequence[int] | None, what: str) -> None:
        super().__init__()
        if not isinstance(linear, nn.Linear):
            raise ValueError(f"{what} is a {type(linear).__name__}, not a linear layer")
        rows = linear.out_features
        if token_ids is None:
            self.weight, self.bias = linear.weight, linear.bias  # shared with the model, not copied
            self.size = rows
            return
        ids = list(token_ids)
        if not ids:
            raise ValueError("head_token_ids is empty: the restricted head needs at least one token")
        bad = [i for i in ids if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < rows]
        if bad:
            raise ValueError(f"head_token_ids: {bad[:5]} are not token ids of the {rows}-row {what}")
        index = torch.tensor(ids, dtype=torch.long)
        self.weight = nn.Parameter(linear.weight.detach()[index].clone(), requires_grad=False)
        self.bias = (
            None
            if linear.bias is None
            else nn.Parameter(linear.bias.detach()[index].clone(), requires_grad=False)
        )
        self.size = len(ids)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.linear(hidden, self.weight, self.bias)


def pool_last_real(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """[B, S, D] -> [B, D] at each row's last attended position (left or right padding), as peft's
    `_pool_last_token`; equals HF's pad-id pooling when the padding is exactly the pad token."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    last = (attention_mask.ne(0).long() * positions).argmax(dim=-1)
    return torch.gather(hidden, 1, last[:, None, None].expand(-1, 1, hidden.shape[-1])).squeeze(1)


def pool_mask_sum(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """[B, S, D] -> [B, D] at position sum(mask) - 1 of each row: the official package's classifier pooling (equal to
    `pool_last_real` without left padding; a left-padded row gets an earlier position, as in the package)."""
    last = (attention_mask.ne(0).long().sum(dim=-1) - 1).clamp(min=0)
    return torch.gather(hidden, 1, last[:, None, None].expand(-1, 1, hidden.shape[-1])).squeeze(1)


POOLINGS = {"last_real": pool_last_real, "mask_sum": pool_mask_sum}


def pooling_named(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if name not in POOLINGS:
        raise ValueError(f"unknown pooling {name!r}: expected one of {', '.join(POOLINGS)}")
    return POOLINGS[name]


def is_shadow_layer(layer: nn.Module) -> bool:
    """A block wrapped with ShadowPEFT injection/update: peft's `ShadowLayer` or the official dialect's
    `OfficialShadowLayer` (duck-typed: both carry `base_layer`, `shadow_down`, `shadow_inject`, `shadow_update`)."""
    return all(
        callable(getattr(layer, name, None)) for name in ("shadow_inject", "shadow_update")
    ) and isinstance(getattr(layer, "shadow_down", None), nn.ModuleDict)


def supported_decoder(model: nn.Module, what: str) -> nn.Module:
    """The decoder (layers, rotary embedding, norm) of `model`, when its family is one the graphs support."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    architecture_of(model_type, f"{what} ({type(model).__name__})")
    return decoder_of(model)
