"""Latency percentiles over a window of recent commands (for diagnostics)."""

from __future__ import annotations

import math
import threading
from collections import deque

from shadow_edge.runtime.stats import percentile  # numpy's, shared with the bench and the scripts

__all__ = ["LatencyWindow", "percentile"]


class LatencyWindow:
    def __init__(self, size: int) -> None:
        self._values: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()
        self.count = 0

    def add(self, ms: float) -> None:
        if math.isfinite(ms) and ms >= 0:
            with self._lock:
                self._values.append(ms)
                self.count += 1

    def summary(self) -> dict[str, float] | None:
        """{"p50", "p90", "p99", "n"} over the window, None before the first value."""
        with self._lock:
            values = list(self._values)
        if not values:
            return None
        return {
            "p50": percentile(values, 50),
            "p90": percentile(values, 90),
            "p99": percentile(values, 99),
            "n": float(len(values)),
        }
