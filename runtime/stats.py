"""Small statistics shared by the benchmarks, the evaluation scripts and the exporter.

numpy does the arithmetic (`np.percentile`, linear interpolation between closest ranks); this module only fixes
one way of summarising a list of timings and one way of taking an evenly spread subset, so that every report
quotes the same figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")

SUMMARY_KEYS = ("median", "p90", "p99", "mean", "min", "max", "n")


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0..100) of `values`, numpy's linear interpolation; ValueError when empty."""
    data = np.asarray(list(values), dtype=np.float64)
    if data.size == 0:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must lie in [0, 100], got {q}")
    return float(np.percentile(data, q))


def summary(values: Iterable[float | None], ndigits: int = 4) -> dict[str, float | int | None]:
    """median, p90, p99, mean, min, max and n of `values`, rounded; None entries are skipped.

    With no values every figure is None and n is 0, so a report can always carry the same keys.
    """
    data = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if data.size == 0:
        return {key: (0 if key == "n" else None) for key in SUMMARY_KEYS}
    median, p90, p99 = np.percentile(data, [50, 90, 99])
    return {
        "median": round(float(median), ndigits),
        "p90": round(float(p90), ndigits),
        "p99": round(float(p99), ndigits),
        "mean": round(float(data.mean()), ndigits),
        "min": round(float(data.min()), ndigits),
        "max": round(float(data.max()), ndigits),
        "n": int(data.size),
    }


def strided(items: Sequence[T], n: int | None) -> list[T]:
    """`n` items spread evenly over `items` (every k-th, starting with the first).

    The generated splits are ordered by command kind and language, so an evenly spread subset still covers all
    of them where the first `n` would not. `n` None, <= 0 or >= len(items) gives every item.
    """
    if n is None or n <= 0 or n >= len(items):
        return list(items)
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]
