"""The confidence gate: which robot programs the model is sure enough of to execute on its own.

A program below the gate goes to the remote model (or is not executed at all). The gate is a signal and a threshold:
- `min_prob`: the smallest per-decision probability under the constrained distribution;
- `min_margin`: the smallest lead (log-probability) of a chosen token over the runner-up.

The threshold is chosen from a target on the validation split (`scripts/calibrate_routing.py`, which writes
`routing.json` beside the export's manifest), not fixed by hand. An export without `routing.json` uses the default
gate (`min_prob` 0.5).

Speech is gated on its own: a recogniser's transcript is wrong more often than typed text, and the model is then
sure of the wrong program more often, so `routing.json` may hold a `speech` gate, calibrated on recognised
utterances of the dev split (`calibrate_routing.py --speech FILE`). Where it has none, speech uses the text gate.
A speech gate says whether it was chosen with the recogniser's next-best transcripts in play (`next_best`, see
`runtime.alternatives`): the Commander uses them only then, because the rule executes more programs than the best
transcript alone would, and the calibration keeps it only where that pays at its executed-wrong target.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .generate import GenerationResult

ROUTING_FILE = "routing.json"
SIGNALS = ("min_prob", "min_margin")
DEFAULT_SIGNAL = "min_prob"
DEFAULT_THRESHOLD = 0.5


class RoutingError(ValueError):
    """routing.json is unreadable or names an unknown signal or a threshold out of range."""


@dataclass(frozen=True)
class ConfidenceGate:
    signal: str = DEFAULT_SIGNAL
    threshold: float = DEFAULT_THRESHOLD
    source: str = "default"  # "default", "argument" or the routing.json path
    next_best: bool = False  # speech: calibrated with next-best transcripts, so the Commander may use them

    def __post_init__(self) -> None:
        if self.signal not in SIGNALS:
            raise RoutingError(f"unknown confidence signal {self.signal!r}; expected one of {SIGNALS}")
        if not isinstance(self.threshold, int | float) or math.isnan(self.threshold):
            raise RoutingError(f"confidence threshold must be a number, got {self.threshold!r}")
        if self.signal == "min_prob" and not 0.0 <= self.threshold <= 1.0:
            raise RoutingError(f"a min_prob threshold must be in [0, 1], got {self.threshold}")
        if self.signal == "min_margin" and self.threshold < 0.0:
            raise RoutingError(f"a min_margin threshold must be >= 0, got {self.threshold}")
        if not isinstance(self.next_best, bool):
            raise RoutingError(f"next_best must be true or false, got {self.next_best!r}")

    def score(self, generation: GenerationResult) -> float:
        return generation.confidence if self.signal == "min_prob" else generation.min_margin

    def passes(self, generation: GenerationResult) -> bool:
        return self.score(generation) >= self.threshold

    def describe(self, generation: GenerationResult) -> str:
        # probabilities near 1 need more digits: "0.990 < 0.999", not "0.99 < 1.00"
        digits = 4 if self.signal == "min_prob" else 2
        return f"{self.signal} {self.score(generation):.{digits}f} < {self.threshold:.{digits}f}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def load_gate(model_dir: str | Path, spoken: bool = False) -> ConfidenceGate:
    """The gate calibrated for an export (`routing.json`), or the default one when the export has none; with
    `spoken`, its speech gate where it has one (else the text gate)."""
    path = Path(model_dir) / ROUTING_FILE
    if not path.is_file():
        return ConfidenceGate()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if spoken and raw.get("speech") is not None:
            raw, where = raw["speech"], f"{path}#speech"
        else:
            where = str(path)
        return ConfidenceGate(
            signal=raw["signal"],
            threshold=float(raw["threshold"]),
            source=where,
            next_best=raw.get("next_best", False),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RoutingError(f"{path}: not a routing calibration ({type(exc).__name__}: {exc})") from None


def write_gate(
    model_dir: str | Path, gate: ConfidenceGate, report: dict[str, Any], spoken: bool = False
) -> Path:
    """Write the gate and how it was chosen into the export directory's `routing.json`: the text gate (keeping a
    speech gate already there), or with `spoken` the speech gate (keeping the text gate)."""
    path = Path(model_dir) / ROUTING_FILE
    old = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    entry = {"signal": gate.signal, "threshold": gate.threshold, **report}
    if spoken:
        if "signal" not in old:
            raise RoutingError(f"{path}: calibrate the text gate before the speech gate")
        body = {**old, "speech": {**entry, "next_best": gate.next_best}}
    else:
        body = {**entry, **({"speech": old["speech"]} if old.get("speech") is not None else {})}
    path.write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")
    return path
