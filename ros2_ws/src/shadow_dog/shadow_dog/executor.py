"""Executes an accepted plan's steps in time: the only code that sends velocities and sport requests.

Called under the node logic's lock, on a clock the caller passes in (tests use a fake one), with three entry
points: `start(plan, now)` (pre-empts whatever runs and sends the first message at once), `tick(now)` (every
control period) and `halt(now)`.

- A `MotionSegment` publishes its velocity on every tick while it runs, through `clamp_twist` (the last line:
  nothing above the spec's limits, nothing non-finite, ever leaves here). It ends on the tick nearest its end
  (each velocity holds until the next tick), which publishes zero or the next step: distance and angle are right
  to half a control period of motion.
- An `ActionRequest` is entered once: a posture or trick sends its Go2 request (when the sport output is on) and
  holds zero velocity for `action_hold_s`; `bark` plays a sound for `bark_hold_s` per bark; `stop` halts motion
  and sends StopMove.
- The end of a plan, `halt`, and every pre-emption of a moving plan publish zero velocity, repeated on the next
  `stop_repeat_ticks - 1` ticks so that one lost message cannot leave the robot walking.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from shadow_edge.runtime.safety import ActionRequest, MotionSegment, Plan, Step, clamp_twist

from .config import NodeConfig
from .go2 import SportRequests
from .outputs import NodeOutputs

log = logging.getLogger(__name__)


@dataclass
class _Running:
    plan: Plan
    plan_id: int
    index: int = 0
    step_start: float | None = None


class PlanExecutor:
    def __init__(self, outputs: NodeOutputs, config: NodeConfig, sport: SportRequests | None = None) -> None:
        self.outputs = outputs
        self.config = config
        self.sport = sport or (SportRequests() if config.go2_sport_output else None)
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
            if now - running.step_start >= self._duration(step) - self._tolerance(step):
                running.index += 1
                running.step_start = None
                if running.index >= len(steps):
                    self._running = None
                    self._send_zero(repeat=True)
                    if self._sport_moving and self.sport is not None:
                        self.outputs.sport_request(self.sport.stop_move())
                        self._sport_moving = False
                    return
                continue
            if isinstance(step, MotionSegment):
                self._send_twist(step.vx, step.vy, step.vyaw, running.plan_id, now)
            return

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
