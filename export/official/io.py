"""Reading, checking, loading and saving official checkpoint files: the package's tensor layout mapped onto
`OfficialShadowModel` and back (`shadow_adapter.safetensors`, legacy `shadow_adapter.pt`, `shadow_modules.safetensors`).
Every problem with a file is a `CheckpointError` naming it, raised before anything is loaded where shapes suffice."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from shadow_edge.export.architectures import SUPPORTED_MODEL_TYPES
from shadow_edge.export.checkpoint import (
    PEFT_CONFIG,
    CheckpointError,
    read_json,
    safetensors_shapes,
)
from shadow_edge.export.official.config import (
    ADAPTER_NAME,
    ADAPTER_PREFIXES,
    HEAD_MODULES,
    OFFICIAL_CONFIG,
    OFFICIAL_LEGACY_WEIGHTS,
    OFFICIAL_MODULES,
    OFFICIAL_WEIGHTS,
    OfficialShadowConfig,
    Task,
)
from shadow_edge.export.official.modeling import (
    OfficialShadowModel,
    build_official_model,
    resolve_shadow_config,
)
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    PretrainedConfig,
    PreTrainedModel,
)

logger = logging.getLogger(__name__)


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

    unknown = sorted(k for k in shapes if not k.startswith(ADAPTER_PREFIXES))
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
    explicit = resolve_shadow_config(shadow_model)
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
