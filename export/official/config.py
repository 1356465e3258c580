"""`shadow_config.json`: the official package's `ShadowConfig`, and the names of its files and head modules."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from shadow_edge.export.checkpoint import OFFICIAL_CONFIG, OFFICIAL_WEIGHTS, CheckpointError

__all__ = ["OFFICIAL_CONFIG", "OFFICIAL_WEIGHTS"]

OFFICIAL_LEGACY_WEIGHTS = "shadow_adapter.pt"
OFFICIAL_MODULES = "shadow_modules.safetensors"
ADAPTER_NAME = "default"
Task = Literal["causal_lm", "seq_cls"]
HEAD_MODULES: dict[str, tuple[str, str]] = {
    "causal_lm": ("lm_head", "shadow_lm_head"),
    "seq_cls": ("classifier_head", "shadow_classifier_head"),
}
ADAPTER_PREFIXES = (
    "shadow_model.",
    "shadow_hidden_projection.",
    "shadow_injection_model.",
    "shadow_update_model.",
)


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
