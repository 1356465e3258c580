"""The node logic's outputs on a fake clock: malformed input refused, Go2 sport requests and sounds, the ~/program
records and the diagnostics."""

from __future__ import annotations

import json

import pytest
from dog_node_harness import FakeClock, command, make_node, nonzero, records, run_for
from scripted_commander import ANSWERS, PERIOD, make_commander
from shadow_dog.config import NodeConfig
from shadow_dog.latency import percentile
from shadow_dog.logic import DogNodeLogic
from shadow_dog.outputs import DIAG_ERROR, DIAG_OK, MemoryOutputs

# -- malformed input -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [None, 42, b"\x00\x01\x02\xff\xfe\x03", "", "\x00\x01\x02\x03", "x" * 5000])
def test_malformed_commands_are_refused(bad):
    node, out, clock, _ = make_node()
    command(node, bad)
    run_for(node, clock, 0.5)
    assert out.of("twist") == []
    (record,) = records(out)
    assert not record["accepted"] and not record["executed"] and record["reason"]


def test_refuse_input_reports_bad_messages():
    node, out, _, _ = make_node()
    node.refuse_input("<12 bytes>", "not a std_msgs/String", "text")
    (record,) = records(out)
    assert record["reason"] == "not a std_msgs/String" and not record["executed"]


# -- Go2 sport requests, sounds ----------------------------------------------------------------------------------------------


def test_go2_sport_requests_use_the_spec_ids():
    node, out, clock, _ = make_node(go2_sport_output=True, action_hold_s=1.0)
    command(node, "sit then turn right")
    run_for(node, clock, 4.0)
    sport = out.of("sport")
    assert sport[0].api_id == 1009 and sport[0].parameter == ""
    moves = [r for r in sport if r.api_id == 1008]
    assert moves and all(json.loads(r.parameter) == {"x": 0.0, "y": 0.0, "z": -0.8} for r in moves)
    assert sport[-1].api_id == 1003  # StopMove at the end of the turn
    assert len({r.request_id for r in sport}) == len(sport)
    first_move_t = next(t for t, r in out.timed("sport") if r.api_id == 1008)
    assert first_move_t == pytest.approx(101.0)  # after the sit's hold
    command(node, "dance twice")
    assert out.of("sport")[-1].api_id == 1023


def test_no_sport_requests_unless_enabled():
    node, out, clock, _ = make_node()
    command(node, "sit then turn right")
    run_for(node, clock, 4.0)
    assert out.of("sport") == [] and (0.0, 0.0, -0.8) in out.of("twist")


def test_bark_plays_a_sound():
    node, out, clock, _ = make_node()
    command(node, "bark twice")
    assert out.of("sound") == [("bark", 2)] and out.of("twist") == []
    run_for(node, clock, 1.1)
    assert not node.executor.busy


# -- records and diagnostics --------------------------------------------------------------------------------------------------


def test_speech_latency_record():
    node, out, clock, _ = make_node()
    speech_end = clock()
    clock.advance(0.02)  # recognition took 20 ms
    node.submit_speech("walk two metres", speech_end_at=speech_end, asr_ms=20.0)
    clock.advance(0.01)
    node.process_next()
    assert out.of("heard") == ["walk two metres"]
    (record,) = records(out)
    lat = record["latencies_ms"]
    assert lat["asr"] == 20.0 and lat["node"] == 0.0 and lat["total"] == pytest.approx(30.0)
    assert lat["model"] == record["latency_ms"] > 0
    assert set(record) >= {"text", "program", "route", "accepted", "reason", "latency_ms", "source"}


def test_diagnostics_report_model_latency_and_audio():
    node, out, clock, _ = make_node(diagnostics_period_s=1.0)
    for _ in range(5):
        command(node, "walk two metres")
    node.tick()
    model, motion, audio = out.of("diagnostics")[-1]
    assert model.level == DIAG_OK and model.values["model_loaded"] == "true"
    assert float(model.values["model_latency_p50_ms"]) > 0 and model.values["model_latency_p99_ms"]
    assert motion.message.startswith("executing") and motion.values["program"] == "move x=2"
    assert "no audio capture" in audio.message
    run_for(node, clock, 0.9)
    assert len(out.of("diagnostics")) == 1  # once per diagnostics period
    run_for(node, clock, 0.2)
    assert len(out.of("diagnostics")) == 2


def test_without_a_model_commands_are_refused_and_diagnostics_say_so():
    clock = FakeClock()
    out = MemoryOutputs(clock)
    node = DogNodeLogic(out, None, NodeConfig(), clock=clock, model_error="manifest.json missing")
    command(node, "walk two metres")
    assert out.of("twist") == [] and "no model loaded (manifest.json missing)" in records(out)[0]["reason"]
    node.tick()
    model = out.of("diagnostics")[-1][0]
    assert model.level == DIAG_ERROR and model.values["model_loaded"] == "false"
    node.stop()  # stop works without a model
    assert out.of("twist")[-1] == (0.0, 0.0, 0.0)


def test_percentile_matches_numpy():
    import numpy as np

    values = [5.0, 1.0, 3.0, 9.0, 7.5, 2.0]
    for q in (0, 50, 90, 99, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_bark_after_a_move_stands_still():
    """A `move` followed by `bark` must not leave the velocity on while the dog barks."""
    commander, _ = make_commander({**ANSWERS, "walk then bark": "move x=1; bark"})
    node, out, clock, _ = make_node(commander)
    command(node, "walk then bark")
    run_for(node, clock, 2.2)  # 1 m at 0.5 m/s, then the bark
    twists = out.timed("twist")
    bark_at = 100.0 + 2.0
    assert out.of("sound") == [("bark", 1)]
    assert all(not nonzero(v) for t, v in twists if t >= bark_at - 1e-9)
    assert any(not nonzero(v) for t, v in twists if abs(t - bark_at) < PERIOD)
