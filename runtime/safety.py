"""The safety layer between the model and anything that moves.

Contract:

- `plan_program(text_or_program)` turns a model output (or a parsed `Program`) into a `Plan` and **never raises**,
  whatever it is given. A plan is either *accepted* with its steps, or *refused* with no steps at all and a reason a
  log reader understands.
- It validates against the action spec (`actions.json`): command names, argument names and ranges, at most
  `max_commands` commands, routing words alone. Anything out of range refuses the **whole** program: nothing of it
  moves. `remote` and `reject` are routes, not motion, and are never accepted for execution.
- `move` and `turn` become `MotionSegment`s -- a body-frame velocity held for a duration -- planned at the cruise
  speeds of a `SafetyConfig` (which can never exceed the spec's speed limits), so that
  `velocity * duration` is the commanded distance or angle. Every segment is checked again against the spec's speed
  limits before the plan is accepted (defence in depth): a segment over a limit refuses the plan.
- The other commands become `ActionRequest`s carrying their Unitree Go2 sport API id (`None` for audio: `bark`).
- `clamp_twist` is the last line before a velocity is published: non-finite values become 0 and everything is clipped
  to the spec's limits, whatever came before.

Steps are computed from the canonical text of the program (`Plan.program`), so the text logged is exactly the text
the decision was made on.
"""

from __future__ import annotations

import logging
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

from .actions import (
    ROUTE_ROBOT,
    ActionSpec,
    Program,
    ProgramError,
    load_spec,
    parse_program,
    range_violations,
)

log = logging.getLogger(__name__)

ROUTE_REMOTE = "remote"
ROUTE_REJECT = "reject"
ROUTE_INVALID = "invalid"
REASON_REMOTE = "routed to the remote model"
REASON_REJECT = "the model refused the request"
REASON_MAX_CHARS = 1000
MOTION_COMMANDS = ("move", "turn")

# Cruise speeds used for planning. They sit below the spec's limits (|vx| <= 0.6 m/s, |vy| <= 0.4 m/s,
# |vyaw| <= 1.0 rad/s) to leave a margin for the locomotion controller's tracking overshoot and for the
# last-line clamp, which then never has to cut a planned velocity.
DEFAULT_CRUISE_VX = 0.5
DEFAULT_CRUISE_VY = 0.3
DEFAULT_CRUISE_VYAW = 0.8
DEFAULT_MAX_TOTAL_DURATION_S = 60.0


@dataclass(frozen=True)
class MotionSegment:
    """A body-frame velocity (m/s, m/s, rad/s; x forward, y left, yaw counter-clockwise) held for `duration_s`."""

    vx: float
    vy: float
    vyaw: float
    duration_s: float
    command_index: int  # 0-based position of the command in the program


@dataclass(frozen=True)
class ActionRequest:
    """A posture, trick or sound: `api_id` is the Go2 sport API id (`None` for audio, e.g. `bark`)."""

    name: str
    api_id: int | None
    command_index: int  # 0-based position of the command in the program
    params: dict[str, Any] = field(default_factory=dict, hash=False)


Step = MotionSegment | ActionRequest


@dataclass(frozen=True)
class Plan:
    """What to execute, or why nothing is executed.

    `route` is `robot`, `remote`, `reject`, or `invalid` (the text is not a program). Only an accepted plan is
    executed; a refused plan always has no steps. `program` is the canonical text ("" when it does not parse).
    """

    steps: tuple[Step, ...]
    route: str
    accepted: bool
    reason: str
    program: str

    @property
    def motion_duration_s(self) -> float:
        """Total time of the motion segments (trick and posture requests not counted)."""
        return sum(s.duration_s for s in self.steps if isinstance(s, MotionSegment))


def _limits(spec: ActionSpec) -> tuple[float, float, float]:
    limits = spec.speed_limits
    return float(limits["vx"]), float(limits["vy"]), float(limits["vyaw"])


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class SafetyConfig:
    """Planning speeds and limits; validated so that it can never exceed the spec's speed limits.

    `cruise_*` must be finite, > 0 and <= the packaged spec's `speed_limits`; `max_total_duration_s` is the longest
    a whole program may keep the robot moving. Raises `ValueError` otherwise.
    """

    cruise_vx: float = DEFAULT_CRUISE_VX
    cruise_vy: float = DEFAULT_CRUISE_VY
    cruise_vyaw: float = DEFAULT_CRUISE_VYAW
    max_total_duration_s: float = DEFAULT_MAX_TOTAL_DURATION_S

    def __post_init__(self) -> None:
        limits = dict(zip(("vx", "vy", "vyaw"), _limits(load_spec()), strict=True))
        for axis, limit in limits.items():
            name = f"cruise_{axis}"
            value = getattr(self, name)
            if not _is_real(value) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"SafetyConfig.{name} must be a finite number > 0, got {value!r}")
            if value > limit:
                raise ValueError(
                    f"SafetyConfig.{name}={value} exceeds the spec's speed limit |{axis}| <= {limit}"
                )
        value = self.max_total_duration_s
        if not _is_real(value) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"SafetyConfig.max_total_duration_s must be a finite number > 0, got {value!r}")


def _truncate(text: str) -> str:
    if len(text) <= REASON_MAX_CHARS:
        return text
    return text[: REASON_MAX_CHARS - 3] + "..."


def _refused(reason: str, route: str = ROUTE_INVALID, program: str = "") -> Plan:
    return Plan(steps=(), route=route, accepted=False, reason=_truncate(reason), program=program)


def _canonical_program(text_or_program: object, spec: ActionSpec) -> Program:
    """Parse the input and re-parse its canonical text, so that the steps follow the text that is logged."""
    if isinstance(text_or_program, Program):
        try:
            text = text_or_program.canonical(spec)
        # A hand-built Command can hold anything, e.g. a NaN or a string as an argument.
        except (ValueError, TypeError, AttributeError) as exc:
            raise ProgramError(f"cannot write the program as text: {exc}") from exc
    else:
        text = parse_program(text_or_program, spec).canonical(spec)  # type: ignore[arg-type]
    return parse_program(text, spec)


def _move_segment(x: float, y: float, cruise_vx: float, cruise_vy: float, index: int) -> MotionSegment | None:
    if x == 0.0 and y == 0.0:
        return None
    # Both axes at most at their cruise speed, scaled so that they finish together.
    duration = max(abs(x) / cruise_vx, abs(y) / cruise_vy)
    vx = min(cruise_vx, max(-cruise_vx, x / duration))
    vy = min(cruise_vy, max(-cruise_vy, y / duration))
    return MotionSegment(vx=vx, vy=vy, vyaw=0.0, duration_s=duration, command_index=index)


def _turn_segment(deg: float, cruise_vyaw: float, index: int) -> MotionSegment | None:
    if deg == 0.0:
        return None
    rad = math.radians(deg)
    return MotionSegment(
        vx=0.0,
        vy=0.0,
        vyaw=math.copysign(cruise_vyaw, rad),
        duration_s=abs(rad) / cruise_vyaw,
        command_index=index,
    )


def _segment_problem(seg: MotionSegment, limits: tuple[float, float, float]) -> str | None:
    values = (seg.vx, seg.vy, seg.vyaw, seg.duration_s)
    if not all(_is_real(v) and math.isfinite(v) for v in values):
        return f"command {seg.command_index + 1}: non-finite motion {values}"
    if seg.duration_s < 0:
        return f"command {seg.command_index + 1}: negative duration {seg.duration_s}"
    for axis, value, limit in zip(("vx", "vy", "vyaw"), (seg.vx, seg.vy, seg.vyaw), limits, strict=True):
        if abs(value) > limit:
            return f"command {seg.command_index + 1}: |{axis}|={abs(value)} exceeds the speed limit {limit}"
    return None


def _plan(text_or_program: object, spec: ActionSpec | None, config: SafetyConfig | None) -> Plan:
    spec = spec or load_spec()
    config = config or SafetyConfig()
    try:
        program = _canonical_program(text_or_program, spec)
    except ProgramError as exc:
        return _refused(f"not a valid program: {exc.reason}")
    canonical = program.canonical(spec)

    if len(program.commands) == 1 and program.commands[0].name in spec.routing:
        route = program.commands[0].name
        if route == ROUTE_REMOTE:
            return _refused(REASON_REMOTE, route=route, program=canonical)
        if route == ROUTE_REJECT:
            return _refused(REASON_REJECT, route=route, program=canonical)
        return _refused(f"routing word {route!r}: nothing to execute", route=route, program=canonical)

    violations = range_violations(program, spec)
    if violations:
        return _refused(
            "refused, out of range: " + "; ".join(violations), route=ROUTE_ROBOT, program=canonical
        )

    limits = _limits(spec)
    # A stricter spec than the one the config was validated against lowers the cruise speeds, never raises them.
    cruise_vx = min(config.cruise_vx, limits[0])
    cruise_vy = min(config.cruise_vy, limits[1])
    cruise_vyaw = min(config.cruise_vyaw, limits[2])
    if min(cruise_vx, cruise_vy, cruise_vyaw) <= 0:
        return _refused(
            f"speed limits {limits} leave no speed to move at", route=ROUTE_ROBOT, program=canonical
        )

    steps: list[Step] = []
    for index, command in enumerate(program.commands):
        args = command.arg_dict
        segment: MotionSegment | None
        if command.name == "move":
            segment = _move_segment(args["x"], args["y"], cruise_vx, cruise_vy, index)
            steps.extend([segment] if segment else [])
            continue
        if command.name == "turn":
            segment = _turn_segment(args["deg"], cruise_vyaw, index)
            steps.extend([segment] if segment else [])
            continue
        cmd_spec = spec.commands[command.name]
        params: dict[str, Any] = {
            key: int(value) if cmd_spec.args[key].integer else value for key, value in command.args
        }
        if cmd_spec.go2_api_id_by_n:
            api_id = cmd_spec.go2_api_id_by_n.get(int(args.get("n", 0)))
            if api_id is None:
                return _refused(
                    f"command {index + 1} ({command.name}): no Go2 API id for n={args.get('n')}",
                    route=ROUTE_ROBOT,
                    program=canonical,
                )
        else:
            api_id = cmd_spec.go2_api_id
        steps.append(ActionRequest(name=command.name, api_id=api_id, command_index=index, params=params))

    total = 0.0
    for step in steps:
        if isinstance(step, MotionSegment):
            problem = _segment_problem(step, limits)
            if problem is not None:
                log.error("safety check failed on a planned segment: %s", problem)
                return _refused(f"refused, unsafe motion: {problem}", route=ROUTE_ROBOT, program=canonical)
            total += step.duration_s
    if total > config.max_total_duration_s:
        return _refused(
            f"refused, the motion would take {total:.1f} s, more than the {config.max_total_duration_s:g} s allowed",
            route=ROUTE_ROBOT,
            program=canonical,
        )
    return Plan(
        steps=tuple(steps),
        route=ROUTE_ROBOT,
        accepted=True,
        reason=f"accepted: {len(steps)} step(s), {total:.2f} s of motion",
        program=canonical,
    )


def plan_program(
    text_or_program: str | Program | Any,
    spec: ActionSpec | None = None,
    config: SafetyConfig | None = None,
) -> Plan:
    """Validate a program and turn it into timed steps; never raises (a refused `Plan` says what went wrong).

    `config` defaults to `SafetyConfig()` (cruise 0.5 m/s, 0.3 m/s, 0.8 rad/s; 60 s of motion at most).
    """
    try:
        return _plan(text_or_program, spec, config)
    except Exception as exc:  # never let a bad input reach the motors as an exception either
        log.exception("planning failed")
        return _refused(f"could not plan the program: {type(exc).__name__}: {exc}")


def clamp_twist(vx: Any, vy: Any, vyaw: Any, spec: ActionSpec | None = None) -> tuple[float, float, float]:
    """The last line before a velocity is published: NaN, inf and non-numbers become 0.0, then each component is
    clipped to the spec's speed limits. Returns (0, 0, 0) if the limits themselves cannot be read."""
    try:
        limits = _limits(spec or load_spec())
    except Exception:
        log.exception("cannot read the speed limits: commanding zero velocity")
        return 0.0, 0.0, 0.0
    out = []
    for value, limit in zip((vx, vy, vyaw), limits, strict=True):
        if not (_is_real(limit) and math.isfinite(limit)) or limit < 0:
            out.append(0.0)
            continue
        try:
            v = float(value) if _is_real(value) else 0.0
        except (TypeError, ValueError, OverflowError):
            v = 0.0
        if not math.isfinite(v):
            v = 0.0
        out.append(min(limit, max(-limit, v)))
    return out[0], out[1], out[2]
