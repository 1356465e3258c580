"""What the node logic sends out, independent of any transport.

A transport (rclpy, Cyclone DDS, or a test) implements `NodeOutputs`; the logic never sees a message type. Each
method must return quickly and must not call back into the logic: they are called with the logic's lock held, so
that a stop and a velocity can never interleave.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

# diagnostic_msgs/DiagnosticStatus levels
DIAG_OK = 0
DIAG_WARN = 1
DIAG_ERROR = 2
DIAG_STALE = 3


@dataclass(frozen=True)
class DiagnosticStatus:
    """One diagnostic_msgs/DiagnosticStatus: `values` become its KeyValue list (strings)."""

    level: int
    name: str
    message: str
    hardware_id: str = ""
    values: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SportRequest:
    """One unitree_api/Request to the Go2 sport service: `parameter` is the JSON the service expects."""

    request_id: int
    api_id: int
    parameter: str = ""


class NodeOutputs(Protocol):
    def twist(self, vx: float, vy: float, vyaw: float) -> None:
        """geometry_msgs/Twist on cmd_vel: linear.x = vx, linear.y = vy, angular.z = vyaw (already clamped)."""

    def sport_request(self, request: SportRequest) -> None:
        """A Go2 sport-API request (only called when go2_sport_output is on)."""

    def program(self, record: dict[str, Any]) -> None:
        """The per-command record (published as JSON on ~/program)."""

    def heard(self, text: str) -> None:
        """Text recognised from speech (~/heard)."""

    def remote(self, record: dict[str, Any]) -> None:
        """A command routed to the remote model (~/remote), for a cloud bridge to pick up."""

    def answer(self, text: str) -> None:
        """The remote model's text answer to a question (~/answer); nothing moves."""

    def sound(self, name: str, count: int) -> None:
        """A sound to play (~/sound), e.g. ("bark", 2)."""

    def diagnostics(self, statuses: list[DiagnosticStatus]) -> None:
        """A diagnostic_msgs/DiagnosticArray."""


@dataclass
class Sent:
    """One message as `MemoryOutputs` recorded it: when (the logic's clock), on which output, what."""

    time: float
    kind: str
    value: Any


class MemoryOutputs:
    """Keeps every message in order with the time it was sent (tests, the simulated robot, replay)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.sent: list[Sent] = []
        self._lock = threading.Lock()

    def _add(self, kind: str, value: Any) -> None:
        with self._lock:
            self.sent.append(Sent(self.clock(), kind, value))

    def twist(self, vx: float, vy: float, vyaw: float) -> None:
        self._add("twist", (vx, vy, vyaw))

    def sport_request(self, request: SportRequest) -> None:
        self._add("sport", request)

    def program(self, record: dict[str, Any]) -> None:
        self._add("program", record)

    def heard(self, text: str) -> None:
        self._add("heard", text)

    def remote(self, record: dict[str, Any]) -> None:
        self._add("remote", record)

    def answer(self, text: str) -> None:
        self._add("answer", text)

    def sound(self, name: str, count: int) -> None:
        self._add("sound", (name, count))

    def diagnostics(self, statuses: list[DiagnosticStatus]) -> None:
        self._add("diagnostics", statuses)

    # -- views for tests ---------------------------------------------------------------------------------------------

    def of(self, kind: str) -> list[Any]:
        with self._lock:
            return [s.value for s in self.sent if s.kind == kind]

    def timed(self, kind: str) -> list[tuple[float, Any]]:
        with self._lock:
            return [(s.time, s.value) for s in self.sent if s.kind == kind]

    def clear(self) -> None:
        with self._lock:
            self.sent.clear()
