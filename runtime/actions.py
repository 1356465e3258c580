"""The robot-dog action language: parse, canonicalise, check ranges.

The contract is `actions.json`, the project's `docs/spec/actions.json` shipped with the package (a test keeps the two
equal). This module is the single implementation of the grammar used by the training data, the model's target, the on-device parser, the safety
layer and every accuracy measurement, so it depends on the standard library alone.

```
program := command ( "; " command )*        # at most 4 commands
command := name ( " " key "=" number )*     # keys in the order listed in the spec
number  := -?[0-9]+(\\.[0-9]+)?
```

Parsing is tolerant of surrounding and repeated whitespace and of argument order (the canonical form fixes both);
it is strict about everything that changes meaning: unknown names or keys, duplicate keys, non-decimal numbers,
non-integers where an integer is required, routing words mixed with commands, more than `max_commands` commands.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

SPEC_PATH = Path(__file__).with_name("actions.json")
ROUTE_ROBOT = "robot"
TOLERANCE = 1e-6

_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_NAME = re.compile(r"[a-z_]+")


class ProgramError(ValueError):
    """A text that is not a valid program; `reason` says why in words a log reader understands."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ArgSpec:
    default: float
    min: float
    max: float
    integer: bool = False
    unit: str | None = None


@dataclass(frozen=True)
class CommandSpec:
    name: str
    args: dict[str, ArgSpec]
    go2_api_id: int | None = None
    go2_api_id_by_n: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ActionSpec:
    version: int
    max_commands: int
    routing: tuple[str, ...]
    commands: dict[str, CommandSpec]
    speed_limits: dict[str, float]
    defaults_without_number: dict[str, dict[str, float]]

    @property
    def names(self) -> tuple[str, ...]:
        """Every name a program may contain: the robot commands, then the routing words."""
        return (*self.commands, *self.routing)


def _spec_from_dict(raw: dict[str, Any]) -> ActionSpec:
    commands = {}
    for name, entry in raw["commands"].items():
        args = {
            key: ArgSpec(
                default=float(a["default"]),
                min=float(a["min"]),
                max=float(a["max"]),
                integer=bool(a.get("integer", False)),
                unit=a.get("unit"),
            )
            for key, a in entry.get("args", {}).items()
        }
        by_n = {int(k): int(v) for k, v in entry.get("go2_api_id_by_n", {}).items()}
        commands[name] = CommandSpec(name, args, entry.get("go2_api_id"), by_n)
    return ActionSpec(
        version=int(raw["version"]),
        max_commands=int(raw["max_commands"]),
        routing=tuple(raw["routing"]),
        commands=commands,
        speed_limits={k: float(v) for k, v in raw["speed_limits"].items()},
        defaults_without_number={
            k: {kk: float(vv) for kk, vv in v.items()} for k, v in raw["defaults_without_number"].items()
        },
    )


@lru_cache(maxsize=4)
def load_spec(path: str | Path | None = None) -> ActionSpec:
    """Load the action-language contract (the packaged copy unless `path` is given)."""
    path = Path(path) if path is not None else SPEC_PATH
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return _spec_from_dict(raw)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"cannot read the action spec {path}: {exc}") from exc


def format_number(value: float) -> str:
    """Plain decimal, shortest form: 2 -> "2", 0.5 -> "0.5", -90.0 -> "-90" (never an exponent)."""
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    # Round to 6 places first and only then drop trailing zeros: the result is then a fixed point
    # (format_number(float(s)) == s), which keeps canonicalize() idempotent near the tolerance.
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


@dataclass(frozen=True)
class Command:
    """One command with *all* its arguments filled in (defaults included), so equality is meaningful."""

    name: str
    args: tuple[tuple[str, float], ...] = ()

    @property
    def arg_dict(self) -> dict[str, float]:
        return dict(self.args)

    def canonical(self, spec: ActionSpec | None = None) -> str:
        spec = spec or load_spec()
        cmd_spec = spec.commands.get(self.name)
        parts = [self.name]
        for key, value in self.args:
            text = format_number(value)
            # Compare the printed forms, so that the text written is the text the decision was made on.
            if (
                cmd_spec is not None
                and key in cmd_spec.args
                and text == format_number(cmd_spec.args[key].default)
            ):
                continue
            parts.append(f"{key}={text}")
        return " ".join(parts)


@dataclass(frozen=True)
class Program:
    commands: tuple[Command, ...]

    @property
    def route(self) -> str:
        """`remote` or `reject` for a routing word, `robot` for a sequence of robot commands."""
        if len(self.commands) == 1 and self.commands[0].name in load_spec().routing:
            return self.commands[0].name
        return ROUTE_ROBOT

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.commands)

    def canonical(self, spec: ActionSpec | None = None) -> str:
        return "; ".join(c.canonical(spec) for c in self.commands)

    def __str__(self) -> str:
        return self.canonical()


def _parse_command(text: str, spec: ActionSpec) -> Command:
    tokens = text.split()
    if not tokens:
        raise ProgramError("empty command (two separators in a row, or a separator at an end)")
    name, *arg_tokens = tokens
    if not _NAME.fullmatch(name):
        raise ProgramError(f"not a command name: {name!r}")
    if name in spec.routing:
        if arg_tokens:
            raise ProgramError(f"routing word {name!r} takes no arguments")
        return Command(name)
    cmd_spec = spec.commands.get(name)
    if cmd_spec is None:
        raise ProgramError(f"unknown command {name!r}")
    given: dict[str, float] = {}
    for token in arg_tokens:
        key, sep, number = token.partition("=")
        if not sep:
            raise ProgramError(f"{name}: expected key=number, got {token!r}")
        if key not in cmd_spec.args:
            allowed = ", ".join(cmd_spec.args) or "no arguments"
            raise ProgramError(f"{name}: unknown argument {key!r} (takes {allowed})")
        if key in given:
            raise ProgramError(f"{name}: argument {key!r} given twice")
        if not _NUMBER.fullmatch(number):
            raise ProgramError(f"{name}: {key}={number!r} is not a plain decimal number")
        value = float(number)
        if not math.isfinite(value):
            raise ProgramError(f"{name}: {key}={number[:20]}... is too large to be a number")
        if cmd_spec.args[key].integer and value != int(value):
            raise ProgramError(f"{name}: {key} must be a whole number, got {number}")
        given[key] = value
    args = tuple((key, given.get(key, a.default)) for key, a in cmd_spec.args.items())
    return Command(name, args)


def parse_program(text: str, spec: ActionSpec | None = None) -> Program:
    """Parse an action program; raise `ProgramError` with a reason if it is not one.

    Ranges are not checked here (a syntactically valid program can still be unsafe): see `range_violations`.
    """
    spec = spec or load_spec()
    if not isinstance(text, str):
        raise ProgramError(f"a program is text, got {type(text).__name__}")
    if not text.strip():
        raise ProgramError("empty program")
    pieces = text.strip().split(";")
    if len(pieces) > spec.max_commands:
        raise ProgramError(f"{len(pieces)} commands; at most {spec.max_commands} are allowed")
    commands = tuple(_parse_command(piece, spec) for piece in pieces)
    routing = [c.name for c in commands if c.name in spec.routing]
    if routing and len(commands) > 1:
        raise ProgramError(f"routing word {routing[0]!r} must stand alone")
    return Program(commands)


def canonicalize(text: str, spec: ActionSpec | None = None) -> str:
    """The canonical text of a program: spec key order, defaults omitted, shortest numbers, "; " separators."""
    return parse_program(text, spec).canonical(spec)


def range_violations(program: Program, spec: ActionSpec | None = None) -> list[str]:
    """Every argument outside the spec's range, in words; empty when the whole program is in range."""
    spec = spec or load_spec()
    problems = []
    for index, command in enumerate(program.commands, start=1):
        cmd_spec = spec.commands.get(command.name)
        if cmd_spec is None:
            continue
        for key, value in command.args:
            a = cmd_spec.args[key]
            if not (a.min - TOLERANCE <= value <= a.max + TOLERANCE):
                unit = f" {a.unit}" if a.unit else ""
                problems.append(
                    f"command {index} ({command.name}): {key}={format_number(value)}{unit} is outside "
                    f"[{format_number(a.min)}, {format_number(a.max)}]"
                )
    return problems


def programs_equal(a: Program, b: Program) -> bool:
    """Spec scoring: same commands in order, arguments equal as numbers (defaults filled in)."""
    if a.names != b.names:
        return False
    for ca, cb in zip(a.commands, b.commands, strict=True):
        if any(abs(va - vb) > TOLERANCE for (_, va), (_, vb) in zip(ca.args, cb.args, strict=True)):
            return False
    return True
