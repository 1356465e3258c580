"""Export inputs are checked before any model is loaded: every bad file is a CheckpointError naming it."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from shadow_edge.export.checkpoint import (
    CheckpointError,
    check_adapter,
    check_base,
    check_pair,
    safetensors_shapes,
)


def write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    header, blobs, offset = {}, [], 0
    for name, array in tensors.items():
        data = np.ascontiguousarray(array, dtype=np.float32).tobytes()
        header[name] = {
            "dtype": "F32",
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))


def make_base(directory: Path, *, model_type: str = "llama", hidden: int = 16, layers: int = 2) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "model_type": model_type,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": 2,
        "vocab_size": 32,
    }
    (directory / "config.json").write_text(json.dumps(config))
    write_safetensors(directory / "model.safetensors", {"model.embed_tokens.weight": np.zeros((32, hidden))})
    return directory


def make_adapter(directory: Path, *, hidden: int = 16, layer: int = 1, peft_type: str = "SHADOW") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "adapter_config.json").write_text(
        json.dumps({"peft_type": peft_type, "task_type": "CAUSAL_LM"})
    )
    write_safetensors(
        directory / "adapter_model.safetensors",
        {
            f"base_model.model.model.layers.{layer}.shadow_down.default.weight": np.zeros((4, hidden)),
            "base_model.model.shadow_backbone.layers.0.mlp.up_proj.weight": np.zeros((8, hidden)),
        },
    )
    return directory


def test_good_pair_passes(tmp_path):
    base = check_base(make_base(tmp_path / "base"))
    adapter = check_adapter(make_adapter(tmp_path / "adapter"))
    check_pair(base, adapter)
    assert (adapter.dialect, adapter.task, base.num_layers) == ("peft", "causal_lm", 2)


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (lambda d: (d / "config.json").unlink(), "config.json: missing"),
        (lambda d: (d / "config.json").write_text("{not json"), "not valid JSON"),
        (lambda d: (d / "config.json").write_text("[1, 2]"), "expected a JSON object"),
        (
            lambda d: (d / "config.json").write_text(json.dumps({"model_type": "gpt2"})),
            "unsupported architecture",
        ),
        (
            lambda d: (d / "config.json").write_text(
                json.dumps({"model_type": "llama", "hidden_size": "16"})
            ),
            "non-integer 'hidden_size'",
        ),
        (lambda d: (d / "model.safetensors").unlink(), "no model weights"),
        (lambda d: (d / "model.safetensors").write_bytes(b"\x01\x02"), "truncated safetensors"),
        (
            lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:-10]),
            "truncated",
        ),
        (
            lambda d: (d / "model.safetensors").write_bytes(struct.pack("<Q", 4) + b"\xff\xfe{}"),
            "unreadable header",
        ),
    ],
)
def test_bad_base_is_named(tmp_path, break_it, message):
    directory = make_base(tmp_path / "base")
    break_it(directory)
    with pytest.raises(CheckpointError, match=message) as info:
        check_base(directory)
    assert str(directory) in str(info.value)


def test_missing_directories(tmp_path):
    with pytest.raises(CheckpointError, match="base model directory not found"):
        check_base(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="adapter directory not found"):
        check_adapter(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="not a ShadowPEFT adapter"):
        check_adapter(tmp_path)


def test_lora_adapter_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="peft_type is 'LORA'"):
        check_adapter(make_adapter(tmp_path / "adapter", peft_type="LORA"))


def test_truncated_adapter_weights(tmp_path):
    directory = make_adapter(tmp_path / "adapter")
    weights = directory / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1])
    with pytest.raises(CheckpointError, match="adapter_model.safetensors: truncated"):
        check_adapter(directory)


def test_adapter_for_another_hidden_size(tmp_path):
    base = check_base(make_base(tmp_path / "base", hidden=16))
    adapter = check_adapter(make_adapter(tmp_path / "adapter", hidden=24))
    with pytest.raises(CheckpointError, match="hidden size 24 but the base"):
        check_pair(base, adapter)


def test_adapter_for_a_deeper_base(tmp_path):
    base = check_base(make_base(tmp_path / "base", layers=2))
    adapter = check_adapter(make_adapter(tmp_path / "adapter", layer=5))
    with pytest.raises(CheckpointError, match="adapts layer 5 but the base"):
        check_pair(base, adapter)


def test_header_shape_mismatch(tmp_path):
    path = tmp_path / "x.safetensors"
    raw = json.dumps({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 8)
    with pytest.raises(CheckpointError, match="8 bytes for shape"):
        safetensors_shapes(path)
