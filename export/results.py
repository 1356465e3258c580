"""Typed results of the export stages, and how each becomes the JSON of report.json.

Each stage of `export.pipeline` returns one of these; `ModeReport.to_dict()` is the per-mode report.json and
`ExportResult.to_dict()` the summary `shadow-export --json` prints (and `--mode both` writes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Check:
    """One pass/fail check of report.json's "checks", with the figures it was decided on."""

    passed: bool
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, **self.figures}


@dataclass(frozen=True)
class PromptTemplate:
    """The chat prompt around the input text: prompt = prefix + text + suffix."""

    prefix: str = ""
    suffix: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"prefix": self.prefix, "suffix": self.suffix}


@dataclass(frozen=True)
class SpecialTokens:
    bos: int | None
    eos: int
    pad: int

    def to_dict(self) -> dict[str, int | None]:
        return {"bos": self.bos, "eos": self.eos, "pad": self.pad}


@dataclass(frozen=True)
class ExportContext:
    """What every mode of one export shares: tokens, prompt, task facts, tool versions, where the inputs came from."""

    special_tokens: SpecialTokens
    prompt: PromptTemplate
    task_fields: dict[str, Any]  # the task plug-in's manifest fields (the robot dog: action_language)
    tools: dict[str, str]
    source: dict[str, Any]


@dataclass(frozen=True)
class GraphStage:
    """The torch export graph of one mode and its head."""

    graph: Any  # an `export.decoder_graph` graph
    task: str  # "causal_lm" | "seq_cls"
    head_token_ids: list[int] | None  # None: the full head
    head_size: int
    caches: list[Any]  # runtime.manifest.CacheSpec, in the graph's order


@dataclass(frozen=True)
class Fp32Stage:
    """The FP32 ONNX file and its validation against the torch graph."""

    path: Path
    onnx: dict[str, Any]  # convert.export_decoder_onnx's report
    validation: dict[str, Any]  # validate_decoder.validate_decoder's report
    check: Check


@dataclass
class ProgramChecks:
    """Program-level checks of a causal LM (runtime decoder on real prompts) and the accuracy per precision."""

    eval_split: str
    examples: list[dict[str, Any]]
    fp32_outputs: list[str]
    checks: dict[str, Check]
    accuracy: dict[str, dict[str, Any]]  # precision -> the task's score
    generator: Callable[
        ..., Any
    ]  # (session, head_ids, head_size) -> runtime Generator, as the device builds it

    @property
    def texts(self) -> list[str]:
        return [e["text"] for e in self.examples]

    def to_dict(self) -> dict[str, Any]:
        return {"eval_split": self.eval_split, "eval_examples": len(self.examples), "accuracy": self.accuracy}


@dataclass(frozen=True)
class QuantizeAttempt:
    """One quantization kernel tried, with the checks it was held to."""

    int8_method: str | None
    quantize: dict[str, Any]  # quantize.quantize_decoder's report
    size_check: Check
    accuracy: dict[str, Any] | None = None
    accuracy_check: Check | None = None
    agreement_with_fp32: dict[str, Any] | None = None

    @property
    def method(self) -> str:
        return self.quantize["method"]

    @property
    def passed(self) -> bool:
        return self.size_check.passed and (self.accuracy_check is None or self.accuracy_check.passed)

    def to_dict(self) -> dict[str, Any]:
        out = {"method": self.method, "int8_method": self.int8_method, "quantize": self.quantize,
               "size_check": self.size_check.to_dict()}  # fmt: skip
        if self.accuracy_check is not None:
            out.update(accuracy=self.accuracy, accuracy_check=self.accuracy_check.to_dict(),
                       agreement_with_fp32=self.agreement_with_fp32)  # fmt: skip
        return out


@dataclass(frozen=True)
class Quantization:
    """Every attempt and the file chosen (the last one tried: the first that passed, or the last kernel)."""

    precision: str
    attempts: list[QuantizeAttempt]
    path: Path

    @property
    def final(self) -> QuantizeAttempt:
        return self.attempts[-1]

    @property
    def chosen(self) -> dict[str, str]:
        return {"precision": self.precision, "method": self.final.method}

    def to_dict(self) -> dict[str, Any]:
        return {"attempts": [a.to_dict() for a in self.attempts], "chosen": self.chosen}


@dataclass
class ModeReport:
    """report.json of one mode."""

    mode: str
    task: str
    precision: str
    checks: dict[str, Check] = field(default_factory=dict)
    onnx: dict[str, Any] | None = None
    validation: dict[str, Any] | None = None
    programs: ProgramChecks | None = None
    quantization: Quantization | None = None
    optimum: dict[str, Any] | None = None
    chat: dict[str, Any] | None = None  # --mode chat: what the answers were checked on
    files: dict[str, int] = field(default_factory=dict)
    decoder_size_bytes: int | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    export_seconds: float | None = None

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks.values())

    @property
    def failed_checks(self) -> list[str]:
        return [name for name, c in self.checks.items() if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode, "task": self.task, "precision": self.precision,
                               "checks": {name: c.to_dict() for name, c in self.checks.items()},
                               "onnx": self.onnx, "validation": self.validation}  # fmt: skip
        if self.programs is not None:
            out["programs"] = self.programs.to_dict()
        if self.quantization is not None:
            out["quantization"] = self.quantization.to_dict()
        if self.optimum is not None:
            out["optimum"] = self.optimum
        if self.chat is not None:
            out["chat"] = self.chat
        out.update(files=self.files, decoder_size_bytes=self.decoder_size_bytes, passed=self.passed,
                   stage_seconds=self.stage_seconds, export_seconds=self.export_seconds)  # fmt: skip
        return out

    def summary(self) -> dict[str, Any]:
        """The figures a person looks at first: sizes, accuracy per precision, failed checks, time."""
        accuracy = self.programs.accuracy if self.programs is not None else {}
        return {
            "precision": self.precision,
            "passed": self.passed,
            "failed_checks": self.failed_checks,
            "decoder_size_bytes": self.decoder_size_bytes,
            "max_abs_logit_diff": (self.validation or {}).get("max_abs_logit_diff"),
            "command_accuracy": {p: a["accuracy"] for p, a in accuracy.items()},
            "export_seconds": self.export_seconds,
        }


@dataclass
class ExportResult:
    """What `export()` returns: where it wrote, with which options, and each mode's report."""

    out_dir: str
    options: dict[str, Any]
    export_seconds: float
    modes: dict[str, ModeReport]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.modes.values())

    @property
    def failed_checks(self) -> list[str]:
        return [f"{m}: {name}" for m, r in self.modes.items() for name in r.failed_checks]

    def to_dict(self) -> dict[str, Any]:
        """The summary (`--json`, and report.json of a `--mode both` directory)."""
        return {"out_dir": self.out_dir, "options": self.options, "passed": self.passed,
                "export_seconds": self.export_seconds,
                "modes": {m: r.summary() for m, r in self.modes.items()}}  # fmt: skip

    def full_report(self) -> dict[str, Any]:
        """The summary plus every mode's whole report (what a failed export hands back)."""
        return {**self.to_dict(), "reports": {m: r.to_dict() for m, r in self.modes.items()}}
