"""The adapters this project trains on a frozen base: ShadowPEFT (HF peft's `ShadowConfig`) and the LoRA / DoRA
baselines at a comparable trainable-parameter budget.

The ShadowPEFT recipe (why each choice):
- a 4-layer "mirror" shadow backbone (same architecture as the base, same width) sharing the frozen base embeddings,
  so the detached shadow is an ordinary 4-layer causal LM with the base's tied head;
- its layers start as copies of base layers 0, 1, 2 and L-1 and its final norm as the base's: early layers carry
  token features, the last one maps into the head's space, so the detached model starts as a (poor) language model
  instead of noise and learns the task in a few hundred CPU steps;
- auxiliary loss weight 1.0 instead of peft's 0.05: the detached shadow must be good on its own, not a side product;
- injection rank 16 and update width 16 at every base block, dropout 0.1.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass

import torch
from shadow_edge.export.architectures import decoder_of
from torch import nn

SHADOW_ADAPTER = "default"


@dataclass(frozen=True)
class ShadowRecipe:
    shadow_layers: int = 4
    r: int = 16
    update_hidden_size: int = 16
    shadow_alpha: float = 0.1
    shadow_dropout: float = 0.1
    auxiliary_loss_weight: float = 1.0
    init_from_base: bool = True


@dataclass(frozen=True)
class LoraRecipe:
    r: int = 52  # about the ShadowPEFT recipe's trainable parameters on SmolLM2-135M (see README)
    alpha: int = 104
    dropout: float = 0.05
    use_dora: bool = False


def base_layers_for_shadow(num_base_layers: int, num_shadow_layers: int) -> list[int]:
    """Which base layers seed the shadow layers: the first ones, and the last base layer last."""
    if num_shadow_layers <= 0:
        raise ValueError("the shadow needs at least one layer")
    if num_shadow_layers > num_base_layers:
        raise ValueError(
            f"cannot seed {num_shadow_layers} shadow layers from a {num_base_layers}-layer base: "
            "use at most as many shadow layers, or init_from_base=False"
        )
    if num_shadow_layers == num_base_layers:
        return list(range(num_base_layers))
    if num_shadow_layers == 1:
        return [0]
    return [*range(num_shadow_layers - 1), num_base_layers - 1]


def build_shadow(base: nn.Module, recipe: ShadowRecipe = ShadowRecipe()):
    """Wrap `base` (a causal LM) with a trainable ShadowPEFT adapter; the base stays frozen."""
    from peft import ShadowConfig, get_peft_model

    decoder = decoder_of(base)
    seeds = base_layers_for_shadow(len(decoder.layers), recipe.shadow_layers) if recipe.init_from_base else []
    # Copied before peft wraps the blocks (which renames their parameters).
    layer_states = [copy.deepcopy(decoder.layers[i].state_dict()) for i in seeds]
    norm_state = copy.deepcopy(decoder.norm.state_dict()) if hasattr(decoder, "norm") else None

    config = ShadowConfig(
        task_type="CAUSAL_LM",
        r=recipe.r,
        update_hidden_size=recipe.update_hidden_size,
        shadow_alpha=recipe.shadow_alpha,
        shadow_dropout=recipe.shadow_dropout,
        shadow_num_hidden_layers=recipe.shadow_layers,
        auxiliary_loss_weight=recipe.auxiliary_loss_weight,
    )
    model = get_peft_model(base, config)
    if recipe.init_from_base:
        backbone = model.base_model.shadow_backbone[SHADOW_ADAPTER]
        with torch.no_grad():
            for layer, state in zip(backbone.layers, layer_states, strict=True):
                layer.load_state_dict(state)
            if norm_state is not None:
                backbone.norm.load_state_dict(norm_state)
    return model


def build_lora(base: nn.Module, recipe: LoraRecipe = LoraRecipe()):
    """Wrap `base` with LoRA (or DoRA) on every linear layer of every decoder block."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        task_type="CAUSAL_LM",
        r=recipe.r,
        lora_alpha=recipe.alpha,
        lora_dropout=recipe.dropout,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        use_dora=recipe.use_dora,
    )
    return get_peft_model(base, config)


def build_adapter(base: nn.Module, method: str, **overrides):
    """`method` is "shadow", "lora" or "dora"; `overrides` change single recipe fields."""
    if method == "shadow":
        return build_shadow(base, ShadowRecipe(**overrides))
    if method in ("lora", "dora"):
        return build_lora(base, LoraRecipe(use_dora=method == "dora", **overrides))
    raise ValueError(f"unknown method {method!r}: expected shadow, lora or dora")


def recipe_dict(method: str, **overrides) -> dict:
    recipe = (
        ShadowRecipe(**overrides)
        if method == "shadow"
        else LoraRecipe(use_dora=method == "dora", **overrides)
    )
    return asdict(recipe)


def count_trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def shadow_seed_state(model) -> torch.Tensor:
    """The initial shadow state s^(0) of the last forward of a peft ShadowPEFT model (what the detached shadow's
    head sees). peft keeps it on the tuner for its own auxiliary loss; fail loudly if a peft version moved it."""
    state = getattr(model.base_model, "_seed_shadow_state", None)
    if state is None:
        raise RuntimeError(
            "peft's ShadowModel did not record the shadow seed state (_seed_shadow_state); "
            "this training script supports peft 0.21.x"
        )
    return state


def lr_at(step: int, peak: float, warmup: int, progress: float, floor: float) -> float:
    """Linear warm-up over `warmup` steps, then cosine from `peak` down to `floor` * `peak` as `progress` (share of
    the step or time budget used) goes from 0 to 1."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * (floor + (1.0 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))
