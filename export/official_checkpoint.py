"""Checkpoints written by the official `shadow-peft` package (0.1.x), loaded without it.

The package (github.com/ShadowLLM/shadow-peft) needs transformers > 5, which this project cannot install beside
optimum-onnx. Its checkpoints are small and simple, so this module reads them directly and rebuilds the model in
torch with the package's math (read off shadow_peft 0.1.1: `modules.py`, `peft_model.py`, `task_models.py`):

    files   shadow_config.json          ShadowConfig fields (num_shadow_layers, injection_hidden_size,
                                        gate_hidden_size, alpha, dropout, shadow_* sizes, modules_to_save)
            shadow_adapter.safetensors  shadow_model.*              the shadow backbone (a `*Model`; no embed_tokens
                                                                    when it shares the base input embeddings)
                                        shadow_hidden_projection.weight   [d, d_shadow], only when the widths differ
                                        shadow_injection_model.injection_downs [L-1, d, r], .injection_ups [L-1, r, d]
                                        shadow_update_model.hidden_norm.{weight,bias}      one LayerNorm, all layers
                                        shadow_update_model.update_transforms.{i}.{0,3}.weight   Linear-SiLU-Linear
                                        shadow_update_model.update_gates.{i}.{0,2}.weight        Linear-SiLU-Linear
            shadow_modules.safetensors  optional: lm_head / shadow_lm_head (causal LM) or classifier_head /
                                        shadow_classifier_head (sequence classification), "{module}.{param}"

    seed    s = P(shadow_backbone(x))          x = base input embeddings (shared) or the backbone's own
    block 0 h = block_0(h)                     (untouched)
    block l h = h + alpha * ((h - s) @ D[l-1]) @ U[l-1]                           (l = 1 .. L-1, injection)
            h = block_l(h)
            n = LayerNorm(h);  s = s + G[l-1](n) * (T[l-1](n) - s),  G ends in a sigmoid  (update)
    heads   logits = base head (lm_head / score, possibly replaced from shadow_modules)
            shadow_logits = shadow head(s_seed)  -- the *seed* state, not the updated one
            (sequence classification: the shadow state at index sum(mask) - 1, i.e. right-padding pooling)

The loaded `OfficialShadowModel` keeps the base's own HF forward (masks, rotary embedding, KV cache) and wraps blocks
1..L-1 in `OfficialShadowLayer`s whose attribute names and inference methods follow peft's `ShadowLayer`
(`base_layer`, `shadow_down[adapter]`, `shadow_inject(h, s, adapter)`, `shadow_update(h, s, adapter)`);
`OfficialShadowModel.shadow_parts()` describes it like `export.detached._Parts` describes a peft model, so the
tensor-only export graphs and the detached folding can treat both dialects alike.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import torch
from shadow_edge.export.base_model import decoder_of
from shadow_edge.export.checkpoint import (
    OFFICIAL_CONFIG,
    OFFICIAL_WEIGHTS,
    PEFT_CONFIG,
    SUPPORTED_MODEL_TYPES,
    CheckpointError,
    read_json,
    safetensors_shapes,
)
from shadow_edge.export.detached import _Parts
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    DynamicCache,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.modeling_outputs import ModelOutput

logger = logging.getLogger(__name__)

OFFICIAL_LEGACY_WEIGHTS = "shadow_adapter.pt"
OFFICIAL_MODULES = "shadow_modules.safetensors"
ADAPTER_NAME = "default"
Task = Literal["causal_lm", "seq_cls"]
HEAD_MODULES: dict[str, tuple[str, str]] = {
    "causal_lm": ("lm_head", "shadow_lm_head"),
    "seq_cls": ("classifier_head", "shadow_classifier_head"),
}
_PREFIXES = ("shadow_model.", "shadow_hidden_projection.", "shadow_injection_model.", "shadow_update_model.")


def detect_dialect(directory: str | Path) -> Literal["peft", "official"]:
    """Which dialect an adapter directory holds: "peft" (adapter_config.json) or "official" (shadow_config.json)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: adapter directory not found")
    if (directory / PEFT_CONFIG).is_file():
        return "peft"
    if (directory / OFFICIAL_CONFIG).is_file():
        return "official"
    raise CheckpointError(
        f"{directory}: not a ShadowPEFT adapter: neither {PEFT_CONFIG} (HF peft) nor {OFFICIAL_CONFIG} "
        "(shadow-peft package) is there"
    )


# -------------------------------------------------------------------------------------------- config + files


@dataclass(frozen=True)
class OfficialShadowConfig:
    """`shadow_config.json` (the package's `ShadowConfig`; unknown keys are ignored, as the package does)."""

    num_shadow_layers: int = 1
    injection_hidden_size: int = 16
    gate_hidden_size: int = 10
    alpha: float = 0.1
    dropout: float = 0.2
    shadow_intermediate_size: int | None = None
    shadow_num_attention_heads: int | None = None
    shadow_num_key_value_heads: int | None = None
    shadow_head_dim: int | None = None
    modules_to_save: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], where: Path | str = OFFICIAL_CONFIG) -> OfficialShadowConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        minimum = {"num_shadow_layers": 1, "injection_hidden_size": 1, "gate_hidden_size": 2}
        for name, value in values.items():
            if name in ("alpha", "dropout"):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise CheckpointError(f"{where}: {name!r} must be a number, got {value!r}")
            elif name == "modules_to_save":
                if value is None:
                    values[name] = []
                elif not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise CheckpointError(f"{where}: 'modules_to_save' must be a list of module names")
            elif (value is not None or name in minimum) and (
                isinstance(value, bool) or not isinstance(value, int) or value < minimum.get(name, 1)
            ):
                raise CheckpointError(
                    f"{where}: {name!r} must be an integer >= {minimum.get(name, 1)}, got {value!r}"
                )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class OfficialCheckpoint:
    """A checked official checkpoint directory: its config and the tensor shapes of its files (nothing loaded)."""

    directory: Path
    config: OfficialShadowConfig
    adapter_file: Path
    adapter_shapes: dict[str, tuple[int, ...]]
    modules_file: Path | None
    modules_shapes: dict[str, tuple[int, ...]]

    @property
    def num_adapted_layers(self) -> int:
        """L - 1: the package adapts every base block but the first."""
        return self.adapter_shapes["shadow_injection_model.injection_downs"][0]

    @property
    def hidden_size(self) -> int:
        return self.adapter_shapes["shadow_injection_model.injection_downs"][1]

    @property
    def own_embeddings(self) -> bool:
        return "shadow_model.embed_tokens.weight" in self.adapter_shapes

    @property
    def projected(self) -> bool:
        return "shadow_hidden_projection.weight" in self.adapter_shapes

    @property
    def shadow_hidden_size(self) -> int:
        if self.projected:
            return self.adapter_shapes["shadow_hidden_projection.weight"][1]
        norm = self.adapter_shapes.get("shadow_model.norm.weight")
        return norm[0] if norm else self.hidden_size

    def inferred_task(self) -> Task | None:
        """The task the saved head modules imply (the config does not record it), or None."""
        names = {key.split(".", 1)[0] for key in self.modules_shapes}
        if names & set(HEAD_MODULES["seq_cls"]):
            return "seq_cls"
        if names & set(HEAD_MODULES["causal_lm"]):
            return "causal_lm"
        return None

    def load_adapter_state(self) -> dict[str, torch.Tensor]:
        if self.adapter_file.suffix == ".pt":
            state = torch.load(self.adapter_file, map_location="cpu", weights_only=True)
        else:
            from safetensors.torch import load_file

            state = load_file(str(self.adapter_file))
        return dict(state)

    def load_modules_state(self) -> dict[str, torch.Tensor]:
        if self.modules_file is None:
            return {}
        from safetensors.torch import load_file

        return dict(load_file(str(self.modules_file)))


def _legacy_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- torch raises many types for a damaged pickle
        raise CheckpointError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a dict of tensors")
    return {k: tuple(v.shape) for k, v in state.items()}


def _expect(
    shapes: Mapping[str, tuple[int, ...]], key: str, shape: tuple[int, ...], path: Path, why: str
) -> None:
    if key not in shapes:
        raise CheckpointError(f"{path}: missing tensor {key!r}")
    if tuple(shapes[key]) != tuple(shape):
        raise CheckpointError(
            f"{path}: tensor {key!r} has shape {list(shapes[key])}, expected {list(shape)} {why}"
        )


def read_official_checkpoint(directory: str | Path) -> OfficialCheckpoint:
    """Check an official checkpoint's files (present, complete, internally consistent) without loading tensors."""
    directory = Path(directory)
    if detect_dialect(directory) != "official":
        raise CheckpointError(
            f"{directory}: holds {PEFT_CONFIG}, an HF peft adapter, not a shadow-peft package checkpoint"
        )
    config_path = directory / OFFICIAL_CONFIG
    config = OfficialShadowConfig.from_dict(read_json(config_path), config_path)

    adapter_file = directory / OFFICIAL_WEIGHTS
    if adapter_file.is_file():
        shapes = safetensors_shapes(adapter_file)
    elif (directory / OFFICIAL_LEGACY_WEIGHTS).is_file():
        adapter_file = directory / OFFICIAL_LEGACY_WEIGHTS
        shapes = _legacy_shapes(adapter_file)
    else:
        raise CheckpointError(f"{adapter_file}: missing (the adapter weights of this shadow-peft checkpoint)")

    unknown = sorted(k for k in shapes if not k.startswith(_PREFIXES))
    if unknown:
        raise CheckpointError(
            f"{adapter_file}: unexpected tensors {unknown[:4]} (not a shadow-peft adapter?)"
        )
    downs = shapes.get("shadow_injection_model.injection_downs")
    if downs is None or len(downs) != 3:
        raise CheckpointError(
            f"{adapter_file}: missing or malformed 'shadow_injection_model.injection_downs' (expected [L-1, d, r])"
        )
    layers, hidden, rank = downs
    gate = config.gate_hidden_size
    if rank != config.injection_hidden_size:
        raise CheckpointError(
            f"{adapter_file}: injection rank {rank} disagrees with injection_hidden_size "
            f"{config.injection_hidden_size} in {config_path}"
        )
    _expect(
        shapes, "shadow_injection_model.injection_ups", (layers, rank, hidden), adapter_file, "([L-1, r, d])"
    )
    for name in ("weight", "bias"):
        _expect(
            shapes, f"shadow_update_model.hidden_norm.{name}", (hidden,), adapter_file, "(LayerNorm over d)"
        )
    for i in range(layers):
        for kind, first, second in (("update_transforms", 0, 3), ("update_gates", 0, 2)):
            stem = f"shadow_update_model.{kind}.{i}"
            why = f"(gate_hidden_size {gate} in {config_path.name}, hidden size {hidden})"
            _expect(shapes, f"{stem}.{first}.weight", (gate, hidden), adapter_file, why)
            _expect(shapes, f"{stem}.{second}.weight", (hidden, gate), adapter_file, why)
    extra = sorted(
        k
        for k in shapes
        if k.split(".")[1:2] in (["update_transforms"], ["update_gates"])
        and not (k.split(".")[2].isdigit() and int(k.split(".")[2]) < layers)
    )
    if extra:
        raise CheckpointError(
            f"{adapter_file}: {extra[0]!r} is beyond the {layers} adapted layers of the injection"
        )
    if not any(k.startswith("shadow_model.") for k in shapes):
        raise CheckpointError(f"{adapter_file}: no shadow backbone tensors ('shadow_model.*')")
    if "shadow_hidden_projection.weight" in shapes:
        proj = shapes["shadow_hidden_projection.weight"]
        if len(proj) != 2 or proj[0] != hidden:
            raise CheckpointError(
                f"{adapter_file}: 'shadow_hidden_projection.weight' has shape {list(proj)}, expected [{hidden}, *]"
            )

    modules_file = directory / OFFICIAL_MODULES
    modules_shapes: dict[str, tuple[int, ...]] = {}
    if modules_file.exists():
        modules_shapes = safetensors_shapes(modules_file)
        known = {name for names in HEAD_MODULES.values() for name in names}
        unknown = sorted(k for k in modules_shapes if k.split(".", 1)[0] not in known)
        if unknown:
            logger.warning("%s: ignoring tensors the package does not load: %s", modules_file, unknown[:4])
        tasks = {
            t
            for t, names in HEAD_MODULES.items()
            if {k.split(".", 1)[0] for k in modules_shapes} & set(names)
        }
        if len(tasks) > 1:
            raise CheckpointError(f"{modules_file}: holds both causal-LM and classifier heads")
    return OfficialCheckpoint(
        directory, config, adapter_file, shapes, modules_file if modules_shapes else None, modules_shapes
    )


def _config_dict(config: PretrainedConfig | Mapping[str, Any]) -> dict[str, Any]:
    return config.to_dict() if isinstance(config, PretrainedConfig) else dict(config)


def check_official_pair(
    checkpoint: OfficialCheckpoint, base_config: PretrainedConfig | Mapping[str, Any]
) -> None:
    """Does the checkpoint fit this base (layers, width, vocabulary, head sizes)? Shapes only, before any loading."""
    base = _config_dict(base_config)
    where = base.get("_name_or_path") or "the base model"
    adapter = checkpoint.adapter_file
    layers = int(base["num_hidden_layers"])
    if checkpoint.hidden_size != int(base["hidden_size"]):
        raise CheckpointError(
            f"{adapter}: the injection acts on hidden size {checkpoint.hidden_size} but {where} has hidden size "
            f"{base['hidden_size']}: this checkpoint was trained on a different base"
        )
    if checkpoint.num_adapted_layers != layers - 1:
        raise CheckpointError(
            f"{adapter}: adapts {checkpoint.num_adapted_layers} blocks (blocks 1..L-1 of an L = "
            f"{checkpoint.num_adapted_layers + 1}-block base) but {where} has {layers} blocks: this checkpoint "
            "was trained on a different base"
        )
    vocab = int(base["vocab_size"])
    embed = checkpoint.adapter_shapes.get("shadow_model.embed_tokens.weight")
    if embed is not None and embed[0] != vocab:
        raise CheckpointError(
            f"{adapter}: the shadow backbone's own embeddings have {embed[0]} rows but {where} has a {vocab}-token "
            "vocabulary: both read the same input ids"
        )
    for key, shape in checkpoint.modules_shapes.items():
        module, _, param = key.partition(".")
        if (
            module in HEAD_MODULES["causal_lm"]
            and param == "weight"
            and tuple(shape) != (vocab, checkpoint.hidden_size)
        ):
            raise CheckpointError(
                f"{checkpoint.modules_file}: {key!r} has shape {list(shape)}, expected [{vocab}, "
                f"{checkpoint.hidden_size}] for {where}"
            )
        if module in HEAD_MODULES["seq_cls"] and param == "weight" and shape[-1] != checkpoint.hidden_size:
            raise CheckpointError(
                f"{checkpoint.modules_file}: {key!r} has shape {list(shape)}; its input width must be the hidden "
                f"size {checkpoint.hidden_size}"
            )
    labels = base.get("num_labels") or len(base.get("id2label") or {}) or None
    for name in HEAD_MODULES["seq_cls"]:
        shape = checkpoint.modules_shapes.get(f"{name}.weight")
        if shape is not None and labels is not None and shape[0] != int(labels):
            raise CheckpointError(
                f"{checkpoint.modules_file}: '{name}.weight' has {shape[0]} labels but {where} has {labels}"
            )


# ------------------------------------------------------------------------------------------------------- modules


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
        return _classifier_of(self.base)

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


class OfficialParts(_Parts):
    """`export.detached._Parts` for an `OfficialShadowModel`: the same fields, read off the official model, so the
    detached folding and the export graphs need no dialect switch."""

    # The package's shadow classifier pools position sum(mask) - 1 (`pool_like_package`); the export graphs read this
    # (peft's `_Parts` has no such attribute: its pooling is the last attended token, "last_real").
    shadow_pooling = "mask_sum"

    def __init__(self, model: OfficialShadowModel) -> None:  # noqa: D107 -- deliberately not calling _Parts.__init__
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


# ------------------------------------------------------------------------------------------------------ building


def _classifier_of(base: nn.Module) -> nn.Module:
    for attr in ("score", "classifier"):
        head = getattr(base, attr, None)
        if isinstance(head, nn.Module):
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


def _resolve_shadow_config(shadow_model: str | Path | PretrainedConfig | None) -> PretrainedConfig | None:
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
            f"(supported: {', '.join(SUPPORTED_MODEL_TYPES)})"
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
    explicit = _resolve_shadow_config(shadow_model)
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
    head = copy.deepcopy(base.get_output_embeddings() if task == "causal_lm" else _classifier_of(base))
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


# ---------------------------------------------------------------------------------------- state dict conversion


def official_state_dict(model: OfficialShadowModel) -> dict[str, torch.Tensor]:
    """The tensors of `shadow_adapter.safetensors`, named and shaped as the package saves them."""
    state: dict[str, torch.Tensor] = {}
    for key, value in model.shadow_backbone.state_dict().items():
        state[f"shadow_model.{key}"] = value
    if isinstance(model.shadow_projection, nn.Linear):
        state["shadow_hidden_projection.weight"] = model.shadow_projection.weight
    layers = model.adapted_layers
    state["shadow_injection_model.injection_downs"] = torch.stack(
        [lay.shadow_down[ADAPTER_NAME].weight.T for lay in layers]
    )
    state["shadow_injection_model.injection_ups"] = torch.stack(
        [lay.shadow_up[ADAPTER_NAME].weight.T for lay in layers]
    )
    for i, layer in enumerate(layers):
        transform, gate = layer.shadow_update_transform[ADAPTER_NAME], layer.shadow_update_gate[ADAPTER_NAME]
        state[f"shadow_update_model.update_transforms.{i}.0.weight"] = transform[0].weight
        state[f"shadow_update_model.update_transforms.{i}.3.weight"] = transform[3].weight
        state[f"shadow_update_model.update_gates.{i}.0.weight"] = gate[0].weight
        state[f"shadow_update_model.update_gates.{i}.2.weight"] = gate[2].weight
    state["shadow_update_model.hidden_norm.weight"] = model.shadow_norm.weight
    state["shadow_update_model.hidden_norm.bias"] = model.shadow_norm.bias
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}


def _load_official_state(model: OfficialShadowModel, state: dict[str, torch.Tensor], path: Path) -> None:
    backbone_state = {k[len("shadow_model.") :]: v for k, v in state.items() if k.startswith("shadow_model.")}
    expected = model.shadow_backbone.state_dict()
    missing = sorted(set(expected) - set(backbone_state))
    unexpected = sorted(set(backbone_state) - set(expected))
    wrong = sorted(
        k for k in set(expected) & set(backbone_state) if expected[k].shape != backbone_state[k].shape
    )
    if missing or unexpected or wrong:
        details = []
        if missing:
            details.append(f"missing {['shadow_model.' + k for k in missing[:3]]}")
        if unexpected:
            details.append(f"unexpected {['shadow_model.' + k for k in unexpected[:3]]}")
        if wrong:
            k = wrong[0]
            details.append(
                f"'shadow_model.{k}' is {list(backbone_state[k].shape)}, expected {list(expected[k].shape)}"
            )
        raise CheckpointError(
            f"{path}: the shadow backbone does not match the one built for it ({'; '.join(details)}). An implicit "
            "shadow is the base's architecture with num_shadow_layers layers and shared embeddings; a checkpoint "
            "trained with an explicit shadow model needs that model's config (shadow_model=...)"
        )
    with torch.no_grad():
        model.shadow_backbone.load_state_dict(backbone_state, strict=True)
        if isinstance(model.shadow_projection, nn.Linear):
            model.shadow_projection.weight.copy_(state["shadow_hidden_projection.weight"])
        downs = state["shadow_injection_model.injection_downs"]
        ups = state["shadow_injection_model.injection_ups"]
        for i, layer in enumerate(model.adapted_layers):
            layer.shadow_down[ADAPTER_NAME].weight.copy_(downs[i].T)
            layer.shadow_up[ADAPTER_NAME].weight.copy_(ups[i].T)
            transform, gate = (
                layer.shadow_update_transform[ADAPTER_NAME],
                layer.shadow_update_gate[ADAPTER_NAME],
            )
            transform[0].weight.copy_(state[f"shadow_update_model.update_transforms.{i}.0.weight"])
            transform[3].weight.copy_(state[f"shadow_update_model.update_transforms.{i}.3.weight"])
            gate[0].weight.copy_(state[f"shadow_update_model.update_gates.{i}.0.weight"])
            gate[2].weight.copy_(state[f"shadow_update_model.update_gates.{i}.2.weight"])
        model.shadow_norm.weight.copy_(state["shadow_update_model.hidden_norm.weight"])
        model.shadow_norm.bias.copy_(state["shadow_update_model.hidden_norm.bias"])


def _load_head_modules(model: OfficialShadowModel, checkpoint: OfficialCheckpoint) -> None:
    """The package's `_load_modules_to_save_into`: only modules listed in `modules_to_save` when that list is not
    empty, otherwise every head the file has; the shadow head was copied from the base head before this, so a file
    holding only the base head leaves the shadow head at the original base weights."""
    flat = checkpoint.load_modules_state()
    if not flat:
        return
    base_name, shadow_name = HEAD_MODULES[model.task]
    targets = {base_name: model.base_head, shadow_name: model.shadow_head}
    requested = set(checkpoint.config.modules_to_save)
    if requested:
        targets = {k: v for k, v in targets.items() if k in requested}
    with torch.no_grad():
        for name, module in targets.items():
            sub = {k[len(name) + 1 :]: v for k, v in flat.items() if k.startswith(name + ".")}
            if not sub:
                continue
            try:
                module.load_state_dict(sub, strict=True)  # in place: a tied lm_head moves the embeddings too
            except RuntimeError as exc:
                raise CheckpointError(
                    f"{checkpoint.modules_file}: {name} does not fit the base: {exc}"
                ) from None


def load_official_model(
    base: PreTrainedModel | str | Path,
    adapter_dir: str | Path,
    *,
    task: Task | None = None,
    shadow_model: str | Path | PretrainedConfig | None = None,
    dtype: torch.dtype = torch.float32,
) -> OfficialShadowModel:
    """Load a shadow-peft checkpoint onto its base (a loaded HF model, wrapped in place, or a checkpoint path).

    `task`: "causal_lm" / "seq_cls"; by default read off the saved heads, else the base's class / architecture,
    else causal LM. `shadow_model`: the config (or its directory) of the explicit shadow model the checkpoint was
    trained with; not needed for the package's implicit shadow.
    """
    checkpoint = read_official_checkpoint(adapter_dir)
    base_path = None
    if not isinstance(base, nn.Module):
        from shadow_edge.export.checkpoint import check_base

        base_path = Path(base)
        base_cfg = AutoConfig.from_pretrained(check_base(base_path).directory)
    else:
        base_cfg = base.config
    task = task or checkpoint.inferred_task() or _task_of_base(base, base_cfg)
    if task not in HEAD_MODULES:
        raise ValueError(f"task must be 'causal_lm' or 'seq_cls', got {task!r}")
    base_dict = base_cfg.to_dict()
    base_dict.setdefault("_name_or_path", str(base_path) if base_path else base_cfg.name_or_path)
    check_official_pair(checkpoint, base_dict)
    if base_cfg.model_type not in SUPPORTED_MODEL_TYPES:
        raise CheckpointError(f"the base's model_type {base_cfg.model_type!r} is not supported")

    if base_path is not None:
        auto = AutoModelForCausalLM if task == "causal_lm" else AutoModelForSequenceClassification
        base = auto.from_pretrained(base_path, dtype=dtype)
    explicit = _resolve_shadow_config(shadow_model)
    _check_shadow_shape(checkpoint, explicit, base_cfg)
    model = build_official_model(
        base.to(dtype),
        checkpoint.config,
        task,
        shadow_model=explicit,
        share_embeddings=not checkpoint.own_embeddings,
    )
    _load_official_state(model, checkpoint.load_adapter_state(), checkpoint.adapter_file)
    _load_head_modules(model, checkpoint)
    return model.to(dtype).requires_grad_(False).eval()


def _task_of_base(base: Any, base_cfg: PretrainedConfig) -> Task:
    names = [type(base).__name__] if isinstance(base, nn.Module) else list(base_cfg.architectures or [])
    return "seq_cls" if any(n.endswith("ForSequenceClassification") for n in names) else "causal_lm"


def _check_shadow_shape(
    checkpoint: OfficialCheckpoint, explicit: PretrainedConfig | None, base_cfg: PretrainedConfig
) -> None:
    """Catch the explicit/implicit confusion early, with the fix in the message."""
    path = checkpoint.adapter_file
    if explicit is None:
        if checkpoint.own_embeddings or checkpoint.projected:
            raise CheckpointError(
                f"{path}: the shadow backbone has its own embeddings or a hidden projection, so the checkpoint was "
                "trained with an explicit shadow model; pass that model's config (shadow_model=...)"
            )
        return
    shadow_hidden, hidden = int(explicit.hidden_size), int(base_cfg.hidden_size)
    if shadow_hidden != checkpoint.shadow_hidden_size:
        raise CheckpointError(
            f"{path}: the shadow backbone has hidden size {checkpoint.shadow_hidden_size} but the given shadow "
            f"model config says {shadow_hidden}"
        )
    if shadow_hidden != hidden and not checkpoint.projected:
        raise CheckpointError(
            f"{path}: missing 'shadow_hidden_projection.weight': the shadow width {shadow_hidden} differs from the "
            f"base width {hidden} (the package would silently use a random projection)"
        )


# --------------------------------------------------------------------------------------------- saving, detaching


def save_official_checkpoint(model: OfficialShadowModel, directory: str | Path) -> Path:
    """Write the package's files for `model`: `shadow_config.json`, `shadow_adapter.safetensors` and, as the
    package's `save_pretrained` does, `shadow_modules.safetensors` with the heads it trains -- those named in
    `modules_to_save`, or with an empty list both classifier heads (sequence classification) and no LM head."""
    from safetensors.torch import save_file

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / OFFICIAL_CONFIG).write_text(json.dumps(model.config.to_dict(), indent=2, sort_keys=True) + "\n")
    save_file(official_state_dict(model), str(out / OFFICIAL_WEIGHTS))
    base_name, shadow_name = HEAD_MODULES[model.task]
    modules = {base_name: model.base_head, shadow_name: model.shadow_head}
    requested = set(model.config.modules_to_save)
    saved = requested if requested else (set(modules) if model.task == "seq_cls" else set())
    state = {
        f"{name}.{k}": v.detach().cpu().contiguous().clone()
        for name, module in modules.items()
        if name in saved
        for k, v in module.state_dict().items()
    }
    if state:
        save_file(state, str(out / OFFICIAL_MODULES))
    return out


def official_detached_model(model: OfficialShadowModel) -> PreTrainedModel:
    """The detached shadow as a plain HF `*ForCausalLM` / `*ForSequenceClassification` (projection folded into the
    shadow head), exactly as `export.detached` builds it for a peft adapter.

    Causal LM: equals `detached_forward` everywhere. Sequence classification: HF pools the last non-pad token where
    the package pools position sum(mask) - 1; they agree on unpadded and right-padded inputs.
    """
    from shadow_edge.export.detached import _finish, _instantiate, _load_decoder, _shadow_config

    parts = model.shadow_parts()
    if parts.head.bias is not None and model.task == "causal_lm":
        raise ValueError("the shadow LM head has a bias; HF causal-LM heads of this family have none")
    if model.task == "causal_lm":
        hf = _instantiate(AutoModelForCausalLM, _shadow_config(parts, tie=False), parts)
        head = hf.get_output_embeddings()
    else:
        cfg = _shadow_config(parts, tie=False)
        cfg.num_labels = parts.head.out_features
        for attr in ("id2label", "label2id", "problem_type", "pad_token_id"):
            if hasattr(parts.base.config, attr):
                setattr(cfg, attr, copy.deepcopy(getattr(parts.base.config, attr)))
        hf = _instantiate(AutoModelForSequenceClassification, cfg, parts)
        head = hf.score
        if (head.bias is None) != (parts.head.bias is None):
            raise ValueError("the shadow classifier and the HF `score` head disagree on having a bias")
    with torch.no_grad():
        _load_decoder(hf, parts)
        head.weight.copy_(parts.head_weight())
        if head.bias is not None:
            head.bias.copy_(parts.head.bias.detach())
    return _finish(hf, parts)
