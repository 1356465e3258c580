"""The export-directory contract: manifests are written, verified, and every corruption is a clear ManifestError."""

from __future__ import annotations

import json

import pytest
from shadow_edge.runtime.manifest import (
    FORMAT_VERSION,
    ManifestError,
    load_manifest,
    write_manifest,
)


def fields() -> dict:
    return {
        "mode": "detached",
        "precision": "int8",
        "task": "causal_lm",
        "decoder": "decoder.onnx",
        "architecture": {
            "model_type": "llama",
            "hidden_size": 8,
            "vocab_size": 16,
            "caches": [{"name": "shadow", "layers": 2, "kv_heads": 1, "head_dim": 4}],
        },
        "head": {"kind": "action", "size": 3, "token_ids": [2, 5, 7]},
        "special_tokens": {"bos": None, "eos": 2, "pad": 2},
        "prompt": {"prefix": "<s>", "suffix": "</s>"},
    }


@pytest.fixture
def export_dir(tmp_path):
    (tmp_path / "decoder.onnx").write_bytes(b"onnx bytes")
    (tmp_path / "tokenizer.json").write_text("{}")
    write_manifest(tmp_path, fields(), ["decoder.onnx", "tokenizer.json"])
    return tmp_path


def test_roundtrip(export_dir):
    manifest = load_manifest(export_dir)
    assert manifest.mode == "detached" and manifest.precision == "int8"
    assert manifest.decoder_path == export_dir / "decoder.onnx"
    assert manifest.head_token_ids == [2, 5, 7]
    (cache,) = manifest.caches
    assert cache.input_names() == [
        "past.shadow.0.key",
        "past.shadow.0.value",
        "past.shadow.1.key",
        "past.shadow.1.value",
    ]
    assert cache.output_names()[0] == "present.shadow.0.key"


def rewrite(export_dir, edit) -> None:
    path = export_dir / "manifest.json"
    raw = json.loads(path.read_text())
    edit(raw)
    path.write_text(json.dumps(raw))


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda d: (d / "decoder.onnx").write_bytes(b"onnx bytez"), "sha256"),
        (lambda d: (d / "decoder.onnx").write_bytes(b"onnx"), "truncated"),
        (lambda d: (d / "tokenizer.json").unlink(), "missing"),
        (lambda d: (d / "manifest.json").write_text("{not json"), "not valid JSON"),
        (lambda d: (d / "manifest.json").write_bytes(b"\xff\xfe\x00"), "not valid JSON"),
        (lambda d: (d / "manifest.json").unlink(), "missing"),
        (lambda d: rewrite(d, lambda r: r.update(format_version=FORMAT_VERSION + 1)), "format_version"),
        (lambda d: rewrite(d, lambda r: r.update(format="other")), "not a shadow-edge"),
        (lambda d: rewrite(d, lambda r: r.update(mode="sideways")), "unknown mode"),
        (lambda d: rewrite(d, lambda r: r["head"].update(size=4)), "token_ids"),
        (lambda d: rewrite(d, lambda r: r["files"].update({"../x": {"sha256": "", "size": 0}})), "outside"),
        (lambda d: rewrite(d, lambda r: r["architecture"].update(caches=[])), "empty"),
        (lambda d: rewrite(d, lambda r: r.pop("prompt")), "prompt"),
    ],
)
def test_corruption_is_a_clear_error(export_dir, corrupt, message):
    corrupt(export_dir)
    with pytest.raises(ManifestError, match=message):
        load_manifest(export_dir)


def test_not_a_directory(tmp_path):
    with pytest.raises(ManifestError, match="not a directory"):
        load_manifest(tmp_path / "nope")
