"""The official ShadowPEFT model rebuilt in torch with the package's math: the wrapped base blocks
(`OfficialShadowLayer`), the model with its attached and detached forwards (`OfficialShadowModel`), its description
for the export graphs (`OfficialParts`) and a fresh model on a base (`build_official_model`)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from shadow_edge.export.architectures import SUPPORTED_MODEL_TYPES, decoder_of, supported
from shadow_edge.export.checkpoint import CheckpointError, read_json
from shadow_edge.export.official.config import (
    ADAPTER_NAME,
    HEAD_MODULES,
    OFFICIAL_CONFIG,
    OfficialShadowConfig,
    Task,
)
from shadow_edge.export.parts import ShadowParts, classifier_head
from torch import nn
from transformers import AutoConfig, AutoModel, DynamicCache, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import ModelOutput


class _ShadowState:
    """The shadow state carried through the base decoder loop during one forward (plain object: not a module)."""

    def __init__(self) -> None:
        self.shadow: torch.Tensor | None = None


class OfficialShadowLayer(nn.Module):
    """Base block l >= 1 with the package's injection before it and its gated update after it.

    Attribute names follow peft's `ShadowLayer` (`base_layer`, per-adapter `shadow_down`/`shadow_up`/
    `shadow_update_transform`/`shadow_update_gate` ModuleDicts, `shadow_inject`, `shadow_update`), so code written
    against peft's layer works here; the math is the package's:

        inject:  h + alpha * up(down(h - s))                          (= einsum with D[l-1], U[l-1])
        update:  n = LayerNorm(h_out);  s + G(n) * (T(n) - s)          (LayerNorm shared by all blocks)
    """

    disable_adapters = False

    def __init__(
        self,
        base_layer: nn.Module,
        index: int,
        hidden_size: int,
        config: OfficialShadowConfig,
        norm: nn.LayerNorm,
        state: _ShadowState,
        adapter_name: str = ADAPTER_NAME,
    ) -> None:
        super().__init__()
        d, r, g = hidden_size, config.injection_hidden_size, config.gate_hidden_size
        self.base_layer = base_layer
        self.layer_index = index
        self.hidden_size = d
        self.shadow_alpha = {adapter_name: float(config.alpha)}
        self.shadow_down = nn.ModuleDict({adapter_name: nn.Linear(d, r, bias=False)})
        self.shadow_up = nn.ModuleDict({adapter_name: nn.Linear(r, d, bias=False)})
        self.shadow_dropout = nn.ModuleDict({adapter_name: nn.Dropout(config.dropout)})
        self.shadow_update_transform = nn.ModuleDict(
            {
                adapter_name: nn.Sequential(
                    nn.Linear(d, g, bias=False),
                    nn.SiLU(),
                    nn.Dropout(config.dropout),
                    nn.Linear(g, d, bias=False),
                )
            }
        )
        self.shadow_update_gate = nn.ModuleDict(
            {
                adapter_name: nn.Sequential(
                    nn.Linear(d, g, bias=False), nn.SiLU(), nn.Linear(g, d, bias=False), nn.Sigmoid()
                )
            }
        )
        self.shadow_norm = norm  # shared: the same module object in every wrapped block
        self.active_adapters = [adapter_name]
        self._state = state  # a plain object: deep copies of the model copy it once and keep it shared

    def __getattr__(self, name: str) -> Any:
        # HF decoder loops read per-layer attributes (Qwen3: `attention_type`) off the blocks they iterate over.
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "base_layer":
                raise
            return getattr(self.base_layer, name)

    def shadow_inject(
        self, hidden: torch.Tensor, shadow: torch.Tensor, adapter_name: str = ADAPTER_NAME
    ) -> torch.Tensor:
        delta = self.shadow_down[adapter_name](hidden - shadow)
        delta = self.shadow_up[adapter_name](self.shadow_dropout[adapter_name](delta))
        return hidden + self.shadow_alpha[adapter_name] * delta

    def shadow_update(
        self, hidden: torch.Tensor, shadow: torch.Tensor, adapter_name: str = ADAPTER_NAME
    ) -> torch.Tensor:
        normed = self.shadow_norm(hidden)
        candidate = self.shadow_update_transform[adapter_name](normed)
        gate = self.shadow_update_gate[adapter_name](normed)
        return shadow + gate * (candidate - shadow)

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        state = self._state
        if state.shadow is None:
            raise RuntimeError("the shadow state is not set: call OfficialShadowModel, not its base model")
        out = self.base_layer(self.shadow_inject(hidden_states, state.shadow), *args, **kwargs)
        hidden = out[0] if isinstance(out, tuple) else out
        state.shadow = self.shadow_update(hidden, state.shadow)
        return out


@dataclass
class OfficialShadowOutput(ModelOutput):
    """`logits` of the attached model (base head), `shadow_logits` of the shadow head on the seed state, and the
    paired KV cache (peft's `ShadowCache`) when `use_cache=True`."""

    logits: torch.Tensor | None = None
    shadow_logits: torch.Tensor | None = None
    past_key_values: Any = None


class OfficialShadowModel(nn.Module):
    """A shadow-peft checkpoint on its frozen base: the package's attached forward (`inference_mode="base_shadow"`)
    and detached forward (`"shadow_only"`), in this project's transformers.

    Build with `load_official_model` (a saved checkpoint) or `build_official_model` (fresh, randomly initialised).
    The base's decoder blocks 1..L-1 are wrapped in place.
    """

    def __init__(
        self,
        base: PreTrainedModel,
        backbone: PreTrainedModel,
        projection: nn.Module,
        config: OfficialShadowConfig,
        task: Task,
        shadow_head: nn.Linear,
        share_embeddings: bool,
    ) -> None:
        super().__init__()
        layers = decoder_of(base).layers
        if len(layers) < 2:
            raise ValueError("the official ShadowPEFT needs a base with at least 2 decoder blocks")
        hidden = int(base.config.hidden_size)
        self.config = config
        self.task: Task = task
        self.share_embeddings = share_embeddings
        self.base = base
        self.shadow_backbone = backbone
        self.shadow_projection = projection
        self.shadow_head = shadow_head
        self.shadow_norm = nn.LayerNorm(hidden)
        self._state = _ShadowState()
        base.requires_grad_(
            False
        )  # frozen, as the package's wrapper; the adapter modules below stay trainable
        for index in range(1, len(layers)):
            layer = layers[index]
            if isinstance(layer, OfficialShadowLayer):
                raise ValueError(
                    f"decoder block {index} of the base is already wrapped by another official model"
                )
            layers[index] = OfficialShadowLayer(layer, index, hidden, config, self.shadow_norm, self._state)
        self.eval()

    # -- parts ----------------------------------------------------------------------------------------------------

    @property
    def adapted_layers(self) -> list[OfficialShadowLayer]:
        return [layer for layer in decoder_of(self.base).layers if isinstance(layer, OfficialShadowLayer)]

    @property
    def base_head(self) -> nn.Module:
        """`lm_head` (causal LM) or the classifier (`score` / `classifier`) of the base."""
        if self.task == "causal_lm":
            return self.base.get_output_embeddings()
        return classifier_of(self.base)

    def shadow_input_embeddings(self) -> nn.Module:
        return (
            self.base.get_input_embeddings()
            if self.share_embeddings
            else self.shadow_backbone.get_input_embeddings()
        )

    def shadow_parts(self) -> OfficialParts:
        return OfficialParts(self)

    # -- forward --------------------------------------------------------------------------------------------------

    def shadow_seed(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: Any = None,
        use_cache: bool = False,
    ) -> torch.Tensor:
        """s0 = P(shadow_backbone(x)) for every position ([B, S, d]); `past_key_values` is the shadow's own cache."""
        kwargs: dict[str, Any] = {"attention_mask": attention_mask, "position_ids": position_ids}
        if self.share_embeddings:
            kwargs["inputs_embeds"] = self.base.get_input_embeddings()(input_ids)
        else:
            kwargs["input_ids"] = input_ids
        out = self.shadow_backbone(
            **kwargs, past_key_values=past_key_values, use_cache=use_cache, return_dict=True
        )
        return self.shadow_projection(out.last_hidden_state)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: Any = None,
        use_cache: bool = False,
    ) -> OfficialShadowOutput:
        """The attached model (base logits) plus the shadow head on the seed (shadow logits), like the package's
        `ShadowForCausalLM` / `ShadowForSequenceClassification` in `base_shadow` mode.

        With `use_cache=True` both the base and the shadow backbone keep KV caches (a peft `ShadowCache`, created on
        the first call); sequence classification never caches, as in the package.
        """
        from peft.tuners.shadow.layers import ShadowCache

        use_cache = bool(use_cache) and self.task == "causal_lm"
        cache = None
        if use_cache:
            cache = past_key_values if isinstance(past_key_values, ShadowCache) else None
            if cache is None:
                if past_key_values is not None:
                    raise TypeError("past_key_values must be the ShadowCache this model returned")
                cache = ShadowCache(DynamicCache(), DynamicCache())
        seed = self.shadow_seed(
            input_ids,
            attention_mask,
            position_ids,
            cache.shadow if cache is not None else None,
            use_cache=use_cache,
        )
        self._state.shadow = seed
        try:
            out = self.base(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                past_key_values=cache.base if cache is not None else None,
                use_cache=use_cache,
                return_dict=True,
            )
        finally:
            self._state.shadow = None
        if cache is not None:
            cache.base = out.past_key_values
        return OfficialShadowOutput(
            logits=out.logits, shadow_logits=self._shadow_head(seed, attention_mask), past_key_values=cache
        )

    def detached_forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The shadow alone (the package's `shadow_only` mode): shadow head on P(shadow_backbone(x))."""
        return self._shadow_head(self.shadow_seed(input_ids, attention_mask, position_ids), attention_mask)

    def _shadow_head(self, seed: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        if self.task == "causal_lm":
            return self.shadow_head(seed)
        return self.shadow_head(pool_like_package(seed, attention_mask))


def pool_like_package(hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """The package's classifier pooling: position sum(mask) - 1 of each row, i.e. the last real token only for
    right-padded or unpadded rows (a left-padded row gets an earlier position)."""
    if attention_mask is None:
        return hidden[:, -1]
    index = (attention_mask.long().sum(dim=1) - 1).clamp(min=0)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]


class OfficialParts(ShadowParts):
    """`export.parts.ShadowParts` for an `OfficialShadowModel`: the same fields, read off the official model, so the
    detached folding and the export graphs need no dialect switch."""

    # The package's shadow classifier pools position sum(mask) - 1 (`pool_like_package`); the export graphs read this
    # (peft's `ShadowParts` has no such attribute: its pooling is the last attended token, "last_real").
    shadow_pooling = "mask_sum"

    def __init__(self, model: OfficialShadowModel) -> None:  # noqa: D107 -- deliberately not calling ShadowParts.__init__
        from peft.utils import TaskType

        self.adapter = ADAPTER_NAME
        self.config = model.config
        self.task = TaskType.CAUSAL_LM if model.task == "causal_lm" else TaskType.SEQ_CLS
        self.tuner = model
        self.base = model.base
        self.backbone = model.shadow_backbone
        self.projection = model.shadow_projection
        self.share = model.share_embeddings
        self.head = model.shadow_head
        self.base_embeddings = model.base.get_input_embeddings()
        self.embeddings = model.shadow_input_embeddings()
        self.shadow_hidden = int(self.backbone.config.hidden_size)
        self.folded = isinstance(self.projection, nn.Linear)


def classifier_of(base: nn.Module) -> nn.Module:
    """The base's classifier head; a CheckpointError when it has none."""
    head = classifier_head(base)
    if head is not None:
        return head
    raise CheckpointError(f"{type(base).__name__} has no classifier head (`score` or `classifier`)")


def _normalize_layer_types(cfg: PretrainedConfig) -> PretrainedConfig:
    """Keep per-layer lists (Qwen `layer_types`) as long as the shadow's layer count, as the package's export does."""
    layer_types = getattr(cfg, "layer_types", None)
    layers = int(cfg.num_hidden_layers)
    if layer_types is not None:
        layer_types = list(layer_types) or ["full_attention"]
        cfg.layer_types = (layer_types + [layer_types[-1]] * layers)[:layers]
    if getattr(cfg, "max_window_layers", None) is not None and int(cfg.max_window_layers) > layers:
        cfg.max_window_layers = layers
    return cfg


def implicit_shadow_config(base_config: PretrainedConfig, config: OfficialShadowConfig) -> PretrainedConfig:
    """The package's implicit shadow: the base's config with `num_shadow_layers` layers and the optional overrides."""
    cfg = copy.deepcopy(base_config)
    cfg.num_hidden_layers = config.num_shadow_layers
    overrides = {
        "intermediate_size": config.shadow_intermediate_size,
        "num_attention_heads": config.shadow_num_attention_heads,
        "num_key_value_heads": config.shadow_num_key_value_heads,
        "head_dim": config.shadow_head_dim,
    }
    for attr, value in overrides.items():
        if value is not None:
            if not hasattr(cfg, attr):
                raise CheckpointError(f"{OFFICIAL_CONFIG}: the base config has no {attr!r} to override")
            setattr(cfg, attr, int(value))
    cfg.architectures = None
    return _normalize_layer_types(cfg)


def resolve_shadow_config(shadow_model: str | Path | PretrainedConfig | None) -> PretrainedConfig | None:
    if shadow_model is None or isinstance(shadow_model, PretrainedConfig):
        return copy.deepcopy(shadow_model)
    path = Path(shadow_model)
    raw = read_json(
        path / "config.json" if path.is_dir() else path
    )  # a clear error for a missing / broken file
    model_type = raw.pop("model_type", None)
    if not isinstance(model_type, str):
        raise CheckpointError(f"{path}: the shadow model config has no 'model_type'")
    try:
        return AutoConfig.for_model(model_type, **raw)
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: unknown shadow model_type {model_type!r} ({exc})") from None


def _backbone_config(shadow_cfg: PretrainedConfig) -> PretrainedConfig:
    """An explicit shadow's config may describe a task model; the package keeps its backbone (`.model`)."""
    cfg = copy.deepcopy(shadow_cfg)
    if cfg.model_type not in SUPPORTED_MODEL_TYPES:
        raise CheckpointError(
            f"the explicit shadow model's model_type {cfg.model_type!r} is not supported "
            f"(supported: {supported()})"
        )
    cfg.architectures = None
    return _normalize_layer_types(cfg)


def build_official_model(
    base: PreTrainedModel,
    config: OfficialShadowConfig,
    task: Task = "causal_lm",
    shadow_model: str | Path | PretrainedConfig | None = None,
    share_embeddings: bool | None = None,
) -> OfficialShadowModel:
    """A fresh (randomly initialised, as the package's `get_shadow_model`) official ShadowPEFT model on `base`.

    `shadow_model`: None for the package's implicit shadow (the base's architecture with `num_shadow_layers` layers,
    sharing the base embeddings), or the config of an explicit shadow model (own embeddings unless
    `share_embeddings=True`, the package's `prepare_shadow_model(remove_embed_tokens=True)`).
    """
    if task not in HEAD_MODULES:
        raise ValueError(f"task must be 'causal_lm' or 'seq_cls', got {task!r}")
    base_cfg = decoder_of(base).config
    explicit = resolve_shadow_config(shadow_model)
    cfg = implicit_shadow_config(base_cfg, config) if explicit is None else _backbone_config(explicit)
    share = explicit is None if share_embeddings is None else bool(share_embeddings)
    if explicit is None and not share:
        raise ValueError("the package's implicit shadow always shares the base embeddings")
    dtype = next(base.parameters()).dtype
    backbone = AutoModel.from_config(cfg, dtype=dtype)
    hidden, shadow_hidden = int(base_cfg.hidden_size), int(cfg.hidden_size)
    if share:
        if shadow_hidden != hidden:
            raise CheckpointError(
                f"the shadow backbone has hidden size {shadow_hidden} but shares the base embeddings of width {hidden}"
            )
        backbone.embed_tokens = None
    projection = nn.Identity() if shadow_hidden == hidden else nn.Linear(shadow_hidden, hidden, bias=False)
    head = copy.deepcopy(base.get_output_embeddings() if task == "causal_lm" else classifier_of(base))
    if not isinstance(head, nn.Linear):
        raise CheckpointError(f"the base's {task} head is a {type(head).__name__}, not a linear layer")
    model = OfficialShadowModel(base, backbone, projection, config, task, head, share)
    _init_like_package(model)
    return model.to(dtype)


def _init_like_package(model: OfficialShadowModel) -> None:
    """The package's initialisation: injection down ~ N(0, 0.02), up = 0 (so a fresh adapter is a no-op)."""
    with torch.no_grad():
        for layer in model.adapted_layers:
            nn.init.normal_(layer.shadow_down[ADAPTER_NAME].weight, std=0.02)
            nn.init.zeros_(layer.shadow_up[ADAPTER_NAME].weight)
