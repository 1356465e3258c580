"""Shadow pre-training: the shadow backbone trained on the task as a standalone causal LM, then grafted into a
ShadowPEFT adapter (the paper's detached robot-dog shadow is a pretrained small LM, not a stub).

The standalone model is exactly what the detached shadow computes: the base's (frozen) input embeddings, K decoder
layers seeded from base layers, the final norm, and the base's (frozen, tied) LM head; peft's shadow projection is the
identity when the shadow has the base's width. So after `graft_shadow` the adapter's detached shadow gives the
standalone model's logits, and the attach stage only has to learn injection and update around it.

Training takes the loss on program tokens only, over the action vocabulary (the tokens a program can be written
with): the runtime decodes with that restricted head under the program grammar, so this is the distribution the
robot samples from, and it spares the 49k-row head.
"""

from __future__ import annotations

import copy

import torch
from shadow_edge.export.architectures import decoder_of
from torch import nn
from transformers import AutoModelForCausalLM

from .recipes import SHADOW_ADAPTER, base_layers_for_shadow
from .task import IGNORE_INDEX, TrainingBatch


def build_standalone_shadow(base: nn.Module, num_layers: int) -> nn.Module:
    """A `num_layers`-layer causal LM of the base's architecture: embeddings and head shared with the base and
    frozen, layers and final norm copied from base layers (first ones, and the last base layer last) and trainable."""
    config = copy.deepcopy(base.config)
    config.num_hidden_layers = num_layers
    if getattr(config, "layer_types", None) is not None:
        config.layer_types = config.layer_types[:num_layers]
    model = AutoModelForCausalLM.from_config(config)
    decoder = decoder_of(base)
    seeds = base_layers_for_shadow(len(decoder.layers), num_layers)
    with torch.no_grad():
        for layer, i in zip(decoder_of(model).layers, seeds, strict=True):
            layer.load_state_dict(decoder.layers[i].state_dict())
        decoder_of(model).norm.load_state_dict(decoder.norm.state_dict())
    # share (not copy) the frozen embedding and head weights with the base
    decoder_of(model).embed_tokens = base.get_input_embeddings()
    model.lm_head = base.get_output_embeddings()
    for p in model.parameters():
        p.requires_grad_(False)
    for p in [*decoder_of(model).layers.parameters(), *decoder_of(model).norm.parameters()]:
        p.requires_grad_(True)
    return model


def shadow_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trainable part of a standalone shadow (layers and norm), keyed as in peft's shadow backbone."""
    decoder = decoder_of(model)
    state = {f"layers.{k}": v for k, v in decoder.layers.state_dict().items()}
    state.update({f"norm.{k}": v for k, v in decoder.norm.state_dict().items()})
    return {k: v.detach().clone() for k, v in state.items()}


def _load_layers_and_norm(module: nn.Module, state: dict[str, torch.Tensor], target: str) -> None:
    """`state` (a `shadow_state_dict`) into `module`; the embeddings are shared, so only they may be missing."""
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("embed_tokens")]
    if missing or unexpected:
        raise ValueError(
            f"shadow weights do not fit {target}: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )


def load_shadow_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load `shadow_state_dict` weights back into a standalone shadow of the same depth and width."""
    _load_layers_and_norm(decoder_of(model), state, "the standalone shadow")


def graft_shadow(peft_model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load standalone shadow weights into a ShadowPEFT model's shadow backbone (same depth and width)."""
    _load_layers_and_norm(peft_model.base_model.shadow_backbone[SHADOW_ADAPTER], state, "the adapter")


def restricted_tail_loss(
    model: nn.Module, batch: TrainingBatch, vocab_ids: torch.Tensor, vocab_index: torch.Tensor
) -> torch.Tensor:
    """Cross-entropy of the answer tokens over the action vocabulary only. `vocab_index` maps a token id to its row in
    `vocab_ids` (-1 for tokens outside it; targets are always inside)."""
    hidden = decoder_of(model)(
        input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False
    ).last_hidden_state[:, -batch.n_tail : -1, :]
    head = model.get_output_embeddings().weight[vocab_ids]  # [V_action, H]
    logits = hidden.float() @ head.float().T
    labels = batch.labels
    targets = torch.where(labels == IGNORE_INDEX, labels, vocab_index[labels.clamp(min=0)])
    if bool(((targets < 0) & (labels != IGNORE_INDEX)).any()):
        raise ValueError("a target token is outside the action vocabulary")
    return nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE_INDEX
    )
