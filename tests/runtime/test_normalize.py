"""Spoken numbers to digits: the table training and the robot rely on (changing an output changes data)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shadow_edge.runtime.normalize import Normalized, normalize_numbers

ENGLISH = [
    # plain numbers, lower-case ASR text without punctuation
    ("walk forward two metres then sit down", "walk forward 2 metres then sit down"),
    ("turn left ninety degrees", "turn left 90 degrees"),
    ("a hundred and eighty degrees", "180 degrees"),
    ("turn right one hundred and twenty degrees", "turn right 120 degrees"),
    ("forty-five", "45"),
    ("turn forty five degrees", "turn 45 degrees"),
    # centimetres become metres, the program's unit, exactly ("150 cm" was read as move x=150)
    ("fifty centimetres", "0.5 metres"),
    ("move forward 150 cm", "move forward 1.5 m"),
    ("walk 30cm then sit", "walk 0.3 m then sit"),
    ("walk 100 centimetres", "walk 1 metre"),
    ("walk five centimeters", "walk 0.05 meters"),
    ("go 2.5 cm", "go 0.025 m"),
    ("one metre fifty centimetres", "1 metre 50 centimetres"),  # a sum: left for the model
    ("walk 0.5 metres", "walk 0.5 metres"),
    # fractions of a metre are numbers; fractions of a turn stay words
    ("walk forward three quarters of a metre", "walk forward 0.75 metres"),
    ("back up a quarter of a meter", "back up 0.25 meters"),
    ("walk forward zero point five metres", "walk forward 0.5 metres"),
    ("go two point five meters", "go 2.5 meters"),
    ("walk point five metres", "walk 0.5 metres"),
    ("Walk Forward Two Metres", "Walk Forward 2 Metres"),
    ("walk one metre", "walk 1 metre"),
    ("dance number two", "dance number 2"),
    ("dance number one", "dance number 1"),
    ("two hundred and fifty centimetres", "2.5 metres"),
    ("one two three", "1 2 3"),
    # hundreds said as two numbers, which text2num alone reads as "1 80"
    ("turn one eighty", "turn 180"),
    ("do a three sixty", "do a 360"),
    ("turn four fifty degrees", "turn 450 degrees"),
    ("turn one twenty five degrees", "turn 125 degrees"),
    ("turn a good one hundred and thirty five degrees", "turn a good 135 degrees"),
    ("walk the first one metre", "walk the first 1 metre"),
    # halves
    ("one and a half metres", "1.5 metres"),
    ("a metre and a half", "1.5 metres"),
    ("half a metre", "0.5 metres"),
    ("walk back half a meter", "walk back 0.5 meters"),
    ("two and a half", "2.5"),
    ("walk two metres and a half", "walk 2.5 metres"),
    ("go right by one and a half meters", "go right by 1.5 meters"),
    ("walk two metres and half a metre", "walk 2 metres and 0.5 metres"),
    ("turn one and a quarter turns", "turn 1.25 turns"),
    # counts
    ("twice", "2 times"),
    ("once", "1 time"),
    ("bark twice then dance once", "bark 2 times then dance 1 time"),
    ("walk one more metre", "walk 1 more metre"),
    ("three times", "3 times"),
    ("bark eight times", "bark 8 times"),
    # over range: copied exactly, the safety layer decides
    ("turn seven hundred and twenty degrees", "turn 720 degrees"),
    ("walk twelve metres", "walk 12 metres"),
    ("walk forward one thousand metres", "walk forward 1000 metres"),
    # not numbers the user said: stay words
    ("a quarter turn", "a quarter turn"),
    ("half a turn", "half a turn"),
    ("a full circle", "a full circle"),
    ("turn three quarters of a turn", "turn three quarters of a turn"),
    ("turn left a bit", "turn left a bit"),
    ("walk forward a metre", "walk forward a metre"),
    ("bark one more time", "bark one more time"),
    ("bark once more", "bark once more"),
    ("sit down at once", "sit down at once"),
    ("once you are there sit down", "once you are there sit down"),
    ("minus two metres", "minus 2 metres"),
    ("tenéis", "tenéis"),
    ("pick the one on the left", "pick the one on the left"),
    ("dance the second one", "dance the second one"),
    ("dance the other one and then sit", "dance the other one and then sit"),
    ("one by one", "one by one"),
    ("hop once that's done sit down", "hop once that's done sit down"),
    ("come back a bit for and a half metres", "come back a bit for and a half metres"),
    ("one of your tricks", "one of your tricks"),
    ("first walk forward then sit", "first walk forward then sit"),
    ("wait a second", "wait a second"),
    ("turn around", "turn around"),
    # digits and mixed forms
    ("3.5 m", "3.5 m"),
    ("walk 2 metres", "walk 2 metres"),
    ("2 and a half metres", "2.5 metres"),
    ("twenty 5", "20 5"),
    ("walk 1 metre and a half", "walk 1.5 metres"),
    # punctuation separates numbers
    ("two, three", "2, 3"),
    ("walk two metres, then turn ninety degrees.", "walk 2 metres, then turn 90 degrees."),
    ("one and two", "1 and 2"),
]

CHINESE = [
    ("两米", "2米"),
    ("往前走两米然后坐下", "往前走2米然后坐下"),
    ("三米半", "3.5米"),
    ("一米半", "1.5米"),
    ("一米二", "1.2米"),
    ("一米五", "1.5米"),
    ("一米八", "1.8米"),
    ("往前走一米五然后坐下", "往前走1.5米然后坐下"),
    ("一个半米", "1.5米"),
    ("两个半米", "2.5米"),
    ("半米", "0.5米"),
    ("后退半米", "后退0.5米"),
    ("两百七十度", "270度"),
    ("二百七十度", "270度"),
    ("九十度", "90度"),
    ("向左转九十度", "向左转90度"),
    ("一百八十度", "180度"),
    ("往右转四十五度", "往右转45度"),
    ("叫三声", "叫3声"),
    ("叫两声", "叫2声"),
    ("十声", "10声"),
    ("零点五米", "0.5米"),
    ("一点五米", "1.5米"),
    ("往前一点五米", "往前1.5米"),
    ("五十厘米", "0.5米"),
    ("往前走150公分", "往前走1.5米"),
    ("一米五十厘米", "1米50厘米"),
    ("前进三米三次", "前进3米3次"),
    ("第二支舞", "第2支舞"),
    ("跳第二支舞", "跳第2支舞"),
    ("第一步", "第1步"),
    ("一号舞", "1号舞"),
    ("叫一声", "叫1声"),
    ("转两圈", "转2圈"),
    ("再叫一次", "再叫1次"),
    ("一共叫三声", "一共叫3声"),
    ("向左转九十度再叫两声", "向左转90度再叫2声"),
    # over range
    ("叫八声", "叫8声"),
    ("转七百二十度", "转720度"),
    ("走十二米", "走12米"),
    # digits and mixed forms
    ("走2米", "走2米"),
    ("3.5米", "3.5米"),
    ("2米半", "2.5米"),
    # not numbers: stay words
    ("半圈", "半圈"),
    ("转半圈", "转半圈"),
    ("一圈", "一圈"),
    ("转一整圈", "转一整圈"),
    ("坐一下", "坐一下"),
    ("往前走一点", "往前走一点"),
    ("走一点", "走一点"),
    ("往前走一点点", "往前走一点点"),
    ("做一些动作", "做一些动作"),
    ("走一段", "走一段"),
    ("一起跳舞", "一起跳舞"),
    ("等一会儿", "等一会儿"),
    ("一直走", "一直走"),
    ("跳一跳", "跳一跳"),
    ("万一摔倒了", "万一摔倒了"),
    ("看看四周", "看看四周"),
    ("一步一步走", "一步一步走"),
    ("走一半", "走一半"),
    ("做一个动作", "做一个动作"),
    ("转一个圈", "转一个圈"),
    ("一边走一边叫", "一边走一边叫"),
    ("跳另一支舞", "跳另一支舞"),
    ("向左拐四分之一圈", "向左拐四分之一圈"),
    ("转四分之三圈", "转四分之三圈"),
    ("走整整八十公分之后坐下", "走整整0.8米之后坐下"),
    ("跳另外一支舞", "跳另外一支舞"),
    ("这一次叫三声", "这一次叫3声"),
    ("往前走一丢丢", "往前走一丢丢"),
    ("千万别动", "千万别动"),
    ("走得十分慢", "走得十分慢"),
    ("等十分钟", "等10分钟"),
    # ambiguous runs of bare digits: left for the model
    ("走三四米", "走三四米"),
    ("转一百八", "转180"),
    ("百分之五十", "百分之五十"),
    ("二〇二六", "二〇二六"),
]

ALL_CASES = ENGLISH + CHINESE


@pytest.mark.parametrize(("text", "expected"), ENGLISH)
def test_english(text, expected):
    assert normalize_numbers(text, "en").text == expected


@pytest.mark.parametrize(("text", "expected"), CHINESE)
def test_chinese(text, expected):
    assert normalize_numbers(text, "zh").text == expected


@pytest.mark.parametrize(("text", "expected"), ALL_CASES)
def test_language_detection_agrees(text, expected):
    assert normalize_numbers(text).text == expected


@pytest.mark.parametrize(("text", "expected"), ALL_CASES)
def test_idempotent(text, expected):
    once = normalize_numbers(text).text
    assert normalize_numbers(once).text == once
    assert normalize_numbers(once).changes == ()


@pytest.mark.parametrize(("text", "expected"), ALL_CASES)
def test_changes_rebuild_the_text(text, expected):
    """Each change is a span of the input, in order; replacing them one by one gives the output."""
    result = normalize_numbers(text)
    assert (result.changes == ()) == (expected == text)
    rebuilt, pos = [], 0
    for original, replacement in result.changes:
        start = text.index(original, pos)
        rebuilt += [text[pos:start], replacement]
        pos = start + len(original)
    assert "".join(rebuilt) + text[pos:] == expected


@pytest.mark.parametrize(
    ("text", "changes"),
    [
        ("walk forward two metres then sit", (("two", "2"),)),
        ("a hundred and eighty degrees", (("a hundred and eighty", "180"),)),
        ("half a metre", (("half a metre", "0.5 metres"),)),
        ("bark twice", (("twice", "2 times"),)),
        ("one and two", (("one", "1"), ("two", "2"))),
        ("三米半", (("三米半", "3.5米"),)),
        ("后退半米", (("半", "0.5"),)),
        ("叫三声", (("三", "3"),)),
        ("sit", ()),
    ],
)
def test_changes(text, changes):
    assert normalize_numbers(text).changes == changes


def test_deterministic():
    texts = [text for text, _ in ALL_CASES]
    first = [normalize_numbers(t) for t in texts]
    assert [normalize_numbers(t) for t in reversed(texts)] == first[::-1]
    assert all(isinstance(r, Normalized) for r in first)


def test_deterministic_across_processes():
    """Training and the robot run in different processes: string hashing (set order) must not matter."""
    code = (
        "import json, sys\n"
        "from shadow_edge.runtime.normalize import normalize_numbers\n"
        "texts = json.load(sys.stdin)\n"
        "print(json.dumps([[r.text, r.changes] for r in map(normalize_numbers, texts)]))\n"
    )
    texts = json.dumps([text for text, _ in ALL_CASES])
    outputs = [
        subprocess.run(
            [sys.executable, "-c", code],
            input=texts,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    ]
    assert outputs[0] == outputs[1]
    assert [text for text, _ in json.loads(outputs[0])] == [expected for _, expected in ALL_CASES]


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "\x00\x01\x02 two \x7f",
        "\ufeff两米\u200b",
        "a" * 10_000,
        "two " * 2_500,
        "两米" * 5_000,
        "é½Ã\x00ÿ",
    ],
)
def test_odd_text_does_not_raise(text):
    result = normalize_numbers(text)
    assert isinstance(result.text, str)
    if not any(ch.isalpha() for ch in text):
        assert result == Normalized(text, ())


def test_long_text_is_converted_throughout():
    result = normalize_numbers("walk two metres " * 1_000)
    assert result.text == "walk 2 metres " * 1_000
    assert len(result.changes) == 1_000


@pytest.mark.parametrize("value", [None, 3, b"two metres", ["two"]])
def test_non_str_is_a_type_error(value):
    with pytest.raises(TypeError, match="expects text as str"):
        normalize_numbers(value)


def test_unknown_language_is_refused():
    with pytest.raises(ValueError, match="lang must be one of"):
        normalize_numbers("two metres", "fr")


# Word salad from the pieces the rules look at: neighbours that change must not change a decision on a
# second pass.
_FUZZ_TEXT = (
    "one two three twenty five hundred thousand and a an half quarter quarters point zero "
    "metre metres degrees the once twice more time of turn , . 2 3.5 - one-eighty forty-five "
    "minus times at by other second that's done eighty sixty"
)
_FUZZ_WORDS = tuple(_FUZZ_TEXT.split())
_FUZZ_CHARS = list(
    "零〇一二两三四五六七八九十百千万亿点半米个厘度声次步圈下第支舞，2.5 另外这丢分钟四周边之公"
)


@settings(derandomize=True, max_examples=400, deadline=None)
@given(
    st.lists(st.sampled_from(_FUZZ_WORDS), max_size=10), st.lists(st.sampled_from(_FUZZ_CHARS), max_size=12)
)
def test_idempotent_on_word_salad(english, chinese):
    for text in (" ".join(english), "".join(chinese)):
        once = normalize_numbers(text)
        assert normalize_numbers(once.text) == Normalized(once.text, ())
