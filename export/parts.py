"""What a ShadowPEFT model is made of, for the code that folds or exports it: `ShadowParts` (the shadow backbone,
projection, heads and embeddings of one active adapter), `shadow_parts_of` (either dialect) and two small readers of
HF / peft modules (`active_module`, `classifier_head`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel


class ShadowParts:
    """What a ShadowPEFT model's shadow network is made of, read off a peft ShadowPEFT model (no copies yet).

    The official dialect's `OfficialParts` (`export.official.modeling`) has the same fields, so the detached folding
    (`export.detached`) and the export graphs (`export.decoder_graph`) treat both dialects alike.
    """

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
        self.head = active_module(tuner._resolve_shadow_head(self.adapter), self.adapter)
        self.base_embeddings: nn.Module = active_module(self.base.get_input_embeddings(), self.adapter)

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


def active_module(module: nn.Module | None, adapter: str) -> nn.Module | None:
    """Unwrap a peft `ModulesToSaveWrapper` (e.g. `modules_to_save=["lm_head"]`) to the copy the adapter uses."""
    if module is None:
        return None
    trained = getattr(module, "modules_to_save", None)
    if isinstance(trained, nn.ModuleDict):
        # nn.ModuleDict has no .get()
        return trained[adapter] if adapter in trained else module.original_module  # noqa: SIM401
    return module


def classifier_head(model: nn.Module) -> nn.Module | None:
    """The classifier of an HF `*ForSequenceClassification` (`score` in Llama / Qwen, `classifier` elsewhere)."""
    for attr in ("score", "classifier"):
        head = getattr(model, attr, None)
        if isinstance(head, nn.Module):
            return head
    return None


def shadow_parts_of(model: Any) -> ShadowParts:
    """What the shadow network of `model` is made of: `model.shadow_parts()` where the model describes itself (an
    official `shadow-peft` checkpoint, `OfficialShadowModel`), else read off a peft `PeftModel`."""
    describe = getattr(model, "shadow_parts", None)
    if callable(describe):
        return describe()
    return ShadowParts(model)
