"""The commands a `shadow-bench` run measures: the packaged robot-dog split, or a JSONL file of `{"text": ...}`."""

from __future__ import annotations

import json
from pathlib import Path

from shadow_edge.bench.errors import BenchInputError, BenchRunError

DEFAULT_SPLIT = "test"


def read_commands(path: str | None, split: str = DEFAULT_SPLIT) -> list[str]:
    """Command texts: from a JSONL file (`{"text": ...}` per line), or the packaged robot-dog split."""
    if path is None:
        from shadow_edge.tasks.robot_dog.splits import DATA_DIR

        try:
            lines = (DATA_DIR / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise BenchRunError(
                f"the robot-dog {split} split is not installed ({exc}); pass --commands-file"
            ) from None
        where = f"robot-dog {split} split"
    else:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise BenchInputError(
                f"{path}: cannot read it ({getattr(exc, 'strerror', None) or exc})"
            ) from None
        where = path
    texts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            raise BenchInputError(f"{where}: line {number} is not JSON") from None
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise BenchInputError(f'{where}: line {number} has no "text" string')
        texts.append(item["text"])
    if not texts:
        raise BenchInputError(f"{where}: no commands in it")
    return texts
