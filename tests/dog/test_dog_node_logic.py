"""The ROS 2 node's transport-free logic (shadow_dog.logic): one test (or more) per safety rule of its docstring --
motion only from accepted programs, pre-emption and a bounded queue, stop and e-stop, the watchdogs.

Everything runs on a fake clock (`dog_node_harness`): `tick()` is called by hand, so timings are exact and nothing
sleeps. Malformed input, Go2 requests, records and diagnostics are `test_dog_node_outputs.py`; the real runtime,
the cloud hook and the config `test_dog_node_model.py`.
"""

from __future__ import annotations

import math

import pytest
from dog_node_harness import (
    FakeClock,
    command,
    make_node,
    mark,
    moving_twists_after,
    nonzero,
    records,
    run_for,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from scripted_commander import LIMITS, PERIOD, SPEC, make_commander
from shadow_dog.command_queue import CommandQueue, PendingCommand, StopPhrases
from shadow_dog.config import NodeConfig
from shadow_dog.executor import PlanExecutor
from shadow_dog.outputs import MemoryOutputs
from shadow_edge.runtime.safety import MotionSegment, Plan, plan_program

# -- motion only from accepted programs; segments in time; zero at the end --------------------------------------------


def test_accepted_move_runs_its_segment_then_publishes_zero():
    node, out, clock, _ = make_node()
    command(node, "walk two metres")
    (record,) = records(out)
    assert record["program"] == "move x=2" and record["accepted"] and record["executed"]
    # the first velocity leaves with the decision, not a control period later
    assert out.timed("twist")[0] == (100.0, (0.5, 0.0, 0.0))
    assert record["latencies_ms"]["node"] == 0.0 and record["latencies_ms"]["model"] > 0
    run_for(node, clock, 5.0)
    twists = out.timed("twist")
    moving = [t for t, v in twists if nonzero(v)]
    # 2 m at 0.5 m/s: 4 s of velocity (sample-and-hold: the last one lasts one period)
    assert moving[-1] - moving[0] == pytest.approx(4.0 - PERIOD)
    assert len(moving) * PERIOD == pytest.approx(4.0)
    first_zero = next(t for t, v in twists if not nonzero(v))
    assert first_zero == pytest.approx(104.0)
    # zero repeated on the next stop_repeat_ticks-1 ticks, then silence
    zeros = [t for t, v in twists if not nonzero(v)]
    assert len(zeros) == NodeConfig().stop_repeat_ticks
    assert not node.executor.busy


@pytest.mark.parametrize(
    ("text", "route"),
    [("walk twelve metres", "robot"), ("jump off the roof", "reject"), ("what is two plus two", "remote")],
)
def test_refused_programs_never_move(text, route):
    node, out, clock, _ = make_node()
    command(node, text)
    run_for(node, clock, 1.0)
    assert out.of("twist") == [] and out.of("sport") == []
    (record,) = records(out)
    assert record["route"] == route and not record["accepted"] and not record["executed"]
    if route == "remote":
        (remote,) = out.of("remote")
        assert remote["text"] == text


@settings(max_examples=40, deadline=None)
@given(
    x=st.floats(-5, 5),
    y=st.floats(-5, 5),
    deg=st.floats(-360, 360),
    cruise=st.tuples(st.floats(0.01, 0.6), st.floats(0.01, 0.4), st.floats(0.01, 1.0)),
)
def test_twist_never_exceeds_the_limits(x, y, deg, cruise):
    config = NodeConfig(
        control_period_s=0.2,
        cruise_vx=cruise[0],
        cruise_vy=cruise[1],
        cruise_vyaw=cruise[2],
        max_motion_s=1e6,
    )
    clock = FakeClock()
    out = MemoryOutputs(clock)
    executor = PlanExecutor(out, config)
    from shadow_edge.runtime.safety import SafetyConfig

    plan = plan_program(f"move x={x:.3f} y={y:.3f}; turn deg={deg:.2f}", SPEC, SafetyConfig(*cruise, 1e6))
    if not plan.accepted or not plan.steps:
        return
    executor.start(plan, 1, clock())
    for _ in range(int(plan.motion_duration_s / 0.2) + 3):
        clock.advance(0.2)
        executor.tick(clock())
    for vx, vy, vyaw in out.of("twist"):
        assert abs(vx) <= LIMITS["vx"] and abs(vy) <= LIMITS["vy"] and abs(vyaw) <= LIMITS["vyaw"]
    assert out.of("twist")[-1] == (0.0, 0.0, 0.0)


def test_executor_clamps_a_plan_that_bypassed_the_safety_layer():
    clock = FakeClock()
    out = MemoryOutputs(clock)
    executor = PlanExecutor(out, NodeConfig())
    bad = Plan(
        steps=(
            MotionSegment(vx=9.0, vy=-9.0, vyaw=math.nan, duration_s=0.1, command_index=0),
            MotionSegment(vx=math.inf, vy=0.0, vyaw=-7.0, duration_s=0.1, command_index=1),
        ),
        route="robot",
        accepted=True,
        reason="hand-made",
        program="move x=1",
    )
    executor.start(bad, 1, clock())
    for _ in range(5):
        clock.advance(0.05)
        executor.tick(clock())
    twists = out.of("twist")
    assert (0.6, -0.4, 0.0) in twists and (0.0, 0.0, -1.0) in twists
    assert all(
        abs(a) <= LIMITS["vx"] and abs(b) <= LIMITS["vy"] and abs(c) <= LIMITS["vyaw"] for a, b, c in twists
    )
    with pytest.raises(ValueError):
        executor.start(plan_program("move x=12"), 2, clock())  # refused plans are never started


# -- pre-emption and bounded queue ---------------------------------------------------------------------------------------


def test_a_new_command_preempts_the_running_one():
    node, out, clock, _ = make_node()
    command(node, "walk five metres")
    run_for(node, clock, 1.0)
    command(node, "turn left")
    assert out.of("twist")[-1] == (0.0, 0.0, 0.8)
    run_for(node, clock, 10.0)
    after = out.of("twist")
    turn_start = after.index((0.0, 0.0, 0.8))
    assert all(v[0] == 0.0 for v in after[turn_start:])  # the walk never resumes
    assert after[-1] == (0.0, 0.0, 0.0) and not node.executor.busy


def test_a_flood_of_commands_is_bounded_and_the_latest_wins():
    node, out, clock, session = make_node(max_pending_commands=2)
    for i in range(200):
        node.submit_text("walk two metres" if i < 199 else "turn left")
        assert len(node.queue) <= 2
    processed = 0
    while node.process_next():
        processed += 1
    assert processed == 2 and session.calls > 0
    assert node.counts["dropped"] == 198
    dropped = [r for r in records(out) if r["reason"].startswith("dropped")]
    assert len(dropped) == 198 and not any(r["executed"] for r in dropped)
    assert out.of("twist")[-1] == (0.0, 0.0, 0.8)  # the newest command is what runs


def test_command_queue_drops_oldest():
    queue = CommandQueue(3)
    dropped = [queue.push(PendingCommand(i, str(i), "text", 0.0, 0)) for i in range(5)]
    assert [d[0].seq for d in dropped if d] == [0, 1]
    assert [queue.pop().seq for _ in range(3)] == [2, 3, 4] and queue.pop() is None


# -- stop and e-stop -----------------------------------------------------------------------------------------------------


def test_stop_topic_halts_at_once():
    node, out, clock, _ = make_node()
    command(node, "walk five metres")
    run_for(node, clock, 1.0)
    clock.advance(0.01)  # between two ticks
    t_stop = clock()
    m = mark(out)
    node.stop()
    assert out.timed("twist")[-1] == (t_stop, (0.0, 0.0, 0.0))  # zero in the same instant, not a period later
    run_for(node, clock, 3.0)
    assert moving_twists_after(out, m) == []
    assert not node.executor.busy


@pytest.mark.parametrize("phrase", ["stop", "Stop!", "STOP NOW.", "halt", "停下", "停！"])
def test_stop_phrase_halts_without_the_model(phrase):
    node, out, clock, session = make_node()
    command(node, "walk five metres")
    run_for(node, clock, 0.5)
    calls = session.calls
    m = mark(out)
    node.submit_text(phrase)  # no process_next: the model is not needed
    assert session.calls == calls and out.of("twist")[-1] == (0.0, 0.0, 0.0)
    run_for(node, clock, 2.0)
    assert moving_twists_after(out, m) == []
    stop_record = records(out)[-1]
    assert stop_record["program"] == "stop" and stop_record["executed"]


def test_stop_then_more_goes_to_the_model_after_halting():
    node, out, clock, _ = make_node()
    command(node, "walk five metres")
    node.submit_text("stop, sit")
    assert out.of("twist")[-1] == (0.0, 0.0, 0.0)
    while node.process_next():
        pass
    assert records(out)[-1]["program"] == "sit" and records(out)[-1]["executed"]


def test_phrases_that_are_not_a_stop():
    phrases = StopPhrases(NodeConfig().stop_phrases)
    assert phrases.match("don't stop") is None and phrases.match("walk to the bus stop") is None
    assert phrases.match(b"\xff\xfe") is None and phrases.match(None) is None
    assert phrases.match("stop, then turn left") == "then turn left"


def test_a_program_decoded_across_a_stop_is_never_executed():
    """ "walk" is being decoded when "stop" arrives: its program must not start the robot afterwards."""
    node_box = {}
    commander, _ = make_commander()

    class StopDuringDecode:
        def run(self, text, spoken=False, alternatives=()):
            node_box["node"].stop("stop topic")  # arrives from another thread while the model runs
            return commander.run(text, spoken)

        def info(self):
            return commander.info()

    node, out, clock, _ = make_node(commander=StopDuringDecode())
    node_box["node"] = node
    command(node, "walk two metres")
    run_for(node, clock, 1.0)
    assert moving_twists_after(out, 0) == []
    assert "superseded by a stop" in records(out)[-1]["reason"]


def test_pending_commands_are_dropped_by_a_stop():
    node, out, clock, session = make_node()
    calls = session.calls
    node.submit_text("walk two metres")
    node.stop()
    while node.process_next():
        pass
    assert session.calls == calls and moving_twists_after(out, 0) == []


def test_estop_latches_until_released():
    node, out, clock, _ = make_node()
    command(node, "walk five metres")
    node.set_estop(True)
    assert out.of("twist")[-1] == (0.0, 0.0, 0.0)
    m = mark(out)
    command(node, "walk two metres")
    run_for(node, clock, 1.0)
    assert moving_twists_after(out, m) == []
    assert records(out)[-1]["reason"] == "e-stop engaged: nothing executed"
    node.set_estop(False)
    command(node, "walk two metres")
    assert out.of("twist")[-1] == (0.5, 0.0, 0.0)


def test_model_stop_program_halts_and_sends_stopmove():
    node, out, clock, _ = make_node(go2_sport_output=True)
    command(node, "walk five metres")
    command(node, "cease all motion")
    assert out.of("twist")[-1] == (0.0, 0.0, 0.0)
    assert out.of("sport")[-1].api_id == SPEC.commands["stop"].go2_api_id
    run_for(node, clock, 1.0)
    assert not node.executor.busy


# -- watchdog --------------------------------------------------------------------------------------------------------------


def test_shutdown_publishes_zero_and_refuses_new_commands():
    node, out, clock, _ = make_node()
    command(node, "walk five metres")
    node.shutdown()
    assert (
        out.of("twist")[-NodeConfig().stop_repeat_ticks :]
        == [(0.0, 0.0, 0.0)] * NodeConfig().stop_repeat_ticks
    )
    m = mark(out)
    command(node, "walk two metres")
    run_for(node, clock, 1.0)
    assert moving_twists_after(out, m) == []


def test_model_error_halts_the_robot():
    commander, session = make_commander()
    node, out, clock, _ = make_node(commander=commander)
    command(node, "walk five metres")
    session.fail_at = session.calls + 1  # the next decode fails
    command(node, "turn left")
    assert out.of("twist")[-1] == (0.0, 0.0, 0.0) and not node.executor.busy
    assert "model error" in records(out)[-1]["reason"] and not records(out)[-1]["executed"]
    assert node.counts["model_errors"] == 1


def test_a_commander_that_raises_halts_the_robot():
    commander, _ = make_commander()

    class Broken:
        def __init__(self):
            self.calls = 0

        def run(self, text, spoken=False, alternatives=()):
            self.calls += 1
            if self.calls > 1:
                raise RuntimeError("boom")
            return commander.run(text, spoken)

        def info(self):
            return {}

    node, out, clock, _ = make_node(commander=Broken())
    command(node, "walk five metres")
    command(node, "turn left")
    assert out.of("twist")[-1] == (0.0, 0.0, 0.0) and not node.executor.busy


def test_a_failing_tick_halts_the_robot():
    node, out, clock, _ = make_node()
    command(node, "walk five metres")
    original = node.executor.tick

    def broken_tick(now):
        raise RuntimeError("bug in the control loop")

    node.executor.tick = broken_tick
    clock.advance(PERIOD)
    node.tick()  # does not raise
    assert out.of("twist")[-1] == (0.0, 0.0, 0.0) and node.tick_errors == 1
    node.executor.tick = original
    run_for(node, clock, 1.0)
    assert not node.executor.busy


def test_no_heartbeat_no_motion():
    node, out, clock, _ = make_node(heartbeat_timeout_s=0.5)
    command(node, "walk two metres")
    assert out.of("twist") == [] and records(out)[-1]["reason"] == "no heartbeat: nothing executed"


def test_heartbeat_lost_halts_within_one_period():
    node, out, clock, _ = make_node(heartbeat_timeout_s=0.5)
    node.heartbeat()
    command(node, "walk five metres")
    t_last = clock()
    for _ in range(20):  # heartbeats at 10 Hz keep it moving
        clock.advance(PERIOD)
        node.tick()
        if round((clock() - 100.0) / PERIOD) % 2 == 0 and clock() < 101.0:
            node.heartbeat()
            t_last = clock()
    assert node.executor.busy
    run_for(node, clock, 1.0)
    moving = [t for t, v in out.timed("twist") if nonzero(v)]
    assert moving[-1] <= t_last + 0.5 + 1e-9 and not node.executor.busy
    node.heartbeat()
    command(node, "turn left")
    assert out.of("twist")[-1] == (0.0, 0.0, 0.8)  # a fresh heartbeat allows motion again
