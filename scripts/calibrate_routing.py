#!/usr/bin/env python3
"""Choose an export's confidence gate from a target, on the dev split (unseen sentence frames); write routing.json.

    python scripts/calibrate_routing.py build/robot-dog --target-wrong 0.005

Every dev command is decoded by the runtime (the Commander, gate open). For each signal (`min_prob`,
`min_margin`, see `shadow_edge.runtime.routing`) and each threshold, a command is *executed* when the model wrote a
robot program that the safety layer accepts and the signal passes; it is *executed wrong* when that program is not the
gold one. The gate is the signal and threshold that execute the most commands correctly while keeping executed-wrong
at or under `--target-wrong` (a share of all commands). Writes `routing.json` into MODEL_DIR, a JSON report and a
coverage-against-accuracy plot (`routing_calibration.{json,png}` next to MODEL_DIR, or `--report`).

Speech has a gate of its own (`routing.json`'s `speech` entry; the runtime applies it to recognised text):

    python scripts/calibrate_routing.py build/robot-dog --speech tasks/robot_dog/data/speech/dev_asr.jsonl

(that file: `scripts/make_asr_transcripts.py --split dev --limit 0 --min-similarity 0`).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from shadow_edge.runtime.alternatives import MAX_ALTERNATIVES, Reading, pick_alternative
from shadow_edge.runtime.commander import Commander, CommandResult, ModelLoadError
from shadow_edge.runtime.routing import SIGNALS, ConfidenceGate, RoutingError, load_gate, write_gate
from shadow_edge.runtime.scoring import program_matches
from shadow_edge.runtime.stats import strided
from shadow_edge.tasks.robot_dog.splits import load_split

logger = logging.getLogger("calibrate_routing")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", type=Path)
    p.add_argument(
        "--split",
        default="dev",
        help="robot-dog split to calibrate on (default dev: sentence frames that training never saw, like the test "
        "split's but disjoint from them)",
    )
    p.add_argument(
        "--speech",
        type=Path,
        default=None,
        help="JSONL of recognised utterances ({text: transcript, program, lang}, from make_asr_transcripts.py): "
        "calibrate (or --evaluate) the speech gate on them instead of the text gate on --split",
    )
    p.add_argument("--limit", type=int, default=1000, help="commands (strided over the split; 0: all)")
    p.add_argument("--target-wrong", type=float, default=0.005, help="executed-wrong share to stay under")
    p.add_argument("--report", type=Path, default=None, help="report path without suffix")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument(
        "--evaluate",
        action="store_true",
        help="measure the export's current gate (routing.json) on --split instead of choosing one; writes nothing "
        "into MODEL_DIR",
    )
    return p.parse_args(argv)


def _speech_rows(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    keys = ("text", "program", "lang", "alternatives")
    return [{k: r[k] for k in keys if k in r} for r in rows]


def _reading(result: CommandResult, gold: str, gate: ConfidenceGate | None) -> dict:
    """Could it move the robot (accepted robot program), is it right, and each signal's value; with `gate`, whether
    that gate lets it through (`ConfidenceGate.passes`, the Commander's own check)."""
    generation = result.generation
    reading = {
        "program": result.program,
        "movable": bool(result.accepted),
        "right": program_matches(result.program, gold),
        "min_prob": generation.confidence if generation else 0.0,
        "min_margin": generation.min_margin if generation else 0.0,
    }
    if gate is not None:
        reading["gate_passes"] = generation is not None and gate.passes(generation)
    return reading


def decode(
    model_dir: Path, examples: list[dict], batch_size: int, gate: ConfidenceGate | None = None
) -> list[dict]:
    """Per command, `_reading` of its text, its language, and for recognised speech with next-best transcripts
    (`alternatives`) the readings of those too (`readings`, the first included)."""
    commander = Commander(model_dir, min_confidence=0.0)
    texts = [(i, 0, ex["text"]) for i, ex in enumerate(examples)]
    texts += [
        (i, n, alt)
        for i, ex in enumerate(examples)
        for n, alt in enumerate(ex.get("alternatives", ())[:MAX_ALTERNATIVES], start=1)
    ]
    readings: dict[int, dict[int, dict]] = {}
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        for (i, n, _), result in zip(chunk, commander.run_batch([t for _, _, t in chunk]), strict=True):
            readings.setdefault(i, {})[n] = _reading(result, examples[i]["program"], gate)
    rows = []
    for i, ex in enumerate(examples):
        row = {"lang": ex["lang"], **readings[i][0]}
        if len(readings[i]) > 1:
            row["readings"] = [readings[i][n] for n in sorted(readings[i])]
        rows.append(row)
    return rows


def _best_only(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "readings"}


def _choose_gate(rows: list[dict], target: float) -> tuple[dict[str, list[dict]], dict[str, dict], dict]:
    """Per signal its curve and its best point under `target`; and the best of those (with its signal)."""
    curves = {signal: curve(rows, signal) for signal in SIGNALS}
    chosen = {signal: choose(points, target) for signal, points in curves.items()}
    best_signal = max(
        SIGNALS, key=lambda s: (chosen[s]["executed_wrong"] <= target, chosen[s]["executed_right"])
    )
    return curves, chosen, {"signal": best_signal, **chosen[best_signal]}


def executed(row: dict, passes: Callable[[dict], bool]) -> tuple[bool, bool]:
    """(executed, right) for one command, as the Commander decides it: the first reading if it is movable and
    `passes`, else the next-best transcript that `pick_alternative` chooses (recognised speech)."""
    if row["movable"] and passes(row):
        return True, row["right"]
    readings = row.get("readings")
    if not readings:
        return False, False
    first, *rest = (Reading(r["program"], r["movable"]) for r in readings)
    number = pick_alternative(first, rest, lambda i: passes(readings[i]))
    return (True, readings[number]["right"]) if number is not None else (False, False)


def curve(rows: list[dict], signal: str) -> list[dict]:
    """Coverage (share of all commands executed) and executed-wrong / accuracy at every distinct threshold."""
    n = len(rows)
    values = sorted({min(r[signal], 1e6) for row in rows for r in row.get("readings", [row]) if r["movable"]})
    points = []
    for t in [0.0, *values]:
        outcomes = [executed(row, lambda r, t=t: min(r[signal], 1e6) >= t) for row in rows]
        moved = sum(done for done, _ in outcomes)
        wrong = sum(done and not right for done, right in outcomes)
        points.append(
            {
                "threshold": t,
                "coverage": moved / n,
                "executed_right": (moved - wrong) / n,
                "executed_wrong": wrong / n,
                "accuracy_of_executed": (moved - wrong) / moved if moved else 1.0,
            }
        )
    return points


def choose(points: list[dict], target: float) -> dict:
    ok = [p for p in points if p["executed_wrong"] <= target]
    return max(ok, key=lambda p: (p["executed_right"], -p["threshold"])) if ok else points[-1]


def plot(curves: dict[str, list[dict]], chosen: dict[str, dict], path: Path, target: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for signal, points in curves.items():
        ax.plot([p["coverage"] for p in points], [p["accuracy_of_executed"] for p in points], label=signal)
        c = chosen[signal]
        ax.plot([c["coverage"]], [c["accuracy_of_executed"]], "o", color=ax.lines[-1].get_color())
    ax.set_xlabel("coverage: share of commands executed on the robot")
    ax.set_ylabel("accuracy of the executed commands")
    ax.set_title(f"confidence gate (dots: chosen thresholds, executed-wrong <= {100 * target:.1f}%)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def evaluate(args: argparse.Namespace, rows: list[dict], gate: ConfidenceGate) -> int:
    """Executed right / wrong and routed away under the export's gate (`rows` decoded with it), overall and per
    language."""
    report = {"split": args.split, "commands": len(rows), "gate": gate.to_json()}
    for lang in ("all", "en", "zh"):
        subset = [r if gate.next_best else _best_only(r) for r in rows if lang == "all" or r["lang"] == lang]
        if not subset:  # recognised speech is English only
            continue
        outcomes = [(r, *executed(r, lambda reading: reading["gate_passes"])) for r in subset]
        n = len(subset)
        report[lang] = {
            "n": n,
            "right": sum(r["right"] for r in subset) / n,
            "executed": sum(done for _, done, _ in outcomes) / n,
            "executed_wrong": sum(done and not right for _, done, right in outcomes) / n,
            "gated_away": sum(r["movable"] and not done for r, done, _ in outcomes) / n,
            "executed_next_best": sum(done and not r["gate_passes"] for r, done, _ in outcomes) / n,
        }
        print(
            f"{lang:4s} n={len(subset):5d}  exact {100 * report[lang]['right']:5.1f}%  executed "
            f"{100 * report[lang]['executed']:5.1f}%  executed wrong {100 * report[lang]['executed_wrong']:4.2f}%  "
            f"held back by the gate {100 * report[lang]['gated_away']:4.1f}%"
        )
    base = (
        args.report or args.model_dir.parent / f"{args.model_dir.name}.routing_{args.split.replace(':', '_')}"
    )
    Path(base).parent.mkdir(parents=True, exist_ok=True)
    Path(f"{base}.json").write_text(json.dumps(report, indent=1) + "\n")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not 0.0 <= args.target_wrong < 1.0:
        logger.error("--target-wrong must be in [0, 1)")
        return 2
    spoken = args.speech is not None
    try:
        examples = strided(
            _speech_rows(args.speech) if spoken else load_split(args.split), args.limit or None
        )
    except (OSError, ValueError, KeyError) as exc:
        logger.error("%s: not a JSONL of recognised utterances (%s)", args.speech, exc)
        return 2
    if spoken:
        args.split = f"speech:{args.speech.name}"
    try:
        gate = load_gate(args.model_dir, spoken=spoken) if args.evaluate else None
        rows = decode(args.model_dir, examples, args.batch_size, gate)
    except (ModelLoadError, RoutingError) as exc:
        logger.error("%s", exc)
        return 2
    if gate is not None:
        return evaluate(args, rows, gate)
    # recognised speech with next-best transcripts: the gate with them in play, and with the best transcript alone
    variants = {False: [_best_only(r) for r in rows]}
    if any("readings" in r for r in rows):
        variants[True] = rows
    options = {next_best: _choose_gate(rows_, args.target_wrong) for next_best, rows_ in variants.items()}
    next_best = max(
        options,
        key=lambda nb: (
            options[nb][2]["executed_wrong"] <= args.target_wrong,
            options[nb][2]["executed_right"],
            not nb,
        ),
    )
    curves, chosen, best = options[next_best]
    best_signal = best["signal"]
    threshold = best["threshold"]
    if best_signal == "min_prob":
        threshold = min(1.0, threshold)
    gate = ConfidenceGate(best_signal, float(threshold), "calibration", next_best=next_best)
    report = {
        "split": args.split,
        "commands": len(rows),
        "target_executed_wrong": args.target_wrong,
        "chosen": best,
        "per_signal": chosen,
        "open_gate": curves[best_signal][0],
        "right_overall": float(np.mean([r["right"] for r in rows])),
    }
    if len(options) > 1:
        report["next_best_transcripts"] = {
            "used": next_best,
            "with": options[True][2],
            "best_transcript_only": options[False][2],
        }
    try:
        path = write_gate(
            args.model_dir, gate, {k: v for k, v in report.items() if k != "per_signal"}, spoken
        )
    except RoutingError as exc:
        logger.error("%s", exc)
        return 2
    name = "routing_calibration_speech" if spoken else "routing_calibration"
    base = args.report or args.model_dir.parent / f"{args.model_dir.name}.{name}"
    Path(base).parent.mkdir(parents=True, exist_ok=True)
    Path(f"{base}.json").write_text(json.dumps({**report, "curves": curves}, indent=1) + "\n")
    plot(curves, chosen, Path(f"{base}.png"), args.target_wrong)
    for signal in SIGNALS:
        c = chosen[signal]
        print(
            f"{signal:10s} threshold {c['threshold']:8.3f}  coverage {100 * c['coverage']:5.1f}%  "
            f"executed right {100 * c['executed_right']:5.1f}%  executed wrong {100 * c['executed_wrong']:4.2f}%"
        )
    o = curves[best_signal][0]
    print(f"open gate: coverage {100 * o['coverage']:.1f}%, executed wrong {100 * o['executed_wrong']:.2f}%")
    if len(options) > 1:
        for nb, label in ((True, "with next-best transcripts"), (False, "best transcript only")):
            c = options[nb][2]
            print(
                f"{label:27s} {c['signal']} >= {c['threshold']:.3f}: executed right {100 * c['executed_right']:5.1f}%"
                f", wrong {100 * c['executed_wrong']:4.2f}%{'  <- chosen' if nb == next_best else ''}"
            )
    print(f"chosen{' (speech)' if spoken else ''}: {best_signal} >= {threshold:.3f} -> {path}")
    return 0 if math.isfinite(threshold) else 1


if __name__ == "__main__":
    sys.exit(main())
