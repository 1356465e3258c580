"""Unitree Go2 sport-API requests built from the action spec.

The api ids come from `actions.json` (the contract), not from constants here: `stop` -> StopMove, `move`/`turn` ->
Move, postures and tricks by name, `dance n=2` -> Dance2. The parameter JSON follows Unitree's SportClient:
Move sends `{"x": vx, "y": vy, "z": vyaw}`, every other request here has no parameter.
"""

from __future__ import annotations

import itertools
import json
import threading
import time

from shadow_edge.runtime.actions import ActionSpec, load_spec

from .outputs import SportRequest

SPORT_REQUEST_TOPIC = "/api/sport/request"


class SportRequests:
    """Makes requests with unique ids (a counter seeded from the clock, as Unitree's client does)."""

    def __init__(self, spec: ActionSpec | None = None) -> None:
        self.spec = spec or load_spec()
        move_id = self.spec.commands["move"].go2_api_id
        stop_id = self.spec.commands["stop"].go2_api_id
        if move_id is None or stop_id is None:
            raise ValueError("actions.json gives no Go2 api id for move or stop")
        self.move_api_id = int(move_id)
        self.stop_move_api_id = int(stop_id)
        self._ids = itertools.count(time.time_ns() // 1000)
        self._lock = threading.Lock()

    def _next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    def move(self, vx: float, vy: float, vyaw: float) -> SportRequest:
        parameter = json.dumps({"x": round(vx, 6), "y": round(vy, 6), "z": round(vyaw, 6)})
        return SportRequest(self._next_id(), self.move_api_id, parameter)

    def stop_move(self) -> SportRequest:
        return SportRequest(self._next_id(), self.stop_move_api_id, "")

    def action(self, api_id: int) -> SportRequest:
        """A posture or trick by its api id (as the safety layer's `ActionRequest.api_id` carries it)."""
        known = {c.go2_api_id for c in self.spec.commands.values()} | {
            i for c in self.spec.commands.values() for i in c.go2_api_id_by_n.values()
        }
        if api_id not in known or api_id == self.move_api_id:
            raise ValueError(f"api id {api_id} is not a posture or trick of the action spec")
        return SportRequest(self._next_id(), int(api_id), "")
