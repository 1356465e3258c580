"""The ROS 2 node's transport-free logic (shadow_dog.logic): one test (or more) per safety rule of issue 5.

Everything runs on a fake clock: `tick()` is called by hand, so timings are exact and nothing sleeps.
"""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runtime_fakes import (
    EOS_ID,
    SUFFIX,
    bigram_decoder,
    tiny_tokenizer,
    write_export_dir,
)
from scripted_commander import (
    ANSWERS,
    LIMITS,
    PERIOD,
    SPEC,
    make_commander,
)
from shadow_dog.cloud import http_cloud_hook
from shadow_dog.command_queue import CommandQueue, PendingCommand, StopPhrases
from shadow_dog.config import ConfigError, NodeConfig
from shadow_dog.executor import PlanExecutor
from shadow_dog.latency import percentile
from shadow_dog.logic import DogNodeLogic, load_commander
from shadow_dog.outputs import DIAG_ERROR, DIAG_OK, MemoryOutputs
from shadow_edge.runtime.grammar import action_vocabulary
from shadow_edge.runtime.safety import MotionSegment, Plan, plan_program


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


def make_node(commander="default", **config):
    clock = FakeClock()
    outputs = MemoryOutputs(clock)
    session = None
    if commander == "default":
        commander, session = make_commander()
    node = DogNodeLogic(outputs, commander, NodeConfig(**{"control_period_s": PERIOD, **config}), clock=clock)
    return node, outputs, clock, session


def command(node, text, **kwargs):
    node.submit_text(text, **kwargs)
    while node.process_next():
        pass


def run_for(node, clock, seconds):
    for _ in range(round(seconds / PERIOD)):
        clock.advance(PERIOD)
        node.tick()


def nonzero(twist) -> bool:
    return any(abs(v) > 0 for v in twist)


def records(outputs):
    return outputs.of("program")


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


def mark(out) -> int:
    return len(out.sent)


def moving_twists_after(out, index):
    """Non-zero velocities sent after message number `index` (see `mark`)."""
    return [s.value for s in out.sent[index:] if s.kind == "twist" and nonzero(s.value)]


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
        def run(self, text):
            node_box["node"].stop("stop topic")  # arrives from another thread while the model runs
            return commander.run(text)

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

        def run(self, text):
            self.calls += 1
            if self.calls > 1:
                raise RuntimeError("boom")
            return commander.run(text)

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


# -- the real runtime, the cloud hook, config -------------------------------------------------------------------------------


def test_load_commander_runs_a_real_export_dir(tmp_path):
    tokenizer = tiny_tokenizer()
    ids = action_vocabulary(tokenizer, EOS_ID)
    script = [*tokenizer.encode("turn deg=45", add_special_tokens=False).ids, EOS_ID]
    start = tokenizer.encode(SUFFIX, add_special_tokens=False).ids[-1]
    vocab = tokenizer.get_vocab_size(with_added_tokens=True)
    model_dir = write_export_dir(
        tmp_path / "model", tokenizer, ids, lambda p: bigram_decoder(p, vocab, ids, script, start_id=start)
    )
    commander, error = load_commander(NodeConfig(model_dir=str(model_dir), provider="cpu", threads=1))
    assert error is None
    node, out, clock, _ = make_node(commander=commander)
    command(node, "turn a bit left")
    assert records(out)[0]["program"] == "turn deg=45" and out.of("twist")[0] == (0.0, 0.0, 0.8)
    node.tick()
    assert out.of("diagnostics")[-1][0].values["provider"] == "CPUExecutionProvider"
    missing, error = load_commander(NodeConfig(model_dir=str(tmp_path / "nothing")))
    assert missing is None and "not a directory" in error


@pytest.fixture()
def cloud_server():
    answers = {"what is two plus two": {"answer": "four"}, "do a trick": {"program": "sit"}}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server API)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            data = json.dumps(answers.get(body["text"], {"nothing": 1})).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_remote_route_goes_to_the_cloud_hook(cloud_server):
    hook = http_cloud_hook(cloud_server, timeout_s=2.0)
    commander, _ = make_commander({"what is two plus two": "remote", "do a trick": "remote"}, cloud=hook)
    node, out, clock, _ = make_node(commander=commander)
    command(node, "what is two plus two")
    assert records(out)[-1]["remote_answer"] == "four" and out.of("twist") == []
    command(node, "do a trick")  # the cloud's program goes through safety, then runs
    assert records(out)[-1]["executed"] and records(out)[-1]["remote_answer"] == "sit"
    with pytest.raises(ValueError):
        http_cloud_hook("file:///etc/passwd")


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="unknown parameter"):
        NodeConfig.from_dict({"control_perod_s": 0.1})
    with pytest.raises(ConfigError, match="control_period_s"):
        NodeConfig.from_dict({"control_period_s": "fast"})
    with pytest.raises(ConfigError, match="cruise_vx"):
        NodeConfig.from_dict({"cruise_vx": 2.0})
    with pytest.raises(ConfigError, match="heartbeat_timeout_s"):
        NodeConfig.from_dict({"heartbeat_timeout_s": 0.01})
    config = NodeConfig.from_dict({"threads": "2", "go2_sport_output": "true", "stop_phrases": "stop, halt"})
    assert config.threads == 2 and config.go2_sport_output and config.stop_phrases == ("stop", "halt")
    assert config.resolve("~/program") == "/shadow_dog/program" and config.resolve("cmd_vel") == "/cmd_vel"


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
