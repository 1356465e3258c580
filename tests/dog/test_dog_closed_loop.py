"""Closed-loop motion in the node's executor (shadow_dog.executor, shadow_dog.odometry) on a fake clock and a
kinematic robot: a move or turn ends at its target pose, keeps a timeout, and falls back to timed motion when the
odometry is absent or goes stale (and the diagnostics say so). No physics here: tests/sim covers the MuJoCo dog."""

from __future__ import annotations

import math

import pytest
from shadow_dog.config import NodeConfig
from shadow_dog.executor import PlanExecutor
from shadow_dog.odometry import OdometryTracker, Pose2D, segment_end, yaw_from_quaternion
from shadow_dog.outputs import MemoryOutputs
from shadow_edge.runtime.safety import MotionSegment, plan_program

PERIOD = 0.05
LIMITS = (0.6, 0.4, 1.0)


class KinematicDog:
    """Integrates the commanded body twist exactly, `gain` times as fast as commanded (1.1: overshoots by 10%)."""

    def __init__(self, gain: float = 1.0) -> None:
        self.pose = Pose2D(0.0, 0.0, 0.0)
        self.gain = gain

    def step(self, twist: tuple[float, float, float], dt: float) -> None:
        vx, vy, w = (self.gain * v for v in twist)
        self.pose = segment_end(self.pose, MotionSegment(vx, vy, w, dt, 0))


def run(
    program: str, *, gain: float = 1.0, odometry_until: float = math.inf, config: NodeConfig | None = None
):
    """Execute `program`; odometry is published every period until `odometry_until` seconds."""
    config = config or NodeConfig(control_period_s=PERIOD)
    now = [0.0]
    outputs = MemoryOutputs(lambda: now[0])
    tracker = OdometryTracker(config.odom_timeout_s)
    executor = PlanExecutor(outputs, config, odometry=tracker)
    dog = KinematicDog(gain)

    def sense() -> None:
        if now[0] < odometry_until:
            tracker.update(
                dog.pose.x, dog.pose.y, math.atan2(math.sin(dog.pose.yaw), math.cos(dog.pose.yaw)), now[0]
            )

    sense()
    executor.start(plan_program(program), 1, now[0])
    modes = {executor.motion_mode}
    while executor.busy and now[0] < 120:
        last = outputs.of("twist")[-1]
        dog.step(last, PERIOD)
        now[0] += PERIOD
        sense()
        executor.tick(now[0])
        modes.add(executor.motion_mode)
    return dog, outputs, executor, modes, now[0]


def target(program: str) -> Pose2D:
    pose = Pose2D(0.0, 0.0, 0.0)
    for step in plan_program(program).steps:
        if isinstance(step, MotionSegment):
            pose = segment_end(pose, step)
    return pose


def errors(dog: KinematicDog, program: str) -> tuple[float, float]:
    goal = target(program)
    return math.hypot(dog.pose.x - goal.x, dog.pose.y - goal.y), abs(math.degrees(dog.pose.yaw - goal.yaw))


@pytest.mark.parametrize(
    "program", ["move x=4", "move y=-2", "turn deg=180", "turn deg=360", "move x=2; turn; move x=1"]
)
def test_closed_loop_ends_at_the_target_even_when_the_robot_overshoots(program):
    open_dog, *_ = run(program, gain=1.1, config=NodeConfig(control_period_s=PERIOD, closed_loop=False))
    dog, outputs, executor, modes, _ = run(program, gain=1.1)
    position, yaw = errors(dog, program)
    assert position <= 0.06 and yaw <= 2.5, (position, yaw)
    assert errors(open_dog, program) > (position, yaw)  # open loop carries the 10% overshoot
    assert "closed loop" in modes and executor.counts["closed_loop"] >= 1
    assert executor.counts["closed_loop_timeouts"] == 0
    twists = outputs.of("twist")
    assert all(abs(v) <= limit for t in twists for v, limit in zip(t, LIMITS, strict=True))
    assert twists[-1] == (0.0, 0.0, 0.0)


def test_closed_loop_never_goes_faster_than_the_plan():
    _, outputs, *_ = run("move x=3", gain=0.5)  # a sluggish robot: the executor must not speed up to catch up
    assert max(abs(t[0]) for t in outputs.of("twist")) <= 0.5 + 1e-9


def test_without_odometry_motion_is_timed_and_diagnosed_as_open_loop():
    dog, outputs, executor, modes, elapsed = run("move x=2", odometry_until=-1.0)
    assert modes >= {"open loop (no odometry)"} and "closed loop" not in modes
    assert executor.counts == {
        "closed_loop": 0,
        "open_loop": 1,
        "odometry_lost": 0,
        "closed_loop_timeouts": 0,
    }
    moving = [t for t in outputs.of("twist") if t != (0.0, 0.0, 0.0)]
    assert len(moving) == 80  # 4 s at 0.5 m/s, one velocity per 50 ms: exactly the timed plan


def test_odometry_going_stale_mid_move_finishes_the_segment_on_time():
    dog, outputs, executor, modes, elapsed = run("move x=2", odometry_until=1.0)
    assert "closed loop" in modes and "open loop (odometry stale)" in modes
    assert executor.counts["odometry_lost"] == 1
    moving = [t for t in outputs.of("twist") if t != (0.0, 0.0, 0.0)]
    assert len(moving) == 80  # the segment keeps its planned time from its start
    assert errors(dog, "move x=2")[0] < 0.06


def test_a_robot_that_does_not_move_times_out_and_stops():
    config = NodeConfig(control_period_s=PERIOD, closed_loop_timeout_factor=1.5)
    dog, outputs, executor, modes, elapsed = run("move x=1", gain=0.0, config=config)  # 2 s planned
    assert executor.counts["closed_loop_timeouts"] == 1
    assert 1.5 * 2.0 + 1.0 <= elapsed <= 1.5 * 2.0 + 1.0 + 2 * PERIOD
    assert outputs.of("twist")[-1] == (0.0, 0.0, 0.0)


def test_odometry_tracker_unwraps_refuses_non_finite_and_goes_stale():
    tracker = OdometryTracker(timeout_s=0.5)
    assert tracker.state(0.0) == "absent" and tracker.pose(0.0) is None
    for i, yaw in enumerate([3.0, -3.0, -2.0, 3.1, -3.1]):  # +-pi crossings, always the short way
        assert tracker.update(0.0, 0.0, yaw, 0.1 * i)
    assert tracker.pose(0.4).yaw == pytest.approx(
        3.0 + (2 * math.pi - 6.0) + 1.0 + (5.1 - 2 * math.pi) + (2 * math.pi - 6.2)
    )
    assert not tracker.update(math.nan, 0.0, 0.0, 0.5) and not tracker.update(0.0, math.inf, 0.0, 0.5)
    assert not tracker.update("x", 0.0, 0.0, 0.5)
    assert tracker.refused == 3 and tracker.state(0.6) == "fresh" and tracker.pose(1.5) is None
    assert tracker.state(1.5) == "stale"
    assert not tracker.update(5.0, 5.0, 0.0, 0.45, source="other")  # a second frame, while the first is fresh
    assert tracker.update(5.0, 5.0, 0.0, 2.0, source="other") and tracker.source == "other"


def test_yaw_from_quaternion():
    for yaw in (0.0, 0.5, -2.0, math.pi - 1e-6):
        assert yaw_from_quaternion(0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)) == pytest.approx(yaw)


def test_logic_diagnostics_say_which_loop_runs():
    from shadow_dog.logic import DogNodeLogic

    now = [10.0]
    logic = DogNodeLogic(MemoryOutputs(lambda: now[0]), None, NodeConfig(), clock=lambda: now[0])
    motion = {s.name: s for s in logic.diagnostics()}["shadow_dog: motion"].values
    assert motion["odometry"] == "absent" and motion["motion_control"] == "open loop: odometry absent"
    logic.odometry_input(1.0, 2.0, 0.3, "sportmodestate")
    motion = {s.name: s for s in logic.diagnostics()}["shadow_dog: motion"].values
    assert motion["motion_control"] == "closed loop" and motion["odometry_source"] == "sportmodestate"
    now[0] += 1.0
    motion = {s.name: s for s in logic.diagnostics()}["shadow_dog: motion"].values
    assert motion["motion_control"] == "open loop: odometry stale"
