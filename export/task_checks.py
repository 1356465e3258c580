"""The task-specific half of an export's validation, as a plug-in: what the exported model is checked on.

The exporter itself knows decoders, ONNX and quantization; whether the exported model still does its job is the
task's question. A task plug-in (`TaskChecks`) tells the pipeline which labelled examples to measure on, how a
prompt is encoded in training, which token ids the restricted head keeps, the output grammar the runtime's
constrained decoder follows, and how outputs are scored. `shadow-export` uses the robot-dog plug-in
(`shadow_edge.tasks.robot_dog.export_checks`); `load_task_checks` finds one by its registered name or by a
`module:attribute` path, imported only when asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

# name -> "module:attribute" of a zero-argument factory (a class or function) returning a TaskChecks
TASKS = {"robot-dog": "shadow_edge.tasks.robot_dog.export_checks:RobotDogChecks"}


@runtime_checkable
class TaskChecks(Protocol):
    """What the pipeline asks of a task. Examples are dicts with at least "text" (the input) and the task's label
    fields (the robot dog: "program" and "lang")."""

    name: str
    system_prompt: str  # the system prompt of the chat template the model was trained with

    def eval_examples(self, split: str, limit: int | None) -> list[dict[str, Any]]:
        """`limit` labelled examples spread over `split` (None: all of it)."""
        ...

    def prompts(self, n: int) -> list[str]:
        """`n` input texts that exercise the model (for checks that need prompts but no labels)."""
        ...

    def encode_prompt(self, tokenizer: Any, text: str) -> list[int]:
        """Token ids of the prompt for `text` exactly as in training (an HF tokenizer)."""
        ...

    def end_of_turn_id(self, tokenizer: Any) -> int:
        """The token that ends the model's answer."""
        ...

    def head_token_ids(self, tokenizer: Any, eos_id: int) -> list[int]:
        """The vocabulary the restricted head keeps (a `tokenizers.Tokenizer`)."""
        ...

    def grammar(self) -> Any:
        """The output grammar the runtime's constrained decoder follows (`runtime.grammar.ProgramGrammar`)."""
        ...

    def score(self, outputs: Sequence[str], examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Exact-match scoring of `outputs` against `examples`: at least {"accuracy": float, "n": int}."""
        ...

    def manifest_fields(self) -> dict[str, Any]:
        """Task facts the runtime reads from manifest.json (the robot dog: its action-language version)."""
        ...


def load_task_checks(name: str) -> TaskChecks:
    """The task plug-in registered as `name` (see `TASKS`) or found at `module:attribute`; ValueError otherwise."""
    target = TASKS.get(name, name)
    module_name, _, attribute = target.partition(":")
    if not attribute:
        raise ValueError(f"unknown task {name!r}: expected one of {sorted(TASKS)} or 'module:attribute'")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"task {name!r}: cannot load {target} ({exc})") from None
    try:
        checks = factory()
    except Exception as exc:  # a plug-in's own failure: one clear line naming it
        raise ValueError(f"task {name!r}: {target}() failed ({type(exc).__name__}: {exc})") from None
    if not isinstance(checks, TaskChecks):
        raise ValueError(f"task {name!r}: {target} does not give a TaskChecks (see export.task_checks)")
    return checks
