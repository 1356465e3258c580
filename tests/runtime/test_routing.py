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


def test_speech_gate_round_trip_and_fallback(tmp_path):
    write_gate(tmp_path, ConfidenceGate("min_margin", 1.0), {"split": "dev"})
    assert load_gate(tmp_path, spoken=True) == load_gate(tmp_path)  # no speech gate: the text gate
    write_gate(tmp_path, ConfidenceGate("min_margin", 4.5), {"split": "speech:dev_asr.jsonl"}, spoken=True)
    speech = load_gate(tmp_path, spoken=True)
    assert (speech.threshold, speech.source) == (4.5, f"{tmp_path / ROUTING_FILE}#speech")
    # a new text gate keeps the speech one
    write_gate(tmp_path, ConfidenceGate("min_prob", 0.8), {"split": "dev"})
    assert load_gate(tmp_path).threshold == 0.8
    assert load_gate(tmp_path, spoken=True).threshold == 4.5
    assert not load_gate(tmp_path, spoken=True).next_best  # a gate chosen without next-best transcripts
    write_gate(tmp_path, ConfidenceGate("min_prob", 0.99, next_best=True), {}, spoken=True)
    assert load_gate(tmp_path, spoken=True).next_best and not load_gate(tmp_path).next_best


def test_a_speech_gate_needs_a_text_gate_first(tmp_path):
    with pytest.raises(RoutingError, match="text gate"):
        write_gate(tmp_path, ConfidenceGate("min_margin", 2.0), {}, spoken=True)
    assert not (tmp_path / ROUTING_FILE).exists()


@pytest.mark.parametrize(
    "speech",
    [
        '"loud"',
        '{"signal": "min_margin"}',
        '{"signal": "x", "threshold": 1}',
        '{"signal": "min_prob", "threshold": 0.9, "next_best": "yes"}',
    ],
)
def test_broken_speech_gates_are_refused(tmp_path, speech):
    (tmp_path / ROUTING_FILE).write_text(f'{{"signal": "min_prob", "threshold": 0.5, "speech": {speech}}}')
    assert load_gate(tmp_path).threshold == 0.5
    with pytest.raises(RoutingError, match=ROUTING_FILE):
        load_gate(tmp_path, spoken=True)


def test_the_commander_gates_speech_with_the_speech_gate(tmp_path):
    from runtime_fakes import scripted_export
    from shadow_edge.runtime.commander import Commander

    export = scripted_export(tmp_path / "export", "sit")
    write_gate(export, ConfidenceGate("min_prob", 0.0), {})
    write_gate(export, ConfidenceGate("min_margin", 1e9), {}, spoken=True)  # nothing spoken is sure enough
    commander = Commander(export)
    typed, heard = commander.run("sit down"), commander.run("sit down", spoken=True)
    assert (typed.program, typed.route, typed.accepted) == ("sit", "robot", True)
    assert (heard.program, heard.route, heard.accepted) == ("sit", "remote", False)
    assert "speech" in heard.reason
    assert commander.info()["speech_confidence_gate"]["threshold"] == 1e9


@pytest.mark.parametrize("next_best", [False, True])
def test_next_best_transcripts_are_used_only_where_the_speech_gate_was_chosen_with_them(tmp_path, next_best):
    from runtime_fakes import scripted_export
    from shadow_edge.runtime.commander import Commander

    export = scripted_export(tmp_path / "export", "sit")
    write_gate(export, ConfidenceGate("min_prob", 0.0), {})
    write_gate(export, ConfidenceGate("min_margin", 1e9, next_best=next_best), {}, spoken=True)
    commander = Commander(export)
    decoded = []
    commander._generate = lambda text, real=commander._generate: decoded.append(text) or real(text)
    result = commander.run("sit down", spoken=True, alternatives=("sit", "sit now"))
    assert result.route == "remote" and result.alternative is None  # nothing passes this speech gate
    assert len(decoded) == (3 if next_best else 1)
