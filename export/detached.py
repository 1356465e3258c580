"""Turn a trained HF-peft ShadowPEFT adapter into an ordinary Hugging Face checkpoint (the "detached shadow").

peft's `unload_shadow()` returns a `DetachedShadowModel` wrapper that computes `head(projection(backbone(x)))`. That
wrapper is not a registered architecture, so ONNX tools (optimum's exporter, onnxruntime-genai) cannot handle it. But
the backbone is a decoder of the base's family (e.g. `LlamaModel`, final norm included), the projection is linear (or
the identity) and comes after that norm, and the head is linear: so `head(projection(h)) = (W_head @ W_proj) h`
exactly, and the whole thing is a plain `*ForCausalLM` (or `*ForSequenceClassification`) of the backbone's config with
the folded head. This module builds that model and saves it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from shadow_edge.export.parts import ShadowParts
from torch import nn
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    PreTrainedModel,
)

DETACHED_INFO_FILE = "shadow_edge_detached.json"


def standalone_config(parts: ShadowParts, tie: bool) -> Any:
    """The backbone's config, completed for a standalone model of the same family."""
    cfg = copy.deepcopy(parts.backbone.config)
    cfg.vocab_size = int(parts.embeddings.weight.shape[0])
    cfg.tie_word_embeddings = tie
    return cfg


def instantiate_standalone(auto_cls: type, cfg: Any, parts: ShadowParts) -> PreTrainedModel:
    """A fresh `auto_cls` model (e.g. `AutoModelForCausalLM`) of `cfg`, in the backbone's dtype."""
    try:
        model = auto_cls.from_config(cfg, dtype=next(parts.backbone.parameters()).dtype)
    except ValueError as err:
        raise ValueError(
            f"transformers has no {auto_cls.__name__} for the shadow backbone's config "
            f"({type(cfg).__name__}, model_type {cfg.model_type!r})"
        ) from err
    model.config.architectures = [type(model).__name__]
    return model


def copy_decoder(model: PreTrainedModel, parts: ShadowParts) -> None:
    """Copy layers + final norm (and whatever else the backbone owns) and the input embeddings into `model`."""
    decoder = model.base_model
    if type(decoder) is not type(parts.backbone):
        raise ValueError(
            f"{type(model).__name__} wraps a {type(decoder).__name__}, not the shadow backbone's "
            f"{type(parts.backbone).__name__}"
        )
    state = dict(parts.backbone.state_dict())
    target_embeddings = decoder.get_input_embeddings()
    embed_key = next(f"{name}.weight" for name, mod in decoder.named_modules() if mod is target_embeddings)
    state[embed_key] = parts.embeddings.weight.detach()
    decoder.load_state_dict(state, strict=True)


def finish_standalone(model: PreTrainedModel, parts: ShadowParts) -> PreTrainedModel:
    """The base's generation config, frozen weights and the base's train/eval mode."""
    base_generation = getattr(parts.base, "generation_config", None)
    if base_generation is not None and model.can_generate():
        model.generation_config = copy.deepcopy(base_generation)
    model.requires_grad_(False)
    model.train(parts.base.training)
    return model


def detached_causal_lm(peft_model: Any) -> PreTrainedModel:
    """The detached shadow of a ShadowPEFT CAUSAL_LM adapter as a plain `*ForCausalLM` of the backbone's family.

    Layers and final norm come from the shadow backbone, the input embeddings are the shared base table or the
    backbone's own, and the LM head is the (frozen or `modules_to_save`-trained) base head with the projection folded
    in: `W_head @ W_proj`. Embeddings stay tied only when there is no projection and the base head is the shared
    table. All tensors are copies: the result is independent of `peft_model`.
    """
    parts = ShadowParts(peft_model)
    if parts.task.value != "CAUSAL_LM":
        raise ValueError(
            f"adapter {parts.adapter!r} is a {parts.task.value} adapter, not CAUSAL_LM: use "
            "detached_sequence_classifier() (or detached_model(), which picks by task)"
        )
    if parts.head.bias is not None:
        raise ValueError("the base LM head has a bias; HF causal-LM heads of this family have none")
    tie = parts.head_tied_to_embeddings()
    model = instantiate_standalone(AutoModelForCausalLM, standalone_config(parts, tie), parts)
    with torch.no_grad():
        copy_decoder(model, parts)
        head = model.get_output_embeddings()
        weight = parts.head_weight()
        if head.weight.shape != weight.shape:
            raise ValueError(f"LM head shape {tuple(weight.shape)} does not fit {tuple(head.weight.shape)}")
        if not tie:
            head.weight.copy_(weight)
        elif head.weight.data_ptr() != model.get_input_embeddings().weight.data_ptr():
            raise RuntimeError("transformers did not tie the head although tie_word_embeddings is set")
    return finish_standalone(model, parts)


def detached_sequence_classifier(peft_model: Any) -> PreTrainedModel:
    """The detached shadow of a ShadowPEFT SEQ_CLS adapter as a plain `*ForSequenceClassification`.

    `score` is peft's `shadow_head` (its own trained copy of the classifier) with the projection folded in. The HF
    classifier pools the last non-pad token found via `config.pad_token_id` (copied from the base), where peft's
    detached model pools the last attended position: they agree when padding is exactly the pad token.
    """
    parts = ShadowParts(peft_model)
    if parts.task.value != "SEQ_CLS":
        raise ValueError(
            f"adapter {parts.adapter!r} is a {parts.task.value} adapter: use detached_causal_lm()"
        )
    cfg = standalone_config(parts, tie=False)
    cfg.num_labels = parts.head.out_features
    for attr in ("id2label", "label2id", "problem_type", "pad_token_id"):
        if hasattr(parts.base.config, attr):
            setattr(cfg, attr, copy.deepcopy(getattr(parts.base.config, attr)))
    model = instantiate_standalone(AutoModelForSequenceClassification, cfg, parts)
    score = getattr(model, "score", None)
    if not isinstance(score, nn.Linear):
        raise ValueError(f"{type(model).__name__} has no linear `score` head to hold the shadow classifier")
    if (score.bias is None) != (parts.head.bias is None):
        raise ValueError("the shadow classifier and the HF `score` head disagree on having a bias")
    with torch.no_grad():
        copy_decoder(model, parts)
        score.weight.copy_(parts.head_weight())
        if score.bias is not None:
            score.bias.copy_(parts.head.bias.detach())
    return finish_standalone(model, parts)


def detached_model(peft_model: Any) -> PreTrainedModel:
    """`detached_causal_lm` or `detached_sequence_classifier`, by the adapter's task type."""
    task = ShadowParts(peft_model).task.value
    return detached_causal_lm(peft_model) if task == "CAUSAL_LM" else detached_sequence_classifier(peft_model)


def detached_info(peft_model: Any, adapter_path: str | Path | None = None) -> dict[str, Any]:
    """Provenance of a detached export: where the adapter came from and what was folded."""
    parts = ShadowParts(peft_model)
    return {
        "format": "shadow-edge detached shadow v1",
        "adapter_path": str(adapter_path) if adapter_path is not None else None,
        "adapter_name": parts.adapter,
        "base_model_name_or_path": parts.config.base_model_name_or_path,
        "task_type": parts.task.value,
        "shadow_layers": int(parts.backbone.config.num_hidden_layers),
        "shadow_hidden_size": parts.shadow_hidden,
        "base_hidden_size": int(parts.head.in_features),
        "shared_base_embeddings": parts.share,
        "projection_folded": parts.folded,
        "tied_embeddings": parts.task.value == "CAUSAL_LM" and parts.head_tied_to_embeddings(),
    }


def save_detached(
    peft_model: Any,
    out_dir: str | Path,
    tokenizer: Any = None,
    adapter_path: str | Path | None = None,
) -> Path:
    """Save the detached shadow (`save_pretrained`, plus the tokenizer if given) and `shadow_edge_detached.json`.

    `adapter_path` is only recorded (peft does not remember where an adapter was loaded from). Returns `out_dir`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = detached_model(peft_model)
    model.save_pretrained(out)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    info = detached_info(peft_model, adapter_path)
    (out / DETACHED_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return out


def detached_hf_model(model: Any) -> PreTrainedModel:
    """The detached shadow as a plain HF model, for a peft or an official ShadowPEFT model (by dialect)."""
    if callable(getattr(model, "shadow_parts", None)):
        from shadow_edge.export.official.detach import official_detached_model

        return official_detached_model(model)
    return detached_model(model)
