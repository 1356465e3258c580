"""The action-language parser and canonicaliser (`shadow_edge.runtime.actions`) against the spec."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shadow_edge.runtime.actions import (
    SPEC_PATH,
    Command,
    ProgramError,
    canonicalize,
    format_number,
    load_spec,
    parse_program,
    programs_equal,
    range_violations,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC_COPY = REPO_ROOT / "docs" / "spec" / "actions.json"  # the project's copy of the contract
SPEC = load_spec()


# --------------------------------------------------------------------------------------------------------------
# The packaged spec


def test_packaged_spec_matches_the_docs_copy():
    if not SPEC_COPY.exists():  # an installed test run without the repository's docs/
        pytest.skip(f"{SPEC_COPY} not present")
    packaged = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    documented = json.loads(SPEC_COPY.read_text(encoding="utf-8"))
    assert packaged == documented, f"runtime/actions.json differs from {SPEC_COPY}: copy it over"


def test_spec_contents():
    assert SPEC.max_commands == 4
    assert SPEC.routing == ("remote", "reject")
    assert set(SPEC.commands) == {
        "stand_up",
        "lie_down",
        "sit",
        "recover",
        "stop",
        "move",
        "turn",
        "hello",
        "stretch",
        "dance",
        "front_flip",
        "front_jump",
        "front_pounce",
        "wiggle_hips",
        "heart",
        "bark",
    }
    assert list(SPEC.commands["move"].args) == ["x", "y"]
    assert SPEC.commands["turn"].args["deg"].default == 90
    assert SPEC.commands["dance"].args["n"].integer
    assert SPEC.commands["dance"].go2_api_id_by_n == {1: 1022, 2: 1023}
    assert SPEC.names[-2:] == ("remote", "reject")


def test_load_spec_bad_path(tmp_path):
    with pytest.raises(ValueError, match="cannot read the action spec"):
        load_spec(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="cannot read the action spec"):
        load_spec(bad)


# --------------------------------------------------------------------------------------------------------------
# Valid programs: table


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("sit", "sit"),
        ("move x=2", "move x=2"),
        ("turn deg=-90", "turn deg=-90"),
        ("stand_up; hello", "stand_up; hello"),
        ("bark n=2", "bark n=2"),
        ("remote", "remote"),
        ("reject", "reject"),
        # defaults omitted
        ("move x=2 y=0", "move x=2"),
        ("move x=0 y=0", "move"),
        ("move", "move"),
        ("turn deg=90", "turn"),
        ("dance n=1", "dance"),
        ("bark n=1", "bark"),
        ("dance n=2", "dance n=2"),
        # argument order, whitespace, separators
        ("move y=1 x=2", "move x=2 y=1"),
        ("  move   x=2\ty=1  ", "move x=2 y=1"),
        ("sit;hello", "sit; hello"),
        ("sit ;  hello ;stop", "sit; hello; stop"),
        ("sit\n;\nhello", "sit; hello"),
        # numbers: shortest plain decimal
        ("move x=2.0", "move x=2"),
        ("move x=2.50", "move x=2.5"),
        ("move x=0.5", "move x=0.5"),
        ("move x=-0.5 y=-1.25", "move x=-0.5 y=-1.25"),
        ("move x=002", "move x=2"),
        ("move x=-0", "move"),
        ("turn deg=-0", "turn deg=0"),
        ("turn deg=0", "turn deg=0"),
        ("bark n=2.0", "bark n=2"),
        ("move x=2.0000001", "move x=2"),
        ("turn deg=90.0000001", "turn"),
        ("move x=0.0000004", "move"),
        # near the tolerance the canonical form must still be a fixed point (was not: "move x=0.000001" -> "move")
        ("move x=0.0000014", "move x=0.000001"),
        ("move x=1.0000014", "move x=1.000001"),
        ("move x=1.0000009", "move x=1.000001"),
        ("turn deg=90.0000014", "turn deg=90.000001"),
        # four commands is the maximum, and is fine
        ("sit; stand_up; hello; bark n=3", "sit; stand_up; hello; bark n=3"),
    ],
)
def test_canonical_table(text, canonical):
    assert canonicalize(text) == canonical
    assert canonicalize(canonical) == canonical
    assert programs_equal(parse_program(text), parse_program(canonical))


def test_parsed_commands_carry_every_argument():
    program = parse_program("move y=1; turn; bark")
    assert program.commands == (
        Command("move", (("x", 0.0), ("y", 1.0))),
        Command("turn", (("deg", 90.0),)),
        Command("bark", (("n", 1.0),)),
    )
    assert program.names == ("move", "turn", "bark")
    assert program.commands[0].arg_dict == {"x": 0.0, "y": 1.0}
    assert str(program) == "move y=1; turn; bark"


@pytest.mark.parametrize(
    ("text", "route"),
    [
        ("remote", "remote"),
        ("reject", "reject"),
        (" reject ", "reject"),
        ("sit", "robot"),
        ("sit; hello", "robot"),
    ],
)
def test_route(text, route):
    assert parse_program(text).route == route


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (2.0, "2"),
        (0.5, "0.5"),
        (-90.0, "-90"),
        (0.0, "0"),
        (-0.0, "0"),
        (1e-7, "0"),
        (-1e-7, "0"),
        (1.25, "1.25"),
        (2.0000001, "2"),
        (1e20, "100000000000000000000"),
        (0.123456, "0.123456"),
    ],
)
def test_format_number(value, text):
    assert format_number(value) == text


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_format_number_rejects_non_finite(value):
    with pytest.raises(ValueError, match="not a finite number"):
        format_number(value)


# --------------------------------------------------------------------------------------------------------------
# Invalid programs: table


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty program"),
        ("   ", "empty program"),
        ("\t\n ", "empty program"),
        ("sit;", "empty command"),
        (";sit", "empty command"),
        ("sit;; hello", "empty command"),
        ("garbage", "unknown command 'garbage'"),
        ("Sit", "not a command name"),
        ("SIT", "not a command name"),
        ("sit!", "not a command name"),
        ("move x=2 please", "expected key=number"),
        ("walk x=2", "unknown command 'walk'"),
        ("sít", "not a command name"),
        ("坐下", "not a command name"),
        ("\x00\x01\x02", "not a command name"),
        ("\x89PNG\r\n\x1a\n", "not a command name"),
        ("move z=1", "unknown argument 'z'"),
        ("sit n=1", "unknown argument 'n'"),
        ("turn x=1", "unknown argument 'x'"),
        ("move x=1 x=2", "given twice"),
        ("bark n=1 n=1", "given twice"),
        ("move x", "expected key=number"),
        ("move x=", "not a plain decimal"),
        ("move =2", "unknown argument ''"),
        ("move x=two", "not a plain decimal"),
        ("move x=２", "not a plain decimal"),
        ("move x=٢", "not a plain decimal"),
        ("move x=1e3", "not a plain decimal"),
        ("move x=1E3", "not a plain decimal"),
        ("move x=+1", "not a plain decimal"),
        ("move x=nan", "not a plain decimal"),
        ("move x=inf", "not a plain decimal"),
        ("move x=-inf", "not a plain decimal"),
        ("move x=.5", "not a plain decimal"),
        ("move x=5.", "not a plain decimal"),
        ("move x=1,5", "not a plain decimal"),
        ("move x=2m", "not a plain decimal"),
        ("move x=0x10", "not a plain decimal"),
        ("move x=1_000", "not a plain decimal"),
        ("move x = 2", "expected key=number"),
        ("move x=2=3", "not a plain decimal"),
        ("bark n=1.5", "whole number"),
        ("dance n=1.1", "whole number"),
        ("dance n=0.5", "whole number"),
        ("sit; stand_up; hello; stop; sit", "5 commands; at most 4"),
        ("sit; " * 10 + "sit", "11 commands; at most 4"),
        ("remote; sit", "must stand alone"),
        ("sit; reject", "must stand alone"),
        ("remote; reject", "must stand alone"),
        ("remote x=1", "takes no arguments"),
        ("reject n=1", "takes no arguments"),
        ("remote please", "takes no arguments"),
        ("Remote", "not a command name"),
    ],
)
def test_invalid_table(text, reason):
    with pytest.raises(ProgramError, match=reason.replace("(", r"\(")) as info:
        parse_program(text)
    assert info.value.reason == str(info.value)
    with pytest.raises(ProgramError):
        canonicalize(text)


@pytest.mark.parametrize("value", [None, 3, b"sit", ["sit"]])
def test_non_text_is_rejected(value):
    with pytest.raises(ProgramError, match="a program is text"):
        parse_program(value)


def test_program_error_is_a_value_error():
    assert issubclass(ProgramError, ValueError)


def test_huge_numbers_are_rejected_not_crashing():
    # A number too large for a float must be a ProgramError, not an OverflowError / ValueError later on.
    for text in ("move x=" + "9" * 400, "bark n=" + "9" * 400, "turn deg=-" + "9" * 400):
        with pytest.raises(ProgramError, match="too large"):
            parse_program(text)


# --------------------------------------------------------------------------------------------------------------
# Ranges: parse fine, flagged by range_violations


@pytest.mark.parametrize(
    ("text", "messages"),
    [
        ("move x=6", ["command 1 (move): x=6 m is outside [-5, 5]"]),
        (
            "move x=-5.5 y=10",
            ["command 1 (move): x=-5.5 m is outside [-5, 5]", "command 1 (move): y=10 m is outside [-5, 5]"],
        ),
        ("sit; turn deg=720", ["command 2 (turn): deg=720 deg is outside [-360, 360]"]),
        ("turn deg=-361", ["command 1 (turn): deg=-361 deg is outside [-360, 360]"]),
        ("bark n=6", ["command 1 (bark): n=6 is outside [1, 5]"]),
        ("bark n=0", ["command 1 (bark): n=0 is outside [1, 5]"]),
        ("dance n=3", ["command 1 (dance): n=3 is outside [1, 2]"]),
        ("dance n=-1", ["command 1 (dance): n=-1 is outside [1, 2]"]),
        ("move x=100000000000000000000", ["command 1 (move): x=100000000000000000000 m is outside [-5, 5]"]),
    ],
)
def test_range_violations(text, messages):
    program = parse_program(text)  # parsing succeeds: ranges are the safety layer's business
    assert range_violations(program) == messages


@pytest.mark.parametrize(
    "text",
    [
        "move x=5 y=-5",
        "move x=-5",
        "turn deg=360",
        "turn deg=-360",
        "bark n=5",
        "dance n=2",
        "move x=5.0000001",
        "sit; hello",
        "remote",
        "reject",
    ],
)
def test_in_range(text):
    assert range_violations(parse_program(text)) == []


# --------------------------------------------------------------------------------------------------------------
# Pathological input must be fast


@pytest.mark.parametrize(
    "text",
    [
        "a" * 100_000,
        "sit " * 25_000,
        "sit;" * 25_000,
        "move x=1 " * 11_000,
        "move x=" + "1" * 100_000,
        "move x=" + "1" * 50_000 + "." + "1" * 49_990,
        "bark n=" + "1" * 100_000,
        " " * 100_000,
        ";" * 100_000,
        "\x00" * 100_000,
        "move " + "x=1 " * 25_000,
        "move x=" + "-" * 100_000,
        "2" * 100_000,
    ],
)
def test_long_input_is_fast(text):
    start = time.perf_counter()
    try:
        program = parse_program(text)
        range_violations(program)
        program.canonical()
    except ProgramError:
        pass
    assert time.perf_counter() - start < 1.0


# --------------------------------------------------------------------------------------------------------------
# Property tests: random valid programs from the spec


def _decimal(lo: float, hi: float, integer: bool) -> st.SearchStrategy[str]:
    """Plain decimal text in [lo, hi] (integers only when `integer`), with optional redundant zeros."""
    if integer:
        return st.builds(
            lambda v, zeros, frac: str(v) + ("." + "0" * frac if zeros else ""),
            st.integers(int(lo), int(hi)),
            st.booleans(),
            st.integers(1, 3),
        )
    scale = 10**7
    return st.builds(
        lambda units, pad: _fixed(units, scale, pad),
        st.integers(int(lo * scale), int(hi * scale)),
        st.integers(0, 2),
    )


def _fixed(units: int, scale: int, pad: int) -> str:
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), scale)
    frac_text = str(frac).rjust(len(str(scale)) - 1, "0").rstrip("0")
    if frac_text or pad:
        return f"{sign}{whole}.{(frac_text or '0') + '0' * pad}"
    return f"{sign}{whole}"


@st.composite
def command_texts(draw, wide: bool = False) -> str:
    name = draw(st.sampled_from(sorted(SPEC.commands)))
    cmd = SPEC.commands[name]
    parts = []
    for key, arg in cmd.args.items():
        if draw(st.booleans()):
            lo, hi = (arg.min * 3, arg.max * 3) if wide else (arg.min, arg.max)
            parts.append(f"{key}={draw(_decimal(lo, hi, arg.integer))}")
    parts = draw(st.permutations(parts))
    space = st.sampled_from([" ", "  ", "\t"])
    text = name
    for part in parts:
        text += draw(space) + part
    return text


@st.composite
def program_texts(draw, wide: bool = False) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(SPEC.routing))
    commands = draw(st.lists(command_texts(wide), min_size=1, max_size=SPEC.max_commands))
    separators = draw(
        st.lists(st.sampled_from([";", "; ", " ; ", ";  "]), min_size=len(commands), max_size=len(commands))
    )
    text = commands[0]
    for sep, command in zip(separators, commands[1:], strict=False):
        text += sep + command
    lead, trail = draw(st.sampled_from(["", " ", "\n"])), draw(st.sampled_from(["", " ", "\n"]))
    return lead + text + trail


@settings(max_examples=300, deadline=None)
@given(program_texts())
def test_canonical_round_trip(text):
    program = parse_program(text)
    canonical = program.canonical()
    assert canonicalize(text) == canonical
    # the canonical form is a fixed point, parses to the same program, and is in range
    assert canonicalize(canonical) == canonical
    reparsed = parse_program(canonical)
    assert programs_equal(reparsed, program)
    assert programs_equal(program, reparsed)
    assert range_violations(program) == []
    assert reparsed.names == program.names
    assert reparsed.route == program.route
    # the canonical form has the spec's shape: "; " separators, single spaces, no defaults, no exponents
    assert canonical == canonical.strip()
    assert "  " not in canonical
    assert ";" not in canonical.replace("; ", "")
    assert "e" not in "".join(p.partition("=")[2] for p in canonical.split())


@settings(max_examples=200, deadline=None)
@given(program_texts(wide=True))
def test_canonical_round_trip_out_of_range(text):
    # out-of-range numbers still parse and canonicalise; range_violations explains them
    program = parse_program(text)
    canonical = program.canonical()
    assert canonicalize(canonical) == canonical
    assert programs_equal(parse_program(canonical), program)
    for message in range_violations(program):
        assert "is outside [" in message


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_equality_ignores_order_whitespace_and_defaults(data):
    name = data.draw(st.sampled_from(sorted(SPEC.commands)))
    cmd = SPEC.commands[name]
    values = {key: data.draw(_decimal(a.min, a.max, a.integer)) for key, a in cmd.args.items()}
    # the same command written with every argument, in reverse order with extra whitespace, and with defaults dropped
    full = " ".join([name, *(f"{k}={v}" for k, v in values.items())])
    reordered = "  ".join([name, *(f"{k}={v}" for k, v in reversed(values.items()))]) + " "
    minimal = " ".join([name, *(f"{k}={v}" for k, v in values.items() if float(v) != cmd.args[k].default)])
    programs = [parse_program(t) for t in (full, reordered, minimal)]
    for p in programs[1:]:
        assert programs_equal(programs[0], p)
    assert canonicalize(full) == canonicalize(reordered)
    canonical = {canonicalize(t) for t in (full, reordered, minimal)}
    assert len(canonical) == 1


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_text_never_crashes(text):
    try:
        program = parse_program(text)
    except ProgramError as exc:
        assert exc.reason
        return
    canonical = program.canonical()
    assert canonicalize(canonical) == canonical
    range_violations(program)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(["sit", "move", "x=", "1", "-", ".", "5", ";", " ", "turn", "deg=", "remote", "n="]),
        max_size=20,
    )
)
def test_near_miss_text_never_crashes(tokens):
    text = "".join(tokens)
    try:
        program = parse_program(text)
    except ProgramError:
        return
    canonical = program.canonical()
    assert canonicalize(canonical) == canonical
    assert programs_equal(parse_program(canonical), program)
