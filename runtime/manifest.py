"""The export directory contract: what `shadow-export` writes and the runtime reads, and its verification.

An export directory holds `manifest.json`, `tokenizer.json`, the ONNX file(s) (with external data files, if any)
and `report.json`. The exporter writes the manifest with `write_manifest` (after every other file is final); the
runtime calls `load_manifest`, which checks every listed file's size and sha256 and the format version before any
ONNX session is created, so a corrupted or half-copied directory never runs.

manifest.json (format_version 1)::

    {
      "format": "shadow-edge-export", "format_version": 1,
      "mode": "detached" | "attached" | "chat",
      "precision": "fp32" | "int8" | "int8-qdq" | "int4",
      "task": "causal_lm" | "seq_cls",
      "decoder": "decoder.onnx",            # the graph the runtime runs (I/O below)
      "files": {"decoder.onnx": {"sha256": "...", "size": 123}, "tokenizer.json": {...}, ...},
      "architecture": {
        "model_type": "llama", "hidden_size": 576, "vocab_size": 49152,
        "caches": [                          # one entry per KV cache the decoder takes and returns, in order
          {"name": "shadow", "layers": 4, "kv_heads": 3, "head_dim": 64},
          ...                                # attached: {"name": "base", ...} and {"name": "shadow", ...}
        ]
      },
      "head": {"kind": "action" | "full", "size": N,
               "token_ids": [...]},          # row i of `logits` is the logit of vocabulary token token_ids[i];
                                             # "full": token_ids may be omitted (row i = token i)
      "special_tokens": {"bos": int | null, "eos": int, "pad": int},
      "prompt": {"prefix": "...", "suffix": "..."},   # prompt text = prefix + command + suffix, tokenized
                                                      # without adding special tokens
      "action_language": {"version": "...", "sha256": "..."},   # of actions.json the model was exported for
      "tools": {"torch": "...", "transformers": "...", "peft": "...", "onnx": "...", "onnxruntime": "..."},
      ...                                    # free-form extras (source paths, export options)
    }

Decoder graph I/O (every tensor batch-first; `S` new tokens, `P` past tokens; dims are dynamic):

- inputs: `input_ids` int64 [B, S]; `attention_mask` int64 [B, P + S] (1 = real token, 0 = left padding);
  `position_ids` int64 [B, S]; for every cache `c` in `architecture.caches` and layer `i`:
  `past.{c}.{i}.key` and `past.{c}.{i}.value`, float32 [B, kv_heads, P, head_dim] (P may be 0).
- outputs: `logits` float32 [B, head.size] -- for the LAST input position only (decoding never needs more);
  `present.{c}.{i}.key` / `present.{c}.{i}.value` [B, kv_heads, P + S, head_dim].
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .digest import file_sha256

MANIFEST_FILE = "manifest.json"
FORMAT = "shadow-edge-export"
FORMAT_VERSION = 1
# chat: the frozen base alone, full vocabulary, answering in text (`shadow-export --mode chat`)
MODES = ("detached", "attached", "chat")
PRECISIONS = ("fp32", "int8", "int8-qdq", "int4")


class ManifestError(RuntimeError):
    """The export directory is missing, corrupted, incomplete or of an unsupported version."""


def past_name(cache: str, layer: int, kind: str) -> str:
    return f"past.{cache}.{layer}.{kind}"


def present_name(cache: str, layer: int, kind: str) -> str:
    return f"present.{cache}.{layer}.{kind}"


@dataclass(frozen=True)
class CacheSpec:
    name: str
    layers: int
    kv_heads: int
    head_dim: int

    def input_names(self) -> list[str]:
        return [past_name(self.name, i, kind) for i in range(self.layers) for kind in ("key", "value")]

    def output_names(self) -> list[str]:
        return [present_name(self.name, i, kind) for i in range(self.layers) for kind in ("key", "value")]


@dataclass(frozen=True)
class Manifest:
    directory: Path
    raw: dict[str, Any]

    @property
    def mode(self) -> str:
        return self.raw["mode"]

    @property
    def precision(self) -> str:
        return self.raw["precision"]

    @property
    def decoder_path(self) -> Path:
        return self.directory / self.raw["decoder"]

    @property
    def tokenizer_path(self) -> Path:
        return self.directory / "tokenizer.json"

    @property
    def caches(self) -> list[CacheSpec]:
        return [
            CacheSpec(**{k: c[k] for k in ("name", "layers", "kv_heads", "head_dim")}) for c in self._caches()
        ]

    @property
    def head_token_ids(self) -> list[int] | None:
        """Vocabulary id of each logits row, or None when the head is the full vocabulary."""
        ids = self.raw["head"].get("token_ids")
        return None if ids is None else [int(i) for i in ids]

    @property
    def special_tokens(self) -> dict[str, int | None]:
        return dict(self.raw["special_tokens"])

    @property
    def prompt_prefix(self) -> str:
        return self.raw["prompt"]["prefix"]

    @property
    def prompt_suffix(self) -> str:
        return self.raw["prompt"]["suffix"]

    def _caches(self) -> list[dict[str, Any]]:
        return list(self.raw["architecture"]["caches"])


def _require(raw: dict[str, Any], key: str, kind: type | tuple[type, ...], where: Path) -> Any:
    if key not in raw:
        raise ManifestError(f"{where}: missing field {key!r}")
    if not isinstance(raw[key], kind):
        raise ManifestError(f"{where}: field {key!r} has the wrong type ({type(raw[key]).__name__})")
    return raw[key]


def _check_structure(raw: Any, path: Path) -> None:
    if not isinstance(raw, dict):
        raise ManifestError(f"{path}: expected a JSON object")
    if raw.get("format") != FORMAT:
        raise ManifestError(f"{path}: not a shadow-edge export manifest (format={raw.get('format')!r})")
    version = raw.get("format_version")
    if version != FORMAT_VERSION:
        raise ManifestError(
            f"{path}: manifest format_version {version!r} is not supported by this runtime (it reads "
            f"version {FORMAT_VERSION}); re-export the model with a matching shadow-export"
        )
    if _require(raw, "mode", str, path) not in MODES:
        raise ManifestError(f"{path}: unknown mode {raw['mode']!r} (expected one of {MODES})")
    if _require(raw, "precision", str, path) not in PRECISIONS:
        raise ManifestError(f"{path}: unknown precision {raw['precision']!r} (expected one of {PRECISIONS})")
    files = _require(raw, "files", dict, path)
    decoder = _require(raw, "decoder", str, path)
    for required in (decoder, "tokenizer.json"):
        if required not in files:
            raise ManifestError(f"{path}: {required!r} is not listed in 'files'")
    arch = _require(raw, "architecture", dict, path)
    caches = _require(arch, "caches", list, path)
    if (
        not caches and raw.get("task", "causal_lm") != "seq_cls"
    ):  # a classifier reads the prompt once: no cache
        raise ManifestError(f"{path}: architecture.caches is empty")
    for cache in caches:
        if not isinstance(cache, dict) or not all(
            isinstance(cache.get(k), int) and cache[k] > 0 for k in ("layers", "kv_heads", "head_dim")
        ):
            raise ManifestError(f"{path}: malformed cache entry {cache!r}")
    head = _require(raw, "head", dict, path)
    if not isinstance(head.get("size"), int) or head["size"] <= 0:
        raise ManifestError(f"{path}: head.size must be a positive integer")
    ids = head.get("token_ids")
    if ids is not None and (not isinstance(ids, list) or len(ids) != head["size"]):
        raise ManifestError(f"{path}: head.token_ids must list exactly head.size ids")
    special = _require(raw, "special_tokens", dict, path)
    if not isinstance(special.get("eos"), int):
        raise ManifestError(f"{path}: special_tokens.eos must be a token id")
    prompt = _require(raw, "prompt", dict, path)
    if not isinstance(prompt.get("prefix"), str) or not isinstance(prompt.get("suffix"), str):
        raise ManifestError(f"{path}: prompt.prefix and prompt.suffix must be strings")


def load_manifest(directory: str | Path, verify_files: bool = True) -> Manifest:
    """Read and check an export directory's manifest; with `verify_files`, check every file's size and sha256.

    Raises ManifestError naming the file and the problem; never returns a manifest for a directory that would
    not run as exported.
    """
    directory = Path(directory)
    path = directory / MANIFEST_FILE
    if not directory.is_dir():
        raise ManifestError(f"{directory}: not a directory (expected a shadow-export output directory)")
    if not path.is_file():
        raise ManifestError(f"{path}: missing; is {directory} a shadow-export output directory?")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: not valid JSON ({exc})") from None
    _check_structure(raw, path)
    if verify_files:
        for name, entry in raw["files"].items():
            file = directory / name
            if Path(name).is_absolute() or ".." in Path(name).parts:
                raise ManifestError(f"{path}: file entry {name!r} points outside the export directory")
            if not isinstance(entry, dict) or "sha256" not in entry or "size" not in entry:
                raise ManifestError(f"{path}: malformed entry for {name!r}")
            if not file.is_file():
                raise ManifestError(f"{file}: listed in the manifest but missing")
            size = file.stat().st_size
            if size != entry["size"]:
                raise ManifestError(
                    f"{file}: size {size} bytes, the manifest says {entry['size']} (truncated or replaced?)"
                )
            if file_sha256(file) != entry["sha256"]:
                raise ManifestError(f"{file}: sha256 does not match the manifest (corrupted or replaced)")
    return Manifest(directory, raw)


def write_manifest(directory: str | Path, fields: dict[str, Any], files: list[str]) -> Path:
    """Write manifest.json listing `files` (relative to `directory`) with their sizes and sha256 digests."""
    directory = Path(directory)
    raw = {"format": FORMAT, "format_version": FORMAT_VERSION, **fields}
    raw["files"] = {
        name: {"sha256": file_sha256(directory / name), "size": (directory / name).stat().st_size}
        for name in sorted(files)
    }
    path = directory / MANIFEST_FILE
    _check_structure(raw, path)
    path.write_text(json.dumps(raw, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
