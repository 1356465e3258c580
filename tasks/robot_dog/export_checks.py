"""The robot-dog task's export checks (`shadow_edge.export.task_checks.TaskChecks`): command accuracy on the
generated splits, the training prompt, the action-language head, grammar and scoring of the runtime.

`shadow-export` resolves this plug-in by the name "robot-dog" (its default `--task`); nothing here runs an export.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shadow_edge.runtime.actions import SPEC_PATH, load_spec
from shadow_edge.runtime.digest import file_sha256
from shadow_edge.runtime.grammar import ProgramGrammar, action_vocabulary
from shadow_edge.runtime.prompt import SYSTEM_PROMPT
from shadow_edge.runtime.scoring import score_programs
from shadow_edge.runtime.stats import strided
from shadow_edge.tasks.robot_dog import task
from shadow_edge.tasks.robot_dog.splits import load_split

# the split the examples for prompt-only checks come from: not the one accuracy is measured on
PROMPT_SPLIT = "validation"


class RobotDogChecks:
    """Robot-dog commands in, action-language programs out."""

    name = "robot-dog"
    system_prompt = SYSTEM_PROMPT

    def eval_examples(self, split: str, limit: int | None) -> list[dict[str, Any]]:
        """Examples as the model reads them on the robot: the Commander writes spoken numbers as digits first."""
        return [{**e, "text": task.model_text(e["text"])} for e in strided(load_split(split), limit)]

    def prompts(self, n: int) -> list[str]:
        return [task.model_text(e["text"]) for e in strided(load_split(PROMPT_SPLIT), n)]

    def encode_prompt(self, tokenizer: Any, text: str) -> list[int]:
        return list(task.encode_prompt(tokenizer, text, self.system_prompt))

    def end_of_turn_id(self, tokenizer: Any) -> int:
        return task.end_of_turn_id(tokenizer)

    def head_token_ids(self, tokenizer: Any, eos_id: int) -> list[int]:
        return action_vocabulary(tokenizer, eos_id)

    def grammar(self) -> ProgramGrammar:
        return ProgramGrammar()

    def score(self, outputs: Sequence[str], examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """The spec's exact-match scoring of programs, overall / per language / per command."""
        report = score_programs(
            list(outputs), [e["program"] for e in examples], [e["lang"] for e in examples]
        )
        report.pop("confusion", None)
        return report

    def manifest_fields(self) -> dict[str, Any]:
        return {"action_language": {"version": load_spec().version, "sha256": file_sha256(SPEC_PATH)}}
