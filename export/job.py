"""`ModeJob`: what every stage of one mode's export reads (the model, tokenizers, options, shared context, the
task plug-in and where to write), so that stages take one argument instead of a dozen."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shadow_edge.export.options import ExportOptions
from shadow_edge.export.results import ExportContext
from shadow_edge.export.task_checks import TaskChecks


@dataclass(frozen=True)
class ModeJob:
    mode: str  # "detached" | "attached"
    out: Path  # the (staged) directory this mode writes; holds the tokenizer files already
    work: Path  # scratch space inside `out`, removed when the mode is done
    options: ExportOptions
    context: ExportContext
    task_checks: TaskChecks
    model: Any  # the loaded ShadowPEFT model (either dialect)
    hf_tokenizer: Any  # the base's HF tokenizer
    rt_tokenizer: Any  # the `tokenizers.Tokenizer` of tokenizer.json, as the runtime loads it
    task: str  # "causal_lm" | "seq_cls"
    tokenizer_files: tuple[str, ...]

    @property
    def precision(self) -> str:
        return self.options.manifest_precision()
