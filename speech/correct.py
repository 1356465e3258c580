"""Transcript correction: a misheard word right next to a command word is snapped to the command vocabulary.

Whisper, prompted with the command vocabulary, still hears near misses: "sit dawn", "turn lift", "bark tree times",
"give a mark five times". `VocabularyCorrector.correct(text)` fixes such words, conservatively:

- the vocabulary and its word pairs come from the command grammar (`grammar.command_phrases`, built from
  `actions.json`) and the phrasings of Whisper's prompt (`grammar.PROMPT_PHRASES`): the same source as the prompt;
- only a word outside that vocabulary is changed, and only into a vocabulary word whose rapidfuzz similarity
  (`fuzz.ratio`, 0-100) is at least `threshold`, and only where the new word makes a command word pair with a
  neighbour that was heard as a command word ("sit" + "dawn" -> "sit down"; "dawn" alone stays "dawn"), with one
  best candidate (a tie changes nothing);
- numbers: a heard number is never changed; a word becomes a number only in a number's place, right before a unit
  ("bark tree times", "walk to metres"), not after another number and not inside a unit heard in pieces ("20 cent
  to meters"); a unit itself is never respelled ("centimetre" is not a near miss of "metre");
- a word pair the task generator's English phrasings use (`shadow_edge.tasks.robot_dog.phrases_en`: the model was
  trained on them, e.g. "go straight") is kept as it is, even where a command pair is near ("go right");
- negations and words with an apostrophe ("don't", "never", "not") are never changed; words are never added or
  removed, so a sentence that is not a command keeps its words and stays what it was.

`Correction` keeps what was heard next to the corrected text and the list of changes, so nothing the user said is
lost: `shadow-run` prints both (`heard`, `corrected`, `corrections`).
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

from shadow_edge.runtime.actions import ActionSpec

from .engine import import_optional
from .grammar import NUMBER_WORDS, PROMPT_PHRASES, command_phrases

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 66.0
PHRASINGS_MODULE = "shadow_edge.tasks.robot_dog.phrases_en"
NUMBER = "#"  # a number's place in a phrase
# Words that join a command's words but never anchor a correction or become one.
FUNCTION_WORDS = frozenset(
    {
        "a", "an", "the", "to", "and", "then", "by", "please", "your", "of", "do", "me", "you", "it", "i",
        "at", "in", "on", "for",
    }
)  # fmt: skip
UNITS = frozenset(
    {
        "metre", "metres", "meter", "meters", "centimetre", "centimetres", "centimeter", "centimeters",
        "degree", "degrees", "times",
    }
)  # fmt: skip
NEGATIONS = frozenset(
    {
        "no", "not", "never", "nothing", "none", "nor", "neither", "cannot", "dont", "don't", "won't", "can't",
        "isn't",
    }
)  # fmt: skip
# A unit heard in two pieces ("20 cent to meters"): the word between them is not a number's place.
UNIT_PIECES = frozenset({"cent", "centi", "centa", "senti", "sent", "santi"})
SPOKEN_NUMBERS = frozenset(NUMBER_WORDS) | {"hundred", "point"}  # "five point five"
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*|\d+(?:\.\d+)?")
MIN_WORD_CHARS = 3  # shorter words are too easy to confuse ("a", "to", "go"), except in a number's place


@dataclass(frozen=True)
class Correction:
    """`heard` as the recogniser gave it, `text` after correction, `changes` as (heard word, new word) pairs."""

    heard: str
    text: str
    changes: tuple[tuple[str, str], ...] = ()


def _is_number(word: str) -> bool:
    return word in SPOKEN_NUMBERS or word[:1].isdigit()


def _phrase_form(words: Iterable[str]) -> list[str]:
    """A phrase with each run of number words as one NUMBER."""
    out: list[str] = []
    for word in words:
        word = NUMBER if _is_number(word) else word
        if not (word == NUMBER and out and out[-1] == NUMBER):
            out.append(word)
    return out


def phrasing_pairs(module: str = PHRASINGS_MODULE) -> set[tuple[str, str]]:
    """Adjacent word pairs of every English phrasing the task generator draws from (its misheard-word table left
    out: those are what correction fixes); empty, with a log line, where the task package is not installed."""
    try:
        phrases = importlib.import_module(module)
    except ImportError as exc:
        log.warning("no task phrasings (%s): correction without them", exc)
        return set()
    pairs: set[tuple[str, str]] = set()

    def walk(value: object) -> None:
        if isinstance(value, str):
            for part in re.split(r"\{[^}]*\}|[,.;:!?]", value.lower()):
                words = _WORD.findall(part)
                pairs.update(zip(words, words[1:], strict=False))
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(key)
                walk(item)
        elif isinstance(value, (list, tuple, set, frozenset)):
            for item in value:
                walk(item)

    for name, value in vars(phrases).items():
        if name.isupper() and name != "ASR_CONFUSIONS":
            walk(value)
    return pairs


def _same_case(new: str, old: str) -> str:
    if old.isupper() and len(old) > 1:
        return new.upper()
    return new[:1].upper() + new[1:] if old[:1].isupper() else new


class VocabularyCorrector:
    """Snaps misheard words to the command vocabulary (module docstring). Cheap: made once, then a few dictionary
    and rapidfuzz look-ups per word."""

    def __init__(
        self,
        spec: ActionSpec | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        extra_phrases: Iterable[str] = (),
    ) -> None:
        if not 0.0 < threshold <= 100.0:
            raise ValueError(f"correction threshold must be in (0, 100], got {threshold}")
        self._fuzz = import_optional("rapidfuzz.fuzz")
        self._process = import_optional("rapidfuzz.process")
        self.threshold = threshold
        phrases = command_phrases(spec, NUMBER)
        for phrase in (*PROMPT_PHRASES, *extra_phrases):
            phrases.append(_phrase_form(_WORD.findall(phrase.lower())))
        self.pairs: set[tuple[str, str]] = set()
        words: set[str] = set()
        for phrase in phrases:
            phrase = _phrase_form(phrase)
            words.update(w for w in phrase if w != NUMBER and w not in FUNCTION_WORDS)
            self.pairs.update(zip(phrase, phrase[1:], strict=False))
        self.words = frozenset(words)
        self._candidates = sorted(self.words)
        self._numbers = sorted(w for w in NUMBER_WORDS if w != "zero")
        self.known_pairs = phrasing_pairs()

    def describe(self) -> str:
        return f"command-vocabulary correction (rapidfuzz ratio >= {self.threshold:g})"

    def correct(self, text: str) -> Correction:
        tokens = list(_WORD.finditer(text))
        words = [t.group().lower() for t in tokens]
        changes: list[tuple[int, str]] = []
        for i in range(len(words)):
            new = self._replacement(words, i)
            if new is not None:
                changes.append((i, new))
        if not changes:
            return Correction(text, text)
        out, last = [], 0
        for i, new in changes:
            token = tokens[i]
            out += [text[last : token.start()], _same_case(new, token.group())]
            last = token.end()
        out.append(text[last:])
        return Correction(text, "".join(out), tuple((tokens[i].group(), new) for i, new in changes))

    def _anchor(self, words: list[str], i: int) -> str | None:
        """The command-vocabulary form of the word at `i` (a number as NUMBER), None when it is not one."""
        if not 0 <= i < len(words):
            return None
        word = words[i]
        if _is_number(word):
            return NUMBER
        return word if word in self.words or word in FUNCTION_WORDS else None

    def _replacement(self, words: list[str], i: int) -> str | None:
        word = words[i]
        if _is_number(word) or word in self.words or word in UNITS or word in NEGATIONS:
            return None  # a unit is never respelled: "fifty centimetre" must not become "fifty metre"
        if "'" in word or not word.isalpha():
            return None
        before, after = self._anchor(words, i - 1), self._anchor(words, i + 1)
        in_unit = i > 0 and words[i - 1] in UNIT_PIECES
        if after is not None and words[i + 1] in UNITS and before != NUMBER and not in_unit:
            return self._best(word, self._numbers, lambda c: True)  # a number's place: "bark tree times"
        if (i > 0 and (words[i - 1], word) in self.known_pairs) or (
            i + 1 < len(words) and (word, words[i + 1]) in self.known_pairs
        ):
            return None  # the model was trained on this pair ("go straight")
        if len(word) < MIN_WORD_CHARS or word in FUNCTION_WORDS:
            return None
        # a neighbour heard as a command word (not a joining word) must make a command pair with the candidate
        before = before if before not in FUNCTION_WORDS else None
        after = after if after not in FUNCTION_WORDS else None
        if before is None and after is None:
            return None
        return self._best(
            word,
            self._candidates,
            lambda c: (
                (before is not None and (before, c) in self.pairs)
                or (after is not None and (c, after) in self.pairs)
            ),
        )

    def _best(self, word: str, choices: list[str], supported) -> str | None:
        """The one best-scoring supported choice at or above the threshold; None when there is none or a tie.
        A plural or singular of the word is not a correction ("one time" stays): the model reads both."""
        scored = [
            (score, choice)
            for choice, score, _ in self._process.extract(
                word, choices, scorer=self._fuzz.ratio, score_cutoff=self.threshold, limit=None
            )
            if supported(choice) and choice.rstrip("s") != word.rstrip("s")
        ]
        if not scored:
            return None
        scored.sort(reverse=True)
        if len(scored) > 1 and scored[1][0] == scored[0][0]:
            return None
        return scored[0][1]


__all__ = ["DEFAULT_THRESHOLD", "Correction", "VocabularyCorrector"]
