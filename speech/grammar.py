"""The command language as speech sees it: a JSGF grammar, its exact-sentence matcher, and the vocabulary prompt.

- `build_grammar` writes the JSGF grammar of spoken commands from the action vocabulary of `actions.json` (every
  command name as words, e.g. "front flip", "wiggle hips") and English phrasings of those commands (directions,
  distances, angles, counts, "and then"), plus any extra phrases (e.g. the training texts the model knows). The
  pocketsphinx engine decodes against it.
- `grammar_matcher` accepts exactly the complete sentences of that grammar: pocketsphinx returns its best *partial*
  path when no complete sentence fits ("turn eleven", "do a"); such a hypothesis is never passed on. It is also the
  test of the streaming early decision (a transcript that is already a whole command need not wait for the VAD's
  hangover).
- `vocabulary_prompt` is Whisper's initial prompt: the action names and typical phrasings with spelled-out numbers,
  which biases the decoder toward the command words ("two metres", not "to meters").
- `normalize_words` is the comparison form of a transcript (lower case, no punctuation, digits and number words
  alike, metre/meter alike), for the exact-transcript rate, WER and the grammar test.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence

from shadow_edge.runtime.actions import ActionSpec, load_spec

log = logging.getLogger(__name__)


_UNITS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
# Numbers the action language uses: distances up to 5 m (halves), angles up to 360 degrees in usual steps. A smaller
# number grammar decodes measurably more accurately than every number up to 999.
_NUM = (
    "<unit> | ten | twelve | fifteen | (twenty | thirty | forty | fifty | sixty | seventy | eighty | ninety) [five]"
    " | [one | a] hundred [and] (twenty | thirty | fifty | eighty) | two hundred [and] seventy"
    " | three hundred [and] sixty | zero | half"
)
_TOKEN = re.compile(r"<[a-z_]+>|[()\[\]|]|[^\s()\[\]|<>]+")


def _grammar_rules(spec: ActionSpec, extras: Sequence[str]) -> dict[str, str]:
    names = [n.replace("_", " ") for n in spec.commands]
    rules = {
        "unit": " | ".join(_UNITS),
        "num": _NUM,
        "number": "<num> [point five | and a half]",
        "dir": "forward | forwards | ahead | back | backward | backwards | left | right | to the (left | right)"
        " | sideways",
        "dist": "<number> (metre | metres | meter | meters) | a (bit | little) | half a (metre | meter)",
        "move": "(walk | go | move | step | run) [<dir>] [<dist>] [<dir>]",
        "turn": "(turn | rotate | spin) [around | left | right] [by] [<number> degrees] [left | right | around]",
        "posture": "sit [down] | stand [up] | get up | lie down | recover | stand back up",
        "trick": "say hello | wave [your paw] | do a (front flip | flip | dance | trick) | dance [once | twice]"
        " | [front] jump [forward] | [front] pounce | wiggle [your] hips | make a heart",
        "bark": "bark [once | twice | <number> times] | speak",
        "stop": "stop [moving | now] | halt | freeze",
        "name": " | ".join(names),
    }
    alternatives = ["<move>", "<turn>", "<posture>", "<trick>", "<bark>", "<stop>", "<name>"]
    if extras:
        rules["extra"] = " | ".join(extras)
        alternatives.append("<extra>")
    rules["cmd"] = " | ".join(alternatives)
    rules["utterance"] = (
        "[please] <cmd> [please] [(and | then | and then) <cmd> [please]] [(and | then | and then) <cmd>]"
    )
    return rules


def _clean_phrase(phrase: str) -> list[str]:
    return "".join(c if c.isalpha() or c in " '" else " " for c in phrase.lower()).split()


def build_grammar(
    spec: ActionSpec | None = None,
    extra_phrases: Iterable[str] = (),
    known_word: Callable[[str], bool] | None = None,
) -> str:
    """The JSGF grammar of spoken commands: the action names of `spec` as words, their usual English phrasings,
    and `extra_phrases` (phrases with a word the dictionary does not know are left out, with a log line)."""
    spec = spec or load_spec()
    known = known_word or (lambda word: True)
    extras = set()
    for phrase in extra_phrases:
        words = _clean_phrase(phrase)
        if words and all(known(w) for w in words):
            extras.add(" ".join(words))
        elif words:
            log.debug("grammar: left out %r (a word is not in the dictionary)", phrase)
    rules = _grammar_rules(spec, sorted(extras))
    words_used = {t for body in rules.values() for t in _TOKEN.findall(body) if t[0] not in "<()[]|"}
    unknown = sorted(w for w in words_used if not known(w))
    if unknown:
        raise ValueError(f"grammar words missing from the pronunciation dictionary: {', '.join(unknown)}")
    lines = ["#JSGF V1.0;", "grammar robot_dog;", f"public <utterance> = {rules.pop('utterance')};"]
    lines += [f"<{name}> = {body};" for name, body in rules.items()]
    return "\n".join(lines) + "\n"


def grammar_matcher(spec: ActionSpec | None = None, extra_phrases: Iterable[str] = ()) -> re.Pattern[str]:
    """A regular expression that accepts exactly the complete sentences of the grammar (words joined by spaces).

    pocketsphinx returns the best *partial* path when no complete sentence fits the audio ("turn eleven");
    such a hypothesis is not trusted."""
    extras = sorted({" ".join(w) for w in (_clean_phrase(p) for p in extra_phrases) if w})
    rules = _grammar_rules(spec or load_spec(), extras)

    def expand(body: str) -> str:
        out = []
        for token in _TOKEN.findall(body):
            if token.startswith("<"):
                out.append("(?:" + expand(rules[token[1:-1]]) + ")")
            elif token == "(" or token == "[":
                out.append("(?:")
            elif token == ")":
                out.append(")")
            elif token == "]":
                out.append(")?")
            elif token == "|":
                out.append("|")
            else:
                out.append(re.escape(token) + " ")
        return "".join(out)

    return re.compile(expand(rules["utterance"]))


def command_phrases(spec: ActionSpec | None = None, number: str = "#") -> list[list[str]]:
    """Every phrase of the grammar's command rules (moves, turns, postures, tricks, barks, stops, the action
    names) as a word list, with each spoken number as the single word `number`: the vocabulary and word pairs
    that transcript correction (`correct.py`) snaps misheard words to."""
    rules = _grammar_rules(spec or load_spec(), ())
    for name in ("unit", "num", "number"):
        rules[name] = number

    def expand(tokens: list[str], i: int = 0) -> tuple[list[list[str]], int]:
        """The phrases of `tokens[i:]` up to the closing bracket of the group, and where it ended."""
        options: list[list[str]] = []
        current: list[list[str]] = [[]]
        while i < len(tokens):
            token = tokens[i]
            if token in (")", "]"):
                break
            if token == "|":
                options += current
                current, i = [[]], i + 1
                continue
            if token in ("(", "["):
                inner, i = expand(tokens, i + 1)
                if token == "[":
                    inner = [[], *inner]
                i += 1  # the closing bracket
            elif token.startswith("<"):
                inner = expand(_TOKEN.findall(rules[token[1:-1]]))[0]
                i += 1
            else:
                inner, i = [[token]], i + 1
            current = [a + b for a in current for b in inner]
        return options + current, i

    phrases: list[list[str]] = []
    for alternative in _TOKEN.findall(rules["cmd"]):
        if alternative.startswith("<"):
            phrases += expand(_TOKEN.findall(rules[alternative[1:-1]]))[0]
    return [p for p in phrases if p]


# -- Whisper's prompt ------------------------------------------------------------------------------------------------------

# Typical phrasings, numbers spelled out as a speaker says them; with the action names this stays well under
# Whisper's 224-token prompt limit.
PROMPT_PHRASES = (
    "walk forward two metres",
    "go back one and a half meters",
    "step to the left thirty centimetres",
    "turn right by ninety degrees",
    "turn around",
    "sit down, then bark twice",
    "stand up",
    "lie down",
    "stop",
    "do a front flip",
    "wiggle your hips",
    "say hello",
    "make a heart",
    "bark three times",
)


def vocabulary_prompt(spec: ActionSpec | None = None) -> str:
    """Whisper's initial prompt: the robot dog's command words and typical phrasings."""
    spec = spec or load_spec()
    names = ", ".join(n.replace("_", " ") for n in spec.commands)
    return f"Voice commands for a robot dog ({names}): " + ". ".join(PROMPT_PHRASES) + "."


# -- comparison form ---------------------------------------------------------------------------------------------------------

NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40,
    "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
_SPELLING = {"meter": "metre", "meters": "metres", "centimeter": "centimetre", "centimeters": "centimetres"}


def _numbers_as_digits(words: list[str]) -> list[str]:
    """Runs of number words as one digit string ("one hundred and twenty" -> "120"); digits stay as they are."""
    out: list[str] = []
    value: int | None = None
    for i, word in enumerate(words):
        if word in NUMBER_WORDS:
            n = NUMBER_WORDS[word]
            if value is None:
                value = n
            elif (value % 100 == 0 and n < 100) or (value % 10 == 0 and n < 10):
                value += n  # "one hundred twenty", "twenty five"
            else:
                value = value * 10 + n  # digits read one by one
            continue
        if word == "hundred" and (value is not None or (out and out[-1] == "a")):
            if value is None:
                out.pop()
            value = (value or 1) * 100
            continue
        followed_by_number = i + 1 < len(words) and words[i + 1] in NUMBER_WORDS
        if word == "and" and value is not None and value % 100 == 0 and followed_by_number:
            continue
        if value is not None:
            out.append(str(value))
            value = None
        out.append(word)
    if value is not None:
        out.append(str(value))
    return out


def normalize_words(text: str) -> list[str]:
    """`text` in comparison form, as a list of words (module docstring)."""
    text = text.lower().replace("-", " ")
    words = re.sub(r"[^\w\s.']|(?<!\d)\.|\.(?!\d)", " ", text).split()
    words = [_SPELLING.get(w.strip("'"), w.strip("'")) for w in words]
    return _numbers_as_digits([w for w in words if w])


def is_complete_command(text: str, matcher: re.Pattern[str]) -> bool:
    """Whether `text` (any case and punctuation) is one whole sentence of the command grammar."""
    words = _clean_phrase(text)
    return bool(words) and matcher.fullmatch(" ".join(words) + " ") is not None


__all__ = [
    "build_grammar",
    "command_phrases",
    "grammar_matcher",
    "is_complete_command",
    "normalize_words",
    "vocabulary_prompt",
]
