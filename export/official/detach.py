"""The detached shadow of an official checkpoint as a plain HF model, folded exactly as `export.detached` folds a
peft adapter's."""

from __future__ import annotations

import copy

import torch
from shadow_edge.export.official.modeling import OfficialShadowModel
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, PreTrainedModel


def official_detached_model(model: OfficialShadowModel) -> PreTrainedModel:
    """The detached shadow as a plain HF `*ForCausalLM` / `*ForSequenceClassification` (projection folded into the
    shadow head), exactly as `export.detached` builds it for a peft adapter.

    Causal LM: equals `detached_forward` everywhere. Sequence classification: HF pools the last non-pad token where
    the package pools position sum(mask) - 1; they agree on unpadded and right-padded inputs.
    """
    from shadow_edge.export.detached import (
        copy_decoder,
        finish_standalone,
        instantiate_standalone,
        standalone_config,
    )

    parts = model.shadow_parts()
    if parts.head.bias is not None and model.task == "causal_lm":
        raise ValueError("the shadow LM head has a bias; HF causal-LM heads of this family have none")
    if model.task == "causal_lm":
        hf = instantiate_standalone(AutoModelForCausalLM, standalone_config(parts, tie=False), parts)
        head = hf.get_output_embeddings()
    else:
        cfg = standalone_config(parts, tie=False)
        cfg.num_labels = parts.head.out_features
        for attr in ("id2label", "label2id", "problem_type", "pad_token_id"):
            if hasattr(parts.base.config, attr):
                setattr(cfg, attr, copy.deepcopy(getattr(parts.base.config, attr)))
        hf = instantiate_standalone(AutoModelForSequenceClassification, cfg, parts)
        head = hf.score
        if (head.bias is None) != (parts.head.bias is None):
            raise ValueError("the shadow classifier and the HF `score` head disagree on having a bias")
    with torch.no_grad():
        copy_decoder(hf, parts)
        head.weight.copy_(parts.head_weight())
        if head.bias is not None:
            head.bias.copy_(parts.head.bias.detach())
    return finish_standalone(hf, parts)
