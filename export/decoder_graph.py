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
the rows `head_token_ids` (row i = token head_token_ids[i]). The layers, heads and poolings the graphs are built
from are `export.graph_layers`.

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

from collections.abc import Sequence
from typing import Any

import torch
from shadow_edge.export.detached import detached_hf_model
from shadow_edge.export.graph_layers import (
    Head,
    LayerStack,
    causal_mask,
    pool_last_real,
    pooling_named,
    supported_decoder,
)
from shadow_edge.export.parts import ShadowParts, active_module, classifier_head, shadow_parts_of
from shadow_edge.runtime.manifest import CacheSpec
from torch import nn

BASE_CACHE = "base"
SHADOW_CACHE = "shadow"


# ----------------------------------------------------------------------------------------------------------- graphs


class _Graph(nn.Module):
    """Names, dynamic axes and example inputs shared by every export graph."""

    task = "causal_lm"
    extra_outputs: tuple[str, ...] = ()
    vocab_size: int

    def _stacks(self) -> list[LayerStack]:
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
        decoder = supported_decoder(causal_lm, "the detached model")
        self.embed_tokens = causal_lm.get_input_embeddings()
        self.vocab_size = int(self.embed_tokens.num_embeddings)
        self.stack = LayerStack(decoder, cache_name)
        self.head = Head(causal_lm.get_output_embeddings(), head_token_ids, "LM head")
        self.head_token_ids = None if head_token_ids is None else list(head_token_ids)
        self.eval()

    def _stacks(self) -> list[LayerStack]:
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
        decoder = supported_decoder(parts.base, "the ShadowPEFT base model")
        self.embed_tokens = parts.base_embeddings
        self.shadow_embed_tokens = None if parts.share else parts.embeddings
        self.share = parts.share
        self.base = LayerStack(decoder, BASE_CACHE, adapter=parts.adapter)
        if not any(self.base.adapted):
            raise ValueError(f"adapter {parts.adapter!r} adapts no base block: there is no attached model")
        self.shadow = LayerStack(parts.backbone, SHADOW_CACHE)
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


def _attached_parts(peft_model: Any, task: str, other_graph: str) -> ShadowParts:
    """The model's ShadowPEFT parts, when its adapter is of `task` (else the graph class to use instead)."""
    parts = shadow_parts_of(peft_model)
    if parts.task.value != task:
        raise ValueError(f"adapter {parts.adapter!r} is a {parts.task.value} adapter: use {other_graph}")
    return parts


class AttachedDecoder(_Graph):
    """The frozen base with ShadowPEFT injection/update plus the shadow backbone; caches "base" and "shadow".

    `shadow_logits=True` adds an output `shadow_logits`: the detached shadow's own prediction head(s0) at the last
    position (same head rows), computed for free alongside.
    """

    def __init__(
        self, peft_model: Any, head_token_ids: Sequence[int] | None = None, shadow_logits: bool = False
    ) -> None:
        super().__init__()
        parts = _attached_parts(peft_model, "CAUSAL_LM", "AttachedClassifier")
        self.core = _AttachedCore(parts)
        lm_head = active_module(parts.base.get_output_embeddings(), parts.adapter)
        self.head = Head(lm_head, head_token_ids, "base LM head")
        self.shadow_head = Head(parts.head, head_token_ids, "shadow head") if shadow_logits else None
        self.norm = self.core.base.norm
        self.vocab_size = self.core.vocab_size
        self.extra_outputs = ("shadow_logits",) if shadow_logits else ()
        self.head_token_ids = None if head_token_ids is None else list(head_token_ids)
        self.eval()

    def _stacks(self) -> list[LayerStack]:
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
        self._pool = pooling_named(pooling)
        decoder = supported_decoder(classifier, "the detached classifier")
        self.embed_tokens = classifier.get_input_embeddings()
        self.vocab_size = int(self.embed_tokens.num_embeddings)
        self.stack = LayerStack(decoder, SHADOW_CACHE)
        self.score = Head(getattr(classifier, "score", None), None, "classifier `score` head")
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
        parts = _attached_parts(peft_model, "SEQ_CLS", "AttachedDecoder")
        self.core = _AttachedCore(parts)
        score = active_module(classifier_head(parts.base), parts.adapter)
        self.score = Head(score, None, "base classifier `score` head")
        self.shadow_head = Head(parts.head, None, "shadow classifier head") if shadow_logits else None
        # the dialect's shadow pooling unless told otherwise (peft: last attended token; official: sum(mask) - 1)
        self.shadow_pooling = shadow_pooling or getattr(parts, "shadow_pooling", "last_real")
        self._pool_shadow = pooling_named(self.shadow_pooling)
        self.norm = self.core.base.norm
        self.vocab_size = self.core.vocab_size
        self.extra_outputs = ("shadow_logits",) if shadow_logits else ()
        self.eval()

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        positions = _positions_like(input_ids)
        hidden, seed, _, _ = self.core(input_ids, attention_mask, positions, None, None)
        logits = self.score(self.norm(pool_last_real(hidden, attention_mask)))
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
