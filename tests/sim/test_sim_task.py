"""The simulation's success checks on synthetic poses and request lists: no physics involved."""

from __future__ import annotations

import math

import pytest
from shadow_edge.runtime.safety import MotionSegment, plan_program
from shadow_edge.sim.sim_task import (
    Pose2D,
    check_locomotion,
    check_requests,
    expected_requests,
    integrate_segment,
    is_locomotion,
    locomotion_target,
)

ORIGIN = Pose2D(0.0, 0.0, 0.0)


def close(a: Pose2D, b: Pose2D, tol: float = 1e-9) -> bool:
    return abs(a.x - b.x) < tol and abs(a.y - b.y) < tol and abs(a.yaw - b.yaw) < tol


@pytest.mark.parametrize(
    ("program", "target"),
    [
        ("move x=1", Pose2D(1.0, 0.0, 0.0)),
        ("move x=-2", Pose2D(-2.0, 0.0, 0.0)),
        ("move y=-0.5", Pose2D(0.0, -0.5, 0.0)),
        ("move x=1 y=1", Pose2D(1.0, 1.0, 0.0)),
        ("turn deg=90", Pose2D(0.0, 0.0, math.pi / 2)),
        ("turn deg=-360", Pose2D(0.0, 0.0, -2 * math.pi)),  # unwrapped: a full turn is not "no turn"
        ("move x=0.5; turn deg=90; move x=0.5", Pose2D(0.5, 0.5, math.pi / 2)),
        ("sit; move x=1; hello", Pose2D(1.0, 0.0, 0.0)),  # postures and tricks do not move the target
        ("turn deg=180; move x=1", Pose2D(-1.0, 0.0, math.pi)),
    ],
)
def test_target_from_the_safety_plan(program, target):
    assert close(locomotion_target(program, ORIGIN), target)


def test_target_is_in_the_start_frame():
    start = Pose2D(2.0, -1.0, math.pi / 2)  # facing +y
    assert close(locomotion_target("move x=1", start), Pose2D(2.0, 0.0, math.pi / 2))
    assert close(locomotion_target("move y=-0.5", start), Pose2D(2.5, -1.0, math.pi / 2))
    # the plan itself is accepted too, not only its text
    assert close(locomotion_target(plan_program("turn deg=-90"), start), Pose2D(2.0, -1.0, 0.0))


def test_constant_twist_integrates_on_an_arc():
    half_circle = MotionSegment(vx=1.0, vy=0.0, vyaw=1.0, duration_s=math.pi, command_index=0)
    assert close(integrate_segment(ORIGIN, half_circle), Pose2D(0.0, 2.0, math.pi), tol=1e-9)


def test_refused_programs_have_no_target():
    for program in ("move x=9", "remote", "reject", "fly away"):
        with pytest.raises(ValueError, match="not executable"):
            locomotion_target(program, ORIGIN)
    assert not is_locomotion("move x=9")
    assert not is_locomotion("sit; hello")
    assert is_locomotion("sit; turn deg=45")


@pytest.mark.parametrize(
    ("actual", "ok"),
    [
        (Pose2D(1.0, 0.0, 0.0), True),
        (Pose2D(1.2, 0.1, math.radians(9.5)), True),  # 0.224 m, 9.5 deg
        (Pose2D(1.26, 0.0, 0.0), False),  # 0.26 m past the target
        (Pose2D(0.8, 0.16, 0.0), False),  # 0.256 m
        (Pose2D(1.0, 0.0, math.radians(10.5)), False),
        (Pose2D(1.0, 0.0, math.radians(-10.5)), False),
        (Pose2D(1.0, 0.0, 2 * math.pi), False),  # turned a full circle on the way: not the commanded pose
        (Pose2D(math.nan, 0.0, 0.0), False),
    ],
)
def test_locomotion_tolerance(actual, ok):
    check = check_locomotion(Pose2D(1.0, 0.0, 0.0), actual)
    assert check.success is ok
    if math.isfinite(actual.x):
        assert check.position_error_m == pytest.approx(math.hypot(actual.x - 1.0, actual.y))
        assert check.yaw_error_deg == pytest.approx(abs(math.degrees(actual.yaw)))


def test_custom_tolerances():
    target, actual = Pose2D(0, 0, 0), Pose2D(0.3, 0, math.radians(12))
    assert not check_locomotion(target, actual).success
    assert check_locomotion(target, actual, position_tolerance_m=0.5, yaw_tolerance_deg=15).success


def test_expected_requests_from_the_plan():
    ids, sounds, stop = expected_requests("stand_up; dance n=2; bark n=3; hello")
    assert ids == (1004, 1023, 1016)
    assert sounds == (("bark", 3),)
    assert stop is False
    assert expected_requests("stop")[2] is True


def test_request_check():
    # Move and StopMove the node adds around motion are not tricks
    assert check_requests("sit; move x=1", [1009, 1008, 1008, 1003]).success
    assert not check_requests("sit; hello", [1016, 1009]).success  # wrong order
    assert not check_requests("sit; hello", [1009]).success  # missing
    assert not check_requests("sit", [1009, 1030]).success  # an extra trick is wrong too
    assert check_requests("dance n=2", [1023]).success
    assert not check_requests("dance n=2", [1022]).success
    assert check_requests("bark n=2", [], [("bark", 2)]).success
    assert not check_requests("bark n=2", [], [("bark", 1)]).success
    assert check_requests("stop", [1003]).success
    assert not check_requests("stop", []).success
