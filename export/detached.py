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
from torch import nn
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    PreTrainedModel,
)

DETACHED_INFO_FILE = "shadow_edge_detached.json"


class _Parts:
    """What the detached shadow is made of, read off a peft ShadowPEFT model (no copies yet)."""

    def __init__(self, peft_model: Any) -> None:
        from peft.utils import PeftType, TaskType

        tuner = getattr(peft_model, "base_model", None)
        configs = getattr(peft_model, "peft_config", None)
        if tuner is None or not isinstance(configs, dict):
            raise ValueError(f"expected a peft PeftModel, got {type(peft_model).__name__}")
        self.adapter = peft_model.active_adapter
        if isinstance(self.adapter, list):  # peft returns a list when several adapters are active
            if len(self.adapter) != 1:
                raise ValueError(f"exactly one active adapter is needed, got {self.adapter}")
            self.adapter = self.adapter[0]
        self.config = configs[self.adapter]
        if self.config.peft_type != PeftType.SHADOW:
            raise ValueError(
                f"adapter {self.adapter!r} is {self.config.peft_type}, not ShadowPEFT: only a ShadowPEFT adapter "
                "has a detached shadow network to export"
            )
        task = self.config.task_type
        if task not in (TaskType.CAUSAL_LM, TaskType.SEQ_CLS):
            raise ValueError(
                f"unsupported ShadowPEFT task type {task!r}: only CAUSAL_LM and SEQ_CLS adapters have a shadow "
                "head that makes the detached shadow a complete model"
            )
        self.task = TaskType(task)
        self.tuner = tuner
        self.base = tuner.model
        self.backbone: nn.Module = tuner.shadow_backbone[self.adapter]
        self.projection: nn.Module = tuner.shadow_projection[self.adapter]
        self.share = bool(tuner._shadow_share_embeddings.get(self.adapter, False))
        self.head = _active_module(tuner._resolve_shadow_head(self.adapter), self.adapter)
        self.base_embeddings: nn.Module = _active_module(self.base.get_input_embeddings(), self.adapter)

        if not isinstance(self.backbone, PreTrainedModel):
            raise ValueError(
                f"the shadow backbone is a {type(self.backbone).__name__}, not a transformers decoder: "
                "only transformers decoder backbones (e.g. LlamaModel) export as an ordinary checkpoint"
            )
        if self.head is None:
            raise ValueError(
                f"adapter {self.adapter!r} has no shadow head (SEQ_CLS base without score/classifier?)"
            )
        if not isinstance(self.head, nn.Linear):
            raise ValueError(
                f"the shadow head is a {type(self.head).__name__}; only a linear head can absorb the projection"
            )

        self.shadow_hidden = int(self.backbone.config.hidden_size)
        if isinstance(self.projection, nn.Identity):
            self.folded = False
        elif isinstance(self.projection, nn.Linear):
            if self.projection.bias is not None:
                raise ValueError(
                    "the shadow projection has a bias; folding it would need a head bias, which HF LM heads lack"
                )
            self.folded = True
        else:
            raise ValueError(
                f"the shadow projection is a {type(self.projection).__name__}; only nn.Identity or a bias-free "
                "nn.Linear is linear and can be folded into the head exactly"
            )
        head_in = self.head.in_features
        proj_out = self.projection.out_features if self.folded else self.shadow_hidden
        if head_in != proj_out:
            raise ValueError(
                f"the shadow head takes width {head_in} but the projected shadow state has {proj_out}"
            )

        if self.share:
            embed_dim = self.base_embeddings.weight.shape[1]
            if embed_dim != self.shadow_hidden:
                raise ValueError(
                    f"the shadow backbone shares the base input embeddings (width {embed_dim}) but its hidden size "
                    f"is {self.shadow_hidden}: a decoder cannot take embeddings of another width"
                )
            self.embeddings = self.base_embeddings
        else:
            self.embeddings = self.backbone.get_input_embeddings()
            if self.embeddings is None:
                raise ValueError(
                    "the shadow backbone has no input embeddings and does not share the base ones"
                )

    def head_weight(self) -> torch.Tensor:
        """`W_head @ W_proj` (computed in float64 for the least rounding), or `W_head` without a projection."""
        weight = self.head.weight.detach()
        if not self.folded:
            return weight.clone()
        folded = weight.double() @ self.projection.weight.detach().double()
        return folded.to(weight.dtype)

    def head_tied_to_embeddings(self) -> bool:
        """True when the detached model can keep tied embeddings: no projection and the base head is the shared
        input table (a tied base)."""
        return (
            not self.folded
            and self.share
            and self.head.weight.data_ptr() == self.embeddings.weight.data_ptr()
            and self.head.weight.shape == self.embeddings.weight.shape
        )


def _active_module(module: nn.Module | None, adapter: str) -> nn.Module | None:
    """Unwrap a peft `ModulesToSaveWrapper` (e.g. `modules_to_save=["lm_head"]`) to the copy the adapter uses."""
    if module is None:
        return None
    trained = getattr(module, "modules_to_save", None)
    if isinstance(trained, nn.ModuleDict):
        # nn.ModuleDict has no .get()
        return trained[adapter] if adapter in trained else module.original_module  # noqa: SIM401
    return module


def _shadow_config(parts: _Parts, tie: bool):
    """The backbone's config, completed for a standalone model of the same family."""
    cfg = copy.deepcopy(parts.backbone.config)
    cfg.vocab_size = int(parts.embeddings.weight.shape[0])
    cfg.tie_word_embeddings = tie
    return cfg


def _instantiate(auto_cls: type, cfg: Any, parts: _Parts) -> PreTrainedModel:
    try:
        model = auto_cls.from_config(cfg, dtype=next(parts.backbone.parameters()).dtype)
    except ValueError as err:
        raise ValueError(
            f"transformers has no {auto_cls.__name__} for the shadow backbone's config "
            f"({type(cfg).__name__}, model_type {cfg.model_type!r})"
        ) from err
    model.config.architectures = [type(model).__name__]
    return model


def _load_decoder(model: PreTrainedModel, parts: _Parts) -> None:
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


def _finish(model: PreTrainedModel, parts: _Parts) -> PreTrainedModel:
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
    parts = _Parts(peft_model)
    if parts.task.value != "CAUSAL_LM":
        raise ValueError(
            f"adapter {parts.adapter!r} is a {parts.task.value} adapter, not CAUSAL_LM: use "
            "detached_sequence_classifier() (or detached_model(), which picks by task)"
        )
    if parts.head.bias is not None:
        raise ValueError("the base LM head has a bias; HF causal-LM heads of this family have none")
    tie = parts.head_tied_to_embeddings()
    model = _instantiate(AutoModelForCausalLM, _shadow_config(parts, tie), parts)
    with torch.no_grad():
        _load_decoder(model, parts)
        head = model.get_output_embeddings()
        weight = parts.head_weight()
        if head.weight.shape != weight.shape:
            raise ValueError(f"LM head shape {tuple(weight.shape)} does not fit {tuple(head.weight.shape)}")
        if not tie:
            head.weight.copy_(weight)
        elif head.weight.data_ptr() != model.get_input_embeddings().weight.data_ptr():
            raise RuntimeError("transformers did not tie the head although tie_word_embeddings is set")
    return _finish(model, parts)


def detached_sequence_classifier(peft_model: Any) -> PreTrainedModel:
    """The detached shadow of a ShadowPEFT SEQ_CLS adapter as a plain `*ForSequenceClassification`.

    `score` is peft's `shadow_head` (its own trained copy of the classifier) with the projection folded in. The HF
    classifier pools the last non-pad token found via `config.pad_token_id` (copied from the base), where peft's
    detached model pools the last attended position: they agree when padding is exactly the pad token.
    """
    parts = _Parts(peft_model)
    if parts.task.value != "SEQ_CLS":
        raise ValueError(
            f"adapter {parts.adapter!r} is a {parts.task.value} adapter: use detached_causal_lm()"
        )
    cfg = _shadow_config(parts, tie=False)
    cfg.num_labels = parts.head.out_features
    for attr in ("id2label", "label2id", "problem_type", "pad_token_id"):
        if hasattr(parts.base.config, attr):
            setattr(cfg, attr, copy.deepcopy(getattr(parts.base.config, attr)))
    model = _instantiate(AutoModelForSequenceClassification, cfg, parts)
    score = getattr(model, "score", None)
    if not isinstance(score, nn.Linear):
        raise ValueError(f"{type(model).__name__} has no linear `score` head to hold the shadow classifier")
    if (score.bias is None) != (parts.head.bias is None):
        raise ValueError("the shadow classifier and the HF `score` head disagree on having a bias")
    with torch.no_grad():
        _load_decoder(model, parts)
        score.weight.copy_(parts.head_weight())
        if score.bias is not None:
            score.bias.copy_(parts.head.bias.detach())
    return _finish(model, parts)


def detached_model(peft_model: Any) -> PreTrainedModel:
    """`detached_causal_lm` or `detached_sequence_classifier`, by the adapter's task type."""
    task = _Parts(peft_model).task.value
    return detached_causal_lm(peft_model) if task == "CAUSAL_LM" else detached_sequence_classifier(peft_model)


def detached_info(peft_model: Any, adapter_path: str | Path | None = None) -> dict[str, Any]:
    """Provenance of a detached export: where the adapter came from and what was folded."""
    parts = _Parts(peft_model)
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
