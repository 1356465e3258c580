"""The confidence gate: signals, thresholds, routing.json, and what the Commander does with a gate."""

from __future__ import annotations

import json
import math

import pytest
from shadow_edge.runtime.generate import GenerationResult
from shadow_edge.runtime.routing import ROUTING_FILE, ConfidenceGate, RoutingError, load_gate, write_gate


def result(logprobs: list[float], margins: list[float]) -> GenerationResult:
    return GenerationResult(
        text="sit", token_ids=[1], token_logprobs=logprobs, stop_reason="eos", prompt_tokens=3, prefill_ms=0.0,
        token_margins=margins,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("signal", "threshold", "logprobs", "margins", "passes"),
    [
        ("min_prob", 0.5, [math.log(0.9), math.log(0.6)], [3.0, 0.4], True),
        ("min_prob", 0.7, [math.log(0.9), math.log(0.6)], [3.0, 0.4], False),
        ("min_margin", 0.3, [math.log(0.9), math.log(0.6)], [3.0, 0.4], True),
        ("min_margin", 0.5, [math.log(0.9), math.log(0.6)], [3.0, 0.4], False),
        ("min_margin", 2.0, [], [], True),  # the grammar forced everything: nothing to doubt
        ("min_prob", 1.0, [], [], True),
        ("min_prob", 0.0, [math.log(1e-9)], [0.0], True),  # an open gate
    ],
)
def test_gate_thresholds(signal, threshold, logprobs, margins, passes):
    assert ConfidenceGate(signal, threshold).passes(result(logprobs, margins)) is passes


@pytest.mark.parametrize(
    ("signal", "threshold"),
    [
        ("entropy", 0.5),
        ("min_prob", 1.5),
        ("min_prob", -0.1),
        ("min_margin", -1.0),
        ("min_prob", float("nan")),
        ("min_prob", "high"),
    ],  # fmt: skip
)
def test_bad_gates_are_refused(signal, threshold):
    with pytest.raises(RoutingError):
        ConfidenceGate(signal, threshold)


def test_routing_file_round_trip_and_default(tmp_path):
    assert load_gate(tmp_path) == ConfidenceGate()
    write_gate(tmp_path, ConfidenceGate("min_margin", 1.25), {"target_executed_wrong": 0.005})
    gate = load_gate(tmp_path)
    assert (gate.signal, gate.threshold, gate.source) == ("min_margin", 1.25, str(tmp_path / ROUTING_FILE))
    assert json.loads((tmp_path / ROUTING_FILE).read_text())["target_executed_wrong"] == 0.005


@pytest.mark.parametrize(
    "body", ["{not json", '{"signal": "min_prob"}', '{"signal": "vibes", "threshold": 1}', "[]"]
)
def test_broken_routing_files_are_refused(tmp_path, body):
    (tmp_path / ROUTING_FILE).write_text(body)
    with pytest.raises(RoutingError, match=ROUTING_FILE):
        load_gate(tmp_path)
