"""Command accuracy as the spec scores it (`shadow_edge.runtime.scoring`)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shadow_edge.runtime.actions import ProgramError, load_spec
from shadow_edge.runtime.scoring import INVALID, MISSING, format_confusion, program_matches, score_programs

SPEC = load_spec()


@pytest.mark.parametrize(
    ("prediction", "reference"),
    [
        ("move x=2 y=0", "move x=2"),
        ("move x=2", "move x=2 y=0"),
        ("move y=0 x=2", "move x=2"),
        ("dance", "dance n=1"),
        ("dance n=1", "dance"),
        ("bark", "bark n=1"),
        ("bark n=1.0", "bark"),
        ("turn", "turn deg=90"),
        ("turn deg=90.0", "turn"),
        ("move x=2.0000001", "move x=2"),
        ("move x=1.9999999", "move x=2"),
        ("move x=2.0000005", "move x=2"),
        ("move x=0.0000001", "move"),
        ("  sit ;hello  ", "sit; hello"),
        ("move x=6", "move x=6"),  # out of range is the safety layer's business, not the scorer's
        ("remote", "remote"),
        ("reject", "reject"),
    ],
)
def test_matches(prediction, reference):
    assert program_matches(prediction, reference)
    assert program_matches(reference, prediction)


@pytest.mark.parametrize(
    ("prediction", "reference"),
    [
        ("move x=2.001", "move x=2"),
        ("move x=2.00001", "move x=2"),
        ("move x=-2", "move x=2"),
        ("move y=2", "move x=2"),
        ("dance n=2", "dance"),
        ("bark n=2", "bark"),
        ("turn deg=-90", "turn"),
        ("turn deg=180", "turn"),
        ("hello; sit", "sit; hello"),  # order matters
        ("sit", "sit; hello"),
        ("sit; hello", "sit"),
        ("sit; sit", "sit"),
        ("remote", "reject"),
        ("remote", "sit"),
        ("stop", "stand_up"),
        # invalid predictions never match
        ("", "sit"),
        ("   ", "sit"),
        ("sit please", "sit"),
        ("Sit", "sit"),
        ("move x=2m", "move x=2"),
        ("move x=1e0", "move x=1"),
        ("move x=２", "move x=2"),
        ("bark n=1.5", "bark"),
        ("remote; sit", "remote"),
        ("sit; sit; sit; sit; sit", "sit; sit; sit; sit"),
    ],
)
def test_does_not_match(prediction, reference):
    assert not program_matches(prediction, reference)


def test_bad_reference_raises():
    with pytest.raises(ProgramError):
        program_matches("sit", "garbage")
    with pytest.raises(ProgramError):
        score_programs(["sit"], ["sit please"])


def test_length_mismatch_raises():
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        score_programs(["sit", "sit"], ["sit"])
    with pytest.raises(ValueError, match="1 languages for 2 references"):
        score_programs(["sit", "sit"], ["sit", "sit"], ["en"])


def test_empty():
    report = score_programs([], [])
    assert report == {
        "n": 0,
        "correct": 0,
        "accuracy": None,
        "per_language": {},
        "per_command": {},
        "confusion": {},
        "invalid": 0,
    }


def test_report():
    predictions = ["sit", "move x=2.001", "garbage", "remote", "bark; sit", "move x=2 y=0", "dance n=1", ""]
    references = ["sit", "move x=2", "hello", "remote", "bark n=1", "move x=2", "dance", "turn; sit"]
    languages = ["en", "zh", "en", "zh", "en", "zh", "en", "zh"]
    report = score_programs(predictions, references, languages)
    assert report["n"] == 8
    assert report["correct"] == 4  # sit, remote, move x=2 y=0, dance n=1
    assert report["accuracy"] == pytest.approx(0.5)
    assert report["invalid"] == 2  # "garbage" and ""
    assert report["per_language"] == {
        "en": {"n": 4, "correct": 2, "accuracy": 0.5},
        "zh": {"n": 4, "correct": 2, "accuracy": 0.5},
    }
    # an example counts towards every name in its reference program, once; spec order
    assert report["per_command"] == {
        "sit": {"n": 2, "correct": 1, "accuracy": 0.5},
        "move": {"n": 2, "correct": 1, "accuracy": 0.5},
        "turn": {"n": 1, "correct": 0, "accuracy": 0.0},
        "hello": {"n": 1, "correct": 0, "accuracy": 0.0},
        "dance": {"n": 1, "correct": 1, "accuracy": 1.0},
        "bark": {"n": 1, "correct": 0, "accuracy": 0.0},
        "remote": {"n": 1, "correct": 1, "accuracy": 1.0},
    }
    assert list(report["per_command"]) == ["sit", "move", "turn", "hello", "dance", "bark", "remote"]
    # names aligned by position; invalid predictions and missing/extra positions get their own columns
    assert report["confusion"] == {
        MISSING: {"sit": 1},
        "bark": {"bark": 1},
        "dance": {"dance": 1},
        "hello": {INVALID: 1},
        "move": {"move": 2},
        "remote": {"remote": 1},
        "sit": {"sit": 1, INVALID: 1},
        "turn": {INVALID: 1},
    }


def test_report_without_languages():
    report = score_programs(["sit", "stop"], ["sit", "stand_up"])
    assert report["per_language"] == {}
    assert report["accuracy"] == 0.5
    assert report["confusion"] == {"sit": {"sit": 1}, "stand_up": {"stop": 1}}


def test_missing_predicted_command_is_in_confusion():
    report = score_programs(["sit"], ["sit; hello"])
    assert report["confusion"] == {"sit": {"sit": 1}, "hello": {MISSING: 1}}
    assert report["per_command"]["hello"] == {"n": 1, "correct": 0, "accuracy": 0.0}
    assert report["per_command"]["sit"] == {"n": 1, "correct": 0, "accuracy": 0.0}


def test_repeated_name_counts_once_per_example():
    report = score_programs(["sit; sit"], ["sit; sit"])
    assert report["per_command"] == {"sit": {"n": 1, "correct": 1, "accuracy": 1.0}}
    assert report["confusion"] == {"sit": {"sit": 2}}


def test_all_invalid():
    report = score_programs(["", "???", "walk"], ["sit", "sit", "hello; sit"], ["en", "en", "zh"])
    assert report["correct"] == 0
    assert report["accuracy"] == 0.0
    assert report["invalid"] == 3
    assert report["confusion"] == {"hello": {INVALID: 1}, "sit": {INVALID: 3}}


def test_format_confusion():
    report = score_programs(["sit", "stop", "garbage", "sit"], ["sit", "stand_up", "sit", "sit"])
    text = format_confusion(report["confusion"])
    lines = text.splitlines()
    assert len(lines) == 2
    sit_line = next(line for line in lines if line.startswith("sit "))
    assert "correct-name     2" in sit_line
    assert f"confused with {INVALID}:1" in sit_line
    stand_line = next(line for line in lines if line.startswith("stand_up"))
    assert "correct-name     0" in stand_line
    assert "confused with stop:1" in stand_line
    assert format_confusion({}) == ""


# --------------------------------------------------------------------------------------------------------------
# Properties


@st.composite
def valid_programs(draw) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(SPEC.routing))
    commands = []
    for _ in range(draw(st.integers(1, SPEC.max_commands))):
        name = draw(st.sampled_from(sorted(SPEC.commands)))
        parts = [name]
        for key, arg in SPEC.commands[name].args.items():
            if draw(st.booleans()):
                if arg.integer:
                    value = str(draw(st.integers(int(arg.min), int(arg.max))))
                else:
                    value = str(draw(st.integers(int(arg.min * 100), int(arg.max * 100))) / 100)
                parts.append(f"{key}={value}")
        commands.append(" ".join(parts))
    return "; ".join(commands)


@settings(max_examples=200, deadline=None)
@given(valid_programs())
def test_a_program_matches_its_canonical_form(text):
    from shadow_edge.runtime.actions import canonicalize

    assert program_matches(text, text)
    assert program_matches(canonicalize(text), text)
    assert program_matches(text, canonicalize(text))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(valid_programs(), valid_programs(), st.sampled_from(["en", "zh"])), max_size=12))
def test_report_is_consistent(rows):
    predictions = [p for p, _, _ in rows]
    references = [r for _, r, _ in rows]
    languages = [lang for _, _, lang in rows]
    report = score_programs(predictions, references, languages)
    assert report["n"] == len(rows)
    assert report["correct"] == sum(
        program_matches(p, r) for p, r in zip(predictions, references, strict=True)
    )
    assert sum(v["n"] for v in report["per_language"].values()) == report["n"]
    assert sum(v["correct"] for v in report["per_language"].values()) == report["correct"]
    assert report["invalid"] == 0
    for name, entry in report["per_command"].items():
        assert name in SPEC.names
        assert 0 <= entry["correct"] <= entry["n"]
    # the confusion table has one cell per aligned position
    cells = sum(sum(row.values()) for row in report["confusion"].values())
    assert cells == sum(
        max(len(p.split(";")), len(r.split(";"))) for p, r in zip(predictions, references, strict=True)
    )
