"""MCAP recording of a node session in ROS 2 format, read back with the mcap-ros2-support reader."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("mcap_ros2")

from mcap.reader import make_reader  # noqa: E402
from mcap_ros2.decoder import DecoderFactory  # noqa: E402
from shadow_dog.config import NodeConfig  # noqa: E402
from shadow_dog.logic import DogNodeLogic  # noqa: E402
from shadow_dog.outputs import MemoryOutputs  # noqa: E402
from shadow_dog.recorder import McapRecorder, RecordingOutputs  # noqa: E402
from test_dog_node_logic import FakeClock, make_commander  # noqa: E402


def test_session_is_recorded_and_readable(tmp_path):
    path = tmp_path / "session.mcap"
    config = NodeConfig(go2_sport_output=True, control_period_s=0.05, record_mcap=str(path))
    clock = FakeClock()
    memory = MemoryOutputs(clock)
    recorder = McapRecorder(str(path), config)
    commander, _ = make_commander()
    logic = DogNodeLogic(RecordingOutputs(memory, recorder), commander, config, clock=clock)
    logic.input_observer = recorder.record_input
    logic.submit_text("sit then turn right")
    logic.process_next()
    for _ in range(20):
        clock.advance(0.05)
        logic.tick()
    logic.set_estop(True)
    logic.shutdown()
    recorder.close()

    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        messages = [(c.topic, s.name, m) for s, c, _, m in reader.iter_decoded_messages()]
    topics = {t for t, _, _ in messages}
    assert {
        "/shadow_dog/command_text",
        "/shadow_dog/program",
        "/cmd_vel",
        "/api/sport/request",
        "/diagnostics",
        "/shadow_dog/estop",
    } <= topics
    command = next(m for t, _, m in messages if t == "/shadow_dog/command_text")
    assert command.data == "sit then turn right"
    program = json.loads(next(m for t, _, m in messages if t == "/shadow_dog/program").data)
    assert program["program"] == "sit; turn deg=-90" and program["executed"]
    twists = [(m.linear.x, m.angular.z) for t, s, m in messages if t == "/cmd_vel"]
    assert len(twists) == len(memory.of("twist")) and twists[-1] == (0.0, 0.0)
    sport = [m for t, _, m in messages if t == "/api/sport/request"]
    assert sport[0].header.identity.api_id == 1009
    diag = next(m for t, _, m in messages if t == "/diagnostics")
    assert diag.status[0].name == "shadow_dog: model"
    assert recorder.count == len(messages)
