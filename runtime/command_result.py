"""What became of one command: the result `Commander.run` returns and `shadow-run --json` prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .generate import GenerationResult
from .safety import Plan


@dataclass(frozen=True)
class CommandResult:
    """What became of one command. Only `accepted` results are executed, and then exactly `plan.steps`."""

    text: str  # the input as given
    program: str  # the model's program, canonical ("" when there is none)
    route: str  # robot | remote | reject
    accepted: bool
    reason: str
    latency_ms: float  # text in -> decision out
    confidence: float | None = None  # smallest constrained token probability of the program
    plan: Plan | None = None  # the plan that is (or would have been) executed
    model_text: str | None = (
        None  # what the model was given, when sanitation or number normalisation changed it
    )
    raw_program: str = ""  # the program as the model wrote it
    alternative: int | None = (
        None  # the recogniser's n-th next-best transcript gave this result (1: the second)
    )
    remote_answer: str | None = None
    error: str | None = None  # set when the model failed: nothing was executed
    generation: GenerationResult | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The JSON object `shadow-run --json` prints (keys of shared/spec/cli.md first)."""
        out: dict[str, Any] = {
            "text": self.text,
            "program": self.program,
            "route": self.route,
            "accepted": self.accepted,
            "reason": self.reason,
            "latency_ms": round(self.latency_ms, 3),
            "confidence": None if self.confidence is None else round(self.confidence, 6),
        }
        if self.model_text is not None:
            out["model_text"] = self.model_text
        if self.raw_program and self.raw_program != self.program:
            out["raw_program"] = self.raw_program
        if self.remote_answer is not None:
            out["remote_answer"] = self.remote_answer
        if self.plan is not None and self.plan.accepted and self.plan.program != self.program:
            out["executed_program"] = self.plan.program
        if self.generation is not None:
            g = self.generation
            out["tokens"] = {"prompt": g.prompt_tokens, "new": g.new_tokens}
            out["timings_ms"] = {
                "prefill": round(g.prefill_ms, 3),
                "decode_per_token": None
                if g.decode_ms_per_token is None
                else round(g.decode_ms_per_token, 3),
                "generate": round(g.total_ms, 3),
            }
        if self.error is not None:
            out["error"] = self.error
        if self.alternative is not None:
            out["alternative"] = self.alternative
        return out
