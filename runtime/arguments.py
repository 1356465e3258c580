"""Whether a program's numbers are the numbers the user said: a miscopied argument is never executed.

A small model copies the digits it was trained on well and others badly, and it is sure of the copy: the detached
shadow wrote `move x=0.7` for "walk 0.75 metres", `turn deg=225` for "turn left 22.5 degrees" and `turn deg=-270`
for "turn right 275 degrees", each at a constrained probability of 1.00, so no confidence threshold holds them
back. `unsaid_arguments(model_text, program)` compares the two directly, on the text the model read (numbers as
digits, centimetres as metres: `runtime.normalize`):

- every argument of the program is a number of the text, its default, or a value a command's words give without a
  number: a metre for a distance not given ("come here"), and whole quarter turns ("turn around" = 180,
  "two full turns" = 720, "the second dance" = 2), the last only while the program uses every number of the text
  (as an argument, a count of steps or of a repeated step), so "do dance number five" is not `dance n=2`;
- every length the text gives with its unit (metres, 米) is a distance of the program, and every angle with its unit
  (degrees, °, 度) an angle of the program, so a step that carried a number is not dropped unnoticed.

Signs are not compared: the direction is in the words ("back", "right"), not in the number. An empty list means
the numbers agree. The check is conservative on purpose: a sum the model is left to add up ("1米50厘米") is held
back too, and goes to the remote model, which is where a program the robot is not sure of goes anyway.
"""

from __future__ import annotations

import re
from decimal import Decimal

from .actions import ROUTE_ROBOT, ActionSpec, Program, format_number, load_spec
from .normalize import normalize_numbers

__all__ = ["DISAGREE_REASON", "unsaid_arguments"]

DISAGREE_REASON = (
    "the numbers disagree with the command"  # how a result held back by this check begins its reason
)

_NUMBER = re.compile(r"(?<![\d.])\d+(?:\.\d+)?")
_LENGTH = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*(?:metres?|meters?|m\b|米)", re.IGNORECASE)
_ANGLE = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*(?:degrees?|deg\b|°|度)", re.IGNORECASE)
# Values a command's words give without a number ("come here", "turn around", "two full turns", "dance two"
# is a number and "the second dance" is not).
_FROM_WORDS: dict[tuple[str, str], frozenset[Decimal]] = {
    ("move", "x"): frozenset({Decimal(1)}),
    ("move", "y"): frozenset({Decimal(1)}),
    ("turn", "deg"): frozenset(Decimal(d) for d in (90, 180, 270, 360, 450, 540, 630, 720)),
    ("dance", "n"): frozenset({Decimal(2)}),
}
_DISTANCE_KEYS = {("move", "x"), ("move", "y")}
_ANGLE_KEYS = {("turn", "deg")}


def _values(pattern: re.Pattern[str], text: str) -> list[Decimal]:
    return [Decimal(m.group(1) if m.groups() else m.group()) for m in pattern.finditer(text)]


def _repeat_runs(program: Program) -> list[int]:
    """Lengths of the runs of one command repeated: [3] for `front_jump; front_jump; front_jump`."""
    runs: list[int] = []
    for i, command in enumerate(program.commands):
        if i and command == program.commands[i - 1]:
            runs[-1] += 1
        else:
            runs.append(1)
    return runs


def unsaid_arguments(model_text: str, program: Program, spec: ActionSpec | None = None) -> list[str]:
    """What disagrees between the numbers of `model_text` and the arguments of `program` (module docstring); empty
    when they agree. Routing words and commands without arguments never disagree with anything."""
    spec = spec or load_spec()
    if program.route != ROUTE_ROBOT:
        return []
    # Chinese text may carry English number words ("走 two 米"), which the Chinese normaliser leaves as they are
    said = set(_values(_NUMBER, model_text)) | set(_values(_NUMBER, normalize_numbers(model_text, "en").text))
    arguments = [
        (command, key, value, abs(Decimal(format_number(value))))
        for command in program.commands
        for key, value in command.args
    ]
    distances = {m for c, key, _, m in arguments if (c.name, key) in _DISTANCE_KEYS}
    angles = {m for c, key, _, m in arguments if (c.name, key) in _ANGLE_KEYS}
    # A number of the text that the program does not use makes a value from words suspect ("do dance number five"
    # -> `dance n=2`). A count of repeated steps or of steps uses its number ("jump forward 3 times"), and so does a
    # count of turns ("two full turns").
    used = {m for *_, m in arguments} | {Decimal(len(program.commands))}
    used |= {Decimal(n) for n in _repeat_runs(program)}
    used |= {m / part for m in used for part in (90, 180, 360) if m % part == 0}
    unused = said - used
    problems = []
    for command, key, value, magnitude in arguments:
        default = abs(Decimal(format_number(spec.commands[command.name].args[key].default)))
        if magnitude in said or magnitude == default:
            continue
        if magnitude in _FROM_WORDS.get((command.name, key), ()) and not unused:
            continue
        problems.append(f"{command.name} {key}={format_number(value)} is not a number of the command")
    for length in _values(_LENGTH, model_text):
        if length not in distances:
            problems.append(
                f"the distance {format_number(float(length))} m of the command is not in the program"
            )
    for angle in _values(_ANGLE, model_text):
        if angle not in angles:
            problems.append(f"the angle {format_number(float(angle))}° of the command is not in the program")
    return problems
