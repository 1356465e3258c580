"""How an export copies numbers it was not trained on, and what the number check (`runtime.arguments`) holds back.

    python3 scripts/probe_numbers.py build/robot-dog            # 300 commands, a JSON report + a table
    python3 scripts/probe_numbers.py build/robot-dog-attached --count 600 --seed 3

The task generator's distances and angles are round (0.5, 1.2, 4.5 m; multiples of 15 and 10 degrees), and a small
model copies those well and others badly, with confidence. This plays distances and angles drawn at random (two
decimals, one decimal, whole; any degree from 1 to 359, multiples of 10 and 15), in English and Chinese templates,
through `Commander.run`, and counts what would have been executed wrong without the number check and what is
executed wrong with it. A command is right when the program's argument has the magnitude said (the direction is
in the template's words and not scored here).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import Counter
from pathlib import Path

from shadow_edge.runtime.arguments import DISAGREE_REASON
from shadow_edge.runtime.commander import Commander, ModelLoadError
from tqdm.auto import tqdm

DISTANCE_TEMPLATES = (
    "walk forward {} metres", "go back {} m", "step left {} meters", "move right {} metres please", "往前走{}米",
    "向左平移{}米",
)  # fmt: skip
ANGLE_TEMPLATES = (
    "turn left {} degrees", "turn right {} degrees", "rotate clockwise {}°", "spin right {} deg", "向左转{}度",
    "向右转{}度",
)  # fmt: skip


def commands(count: int, seed: int) -> list[tuple[str, str, float]]:
    """(kind, text, number said) for `count` commands, half distances and half angles."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        if i % 2 == 0:
            value = rng.choice(
                [round(rng.uniform(0.05, 4.95), 2), round(rng.uniform(0.1, 4.9), 1), rng.randint(1, 5)]
            )
            out.append(("distance", rng.choice(DISTANCE_TEMPLATES).format(f"{value:g}"), float(value)))
        else:
            value = rng.choice([rng.randint(1, 359), rng.randint(1, 35) * 10, rng.randint(1, 23) * 15])
            out.append(("angle", rng.choice(ANGLE_TEMPLATES).format(value), float(value)))
    return out


def magnitude_right(program: str, said: float) -> bool:
    values = [abs(float(v)) for v in re.findall(r"=(-?[0-9.]+)", program)]
    if not values:  # `turn` alone is the default 90 degrees
        return program == "turn" and said == 90
    return len(values) == 1 and values[0] == said


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model_dir", type=Path)
    p.add_argument("--count", type=int, default=300)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--json", type=Path, default=None, help="report path (default: build/reports/probe_numbers-NAME.json)"
    )
    args = p.parse_args(argv)
    if args.count < 1:
        p.error("--count must be at least 1")
    try:
        commander = Commander(args.model_dir)
    except ModelLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tally: dict[str, Counter] = {"all": Counter(), "distance": Counter(), "angle": Counter()}
    rows = []
    for kind, text, said in tqdm(commands(args.count, args.seed), desc="commands", unit="cmd"):
        result = commander.run(text)
        right = bool(result.program) and magnitude_right(result.program, said)
        held_by_check = result.reason.startswith(DISAGREE_REASON)
        for key in ("all", kind):
            t = tally[key]
            t["n"] += 1
            t["right"] += right
            t["executed"] += result.accepted
            t["executed_wrong"] += result.accepted and not right
            t["held_by_number_check"] += held_by_check
            t["held_by_number_check_right"] += held_by_check and right
            t["would_execute_wrong_without_check"] += (result.accepted or held_by_check) and not right
        rows.append({"text": text, "said": said, "program": result.program, "accepted": result.accepted,
                     "right": right, "reason": result.reason})  # fmt: skip
    report = {"model_dir": str(args.model_dir.resolve()), "count": args.count, "seed": args.seed,
              "summary": {k: dict(v) for k, v in tally.items()}, "rows": rows}  # fmt: skip
    path = args.json or Path("build/reports") / f"probe_numbers-{args.model_dir.resolve().name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    print(
        f"{'':10} {'n':>5} {'right':>6} {'executed':>9} {'exec wrong':>11} {'without check':>14} {'held by check':>14}"
    )
    for key, t in tally.items():
        print(
            f"{key:10} {t['n']:>5} {t['right']:>6} {t['executed']:>9} {t['executed_wrong']:>11} "
            f"{t['would_execute_wrong_without_check']:>14} {t['held_by_number_check']:>8} ({t['held_by_number_check_right']} right)"
        )
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
