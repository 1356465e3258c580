"""The last stage of a mode: report.json, then manifest.json listing every file with its sha256 (written last, so
a directory with a manifest is complete)."""

from __future__ import annotations

import contextlib
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from shadow_edge.export.inputs import Inputs
from shadow_edge.export.job import ModeJob
from shadow_edge.export.results import GraphStage, ModeReport
from shadow_edge.runtime.manifest import write_manifest

TOOLS = ("torch", "transformers", "peft", "optimum", "optimum-onnx", "onnx", "onnxruntime", "tokenizers")


def tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TOOLS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    with contextlib.suppress(metadata.PackageNotFoundError):
        versions["shadow-edge"] = metadata.version("shadow-edge")
    return versions


def architecture_fields(base_config: dict[str, Any], caches: list[dict[str, Any]]) -> dict[str, Any]:
    """The manifest's `architecture`: the base's shape facts and the decoder's caches."""
    config = base_config
    return {
        "model_type": config.get("model_type"),
        "hidden_size": config.get("hidden_size"),
        "num_hidden_layers": config.get("num_hidden_layers"),
        "num_attention_heads": config.get("num_attention_heads"),
        "num_key_value_heads": config.get("num_key_value_heads", config.get("num_attention_heads")),
        "vocab_size": config.get("vocab_size"),
        "caches": caches,
    }


def head_fields(stage: GraphStage) -> dict[str, Any]:
    ids = stage.head_token_ids
    return {
        "kind": "action" if ids is not None else "full",
        "size": stage.head_size,
        **({"token_ids": ids} if ids is not None else {}),
    }


def write_report(out: Path, report: ModeReport) -> None:
    (out / "report.json").write_text(
        json.dumps(report.to_dict(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def write_mode_manifest(
    job: ModeJob, inputs: Inputs, stage: GraphStage, report: ModeReport, files: list[str]
) -> Path:
    """manifest.json of one mode; `files` are every file of the directory but report.json and the manifest."""
    context = job.context
    fields = {
        "mode": job.mode,
        "precision": job.precision,
        "task": job.task,
        "decoder": "decoder.onnx",
        "architecture": architecture_fields(inputs.base.config, stage.graph.caches),
        "head": head_fields(stage),
        "special_tokens": context.special_tokens.to_dict(),
        "prompt": context.prompt.to_dict(),
        **context.task_fields,
        "tools": context.tools,
        "source": context.source,
        "quantization": report.quantization.chosen if report.quantization is not None else None,
    }
    return write_manifest(job.out, fields, [*files, "report.json"])
