"""Command accuracy as the spec scores it: exact program match after canonicalisation.

Reported overall, per language, per command name (an example counts towards every name in its reference program)
and as a confusion table of command names aligned by position.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from .actions import ActionSpec, ProgramError, load_spec, parse_program, programs_equal

INVALID = "<invalid>"
MISSING = "<none>"


def program_matches(prediction: str, reference: str, spec: ActionSpec | None = None) -> bool:
    """True when `prediction` parses and equals `reference` under the spec's scoring rules."""
    spec = spec or load_spec()
    ref = parse_program(reference, spec)  # a bad reference is a bug in the data: let it raise
    try:
        pred = parse_program(prediction, spec)
    except ProgramError:
        return False
    return programs_equal(pred, ref)


def _names_or_invalid(text: str, spec: ActionSpec) -> tuple[str, ...] | None:
    try:
        return parse_program(text, spec).names
    except ProgramError:
        return None


def score_programs(
    predictions: Sequence[str],
    references: Sequence[str],
    languages: Sequence[str] | None = None,
    spec: ActionSpec | None = None,
) -> dict[str, Any]:
    """Accuracy overall, per language and per command name, plus a name confusion table.

    Returns `{"n", "correct", "accuracy", "per_language": {lang: {...}}, "per_command": {name: {...}},
    "confusion": {reference_name: {predicted_name: count}}, "invalid": count}`.
    """
    spec = spec or load_spec()
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if languages is not None and len(languages) != len(references):
        raise ValueError(f"{len(languages)} languages for {len(references)} references")

    totals: dict[str, Counter] = defaultdict(Counter)
    per_lang: dict[str, Counter] = defaultdict(Counter)
    per_cmd: dict[str, Counter] = defaultdict(Counter)
    confusion: dict[str, Counter] = defaultdict(Counter)
    invalid = 0
    for i, (pred, ref) in enumerate(zip(predictions, references, strict=True)):
        ok = program_matches(pred, ref, spec)
        totals["all"].update(n=1, correct=int(ok))
        if languages is not None:
            per_lang[languages[i]].update(n=1, correct=int(ok))
        ref_names = parse_program(ref, spec).names
        for name in set(ref_names):
            per_cmd[name].update(n=1, correct=int(ok))
        pred_names = _names_or_invalid(pred, spec)
        if pred_names is None:
            invalid += 1
            for name in ref_names:
                confusion[name][INVALID] += 1
            continue
        for pos in range(max(len(ref_names), len(pred_names))):
            r = ref_names[pos] if pos < len(ref_names) else MISSING
            p = pred_names[pos] if pos < len(pred_names) else MISSING
            confusion[r][p] += 1

    def summary(c: Counter) -> dict[str, Any]:
        n = c["n"]
        return {"n": n, "correct": c["correct"], "accuracy": (c["correct"] / n) if n else None}

    report = summary(totals["all"])
    report["per_language"] = {lang: summary(c) for lang, c in sorted(per_lang.items())}
    report["per_command"] = {name: summary(per_cmd[name]) for name in spec.names if name in per_cmd}
    report["confusion"] = {ref: dict(sorted(row.items())) for ref, row in sorted(confusion.items())}
    report["invalid"] = invalid
    return report


def format_confusion(confusion: dict[str, dict[str, int]]) -> str:
    """A plain-text confusion table: one row per reference name, the off-diagonal cells listed."""
    lines = []
    for ref, row in confusion.items():
        right = row.get(ref, 0)
        wrong = ", ".join(f"{p}:{n}" for p, n in row.items() if p != ref)
        lines.append(f"{ref:<14} correct-name {right:>5}" + (f"   confused with {wrong}" if wrong else ""))
    return "\n".join(lines)
