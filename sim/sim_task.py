"""Did the (simulated) dog do what the program said? Pure math on poses and request ids: no physics here.

- Locomotion (`move`, `turn`): the target pose is the start pose moved by the safety layer's motion plan
  (`plan_program`), each segment integrated exactly as a constant body-frame twist. Success is a final pose within
  `DEFAULT_POSITION_TOLERANCE_M` (0.25 m) and `DEFAULT_YAW_TOLERANCE_DEG` (10 deg) of the target (issue 6).
- Postures and tricks: success is the sport-API requests the robot received, in order, matching the plan's api ids;
  `bark` is checked on the node's sound output instead (it is audio, not a sport request).

Yaw is *unwrapped* (continuous, radians) on both sides: `turn deg=360` targets start + 2*pi, so a dog that never
turned fails it instead of passing by wrap-around. Callers must therefore pass an unwrapped measured yaw (`SimGo2`
reports one).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shadow_edge.runtime.safety import ActionRequest, MotionSegment, Plan, plan_program

DEFAULT_POSITION_TOLERANCE_M = 0.25
DEFAULT_YAW_TOLERANCE_DEG = 10.0
# Requests the node sends on its own around motion (Move while walking, StopMove at the end or on a halt); they
# are not postures or tricks, so the trick check ignores them (a `stop` command is checked separately).
MOVE_API_ID = 1008
STOP_MOVE_API_ID = 1003


@dataclass(frozen=True)
class Pose2D:
    """A planar pose in the world: x, y in metres, yaw in radians, counter-clockwise, unwrapped."""

    x: float
    y: float
    yaw: float


@dataclass(frozen=True)
class LocomotionCheck:
    """The outcome of one locomotion task: target, actual, errors and whether both are within tolerance."""

    target: Pose2D
    actual: Pose2D
    position_error_m: float
    yaw_error_deg: float
    success: bool

    def to_json(self) -> dict[str, object]:
        return {
            "target": [self.target.x, self.target.y, math.degrees(self.target.yaw)],
            "actual": [self.actual.x, self.actual.y, math.degrees(self.actual.yaw)],
            "position_error_m": round(self.position_error_m, 4),
            "yaw_error_deg": round(self.yaw_error_deg, 3),
            "success": self.success,
        }


@dataclass(frozen=True)
class RequestCheck:
    """The outcome of a posture/trick task: the api ids expected and received (Move/StopMove left out)."""

    expected: tuple[int, ...]
    received: tuple[int, ...]
    expected_sounds: tuple[tuple[str, int], ...]
    received_sounds: tuple[tuple[str, int], ...]
    stop_expected: bool
    stop_received: bool
    success: bool


def _as_plan(plan_or_program: Plan | str) -> Plan:
    plan = plan_program(plan_or_program) if isinstance(plan_or_program, str) else plan_or_program
    if not plan.accepted:
        raise ValueError(f"the program is not executable, so it has no target: {plan.reason}")
    return plan


def integrate_segment(pose: Pose2D, segment: MotionSegment) -> Pose2D:
    """The pose after holding the segment's body-frame twist for its duration (exact for a constant twist)."""
    vx, vy, w, t = segment.vx, segment.vy, segment.vyaw, segment.duration_s
    yaw0, yaw1 = pose.yaw, pose.yaw + w * t
    if abs(w * t) < 1e-9:
        c, s = math.cos(yaw0), math.sin(yaw0)
        return Pose2D(pose.x + (c * vx - s * vy) * t, pose.y + (s * vx + c * vy) * t, yaw1)
    # Integral of R(yaw0 + w*t) @ (vx, vy) over [0, t].
    ds = (math.sin(yaw1) - math.sin(yaw0)) / w
    dc = (math.cos(yaw0) - math.cos(yaw1)) / w
    return Pose2D(pose.x + vx * ds - vy * dc, pose.y + vx * dc + vy * ds, yaw1)


def is_locomotion(plan_or_program: Plan | str) -> bool:
    """True when the accepted plan moves the robot (has at least one motion segment)."""
    plan = plan_program(plan_or_program) if isinstance(plan_or_program, str) else plan_or_program
    return plan.accepted and any(isinstance(s, MotionSegment) for s in plan.steps)


def locomotion_target(plan_or_program: Plan | str, start: Pose2D) -> Pose2D:
    """Where the program should leave the robot, from `start`; postures and tricks do not move it.

    Raises `ValueError` for a program the safety layer refuses (it has no target: nothing may move)."""
    pose = start
    for step in _as_plan(plan_or_program).steps:
        if isinstance(step, MotionSegment):
            pose = integrate_segment(pose, step)
    return pose


def check_locomotion(
    target: Pose2D,
    actual: Pose2D,
    position_tolerance_m: float = DEFAULT_POSITION_TOLERANCE_M,
    yaw_tolerance_deg: float = DEFAULT_YAW_TOLERANCE_DEG,
) -> LocomotionCheck:
    """Compare the final pose with the target; both yaws unwrapped (see the module docstring)."""
    values = (target.x, target.y, target.yaw, actual.x, actual.y, actual.yaw)
    if not all(math.isfinite(v) for v in values):
        return LocomotionCheck(target, actual, math.inf, math.inf, False)
    position_error = math.hypot(actual.x - target.x, actual.y - target.y)
    yaw_error = abs(math.degrees(actual.yaw - target.yaw))
    success = position_error <= position_tolerance_m and yaw_error <= yaw_tolerance_deg
    return LocomotionCheck(target, actual, position_error, yaw_error, success)


def expected_requests(
    plan_or_program: Plan | str,
) -> tuple[tuple[int, ...], tuple[tuple[str, int], ...], bool]:
    """(posture/trick api ids in order, sounds as (name, count), whether a `stop` command is in the program)."""
    plan = _as_plan(plan_or_program)
    ids: list[int] = []
    sounds: list[tuple[str, int]] = []
    stop = False
    for step in plan.steps:
        if not isinstance(step, ActionRequest):
            continue
        if step.name == "stop":
            stop = True
        elif step.api_id is None:
            sounds.append((step.name, int(step.params.get("n", 1))))
        else:
            ids.append(int(step.api_id))
    return tuple(ids), tuple(sounds), stop


def check_requests(
    plan_or_program: Plan | str,
    received_api_ids: Iterable[int],
    received_sounds: Sequence[tuple[str, int]] = (),
) -> RequestCheck:
    """The robot got exactly the program's postures and tricks in order (and its sounds, and a StopMove if the
    program says `stop`). Move and StopMove requests the node adds around motion are not counted as tricks."""
    expected, sounds, stop_expected = expected_requests(plan_or_program)
    ids = [int(i) for i in received_api_ids]
    received = tuple(i for i in ids if i not in (MOVE_API_ID, STOP_MOVE_API_ID))
    stop_received = STOP_MOVE_API_ID in ids
    got_sounds = tuple((str(n), int(c)) for n, c in received_sounds)
    success = received == expected and got_sounds == sounds and (stop_received or not stop_expected)
    return RequestCheck(expected, received, sounds, got_sounds, stop_expected, stop_received, success)
