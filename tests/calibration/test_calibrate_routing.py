"""The gate calibration's decisions (scripts/calibrate_routing.py): a command is executed as the Commander would
execute it, next-best transcripts of recognised speech included, at every threshold of the curve."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("calibrate_routing", ROOT / "scripts" / "calibrate_routing.py")
calibrate_routing = importlib.util.module_from_spec(spec)
spec.loader.exec_module(calibrate_routing)


def reading(program, right, prob, movable=True):
    return {"program": program, "movable": movable, "right": right, "min_prob": prob, "min_margin": 10 * prob}


def row(*readings):
    first = readings[0]
    return {"lang": "en", **first, **({"readings": list(readings)} if len(readings) > 1 else {})}


SURE_RIGHT = row(reading("sit", True, 0.99))
UNSURE_AGREED = row(reading("sit", True, 0.6), reading("sit", True, 0.95), reading("sit", True, 0.7))
UNSURE_SPLIT = row(reading("sit", False, 0.6), reading("bark", True, 0.95), reading("dance", False, 0.97))
AGREED_WRONG = row(
    reading("lie_down", False, 0.5), reading("lie_down", False, 0.9), reading("lie_down", False, 0.8)
)


@pytest.mark.parametrize(
    ("example", "threshold", "outcome"),
    [
        (SURE_RIGHT, 0.9, (True, True)),
        (SURE_RIGHT, 0.995, (False, False)),
        (UNSURE_AGREED, 0.9, (True, True)),  # held back; the agreed program from the next-best that passes
        (UNSURE_AGREED, 0.96, (False, False)),  # no reading of it passes
        (UNSURE_AGREED, 0.5, (True, True)),  # the first passes on its own
        (UNSURE_SPLIT, 0.9, (False, False)),  # no majority
        (AGREED_WRONG, 0.85, (True, False)),  # executed wrong through a next-best transcript
    ],
)
def test_executed_follows_the_commander(example, threshold, outcome):
    assert calibrate_routing.executed(example, lambda r: r["min_prob"] >= threshold) == outcome


def test_the_curve_counts_next_best_executions():
    rows = [SURE_RIGHT, UNSURE_AGREED, UNSURE_SPLIT, AGREED_WRONG]
    points = {p["threshold"]: p for p in calibrate_routing.curve(rows, "min_prob")}
    assert points[0.0]["coverage"] == 1.0 and points[0.0]["executed_wrong"] == 0.5  # every first reading
    assert points[0.9]["executed_right"] == 0.5 and points[0.9]["executed_wrong"] == 0.25
    assert points[0.99]["coverage"] == 0.25 and points[0.99]["executed_wrong"] == 0.0
    chosen = calibrate_routing.choose(list(points.values()), target=0.0)
    assert (chosen["threshold"], chosen["executed_right"], chosen["executed_wrong"]) == (0.95, 0.5, 0.0)
