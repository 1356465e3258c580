"""The node's behaviour, free of any transport: commands in, velocities, sport requests and records out.

Transports call the input methods from their callbacks (`submit_text`, `submit_speech`, `stop`, `set_estop`,
`heartbeat`); a worker calls `process_next` (the model runs there, outside the lock); a timer calls `tick` every
control period. Everything reads one clock (`clock()`, seconds), so tests drive it with a fake clock and no sleeps.

Safety rules (each has a test in tests/dog/test_dog_node_logic.py):

- only programs the safety layer accepted move the robot, and every velocity goes through `clamp_twist`;
- a newer accepted program pre-empts the running one; at most `max_pending_commands` wait for the model (oldest
  dropped), so a flood of commands is bounded;
- `stop` -- the stop topic, a stop phrase in text or speech (no model involved), or the e-stop -- publishes zero
  velocity at once, drops pending commands, and no program decoded for a command received before the stop is ever
  executed; an engaged e-stop refuses all motion until released;
- a watchdog publishes zero velocity when a segment or program ends, on `shutdown()`, when the model errors, when a
  control tick fails, and when the heartbeat (if required) is missing; without a heartbeat nothing starts;
- input that is not text and text the model cannot handle is refused, logged, and reported on ~/program.

The ~/program records are built in `records`, the diagnostics in `diagnostics`; `model_loader` loads the model.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from shadow_edge.runtime.safety import ROUTE_REMOTE

from .command_queue import CommandQueue, PendingCommand, StopPhrases
from .config import NodeConfig
from .diagnostics import node_diagnostics
from .executor import PlanExecutor
from .go2 import SportRequests
from .latency import LatencyWindow
from .model_loader import load_commander
from .odometry import OdometryTracker
from .outputs import DIAG_OK, DiagnosticStatus, NodeOutputs
from .records import command_record, refusal_record, shortened, stop_record

log = logging.getLogger(__name__)

# load_commander lives in `model_loader`; the transports and tests import it from here too
__all__ = ["Clock", "DogNodeLogic", "load_commander"]

Clock = Callable[[], float]


class DogNodeLogic:
    """See the module docstring. `commander` is a `shadow_edge.runtime.Commander` (anything with `run(text)` and
    `info()`), or None with `model_error` saying why there is no model: then every command is refused."""

    def __init__(
        self,
        outputs: NodeOutputs,
        commander: Any | None,
        config: NodeConfig | None = None,
        *,
        clock: Clock = time.monotonic,
        model_error: str | None = None,
    ) -> None:
        self.config = config or NodeConfig()
        self.outputs = outputs
        self.commander = commander
        self.model_error = model_error if commander is None else None
        if commander is None and not self.model_error:
            self.model_error = "no model_dir configured"
        self.clock = clock
        self.queue = CommandQueue(self.config.max_pending_commands)
        self.stop_phrases = StopPhrases(self.config.stop_phrases)
        sport = SportRequests() if self.config.go2_sport_output else None
        self.odometry = OdometryTracker(self.config.odom_timeout_s)
        self.executor = PlanExecutor(outputs, self.config, sport, self.odometry)
        self._lock = threading.RLock()
        self._seq = itertools.count(1)
        self._plan_ids = itertools.count(1)
        self.epoch = 0
        self.estop = False
        self.closed = False
        self.worker_dead = False
        self.last_heartbeat: float | None = None
        self._heartbeat_ok = self.config.heartbeat_timeout_s <= 0
        self._next_diagnostics = clock()
        self.audio_status: tuple[int, str] = (
            DIAG_OK,
            "no audio capture configured: text topic and WAV input only",
        )
        self.model_latency = LatencyWindow(self.config.latency_window)
        self.total_latency = LatencyWindow(self.config.latency_window)
        self.asr_latency = LatencyWindow(self.config.latency_window)
        self.counts = {
            "commands": 0,
            "executed": 0,
            "refused": 0,
            "dropped": 0,
            "model_errors": 0,
            "stops": 0,
        }
        self.tick_errors = 0
        # Called with (kind, value) for every input (command, stop, estop, heartbeat): the MCAP recorder.
        self.input_observer: Callable[[str, Any], None] | None = None

    # -- inputs (transport callbacks; return quickly) ---------------------------------------------------------------

    def submit_text(
        self,
        text: Any,
        *,
        source: str = "text",
        speech_end_at: float | None = None,
        asr_ms: float | None = None,
        alternatives: tuple[str, ...] = (),
    ) -> None:
        """A command as text (`alternatives`: a recogniser's next-best transcripts of it). Stop phrases halt here, at once; everything else waits for the model (bounded)."""
        self._observe("command", text)
        now = self.clock()
        seq = next(self._seq)
        with self._lock:
            self.counts["commands"] += 1
            if self.closed:
                self._publish_refusal(seq, text, source, "the node is shutting down: nothing executed", now)
                return
            rest = self.stop_phrases.match(text)
            if rest is not None:
                self._halt(now, f"stop phrase from {source}: {text!r}")
                total_ms = (now - (speech_end_at if speech_end_at is not None else now)) * 1000.0
                self.total_latency.add(total_ms)
                self.counts["executed"] += 1
                self._publish_record(stop_record(seq, text, source, rest, asr_ms, total_ms), now)
                if not rest:
                    return
                text = rest  # "stop, then sit": halted; the rest goes to the model in the new epoch
            if self.worker_dead:  # nothing would ever decode it: refuse now, not never
                self._publish_refusal(seq, text, source, f"{self.model_error}: nothing executed", now)
                return
            pending = PendingCommand(seq, text, source, now, self.epoch, speech_end_at, asr_ms, alternatives)
            dropped = self.queue.push(pending)
            for old in dropped:
                self.counts["dropped"] += 1
                log.warning("dropped command %r: newer commands arrived before the model was free", old.text)
                self._publish_refusal(
                    old.seq,
                    old.text,
                    old.source,
                    "dropped: newer commands arrived while the model was busy",
                    now,
                )

    def submit_speech(
        self,
        text: str,
        *,
        speech_end_at: float,
        asr_ms: float,
        source: str = "speech",
        alternatives: tuple[str, ...] = (),
    ) -> None:
        """Recognised speech: published on ~/heard, then handled as a command; the recogniser's next-best
        transcripts are tried when the speech gate holds the first one back (`Commander.run`)."""
        self.outputs.heard(text)
        self.asr_latency.add(asr_ms)
        if not text.strip():
            now = self.clock()
            self._publish_refusal(next(self._seq), text, source, "nothing recognised in the audio", now)
            return
        self.submit_text(
            text, source=source, speech_end_at=speech_end_at, asr_ms=asr_ms, alternatives=alternatives
        )

    def refuse_input(self, what: str, reason: str, source: str) -> None:
        """Input a transport or the speech front end could not read (bad message, bad audio): log and report."""
        log.warning("refused %s input %s: %s", source, what, reason)
        now = self.clock()
        with self._lock:
            self.counts["commands"] += 1
            self._publish_refusal(next(self._seq), what, source, reason, now)

    def stop(self, source: str = "stop topic") -> None:
        self._observe("stop", source)
        with self._lock:
            self._halt(self.clock(), f"stop from {source}")

    def set_estop(self, engaged: bool) -> None:
        self._observe("estop", engaged)
        with self._lock:
            if engaged and not self.estop:
                log.warning("e-stop engaged")
            elif not engaged and self.estop:
                log.warning("e-stop released")
            self.estop = bool(engaged)
            if self.estop:
                self._halt(self.clock(), "e-stop")

    def heartbeat(self) -> None:
        self._observe("heartbeat", None)
        with self._lock:
            self.last_heartbeat = self.clock()

    def odometry_input(self, x: Any, y: Any, yaw: Any, source: str = "odom") -> None:
        """The robot's planar pose from its odometry (closed-loop motion); non-finite poses are ignored."""
        if not self.odometry.update(x, y, yaw, self.clock(), source):
            log.debug("ignored an odometry reading from %s", source)

    def worker_failed(self, reason: str) -> None:
        """The model worker is gone (it cannot decode any more): halt, refuse every command from now on, and say
        so in diagnostics. Stop, e-stop and the watchdogs keep working."""
        with self._lock:
            if self.worker_dead:
                return
            log.error("model worker failed: %s", reason)
            self.worker_dead = True
            self.commander = None
            self.model_error = reason
            self.counts["model_errors"] += 1
            self._halt(self.clock(), reason)

    def reconfigure(self, config: NodeConfig) -> None:
        """Take new parameter values while running (the rclpy parameter API); the caller has checked that only
        live parameters changed (`LIVE_PARAMETERS`). Speeds reach the safety layer for the next command."""
        with self._lock:
            self.config = config
            self.executor.config = config
            self.odometry.timeout_s = config.odom_timeout_s
            self._heartbeat_ok = config.heartbeat_timeout_s <= 0 or self.heartbeat_fresh(self.clock())
            safety = getattr(self.commander, "safety_config", None)
            if safety is not None:
                from shadow_edge.runtime.safety import SafetyConfig

                self.commander.safety_config = SafetyConfig(
                    config.cruise_vx, config.cruise_vy, config.cruise_vyaw, config.max_motion_s
                )

    def _observe(self, kind: str, value: Any) -> None:
        observer = self.input_observer
        if observer is not None:
            try:
                observer(kind, value)
            except Exception:
                log.exception("the input observer failed")

    # -- the worker ------------------------------------------------------------------------------------------------

    def process_next(self, timeout: float | None = 0.0) -> bool:
        """Decode the oldest pending command and act on it; False when there was none within `timeout`."""
        pending = self.queue.pop(timeout)
        if pending is None:
            return False
        with self._lock:
            if pending.epoch != self.epoch or self.closed:
                self._refuse_pending(pending, "superseded by a stop: nothing executed", self.clock())
                return True
        if self.commander is None:
            with self._lock:
                reason = f"no model loaded ({self.model_error}): nothing executed"
                self._refuse_pending(pending, reason, self.clock())
            return True
        try:
            result = self.commander.run(
                pending.text, spoken=pending.source != "text", alternatives=pending.alternatives
            )
        except (
            Exception
        ) as exc:  # the Commander never raises by contract; a broken one must not move the robot
            log.exception("the commander failed")
            with self._lock:
                self.counts["model_errors"] += 1
                now = self.clock()
                self._halt(now, "model error")
                self._refuse_pending(pending, f"model error ({type(exc).__name__}): halted", now)
            return True
        with self._lock:
            self._act(pending, result)
        return True

    def _act(self, pending: PendingCommand, result: Any) -> None:
        now = self.clock()
        record = command_record(pending, result.to_json())
        self.model_latency.add(result.latency_ms)
        executed = False
        reason = None
        if result.error is not None:
            self.counts["model_errors"] += 1
            self._halt(now, f"model error: {result.error}")
            reason = "model error: halted, nothing executed"
        elif not result.accepted or result.plan is None or not result.plan.accepted or not result.plan.steps:
            pass  # refused by the Commander or the safety layer; its reason stands
        elif pending.epoch != self.epoch:
            reason = "superseded by a stop while the model was running: nothing executed"
        elif self.closed:
            reason = "the node is shutting down: nothing executed"
        elif self.estop:
            reason = "e-stop engaged: nothing executed"
        elif not self.heartbeat_fresh(now):
            reason = "no heartbeat: nothing executed"
        else:
            plan_id = next(self._plan_ids)
            try:
                first = self.executor.start(result.plan, plan_id, now)
                executed = True
            except Exception:  # an output that failed mid-start: nothing of this plan may go on
                log.exception("starting %r failed: halting", result.plan.program)
                self.tick_errors += 1
                self._emergency_zero(now)
                first, reason = None, "the plan could not be started: halted"
            start = pending.speech_end_at if pending.speech_end_at is not None else pending.received_at
            if first is not None:
                record["latencies_ms"]["node"] = round((first - now) * 1000.0, 3)
                record["latencies_ms"]["total"] = round((first - start) * 1000.0, 3)
                self.total_latency.add((first - start) * 1000.0)
        if reason is not None:
            record["accepted"] = False
            record["reason"] = reason
        record["executed"] = executed
        self.counts["executed" if executed else "refused"] += 1
        if result.route == ROUTE_REMOTE and not executed:
            self.outputs.remote({"id": pending.seq, "text": record["text"], "reason": record["reason"]})
            if result.remote_answer:  # a text answer to a question (a program would have been planned)
                self.outputs.answer(result.remote_answer)
        self._publish_record(record, now)

    # -- the control loop ---------------------------------------------------------------------------------------------

    def tick(self) -> None:
        """One control period: heartbeat watchdog, the running plan, periodic diagnostics. Never raises: a failure
        halts the robot."""
        with self._lock:
            now = self.clock()
            try:
                fresh = self.heartbeat_fresh(now)
                if self.config.heartbeat_timeout_s > 0 and fresh != self._heartbeat_ok:
                    self._heartbeat_ok = fresh
                    if not fresh:
                        log.warning("heartbeat lost: halting")
                        self._halt(now, "heartbeat lost")
                self.executor.tick(now)
            except Exception:
                self.tick_errors += 1
                log.exception("control tick failed: halting")
                self._emergency_zero(now)
            if now >= self._next_diagnostics:
                self._next_diagnostics = now + self.config.diagnostics_period_s
                try:
                    self.outputs.diagnostics(self.diagnostics())
                except Exception:
                    log.exception("publishing diagnostics failed")

    def shutdown(self) -> None:
        """Zero velocity, repeated, and no more commands. Call on every way out (signals, errors, normal exit)."""
        with self._lock:
            self.closed = True
            self.queue.clear()
            self.queue.wake()
            now = self.clock()
            self._emergency_zero(now)
            for _ in range(self.config.stop_repeat_ticks - 1):
                try:
                    self.outputs.twist(0.0, 0.0, 0.0)
                except Exception:
                    log.exception("publishing zero velocity at shutdown failed")

    # -- internals -------------------------------------------------------------------------------------------------

    def heartbeat_fresh(self, now: float) -> bool:
        """Whether a heartbeat came recently enough (always, when none is required)."""
        timeout = self.config.heartbeat_timeout_s
        if timeout <= 0:
            return True
        return self.last_heartbeat is not None and now - self.last_heartbeat <= timeout

    def _halt(self, now: float, reason: str) -> None:
        self.epoch += 1
        self.counts["stops"] += 1
        for old in self.queue.clear():
            self._publish_refusal(old.seq, old.text, old.source, f"dropped by a halt ({reason})", now)
        try:
            self.executor.halt(now, reason)
        except Exception:
            log.exception("halt failed: sending zero velocity directly")
            self._emergency_zero(now)

    def _emergency_zero(self, now: float) -> None:
        """Halt through the executor, and if even that fails, a bare zero velocity."""
        try:
            self.executor.halt(now, "watchdog")
        except Exception:
            log.exception("executor halt failed")
            self.executor._running = None  # noqa: SLF001 -- nothing of the plan may continue
            try:
                self.outputs.twist(0.0, 0.0, 0.0)
            except Exception:
                log.exception("publishing zero velocity failed")

    def _publish_refusal(self, seq: int, text: Any, source: str, reason: str, now: float) -> None:
        self.counts["refused"] += 1
        self._publish_record(refusal_record(seq, text, source, reason), now)

    def _refuse_pending(self, pending: PendingCommand, reason: str, now: float) -> None:
        self._publish_refusal(pending.seq, pending.text, pending.source, reason, now)

    def _publish_record(self, record: dict[str, Any], now: float) -> None:
        record = shortened(record)
        if not record.get("executed"):
            log.info("command %s not executed: %s", record.get("id"), record.get("reason"))
        try:
            self.outputs.program(record)
        except Exception:
            log.exception("publishing the program record failed")

    # -- diagnostics ---------------------------------------------------------------------------------------------------

    def set_audio_status(self, level: int, message: str) -> None:
        self.audio_status = (level, message)

    def diagnostics(self) -> list[DiagnosticStatus]:
        with self._lock:
            return node_diagnostics(self)
