"""Export graphs with explicit tensor KV caches: the detached shadow and the attached base + shadow pair.

The HF models take `Cache` objects and build their masks with helpers that do not trace to ONNX cleanly, and peft's
ShadowPEFT forward threads the shadow state through forward hooks and a paired `ShadowCache`. None of that is a
function of plain tensors. The wrappers here compute the same numbers from tensors only, reusing the HF submodules
(projections, norms, MLPs, rotary embedding) and peft's own `ShadowLayer.shadow_inject` / `shadow_update`, with the
attention written out (eager math), so `torch.onnx.export` sees one plain graph whose I/O is the decoder contract of
`shadow_edge.runtime.manifest`:

    forward(input_ids [B,S], attention_mask [B,P+S], position_ids [B,S], *past) -> (logits [B,N], *present)

`past` / `present` are flat: for each cache in `caches` order, for each layer, key then value, each
[B, kv_heads, P(+S), head_dim]. `logits` are for the last input position only and cover the whole vocabulary or just
the rows `head_token_ids` (row i = token head_token_ids[i]).

What the attached graph computes (peft 0.21's ShadowModel, read off `peft/tuners/shadow/`):
  s0 = projection(shadow_backbone(embeddings, mask, positions))   # the seed, from the raw inputs, its own cache
  h = base embeddings
  for each base block l:     if adapted:  h = h + alpha * W_up W_down (h - s)          (Eq. 2-4, inject)
                             h = block(h)                                              (base cache, layer l)
                             if adapted:  s = (1 - g(h)) * s + g(h) * T(h)             (Eq. 5-7, update)
  logits = lm_head(norm(h)),  shadow_logits = lm_head(s0)  (the detached shadow's own prediction)
Every step is per token and causal, so decoding with the two caches equals recomputing the whole sequence.

Checkpoints of the official `shadow-peft` package (`export.official.OfficialShadowModel`) go through the
same graphs: their wrapped blocks carry the same `shadow_inject` / `shadow_update` methods (with the package's math:
blocks 1..L-1 only, a shared LayerNorm before bias-free Linear-SiLU-Linear update MLPs), the model describes itself
with `shadow_parts()` as `ShadowParts` describes a peft model, and its shadow head is its own `shadow_lm_head` /
`shadow_classifier_head`. One difference stays visible here: the package's shadow *classifier* pools position
sum(mask) - 1 of each row (the last real token only without left padding), which the classifier graphs reproduce
(`shadow_pooling="mask_sum"`); the base classifier pools the last attended token in both dialects.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from shadow_edge.export.architectures import architecture_of, check_attention, decoder_of
from shadow_edge.export.detached import detached_hf_model
from shadow_edge.export.parts import ShadowParts, active_module, classifier_head, shadow_parts_of
from shadow_edge.runtime.manifest import CacheSpec
from torch import nn

logger = logging.getLogger(__name__)

BASE_CACHE = "base"
SHADOW_CACHE = "shadow"


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


def _block_forward(
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


class _Stack(nn.Module):
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
            wrapped = _is_shadow_layer(layer)
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
            hidden, key, value = _block_forward(
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


class _Head(nn.Module):
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


def _pool_last_real(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """[B, S, D] -> [B, D] at each row's last attended position (left or right padding), as peft's
    `_pool_last_token`; equals HF's pad-id pooling when the padding is exactly the pad token."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    last = (attention_mask.ne(0).long() * positions).argmax(dim=-1)
    return torch.gather(hidden, 1, last[:, None, None].expand(-1, 1, hidden.shape[-1])).squeeze(1)


def _pool_mask_sum(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """[B, S, D] -> [B, D] at position sum(mask) - 1 of each row: the official package's classifier pooling (equal to
    `_pool_last_real` without left padding; a left-padded row gets an earlier position, as in the package)."""
    last = (attention_mask.ne(0).long().sum(dim=-1) - 1).clamp(min=0)
    return torch.gather(hidden, 1, last[:, None, None].expand(-1, 1, hidden.shape[-1])).squeeze(1)


POOLINGS = {"last_real": _pool_last_real, "mask_sum": _pool_mask_sum}


def _pooling(name: str):
    if name not in POOLINGS:
        raise ValueError(f"unknown pooling {name!r}: expected one of {', '.join(POOLINGS)}")
    return POOLINGS[name]


def _is_shadow_layer(layer: nn.Module) -> bool:
    """A block wrapped with ShadowPEFT injection/update: peft's `ShadowLayer` or the official dialect's
    `OfficialShadowLayer` (duck-typed: both carry `base_layer`, `shadow_down`, `shadow_inject`, `shadow_update`)."""
    return all(
        callable(getattr(layer, name, None)) for name in ("shadow_inject", "shadow_update")
    ) and isinstance(getattr(layer, "shadow_down", None), nn.ModuleDict)


def _check_supported_decoder(model: nn.Module, what: str) -> nn.Module:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    architecture_of(model_type, f"{what} ({type(model).__name__})")
    return decoder_of(model)


# ----------------------------------------------------------------------------------------------------------- graphs


class _Graph(nn.Module):
    """Names, dynamic axes and example inputs shared by every export graph."""

    task = "causal_lm"
    extra_outputs: tuple[str, ...] = ()
    vocab_size: int

    def _stacks(self) -> list[_Stack]:
        return []

    @property
    def caches(self) -> list[dict[str, Any]]:
        """The manifest's `architecture.caches` entries, in the order of the flat past / present."""
        return [stack.cache for stack in self._stacks()]

    def _specs(self) -> list[CacheSpec]:
        return [CacheSpec(**cache) for cache in self.caches]

    def input_names(self) -> list[str]:
        if self.task == "seq_cls":
            return ["input_ids", "attention_mask"]
        return [
            "input_ids",
            "attention_mask",
            "position_ids",
            *(n for s in self._specs() for n in s.input_names()),
        ]

    def output_names(self) -> list[str]:
        return ["logits", *self.extra_outputs, *(n for s in self._specs() for n in s.output_names())]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        axes: dict[str, dict[int, str]] = {
            "input_ids": {0: "batch", 1: "sequence"},
            "attention_mask": {0: "batch", 1: "total_sequence"},
            "logits": {0: "batch"},
        }
        if self.task == "seq_cls":
            return axes
        axes["position_ids"] = {0: "batch", 1: "sequence"}
        for name in self.extra_outputs:
            axes[name] = {0: "batch"}
        for spec in self._specs():
            axes.update({name: {0: "batch", 2: "past_sequence"} for name in spec.input_names()})
            axes.update({name: {0: "batch", 2: "total_sequence"} for name in spec.output_names()})
        return axes

    def example_inputs(
        self,
        batch: int = 2,
        sequence: int = 5,
        past: int = 3,
        left_padding: Sequence[int] | None = None,
        seed: int = 0,
    ) -> tuple[torch.Tensor, ...]:
        """Random inputs in `input_names()` order (random past K/V; real prompts come from the runtime).

        `left_padding[b]` masks the first tokens of row b (counted over past + new tokens); position ids count real
        tokens only, as HF generation does.
        """
        gen = torch.Generator().manual_seed(seed)
        past = 0 if self.task == "seq_cls" else past
        input_ids = torch.randint(0, self.vocab_size, (batch, sequence), generator=gen)
        mask = torch.ones(batch, past + sequence, dtype=torch.long)
        for row, pad in enumerate(left_padding or []):
            mask[row, :pad] = 0
        if self.task == "seq_cls":
            return input_ids, mask
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, past:]
        caches = [
            torch.randn(batch, spec.kv_heads, past, spec.head_dim, generator=gen)
            for spec in self._specs()
            for _ in range(2 * spec.layers)
        ]
        return input_ids, mask, positions, *caches

    def _split_past(self, past: Sequence[torch.Tensor]) -> list[Sequence[torch.Tensor]]:
        specs = self._specs()
        expected = sum(2 * spec.layers for spec in specs)
        if len(past) != expected:
            raise ValueError(
                f"{type(self).__name__} takes {expected} past tensors "
                f"({', '.join(f'{s.name}: {s.layers} layers x key/value' for s in specs)}), got {len(past)}"
            )
        parts, start = [], 0
        for spec in specs:
            parts.append(past[start : start + 2 * spec.layers])
            start += 2 * spec.layers
        return parts


class DetachedDecoder(_Graph):
    """The detached shadow: a plain HF `*ForCausalLM` (see `detached_causal_lm`) with one cache, "shadow" (any causal
    LM of a supported family works; `--mode chat` exports the base this way, its cache named "base")."""

    def __init__(
        self,
        causal_lm: nn.Module,
        head_token_ids: Sequence[int] | None = None,
        cache_name: str = SHADOW_CACHE,
    ) -> None:
        super().__init__()
        decoder = _check_supported_decoder(causal_lm, "the detached model")
        self.embed_tokens = causal_lm.get_input_embeddings()
        self.vocab_size = int(self.embed_tokens.num_embeddings)
        self.stack = _Stack(decoder, cache_name)
        self.head = _Head(causal_lm.get_output_embeddings(), head_token_ids, "LM head")
        self.head_token_ids = None if head_token_ids is None else list(head_token_ids)
        self.eval()

    def _stacks(self) -> list[_Stack]:
        return [self.stack]

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        *past: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        (past,) = self._split_past(past)
        hidden = self.embed_tokens(input_ids)
        mask = causal_mask(attention_mask, input_ids.shape[1], hidden.dtype)
        hidden, present = self.stack(hidden, position_ids, mask, past)
        return (self.head(self.stack.norm(hidden[:, -1])), *present)


class _AttachedCore(nn.Module):
    """Shadow seed + base decoder with injection/update, shared by the attached LM and classifier graphs."""

    def __init__(self, parts: ShadowParts) -> None:
        super().__init__()
        decoder = _check_supported_decoder(parts.base, "the ShadowPEFT base model")
        self.embed_tokens = parts.base_embeddings
        self.shadow_embed_tokens = None if parts.share else parts.embeddings
        self.share = parts.share
        self.base = _Stack(decoder, BASE_CACHE, adapter=parts.adapter)
        if not any(self.base.adapted):
            raise ValueError(f"adapter {parts.adapter!r} adapts no base block: there is no attached model")
        self.shadow = _Stack(parts.backbone, SHADOW_CACHE)
        self.projection = parts.projection
        self.vocab_size = int(self.embed_tokens.num_embeddings)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        base_past: Sequence[torch.Tensor] | None,
        shadow_past: Sequence[torch.Tensor] | None,
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """Returns (base hidden states before the final norm, seed state s0, base present, shadow present)."""
        hidden = self.embed_tokens(input_ids)
        mask = causal_mask(attention_mask, input_ids.shape[1], hidden.dtype)
        shadow_in = hidden if self.share else self.shadow_embed_tokens(input_ids)
        seed, shadow_present = self.shadow(shadow_in, position_ids, mask, shadow_past)
        seed = self.projection(self.shadow.norm(seed))
        hidden, base_present = self.base(hidden, position_ids, mask, base_past, shadow=seed)
        return hidden, seed, base_present, shadow_present


class AttachedDecoder(_Graph):
    """The frozen base with ShadowPEFT injection/update plus the shadow backbone; caches "base" and "shadow".

    `shadow_logits=True` adds an output `shadow_logits`: the detached shadow's own prediction head(s0) at the last
    position (same head rows), computed for free alongside.
    """

    def __init__(
        self, peft_model: Any, head_token_ids: Sequence[int] | None = None, shadow_logits: bool = False
    ) -> None:
        super().__init__()
        parts = shadow_parts_of(peft_model)
        if parts.task.value != "CAUSAL_LM":
            raise ValueError(
                f"adapter {parts.adapter!r} is a {parts.task.value} adapter: use AttachedClassifier"
            )
        self.core = _AttachedCore(parts)
        lm_head = active_module(parts.base.get_output_embeddings(), parts.adapter)
        self.head = _Head(lm_head, head_token_ids, "base LM head")
        self.shadow_head = _Head(parts.head, head_token_ids, "shadow head") if shadow_logits else None
        self.norm = self.core.base.norm
        self.vocab_size = self.core.vocab_size
        self.extra_outputs = ("shadow_logits",) if shadow_logits else ()
        self.head_token_ids = None if head_token_ids is None else list(head_token_ids)
        self.eval()

    def _stacks(self) -> list[_Stack]:
        return [self.core.base, self.core.shadow]

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        *past: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        base_past, shadow_past = self._split_past(past)
        hidden, seed, base_present, shadow_present = self.core(
            input_ids, attention_mask, position_ids, base_past, shadow_past
        )
        logits = self.head(self.norm(hidden[:, -1]))
        extra = () if self.shadow_head is None else (self.shadow_head(seed[:, -1]),)
        return (logits, *extra, *base_present, *shadow_present)


class DetachedClassifier(_Graph):
    """The detached shadow of a SEQ_CLS adapter (a plain HF `*ForSequenceClassification`, see
    `detached_sequence_classifier`): `input_ids, attention_mask -> logits [B, num_labels]`, no cache.

    Positions are 0..S-1 as in HF's and peft's forward without `position_ids`; pooling is at the last attended token
    (`pooling="last_real"`, HF's and peft's), or at position sum(mask) - 1 (`"mask_sum"`, the official package's
    detached classifier).
    """

    task = "seq_cls"

    def __init__(self, classifier: nn.Module, pooling: str = "last_real") -> None:
        super().__init__()
        self.pooling = pooling
        self._pool = _pooling(pooling)
        decoder = _check_supported_decoder(classifier, "the detached classifier")
        self.embed_tokens = classifier.get_input_embeddings()
        self.vocab_size = int(self.embed_tokens.num_embeddings)
        self.stack = _Stack(decoder, SHADOW_CACHE)
        self.score = _Head(getattr(classifier, "score", None), None, "classifier `score` head")
        self.eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.embed_tokens(input_ids)
        positions = _positions_like(input_ids)
        mask = causal_mask(attention_mask, input_ids.shape[1], hidden.dtype)
        hidden, _ = self.stack(hidden, positions, mask, None)
        return self.score(self.stack.norm(self._pool(hidden, attention_mask)))


class AttachedClassifier(_Graph):
    """The attached pair of a SEQ_CLS adapter: base classifier logits (and optionally the shadow classifier's)."""

    task = "seq_cls"

    def __init__(
        self, peft_model: Any, shadow_logits: bool = False, shadow_pooling: str | None = None
    ) -> None:
        super().__init__()
        parts = shadow_parts_of(peft_model)
        if parts.task.value != "SEQ_CLS":
            raise ValueError(
                f"adapter {parts.adapter!r} is a {parts.task.value} adapter: use AttachedDecoder"
            )
        self.core = _AttachedCore(parts)
        score = active_module(classifier_head(parts.base), parts.adapter)
        self.score = _Head(score, None, "base classifier `score` head")
        self.shadow_head = _Head(parts.head, None, "shadow classifier head") if shadow_logits else None
        # the dialect's shadow pooling unless told otherwise (peft: last attended token; official: sum(mask) - 1)
        self.shadow_pooling = shadow_pooling or getattr(parts, "shadow_pooling", "last_real")
        self._pool_shadow = _pooling(self.shadow_pooling)
        self.norm = self.core.base.norm
        self.vocab_size = self.core.vocab_size
        self.extra_outputs = ("shadow_logits",) if shadow_logits else ()
        self.eval()

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        positions = _positions_like(input_ids)
        hidden, seed, _, _ = self.core(input_ids, attention_mask, positions, None, None)
        logits = self.score(self.norm(_pool_last_real(hidden, attention_mask)))
        if self.shadow_head is None:
            return logits
        return logits, self.shadow_head(self._pool_shadow(seed, attention_mask))


def _positions_like(input_ids: torch.Tensor) -> torch.Tensor:
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)
    return positions[None, :].expand(input_ids.shape[0], -1)


def graph_for(
    model: Any, mode: str, head_token_ids: Sequence[int] | None = None, shadow_logits: bool = False
) -> _Graph:
    """The export graph for a ShadowPEFT model: `mode` "detached" or "attached", picked by the adapter's task.

    `model` is a peft `PeftModel` with a ShadowPEFT adapter or an official `shadow-peft` checkpoint loaded by
    `export.official.load_official_model` (an `OfficialShadowModel`); both export the same way. The
    detached graph runs the folded detached shadow (`detached_model` / `official_detached_model`).
    """
    parts = shadow_parts_of(model)
    task = parts.task.value
    if mode not in ("detached", "attached"):
        raise ValueError(f"unknown export mode {mode!r}: expected 'detached' or 'attached'")
    if task != "CAUSAL_LM" and head_token_ids is not None:
        raise ValueError("head_token_ids restricts an LM head; a SEQ_CLS adapter has a classifier head")
    if mode == "detached":
        folded = detached_hf_model(model)
        if task == "CAUSAL_LM":
            return DetachedDecoder(folded, head_token_ids)
        return DetachedClassifier(folded, pooling=getattr(parts, "shadow_pooling", "last_real"))
    if task == "CAUSAL_LM":
        return AttachedDecoder(model, head_token_ids, shadow_logits)
    return AttachedClassifier(model, shadow_logits)
