"""Executes an accepted plan's steps in time: the only code that sends velocities and sport requests.

Called under the node logic's lock, on a clock the caller passes in (tests use a fake one), with three entry
points: `start(plan, now)` (pre-empts whatever runs and sends the first message at once), `tick(now)` (every
control period) and `halt(now)`.

- A `MotionSegment` publishes its velocity on every tick while it runs, through `clamp_twist` (the last line:
  nothing above the spec's limits, nothing non-finite, ever leaves here). It ends on the tick nearest its end
  (each velocity holds until the next tick), which publishes zero or the next step: distance and angle are right
  to half a control period of motion.
- Closed loop: when `closed_loop` is on and the odometry (`OdometryTracker`) is fresh, a segment instead runs
  until the robot reaches the segment's target pose (its start moved by the segment's twist over its duration;
  the targets of a program's segments chain, so errors do not add up), steering towards it with a proportional
  law capped at the segment's own speed, and ends on reaching it or at its timeout
  (`closed_loop_timeout_factor` x its duration + 1 s). Odometry that is absent at a segment's start, or goes stale
  during it, makes that segment timed (open loop) from its start, as above; `motion_mode` says which ran.
- An `ActionRequest` is entered once: a posture or trick sends its Go2 request (when the sport output is on) and
  holds zero velocity for `action_hold_s`; `bark` plays a sound for `bark_hold_s` per bark; `stop` halts motion
  and sends StopMove.
- The end of a plan, `halt`, and every pre-emption of a moving plan publish zero velocity, repeated on the next
  `stop_repeat_ticks - 1` ticks so that one lost message cannot leave the robot walking.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from shadow_edge.runtime.safety import ActionRequest, MotionSegment, Plan, Step, clamp_twist

from .config import NodeConfig
from .go2 import SportRequests
from .odometry import OdometryTracker, Pose2D, segment_end
from .outputs import NodeOutputs

log = logging.getLogger(__name__)

# Closed-loop steering: proportional gains (1/s), the slowest useful command (the gait's dead band), and how close
# counts as there. The tolerances are a fifth of the task's (0.25 m, 10 deg): what remains is the stop's drift.
GAIN_LINEAR = 1.5
GAIN_YAW = 2.0
MIN_LINEAR = 0.15
MIN_YAW_RATE = 0.15
HEADING_RATE_CAP = 0.3  # rad/s of heading correction while walking straight
POSITION_TOLERANCE_M = 0.05
YAW_TOLERANCE_RAD = math.radians(2.0)
TIMEOUT_EXTRA_S = 1.0
# Before a program's last move or turn (or one followed by a posture) counts as done, the robot is held at its
# target for this long, corrected when it drifts past twice the tolerances: a walking gait keeps moving for a while
# after a zero command (the Go2's velocity trim unwinds; in simulation the heading swings back by up to 15 deg).
HOLD_S = 1.5


@dataclass
class _Running:
    plan: Plan
    plan_id: int
    index: int = 0
    step_start: float | None = None
    target: Pose2D | None = None  # closed loop: the running segment's target pose (None: timed)
    chain: Pose2D | None = None  # where the previous closed-loop segment was meant to end
    reached_at: float | None = None  # closed loop: when the target was first reached (the hold began)


class PlanExecutor:
    def __init__(
        self,
        outputs: NodeOutputs,
        config: NodeConfig,
        sport: SportRequests | None = None,
        odometry: OdometryTracker | None = None,
    ) -> None:
        self.outputs = outputs
        self.config = config
        self.sport = sport or (SportRequests() if config.go2_sport_output else None)
        self.odometry = odometry
        self.motion_mode = "idle"  # "closed loop", "open loop (odometry absent/stale)", "open loop (off)"
        self.counts = {"closed_loop": 0, "open_loop": 0, "odometry_lost": 0, "closed_loop_timeouts": 0}
        self._running: _Running | None = None
        self._zero_ticks_left = 0
        self._moving = False  # the last velocity sent was not zero
        self._sport_moving = False  # the last sport Move request was not zero
        self.first_output_at: dict[int, float] = {}  # plan id -> time of its first message

    # -- state -------------------------------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._running is not None

    @property
    def running_program(self) -> str:
        return "" if self._running is None else self._running.plan.program

    @property
    def moving(self) -> bool:
        return self._moving

    # -- entry points ------------------------------------------------------------------------------------------------

    def start(self, plan: Plan, plan_id: int, now: float) -> float | None:
        """Run `plan` from now, replacing the one running; returns the time of its first message (None if the plan
        sent nothing, which an accepted plan always does)."""
        if not plan.accepted or not plan.steps:
            raise ValueError("only accepted plans with steps are executed")
        self._running = _Running(plan, plan_id)
        self._zero_ticks_left = 0
        self.tick(now)
        return self.first_output_at.get(plan_id)

    def halt(self, now: float, reason: str) -> None:
        """Stop the plan (if any) and send zero velocity at once, and StopMove when the sport output is on."""
        if self._running is not None:
            log.info("halting %r: %s", self._running.plan.program, reason)
        self._running = None
        self._send_zero(repeat=True)
        if self.sport is not None and self.config.go2_sport_output:
            self.outputs.sport_request(self.sport.stop_move())
            self._sport_moving = False

    def tick(self, now: float) -> None:
        running = self._running
        if running is None:
            if self._zero_ticks_left > 0:
                self._send_zero(repeat=False)
                self._zero_ticks_left -= 1
            return
        steps = running.plan.steps
        while True:
            step = steps[running.index]
            if running.step_start is None:
                running.step_start = now
                self._enter(step, running.plan_id, now)
                if self._running is not running:  # a `stop` step ended the plan
                    return
                if isinstance(step, MotionSegment):
                    self._begin_segment(running, step, now)
            if not self._step_done(running, step, now):
                return
            running.index += 1
            running.step_start = None
            running.target = None
            running.reached_at = None
            if running.index >= len(steps):
                self._running = None
                self.motion_mode = "idle"
                self._send_zero(repeat=True)
                if self._sport_moving and self.sport is not None:
                    self.outputs.sport_request(self.sport.stop_move())
                    self._sport_moving = False
                return

    def _step_done(self, running: _Running, step: Step, now: float) -> bool:
        """Send what the step needs this tick; True once it is over (then the next step starts this tick)."""
        assert running.step_start is not None
        if isinstance(step, MotionSegment) and running.target is not None:
            command = self._steer(running, step, now)
            if command is None:
                return True  # reached, or timed out
            self._send_twist(*command, running.plan_id, now)
            return False
        if now - running.step_start >= self._duration(step) - self._tolerance(step):
            return True
        if isinstance(step, MotionSegment):
            self._send_twist(step.vx, step.vy, step.vyaw, running.plan_id, now)
        return False

    # -- closed loop -------------------------------------------------------------------------------------------------

    def _begin_segment(self, running: _Running, step: MotionSegment, now: float) -> None:
        pose = self.odometry.pose(now) if self.odometry is not None else None
        if not self.config.closed_loop or pose is None:
            self.motion_mode = "open loop (off)" if not self.config.closed_loop else "open loop (no odometry)"
            self.counts["open_loop"] += 1
            running.chain = None  # the next closed-loop segment starts from where the robot is
            return
        start = running.chain or pose
        running.target = segment_end(start, step)
        running.chain = running.target
        self.motion_mode = "closed loop"
        self.counts["closed_loop"] += 1

    def _steer(self, running: _Running, step: MotionSegment, now: float) -> tuple[float, float, float] | None:
        """The twist towards the segment's target, or None when the segment is over (reached or timed out). Stale
        odometry turns the segment timed from its start (`running.target` cleared)."""
        assert running.target is not None and running.step_start is not None and self.odometry is not None
        elapsed = now - running.step_start
        pose = self.odometry.pose(now)
        if pose is None:
            log.warning("odometry lost during %r: finishing the segment on time", running.plan.program)
            self.counts["odometry_lost"] += 1
            self.motion_mode = "open loop (odometry stale)"
            running.target = None
            running.chain = None
            if elapsed >= step.duration_s - self._tolerance(step):
                return None
            return step.vx, step.vy, step.vyaw
        target = running.target
        c, s = math.cos(pose.yaw), math.sin(pose.yaw)
        dx, dy = target.x - pose.x, target.y - pose.y
        ex, ey = c * dx + s * dy, -s * dx + c * dy  # the position error in the body frame
        eyaw = target.yaw - pose.yaw
        distance = math.hypot(ex, ey)
        linear_cap = math.hypot(step.vx, step.vy)
        if linear_cap > 0:  # a move: there when in place, heading roughly kept
            reached = distance <= POSITION_TOLERANCE_M and abs(eyaw) <= 2.5 * YAW_TOLERANCE_RAD
        else:  # a turn: there when facing the target heading
            reached = abs(eyaw) <= YAW_TOLERANCE_RAD
        timeout = self.config.closed_loop_timeout_factor * step.duration_s + TIMEOUT_EXTRA_S
        if running.reached_at is None and reached:
            if self._next_is_motion(running):
                return None  # the next segment's target chains from this one: it corrects what is left
            running.reached_at = now
        if running.reached_at is not None:
            held = now - running.reached_at
            drifted = distance > 2 * POSITION_TOLERANCE_M or abs(eyaw) > 2 * YAW_TOLERANCE_RAD
            if not drifted and (held >= HOLD_S or elapsed > timeout + HOLD_S):
                return None
            if not drifted:
                return 0.0, 0.0, 0.0
            if elapsed > timeout + HOLD_S:
                return None
            return self._correction(step, ex, ey, eyaw, distance)
        if elapsed > timeout:
            log.warning(
                "%r: target not reached in time (%.2f m, %.1f deg off)",
                running.plan.program,
                distance,
                math.degrees(eyaw),
            )
            self.counts["closed_loop_timeouts"] += 1
            return None
        return self._correction(step, ex, ey, eyaw, distance)

    def _next_is_motion(self, running: _Running) -> bool:
        steps = running.plan.steps
        return running.index + 1 < len(steps) and isinstance(steps[running.index + 1], MotionSegment)

    @staticmethod
    def _correction(
        step: MotionSegment, ex: float, ey: float, eyaw: float, distance: float
    ) -> tuple[float, float, float]:
        """The proportional steering law, capped at the segment's own speeds (a turn turns on the spot)."""
        linear_cap = math.hypot(step.vx, step.vy)
        if linear_cap > 0 and distance > POSITION_TOLERANCE_M:
            speed = min(linear_cap, max(MIN_LINEAR, GAIN_LINEAR * distance))
            vx, vy = ex / distance * speed, ey / distance * speed
        else:
            vx = vy = 0.0  # a turn turns on the spot
        yaw_cap = abs(step.vyaw) if step.vyaw else HEADING_RATE_CAP
        if abs(eyaw) > YAW_TOLERANCE_RAD:
            rate = min(yaw_cap, max(MIN_YAW_RATE, GAIN_YAW * abs(eyaw)))
            vyaw = math.copysign(rate, eyaw)
        else:
            vyaw = 0.0
        return vx, vy, vyaw

    # -- steps -------------------------------------------------------------------------------------------------------

    def _duration(self, step: Step) -> float:
        if isinstance(step, MotionSegment):
            return step.duration_s
        if step.name == "bark":
            return self.config.bark_hold_s * int(step.params.get("n", 1))
        if step.name == "stop":
            return 0.0
        return self.config.action_hold_s

    def _tolerance(self, step: Step) -> float:
        # A velocity holds until the next tick, so a segment ends on the tick nearest its end: the distance is then
        # right to half a period's worth of motion, and clock jitter cannot add a whole extra period.
        return self.config.control_period_s / 2 if isinstance(step, MotionSegment) else 1e-6

    def _enter(self, step: Step, plan_id: int, now: float) -> None:
        if isinstance(step, MotionSegment):
            return  # sent below, every tick
        assert isinstance(step, ActionRequest)
        if step.name == "stop":
            self._mark_first(plan_id, now)
            self._send_zero(repeat=True)
            if self.sport is not None and self.config.go2_sport_output:
                self.outputs.sport_request(self.sport.stop_move())
                self._sport_moving = False
            return
        if step.name == "bark":
            self._mark_first(plan_id, now)
            self._halt()  # barking is done standing: a velocity left from a `move` would carry the dog on
            self.outputs.sound("bark", int(step.params.get("n", 1)))
            return
        # A posture or trick: the robot stands still while it runs.
        self._mark_first(plan_id, now)
        self._halt()
        if self.sport is not None and self.config.go2_sport_output and step.api_id is not None:
            self.outputs.sport_request(self.sport.action(step.api_id))
        else:
            log.info(
                "%s: no Go2 sport output configured; holding still for %.1f s",
                step.name,
                self.config.action_hold_s,
            )

    def _halt(self) -> None:
        """Zero velocity (and end a sport-API Move) if the dog is moving."""
        if self._moving:
            self._send_zero(repeat=False)
        if self._sport_moving and self.sport is not None:
            self.outputs.sport_request(self.sport.stop_move())
            self._sport_moving = False

    # -- messages ----------------------------------------------------------------------------------------------------

    def _mark_first(self, plan_id: int, now: float) -> None:
        self.first_output_at.setdefault(plan_id, now)
        if len(self.first_output_at) > 64:  # only recent plans are asked about
            for key in sorted(self.first_output_at)[:-32]:
                del self.first_output_at[key]

    def _send_twist(self, vx: float, vy: float, vyaw: float, plan_id: int, now: float) -> None:
        vx, vy, vyaw = clamp_twist(vx, vy, vyaw)
        self._mark_first(plan_id, now)
        self.outputs.twist(vx, vy, vyaw)
        self._moving = (vx, vy, vyaw) != (0.0, 0.0, 0.0)
        if self.sport is not None and self.config.go2_sport_output and self.config.go2_move_via_sport:
            self.outputs.sport_request(self.sport.move(vx, vy, vyaw))
            self._sport_moving = self._moving

    def _send_zero(self, repeat: bool) -> None:
        self.outputs.twist(0.0, 0.0, 0.0)
        self._moving = False
        if repeat:
            self._zero_ticks_left = self.config.stop_repeat_ticks - 1
