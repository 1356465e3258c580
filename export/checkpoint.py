"""Check the export's inputs before any work: the base checkpoint and the ShadowPEFT adapter directory.

Every problem is a `CheckpointError` that names the file and what is wrong with it, raised before a model is loaded:
a missing or unreadable file, a truncated safetensors file, an adapter that is not ShadowPEFT, an architecture the
exporter does not know, or an adapter whose tensor shapes do not fit the base.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shadow_edge.export.architectures import SUPPORTED_MODEL_TYPES, supported

PEFT_CONFIG = "adapter_config.json"
PEFT_WEIGHTS = "adapter_model.safetensors"
OFFICIAL_CONFIG = "shadow_config.json"
OFFICIAL_WEIGHTS = "shadow_adapter.safetensors"
SAFETENSORS_DTYPE_BYTES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
}


class CheckpointError(ValueError):
    """An input checkpoint cannot be exported; the message names the file and the problem."""


def read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return raw


def safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from a safetensors header, after checking that every tensor's bytes are in the file."""
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise CheckpointError(f"{path}: truncated safetensors file ({size} bytes, no header)")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > size - 8:
            raise CheckpointError(
                f"{path}: truncated or not a safetensors file (header says {header_len} bytes)"
            )
        try:
            header = json.loads(handle.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise CheckpointError(f"{path}: not a safetensors file (unreadable header)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: not a safetensors file (header is not an object)")
    data_bytes = size - 8 - header_len
    shapes: dict[str, tuple[int, ...]] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            start, end = (int(v) for v in entry["data_offsets"])
            shape = tuple(int(d) for d in entry["shape"])
            width = SAFETENSORS_DTYPE_BYTES.get(entry["dtype"])
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{path}: malformed header entry for tensor {name!r}") from None
        if end > data_bytes:
            raise CheckpointError(
                f"{path}: truncated: tensor {name!r} ends at byte {end} of the data section, which has {data_bytes}"
            )
        count = 1
        for dim in shape:
            count *= dim
        if width is not None and end - start != count * width:
            raise CheckpointError(f"{path}: tensor {name!r} has {end - start} bytes for shape {list(shape)}")
        shapes[name] = shape
    return shapes


@dataclass(frozen=True)
class BaseInfo:
    directory: Path
    config: dict[str, Any]

    @property
    def model_type(self) -> str:
        return str(self.config.get("model_type"))

    @property
    def hidden_size(self) -> int:
        return int(self.config["hidden_size"])

    @property
    def num_layers(self) -> int:
        return int(self.config["num_hidden_layers"])


def check_base(directory: str | Path) -> BaseInfo:
    """A local HF decoder-only checkpoint the exporter supports, with readable, complete weights."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: base model directory not found")
    config = read_json(directory / "config.json")
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise CheckpointError(
            f"{directory / 'config.json'}: unsupported architecture model_type={model_type!r} "
            f"(supported: {supported()})"
        )
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size"):
        if not isinstance(config.get(key), int):
            raise CheckpointError(f"{directory / 'config.json'}: missing or non-integer {key!r}")
    weights = sorted(directory.glob("*.safetensors"))
    if not weights and not list(directory.glob("*.bin")):
        raise CheckpointError(f"{directory}: no model weights (*.safetensors or *.bin)")
    for path in weights:
        safetensors_shapes(path)
    return BaseInfo(directory, config)


@dataclass(frozen=True)
class AdapterInfo:
    directory: Path
    dialect: str  # "peft" or "official"
    config: dict[str, Any]
    shapes: dict[str, tuple[int, ...]]

    @property
    def task(self) -> str:
        """ "causal_lm" or "seq_cls"."""
        task = str(self.config.get("task_type") or "CAUSAL_LM").upper()
        return "seq_cls" if task == "SEQ_CLS" else "causal_lm"


def _check_peft_adapter(directory: Path) -> AdapterInfo:
    config_path = directory / PEFT_CONFIG
    config = read_json(config_path)
    peft_type = config.get("peft_type")
    if peft_type != "SHADOW":
        raise CheckpointError(
            f"{config_path}: peft_type is {peft_type!r}, not 'SHADOW': only ShadowPEFT adapters have a shadow "
            "network to export"
        )
    task = str(config.get("task_type") or "CAUSAL_LM").upper()
    if task not in ("CAUSAL_LM", "SEQ_CLS"):
        raise CheckpointError(f"{config_path}: task_type {task!r} is not supported (CAUSAL_LM or SEQ_CLS)")
    return AdapterInfo(directory, "peft", config, safetensors_shapes(directory / PEFT_WEIGHTS))


def check_adapter(directory: str | Path) -> AdapterInfo:
    """Detect the adapter's dialect (HF peft or the official shadow-peft package) and check its files."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: adapter directory not found")
    if (directory / PEFT_CONFIG).is_file():
        return _check_peft_adapter(directory)
    if (directory / OFFICIAL_CONFIG).is_file():
        config = read_json(directory / OFFICIAL_CONFIG)
        return AdapterInfo(directory, "official", config, safetensors_shapes(directory / OFFICIAL_WEIGHTS))
    raise CheckpointError(
        f"{directory}: not a ShadowPEFT adapter: neither {PEFT_CONFIG} (HF peft) nor {OFFICIAL_CONFIG} "
        "(shadow-peft package) is there"
    )


def check_pair(base: BaseInfo, adapter: AdapterInfo) -> None:
    """The adapter's injection/update weights must act on the base's hidden size and on layers the base has."""
    weights = adapter.directory / (PEFT_WEIGHTS if adapter.dialect == "peft" else OFFICIAL_WEIGHTS)
    for name, shape in adapter.shapes.items():
        if (
            "shadow_down" in name
            and name.endswith("weight")
            and len(shape) == 2
            and shape[1] != base.hidden_size
        ):
            raise CheckpointError(
                f"{weights}: {name} expects hidden size {shape[1]} but the base {base.directory} has "
                f"{base.hidden_size}: this adapter was trained on a different base"
            )
        if ".layers." in name and "shadow_backbone" not in name:
            index = name.split(".layers.", 1)[1].split(".", 1)[0]
            if index.isdigit() and int(index) >= base.num_layers:
                raise CheckpointError(
                    f"{weights}: {name} adapts layer {index} but the base {base.directory} has only "
                    f"{base.num_layers} layers: this adapter was trained on a different base"
                )
