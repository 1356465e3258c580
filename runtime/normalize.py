"""Spoken numbers to digits before the model sees a command: "walk two metres" -> "walk 2 metres".

The small model copies digits well but converts number words badly (3 -> 0.3, 450 -> 45, 半米 -> 1.5), so
training and the runtime both call `normalize_numbers` on the command text; it is deterministic and fast (tens
of microseconds).

Libraries and the thin layer over them:

- English: `text2num` (`alpha2digit`) does the number grammar ("a hundred and eighty" -> 180, "forty-five" ->
  45, "two point five" -> 2.5). Called on the whole sentence it leaves one and two alone (its default
  threshold), turns "a hundred" into "a 100", "one eighty" into "1 80", ordinals into "1st", and knows no
  halves, "twice" or "once": it gets 40 of the 70 English cases of this module's test table right (as many with
  threshold 0). So this module finds the number spans itself and hands only those to it (threshold 0). The
  layer adds halves ("half a metre", "one and a half", "a metre and a half"), twice/once/thrice, "a hundred",
  hundreds said as two numbers ("one eighty" = 180, "three sixty" = 360) and a leading "point five"; it keeps
  as words what is not a number the user said: ordinals ("first"; "second" is also a unit of time), "one" as a
  pronoun ("the one", "one of", "no one"), repetition idioms ("one more time", "once more", "at once"), "once"
  as a conjunction ("once you are there"), the article "a" ("a metre", "a bit") and fractions of a turn ("a
  quarter turn", "half a turn", "three quarters").
- Chinese: `cn2an` (`cn2an.cn2an`, "normal" mode, so 两 counts) converts a numeral span to its value. Its
  sentence mode (`cn2an.transform`) is unusable for commands: it turns 一下/一点/一些/一起/一圈 into
  1下/1点/1些/1起/1圈, leaves 三米半 as 3米半 and 一米二 as 1米2, and skips 两 before 声: it gets 36 of
  the 77 Chinese cases of the test table right. So the spans are found here: a numeral run, with 米半 and
  个半米 (3.5米), 米 plus one digit (1.2米) and 半米 (0.5米). Runs of bare digits (三四米 "three or four
  metres", 一二三) are ambiguous and kept; so are 一 in words (一下, 一点 without a digit after it, 一丢丢,
  一些, 一段, 一起, 一会儿, 一整圈, 一半, 统一, 另一支舞, 这一次, 跳一跳, 一步一步 ...), 一个 as the article
  "a", fractions (四分之一圈) and 一圈/半圈, which the model maps. Counts such as 一次/一声 are converted,
  and 第 + numeral like any numeral (第二支舞 -> 第2支舞, 第一步 -> 第1步).
- Both are light: text2num 3.x is one compiled extension without dependencies (wheels for x86_64 and aarch64
  Linux), cn2an is pure Python and needs only `proces` (pure Python). Their versions are pinned in the
  `runtime` extra because training data is encoded with this function. Packaging wart: the cn2an 0.5.24 and
  proces 0.1.7 wheels also install stray top-level `build/`, `example/` and `src/` folders into site-packages
  (harmless here).

Numbers are copied exactly, never rounded or clipped ("bark eight times" -> "bark 8 times", 转七百二十度 -> 转720度):
range checks belong to the safety layer. Digits already in the text stay as they are, except that a length in
centimetres becomes the program's unit, metres, by exact decimal arithmetic ("150 cm" -> "1.5 m", "fifty
centimetres" -> "0.5 metres", 五十厘米/五十公分 -> 0.5米): the model copied the centimetre values it was trained
on (20 to 80) and misread others ("move forward 150 cm" -> `move x=150`). Fractions of a metre are numbers too
("three quarters of a metre" -> "0.75 metres"). Other units are not converted. Normalising twice gives the same
text as normalising once.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

import cn2an
from text_to_num import alpha2digit

__all__ = ["Normalized", "normalize_numbers"]

LANGUAGES = ("en", "zh")
Edit = tuple[int, int, str]  # (start, end, replacement) in the input text


@dataclass(frozen=True)
class Normalized:
    """The text with spoken numbers as digits, and the (original span, replacement) pairs in text order."""

    text: str
    changes: tuple[tuple[str, str], ...]


def normalize_numbers(text: str, lang: str | None = None, centimetres: bool = True) -> Normalized:
    """Spoken numbers in `text` as digits; `lang` is "en", "zh" or None (CJK characters: "zh", else "en").
    `centimetres=False` keeps lengths in centimetres (the numbers as said, not in the program's unit)."""
    if not isinstance(text, str):
        raise TypeError(f"normalize_numbers expects text as str, got {type(text).__name__}")
    if lang is None:
        lang = "zh" if _CJK.search(text) else "en"
    if lang not in LANGUAGES:
        raise ValueError(f"normalize_numbers: lang must be one of {LANGUAGES} or None, got {lang!r}")
    edits = _english_edits(text, centimetres) if lang == "en" else _chinese_edits(text, centimetres)
    return _apply(text, edits)


_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def _apply(text: str, edits: list[Edit]) -> Normalized:
    """Apply non-overlapping (start, end, replacement) edits given in text order."""
    if not edits:
        return Normalized(text, ())
    parts, changes, pos = [], [], 0
    for start, end, replacement in edits:
        parts += [text[pos:start], replacement]
        changes.append((text[start:end], replacement))
        pos = end
    parts.append(text[pos:])
    return Normalized("".join(parts), tuple(changes))


def _decimal_text(value: Decimal) -> str:
    return format(value.normalize() if value == value.to_integral_value() else value, "f")


# ------------------------------------------------------------------------------------------------ English

# Words are runs of letters of any script (so "ten" inside "tenéis" is no number); digits are ASCII only.
_EN_TOKEN = re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)*|[0-9]+(?:\.[0-9]+)?")
_DIGITS = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_TEENS = (
    *("ten", "eleven", "twelve", "thirteen", "fourteen"),
    *("fifteen", "sixteen", "seventeen", "eighteen", "nineteen"),
)
_TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SCALES = ("hundred", "thousand", "million")
_CARDINALS = frozenset(_DIGIT_WORDS + _TEENS + _TENS + _SCALES)
# Units whose halves are numbers ("half a metre" = 0.5 metres); a turn's or circle's fractions stay words.
_HALVABLE_UNITS = frozenset(
    {"metre", "meter", "metres", "meters", "centimetre", "centimeter", "centimetres", "centimeters"}
    | {"degree", "degrees"}
)
_FRACTION_WORDS = frozenset({"halves", "quarter", "quarters", "third", "thirds"})
# "one" as a pronoun ("the other one", "dance the second one", "one of"): not a number the user gave.
_ONE_PRONOUN_BEFORE = frozenset(
    {"the", "this", "that", "which", "no", "any", "every", "each", "another", "other", "same", "only"}
    | {"first", "second", "third", "last", "next"}
)
_ONE_PRONOUN_AFTER = frozenset({"of", "another"})
# After "the one", these make it a count again: "the first one metre", "that one time".
_COUNTED_NOUNS = (
    _HALVABLE_UNITS | {"m", "cm", "time", "times", "step", "steps"} | {"bark", "barks", "turn", "turns"}
)
# "once more", "once again" repeat; "once that's done", "once you are there" are conjunctions.
_ONCE_IDIOM_AFTER = frozenset(
    {"more", "again", "upon", "you", "we", "i", "it", "he", "she", "they", "the", "that", "this", "there"}
    | {"done", "finished", "ready", "complete", "completed"}
)
_ADVERB_COUNTS = {"once": "1 time", "twice": "2 times", "thrice": "3 times"}
_ADDED_FRACTIONS = {"half": Decimal("0.5"), "quarter": Decimal("0.25")}
# A length in centimetres, and the metre unit that replaces it (same spelling).
_CENTIMETRE_UNITS = {
    "centimetre": "metres", "centimetres": "metres", "centimeter": "meters", "centimeters": "meters",
    "cm": "m", "cms": "m",
}  # fmt: skip
_METRE_UNITS = frozenset({"metre", "meter", "metres", "meters"})
_OF_A_METRE = [["of", "a", unit] for unit in sorted(_METRE_UNITS)]
_QUARTER_COUNTS = {"a": 1, "one": 1, "1": 1, "three": 3, "3": 3}


@dataclass(frozen=True)
class _Token:
    start: int
    end: int
    word: str  # lower case


def _english_edits(text: str, centimetres: bool) -> list[Edit]:
    tokens = [_Token(m.start(), m.end(), m.group().lower()) for m in _EN_TOKEN.finditer(text)]
    words = [t.word for t in tokens]
    edits: list[Edit] = []
    i = 0
    while i < len(tokens):
        step, new_edits = _english_rule_at(text, tokens, words, i, centimetres)
        edits += new_edits
        i += step
    return edits


def _english_rule_at(
    text: str, tokens: list[_Token], words: list[str], i: int, centimetres: bool
) -> tuple[int, list[Edit]]:
    """(tokens consumed, edits) for the rule that applies at token i (first match wins)."""
    word = words[i]
    prev_word = words[i - 1] if i > 0 else ""
    next_word = words[i + 1] if i + 1 < len(words) else ""
    if (word == "one" and _is_pronoun_one(words, i)) or (word == "once" and _is_idiom_once(words, i)):
        return 1, []
    if word in _ADVERB_COUNTS:
        return 1, [(tokens[i].start, tokens[i].end, _ADVERB_COUNTS[word])]
    # "half a metre", "a half metre" -> "0.5 metres" (but not the end of "for and a half metres")
    for pattern in (("half", "a"), ("a", "half")):
        if pattern == ("a", "half") and prev_word == "and":
            continue
        if tuple(words[i : i + 2]) == pattern and _adjacent(text, tokens, i, i + 3):
            unit = words[i + 2] if i + 2 < len(words) else ""
            if unit in _HALVABLE_UNITS:
                return 3, [(tokens[i].start, tokens[i + 2].end, "0.5 " + _plural(text, tokens[i + 2]))]
    # "a quarter of a metre", "three quarters of a metre" -> "0.25 metres", "0.75 metres"
    quarters = word in _QUARTER_COUNTS and next_word in ("quarter", "quarters")
    if quarters and _adjacent(text, tokens, i, i + 5) and words[i + 2 : i + 5] in _OF_A_METRE:
        value = _decimal_text(Decimal("0.25") * _QUARTER_COUNTS[word])
        return 5, [(tokens[i].start, tokens[i + 4].end, f"{value} {_plural(text, tokens[i + 4])}")]
    # "a metre and a half" -> "1.5 metres"
    if word in ("a", "an") and _adjacent(text, tokens, i, i + 5) and next_word in _HALVABLE_UNITS:
        added = _added_fraction(words, i + 2)
        if added is not None:
            replacement = f"{_decimal_text(1 + added)} {_plural(text, tokens[i + 1])}"
            return 5, [(tokens[i].start, tokens[i + 4].end, replacement)]
    end = _number_end(text, tokens, words, i)
    if end == i:
        return 1, []
    consumed, edits = _number_edits(text, tokens, words, i, end, centimetres)
    return consumed - i, edits


def _is_pronoun_one(words: list[str], i: int) -> bool:
    prev_word = words[i - 1] if i > 0 else ""
    after = words[i + 1 : i + 3]
    # Digits after it do not count: they may be this module's output ("the one twice" -> "the one 2 times").
    counts = bool(after) and (after[0] in _COUNTED_NOUNS or _is_cardinal(after[0]))
    if prev_word in _ONE_PRONOUN_BEFORE and not counts:
        return True  # but "the first one metre", "that one time", "the one hundred" count
    if after and after[0] in _ONE_PRONOUN_AFTER:
        return True
    if after == ["by", "one"] or (prev_word == "by" and i > 1 and words[i - 2] == "one"):
        return True  # one by one
    # "one more time" repeats; "one more metre" is a number
    return bool(after) and after[0] == "more" and (len(after) == 1 or after[1] in ("time", "times"))


def _is_idiom_once(words: list[str], i: int) -> bool:
    """ "at once", "once more", "once that's done", "once you are there": no count."""
    next_word = words[i + 1].split("'")[0] if i + 1 < len(words) else ""
    return (i > 0 and words[i - 1] == "at") or next_word in _ONCE_IDIOM_AFTER


def _number_edits(
    text: str, tokens: list[_Token], words: list[str], i: int, end: int, centimetres: bool
) -> tuple[int, list[Edit]]:
    """(end of what was consumed, edits) for the number tokens[i:end] and an "and a half" after it."""
    value = _single_value(words[i:end])
    unit = words[end] if end < len(words) and words[end] in _HALVABLE_UNITS else ""
    if _adjacent(text, tokens, end - 1, end + 3) and (added := _added_fraction(words, end)) is not None:
        if value is None:
            return end, []  # "five zero and a half": which number has the half? left as words
        return end + 3, [(tokens[i].start, tokens[end + 2].end, _decimal_text(value + added))]  # 2.5
    if (
        unit
        and _adjacent(text, tokens, end - 1, end + 4)
        and (added := _added_fraction(words, end + 1)) is not None
    ):
        if value is None:
            return end, []
        replacement = (
            f"{_decimal_text(value + added)} {_plural(text, tokens[end])}"  # "two metres and a half"
        )
        return end + 4, [(tokens[i].start, tokens[end + 3].end, replacement)]
    if (
        centimetres
        and value is not None
        and end < len(words)
        and words[end] in _CENTIMETRE_UNITS
        and (i == 0 or words[i - 1] not in _METRE_UNITS | {"and"})  # "one metre fifty centimetres" stays
        and _adjacent(text, tokens, end - 1, end + 1)
    ):
        return end + 1, [(tokens[i].start, tokens[end].end, _in_metres(value, words[end]))]
    if _DIGITS.fullmatch(words[i]):
        return end, []  # digits stay as they are
    if end < len(words) and words[end] in _FRACTION_WORDS and _adjacent(text, tokens, end - 1, end + 1):
        return end, []  # "three quarters of a turn": a fraction of a turn stays words
    return end, _cardinal_edits(tokens[i:end])


def _number_end(text: str, tokens: list[_Token], words: list[str], i: int) -> int:
    """End (exclusive) of the number at token i: one digit token or a run of number words; i if none."""
    if _DIGITS.fullmatch(words[i]) or _is_hyphenated_hundreds(words[i]):
        return i + 1  # "one-eighty" is a number on its own: it neither joins nor starts a longer run
    n = len(words)

    def joined(j: int) -> bool:  # token j follows token j-1 with only spaces between
        return j < n and not text[tokens[j - 1].end : tokens[j].start].strip()

    if words[i] in ("a", "an") and joined(i + 1) and words[i + 1] in ("hundred", "thousand"):
        j = i + 1
    elif (words[i] == "point" and joined(i + 1) and words[i + 1] in _DIGIT_WORDS) or _is_cardinal(words[i]):
        j = i
    else:
        return i
    j += 1
    while joined(j):
        if _is_cardinal(words[j]):
            j += 1
        elif words[j] == "and" and words[j - 1] in _SCALES and joined(j + 1) and _is_cardinal(words[j + 1]):
            j += 2
        elif words[j] == "point" and joined(j + 1) and words[j + 1] in _DIGIT_WORDS:
            j += 2
            while joined(j) and words[j] in _DIGIT_WORDS:
                j += 1
            break
        else:
            break
    return j


def _in_metres(centimetres: Decimal, unit: str) -> str:
    """ "150 cm" -> "1.5 m", "100 centimetres" -> "1 metre": exact, never rounded."""
    metres = _CENTIMETRE_UNITS[unit]
    value = centimetres / 100
    if value == 1 and metres != "m":
        metres = metres[:-1]
    return f"{_decimal_text(value)} {metres}"


def _is_cardinal(word: str) -> bool:
    """A number word: "seven", "hundred", or tens and a digit joined by a hyphen ("forty-five")."""
    if word in _CARDINALS:
        return True
    tens, _, digit = word.partition("-")
    return tens in _TENS and digit in _DIGIT_WORDS[1:]


def _is_hyphenated_hundreds(word: str) -> bool:
    parts = word.split("-")
    return len(parts) > 1 and parts[0] in _DIGIT_WORDS[1:] and _hundreds_shorthand(parts) is not None


def _library_words(words: list[str]) -> list[str]:
    """The words as text2num reads them: "a hundred" -> "one hundred", "point five" -> "zero point five"."""
    if words[0] in ("a", "an"):
        return ["one"] + words[1:]
    if words[0] == "point":
        return ["zero"] + words
    return words


@lru_cache(maxsize=4096)
def _alpha2digit(phrase: str) -> str:
    shorthand = _hundreds_shorthand(phrase.replace("-", " ").split())
    if shorthand is not None:
        return shorthand
    try:
        return alpha2digit(phrase, "en", threshold=0)
    except Exception:  # the library's failure on odd input must not reach the robot: leave the words
        return phrase


def _hundreds_shorthand(words: list[str]) -> str | None:
    """ "one eighty" -> "180", "three sixty" -> "360", "one twenty five" -> "125" (text2num reads "1 80")."""
    if len(words) not in (2, 3) or words[0] not in _DIGIT_WORDS[1:] or words[1] in _DIGIT_WORDS:
        return None
    if any(word in _SCALES for word in words):
        return None
    rest = alpha2digit(" ".join(words[1:]), "en", threshold=0)
    if not rest.isdigit() or not 10 <= int(rest) <= 99:
        return None
    return str(_DIGIT_WORDS.index(words[0]) * 100 + int(rest))


def _single_value(words: list[str]) -> Decimal | None:
    """The value of a number that is one number (digits or words), else None ("one two" is two numbers)."""
    if _DIGITS.fullmatch(words[0]):
        return Decimal(words[0])
    converted = _alpha2digit(" ".join(_library_words(words)))
    return Decimal(converted) if _DIGITS.fullmatch(converted) else None


def _cardinal_edits(run: list[_Token]) -> list[Edit]:
    """text2num's digits for a run of number words, one edit per number it found ("one and two" -> 1, 2)."""
    source = _library_words([t.word for t in run])
    target = _alpha2digit(" ".join(source)).split()
    opcodes = difflib.SequenceMatcher(a=source, b=target, autojunk=False).get_opcodes()
    if len(source) != len(run) or any(op in ("insert", "delete") for op, *_ in opcodes):
        return [(run[0].start, run[-1].end, " ".join(target))]
    return [
        (run[a0].start, run[a1 - 1].end, " ".join(target[b0:b1]))
        for op, a0, a1, b0, b1 in opcodes
        if op != "equal"
    ]


def _added_fraction(words: list[str], j: int) -> Decimal | None:
    """0.5 for "and a half" at words[j:j+3], 0.25 for "and a quarter", else None."""
    if j + 3 <= len(words) and words[j] == "and" and words[j + 1] == "a":
        return _ADDED_FRACTIONS.get(words[j + 2])
    return None


def _adjacent(text: str, tokens: list[_Token], first: int, end: int) -> bool:
    """Tokens first..end-1 exist and only spaces separate them (no punctuation in "half, a metre")."""
    if end > len(tokens):
        return False
    return all(not text[tokens[j - 1].end : tokens[j].start].strip() for j in range(first + 1, end))


def _plural(text: str, token: _Token) -> str:
    unit = text[token.start : token.end]
    return unit if unit.lower().endswith("s") else unit + "s"


# ------------------------------------------------------------------------------------------------ Chinese

_ZH_NUMERAL = "零〇一二两三四五六七八九十百千万亿"
_ASCII_NUMBER = frozenset("0123456789.")
_ZH_DIGIT_VALUES = {c: str(v) for v, c in enumerate("零一二三四五六七八九")} | {"〇": "0"}
# Two digits side by side without 十/百/千 between them: 三四米 (three or four metres), 一二三, 二〇二六.
_ZH_BARE_DIGITS = re.compile("[一二两三四五六七八九][一二两三四五六七八九零〇]")
# A numeral run (with a decimal part), or digits, then 米半 or 个半米 (3.5米) or 米 plus one digit that starts
# nothing else (一米二 = 1.2米, but not 三米三次 or 一米五十厘米); or 半 before 米.
_ZH_NUMBER = re.compile(
    rf"(?P<num>[{_ZH_NUMERAL}]+(?:点[零〇一二三四五六七八九]+)?|[0-9]+(?:\.[0-9]+)?)"
    rf"(?P<tail>米半|个半米|米[一二三四五六七八九](?![{_ZH_NUMERAL}点厘度声次步圈个米下]))?"
    r"|(?P<half>半)(?=米)"
)
# 一 in words, not a count: 一下 一些 一段 一起 一会儿 一整圈 一直 一样 一点(儿/点) 一半 ...; 一个 as the article "a";
# 一圈/一周 stay for the model.
_YI_WORD_NEXT = frozenset("下些段起会整直样边切共旦定般口圈周同齐律概向点路阵番半旁侧趟个只动模开丢")
# 统一 唯一 同一 单一 之一 逐一; 另一支舞 / 另外一支 (another), 这一/那一/每一/某一 (this, that, every, some)
_YI_WORD_PREV = frozenset("统唯同单之专逐划另外这那每某")
# Other numerals in words: 十分 (very, but 十分钟 is ten minutes), 十足, 四周/四处 (all around), 两边 (both sides).
_WORD_AFTER_NUMERAL = {"十": frozenset("分足"), "四": frozenset("周处"), "两": frozenset("边侧旁")}


def _chinese_edits(text: str, centimetres: bool) -> list[Edit]:
    edits: list[Edit] = []
    for match in _ZH_NUMBER.finditer(text):
        edit = _chinese_edit(text, match, centimetres)
        if edit is None:
            continue
        start, end, replacement = edit
        left = edits[-1][2][-1] if edits and edits[-1][1] == start else text[start - 1 : start]
        right = text[end : end + 1]
        if (left and left in _ASCII_NUMBER and replacement[0] in _ASCII_NUMBER) or (
            right and right in _ASCII_NUMBER and replacement[-1] in _ASCII_NUMBER
        ):
            continue  # digits beside digits would merge two numbers into one (六半米 -> 60.5米)
        edits.append(edit)
    return edits


def _chinese_edit(text: str, match: re.Match[str], centimetres: bool) -> Edit | None:
    if match.group("half"):
        return match.start(), match.end(), "0.5"
    number, tail = match.group("num"), match.group("tail")
    value = _chinese_value(text, match.start("num"), match.end("num"), measured=bool(tail))
    if value is None:
        return None
    if tail and "." not in value:  # 三米半, 两个半米 -> 3.5米, 2.5米; 一米二 -> 1.2米
        fraction = "5" if tail in ("米半", "个半米") else _ZH_DIGIT_VALUES[tail[1]]
        return match.start(), match.end(), f"{value}.{fraction}米"
    after = match.end("num")
    # 五十厘米 -> 0.5米, but 一米五十厘米 keeps its centimetres (a sum the model reads as such)
    if (
        centimetres
        and not tail
        and text[after : after + 2] in ("厘米", "公分")
        and text[match.start() - 1 : match.start()] != "米"
    ):
        return match.start("num"), after + 2, _decimal_text(Decimal(value) / 100) + "米"
    if value == number:
        return None
    return match.start("num"), match.end("num"), value


def _chinese_value(text: str, start: int, end: int, measured: bool = False) -> str | None:
    """The digits of the numeral text[start:end] (digits stay digits), or None where it is not a number.

    `measured`: a length follows (一米二, 一个半米), so the numeral is a number whatever character comes next."""
    numeral = text[start:end]
    if _DIGITS.fullmatch(numeral):
        return numeral
    if text[end : end + 2] == "分之" or text[max(start - 2, 0) : start] == "分之":
        return None  # 四分之一圈 (a quarter turn), 四分之三: a fraction stays words, like "a quarter turn"
    integer, _, fraction = numeral.partition("点")
    if integer[0] in "百千万亿":
        return None  # not a number on its own (万一 = "in case")
    if _ZH_BARE_DIGITS.search(integer):
        return None  # 三四米 (three or four metres), 一二三: ambiguous, left for the model
    if not fraction and _is_word(text, start, end, measured):
        return None
    try:
        whole = int(cn2an.cn2an(integer, "normal"))
    except (ValueError, KeyError, IndexError, TypeError):  # cn2an refuses malformed numerals: leave the text
        return None
    if not fraction:
        return str(whole)
    return f"{whole}." + "".join(_ZH_DIGIT_VALUES[c] for c in fraction)


def _is_word(text: str, start: int, end: int, measured: bool) -> bool:
    """Whether the integer numeral text[start:end] is part of a word: 一下, 统一, 跳一跳, 一步一步, 十分 ..."""
    numeral = text[start:end]
    prev_char = text[start - 1] if start > 0 else ""
    next_char = text[end] if end < len(text) else ""
    if numeral == "一":
        if not measured and (next_char in _YI_WORD_NEXT or prev_char in _YI_WORD_PREV):
            return True
        if prev_char and prev_char == next_char:  # 跳一跳, 转一转
            return True
        if text[end + 1 : end + 2] == "一" and next_char == text[end + 2 : end + 3]:  # 一步一步
            return True
    if measured:
        return False
    return next_char in _WORD_AFTER_NUMERAL.get(numeral, ()) and text[end : end + 2] != "分钟"
