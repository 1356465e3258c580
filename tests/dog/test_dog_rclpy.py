"""The rclpy node for real: `shadow_dog_node` on real rclpy (PyPI wheels, Fast DDS) in its own process, driven by a
real rclpy client in another process (tests/rclpy_peer.py), all on loopback (shadow_dog.loopback).

Run with `pytest -m ros` after `bash scripts/setup_ros_venv.sh` (Kilted); SHADOW_ROS_VENV=build/ros-jazzy-venv runs
the same tests on Jazzy (scripts/test_ros.sh jazzy). The model is a scripted tiny ONNX export that answers
"move x=2" (4 s at 0.5 m/s) to every command. Assertions are on what arrives and in which order, not on wall-clock
times: "within one control period" means at most one velocity that was already on its way arrives after the stop
and before the zero, and nothing moves after it.
"""

from __future__ import annotations

import signal
import time

import pytest
from rclpy_processes import (
    Peer,
    cdr_string,
    domain_for,
    environment,
    nonzero,
    rclpy_node,
    rclpy_node_with_faults,
    ros_python,
    within_limits,
)
from runtime_fakes import scripted_export

pytestmark = pytest.mark.ros

PROGRAM = "move x=2"
PYTHON = ros_python()
if PYTHON is None:
    pytest.skip("no ROS venv: bash scripts/setup_ros_venv.sh", allow_module_level=True)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return scripted_export(tmp_path_factory.mktemp("model"), PROGRAM)


@pytest.fixture(scope="module")
def ros(model_dir, tmp_path_factory):
    """One node and one peer for the module's tests (each test leaves the node idle and its parameters default)."""
    env = environment(domain_for(1))
    node = rclpy_node(PYTHON, env, tmp_path_factory.mktemp("node") / "node.log", model_dir=str(model_dir))
    peer = Peer(PYTHON, env)
    try:
        peer.request(op="wait_match", timeout=150)
    except AssertionError:
        peer.close()
        node.stop()
        raise AssertionError(f"no match with the node; its log:\n{node.log()[-3000:]}") from None
    yield node, peer
    peer.close()
    node.stop()


@pytest.fixture
def peer(ros):
    node, peer = ros
    peer.clear()
    yield peer
    peer.request(op="publish", topic="estop", data=False)
    peer.request(op="set_params", params={"heartbeat_timeout_s": 0.0, "cruise_vx": 0.5})
    stop_time = peer.request(op="publish", topic="stop")["t"]
    # the halt's zero velocity says the node has taken the stop: it cannot then drop the next test's command
    peer.wait_for(lambda: any(t > stop_time for t, _ in peer.twists), 10, "the node taking the stop")
    assert node.alive(), node.log()[-3000:]


def records(peer):
    return [r for _, r in peer.programs]


def first_motion_at(peer) -> float:
    return next(t for t, v in peer.twists if nonzero(v))


def command_and_wait_for_motion(peer, text="walk two metres"):
    peer.request(op="publish", topic="command", data=text)
    peer.wait_for(
        lambda: any(nonzero(v) for _, v in peer.twists) or any(not r["executed"] for r in records(peer)),
        30,
        "the first velocity",
    )
    assert any(nonzero(v) for _, v in peer.twists), [r["reason"] for r in records(peer)]


def assert_halted_after(peer, stop_time: float) -> None:
    """After `stop_time`: a velocity or two already in flight, then zero, and nothing but zero from then on. (The
    logic halts at once, in the stop's callback -- tests/dog/test_dog_node_logic.py checks that on a fake clock; a
    control loop catching up on a loaded machine may have sent two velocities back to back just before.)"""
    peer.wait_for(lambda: any(t > stop_time and not nonzero(v) for t, v in peer.twists), 10, "zero velocity")
    after = [(t, v) for t, v in peer.twists if t > stop_time]
    first_zero = next(i for i, (_, v) in enumerate(after) if not nonzero(v))
    assert first_zero <= 3, after[:6]
    time.sleep(0.6)  # a dozen control periods: a node that kept walking would publish again
    peer.collect()
    later = [v for t, v in peer.twists if t > after[first_zero][0]]
    assert not any(nonzero(v) for v in later), later[:5]


# -- a command becomes ~/program and /cmd_vel within limits ------------------------------------------------------------


def test_command_becomes_program_and_cmd_vel_within_limits(peer):
    peer.request(op="publish", topic="command", data="walk two metres")
    peer.wait_for(lambda: records(peer), 30, "the ~/program record")
    (record,) = records(peer)
    assert record["text"] == "walk two metres" and record["program"] == PROGRAM
    assert record["accepted"] and record["executed"]
    peer.wait_for(
        lambda: any(nonzero(v) for _, v in peer.twists) and not nonzero(peer.twists[-1][1]),
        30,
        "the move and its final zero",
    )
    moving = [v for _, v in peer.twists if nonzero(v)]
    assert all(within_limits(v) for _, v in peer.twists)
    assert set(moving) == {(0.5, 0.0, 0.0)}
    # 4 s at one message per 50 ms control period: about 80 velocities reached this other process
    assert 60 <= len(moving) <= 90, len(moving)


# -- stop and e-stop halt within one control period ------------------------------------------------------------------


def test_stop_topic_halts_within_one_control_period(peer):
    command_and_wait_for_motion(peer)
    stop_time = peer.request(op="publish", topic="stop")["t"]
    assert_halted_after(peer, stop_time)


def test_estop_halts_and_refuses_motion_until_released(peer):
    command_and_wait_for_motion(peer)
    stop_time = peer.request(op="publish", topic="estop", data=True)["t"]
    assert_halted_after(peer, stop_time)
    peer.clear()
    peer.request(op="publish", topic="command", data="walk two metres")
    peer.wait_for(lambda: records(peer), 30, "the refusal")
    (record,) = records(peer)
    assert not record["executed"] and "e-stop" in record["reason"]
    assert not any(nonzero(v) for _, v in peer.twists)
    peer.request(op="publish", topic="estop", data=False)
    peer.clear()
    command_and_wait_for_motion(peer)  # released: motion works again


# -- a missing heartbeat zeroes the velocity ----------------------------------------------------------------------------


def test_missing_heartbeat_zeroes_velocity(peer):
    peer.request(op="heartbeats", period=0.1, on=True)
    (result,) = peer.request(op="set_params", params={"heartbeat_timeout_s": 0.5})["results"]
    assert result["successful"], result
    try:
        command_and_wait_for_motion(peer)
        lost = peer.request(op="heartbeats", on=False)["t"]
        peer.wait_for(
            lambda: any(t > lost and not nonzero(v) for t, v in peer.twists), 10, "the watchdog's zero"
        )
        time.sleep(0.6)
        peer.collect()
        zero_at = next(t for t, v in peer.twists if t > lost and not nonzero(v))
        assert not any(nonzero(v) for t, v in peer.twists if t > zero_at)
        peer.wait_for(
            lambda: any(
                s["values"].get("heartbeat") == "missing"
                for t, d in peer.diagnostics
                if t > zero_at
                for s in d
            ),
            10,
            "diagnostics saying the heartbeat is missing",
        )
        peer.programs.clear()
        peer.request(op="publish", topic="command", data="walk two metres")
        peer.wait_for(lambda: records(peer), 30, "the refusal")
        assert "no heartbeat" in records(peer)[0]["reason"]
    finally:
        peer.request(op="set_params", params={"heartbeat_timeout_s": 0.0})


# -- diagnostics ------------------------------------------------------------------------------------------------------


def test_diagnostics_are_published(peer):
    peer.wait_for(lambda: peer.diagnostics, 10, "/diagnostics")
    statuses = {s["name"]: s for s in peer.diagnostics[-1][1]}
    assert set(statuses) == {"shadow_dog: model", "shadow_dog: motion", "shadow_dog: audio"}
    assert statuses["shadow_dog: model"]["values"]["model_loaded"] == "true"
    motion = statuses["shadow_dog: motion"]["values"]
    assert motion["odometry"] == "absent" and motion["motion_control"] == "open loop: odometry absent"


# -- malformed and huge messages are refused and logged ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe\xfd\xfc\xc3\x28\xa0\xa1\xe2\x28\xa1walk", "undecodable"),  # rclpy decodes with U+FFFD
        (b"walk\x07\x1b[2J\x08\x7f two\x01\x02\x03\x04\x05\x06", "control"),  # no NUL: C strings end there
        (("walk two metres " * 20000).encode(), "too long"),  # 320 kB
    ],
    ids=["invalid-utf8", "control-characters", "huge"],
)
def test_malformed_and_huge_messages_are_refused_and_logged(ros, peer, payload, reason):
    node, _ = ros
    peer.request(op="publish_raw", topic="command", hex=cdr_string(payload))
    peer.wait_for(lambda: records(peer), 30, "the refusal")
    (record,) = records(peer)
    assert not record["accepted"] and not record["executed"]
    assert reason in record["reason"], record["reason"]
    assert not any(nonzero(v) for _, v in peer.twists)
    assert f"not executed: {record['reason']}" in node.log()


def test_a_truncated_message_moves_nothing_and_the_node_goes_on(ros, peer):
    node, _ = ros
    truncated = "00010000" + (1000).to_bytes(4, "little").hex() + b"walk".hex()  # says 1000 bytes, has 4
    peer.request(op="publish_raw", topic="command", hex=truncated)
    time.sleep(1.0)
    peer.collect()
    assert not any(nonzero(v) for _, v in peer.twists) and not any(r["executed"] for r in records(peer))
    assert node.alive()
    command_and_wait_for_motion(peer)  # still serving


# -- parameters through the real parameter API -----------------------------------------------------------------------


def test_parameters_wrong_type_over_spec_and_read_only_are_refused(peer):
    results = peer.request(
        op="set_params",
        params={
            "cruise_vx": "fast",
            "cruise_vyaw": 1.5,
            "model_dir": "/elsewhere",
            "heartbeat_timeout_s": -1.0,
        },
    )["results"]
    assert [r["successful"] for r in results] == [False, False, False, False]
    wrong_type, over_spec, read_only, negative = (r["reason"] for r in results)
    assert "type" in wrong_type.lower()
    assert "exceeds the spec's speed limit" in over_spec
    assert "read at start-up only" in read_only
    assert "heartbeat_timeout_s" in negative
    values = peer.request(op="get_params", names=["cruise_vx", "cruise_vyaw", "model_dir"])["values"]
    assert values[:2] == [0.5, 0.8] and values[2] != "/elsewhere"


def test_a_valid_speed_change_reaches_the_next_command(peer):
    (result,) = peer.request(op="set_params", params={"cruise_vx": 0.3})["results"]
    assert result["successful"], result
    try:
        assert peer.request(op="get_params", names=["cruise_vx"])["values"] == [0.3]
        command_and_wait_for_motion(peer)
        assert {v for _, v in peer.twists if nonzero(v)} == {(0.3, 0.0, 0.0)}
    finally:
        peer.request(op="set_params", params={"cruise_vx": 0.5})


# -- odometry: closed loop while it is fresh, open loop when it goes stale -------------------------------------------


def test_odometry_stale_mid_move_falls_back_to_open_loop_and_says_so(peer):
    for _ in range(5):
        peer.request(op="publish_odom", x=0.0, y=0.0, yaw=0.0)
    command_and_wait_for_motion(peer)
    for _ in range(3):  # a dog that does not move (odometry frozen), then none at all
        peer.request(op="publish_odom", x=0.0, y=0.0, yaw=0.0)
    peer.wait_for(
        lambda: any(
            s["values"].get("motion_mode") == "open loop (odometry stale)"
            for _, d in peer.diagnostics
            for s in d
        ),
        15,
        "diagnostics saying the move went on open loop",
    )
    peer.wait_for(lambda: not nonzero(peer.twists[-1][1]), 15, "the end of the move")
    modes = {s["values"].get("motion_mode") for _, d in peer.diagnostics for s in d}
    assert "closed loop" in modes or "open loop (odometry stale)" in modes
    assert all(within_limits(v) for _, v in peer.twists)


# -- shutdown and a killed model worker leave zero velocity -----------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_shutdown_mid_move_leaves_zero_velocity(model_dir, tmp_path, sig):
    env = environment(domain_for(10 + sig))
    node = rclpy_node(PYTHON, env, tmp_path / "node.log", model_dir=str(model_dir))
    peer = Peer(PYTHON, env)
    try:
        peer.request(op="wait_match", timeout=150)
        command_and_wait_for_motion(peer)
        assert node.stop(sig) == 0, node.log()[-3000:]
        peer.wait_for(lambda: not nonzero(peer.twists[-1][1]), 10, "zero velocity after the shutdown")
        last_move = max(i for i, (_, v) in enumerate(peer.twists) if nonzero(v))
        assert last_move < len(peer.twists) - 1 and not nonzero(peer.twists[-1][1])
    finally:
        peer.close()
        node.stop()


def test_killed_model_worker_leaves_zero_velocity_and_refuses_commands(model_dir, tmp_path):
    env = environment(domain_for(30))
    node = rclpy_node_with_faults(PYTHON, env, tmp_path / "node.log", model_dir=str(model_dir))
    peer = Peer(PYTHON, env)
    try:
        peer.request(op="wait_match", timeout=150)
        command_and_wait_for_motion(peer)
        killed = peer.request(op="publish", topic="command", data="kill the model worker")["t"]
        assert_halted_after(peer, killed)
        peer.programs.clear()
        peer.request(op="publish", topic="command", data="walk two metres")
        peer.wait_for(lambda: records(peer), 30, "the refusal")
        assert "model worker died" in records(peer)[0]["reason"]
        peer.wait_for(
            lambda: any(
                s["name"] == "shadow_dog: model" and s["level"] == 2 and "worker died" in s["message"]
                for t, d in peer.diagnostics
                if t > killed
                for s in d
            ),
            10,
            "diagnostics reporting the dead worker",
        )
        assert not any(nonzero(v) for t, v in peer.twists if t > killed + 1.0)
        assert node.alive()
    finally:
        peer.close()
        node.stop()
