"""How people say the arguments of robot-dog commands: distances, angles and counts, in words and digits.

Number words come from maintained converters (`num2words` for English, `cn2an` for Chinese); this module adds only the
spoken forms they do not produce ("one and a half metres", "三米半", "一米二", "两百七十度", "twice").
"""

from __future__ import annotations

import random

import cn2an
from num2words import num2words
from shadow_edge.runtime.actions import format_number

# Argument values drawn for commands. Inside the spec's range, then over it: an over-range number must be copied
# exactly (the safety layer refuses it), never clipped to a legal one.
DIST_IN = (0.2, 0.3, 0.4, 0.5, 0.5, 0.6, 0.7, 0.8, 1, 1, 1, 1.2, 1.5, 1.5, 2, 2, 2, 2.5, 3, 3, 3.5, 4, 4.5, 5)
DIST_OVER = (5.5, 6, 7, 8, 9, 10, 12, 15, 20, 30, 50, 100)
DEG_IN = (5, 10, 15, 20, 30, 30, 40, 45, 45, 60, 60, 75, 80, 90, 90, 90, 100, 120, 135, 150, 180, 180, 200, 225, 240,
          270, 300, 315, 360)  # fmt: skip
DEG_OVER = (400, 450, 540, 720, 900, 1080)
BARK_IN = (1, 2, 2, 3, 3, 4, 5)
BARK_OVER = (6, 7, 8, 9, 10, 12, 15, 20)
OVER_RANGE_RATE = 0.12


def draw(rng: random.Random, inside: tuple, outside: tuple) -> float:
    return rng.choice(outside) if rng.random() < OVER_RANGE_RATE else rng.choice(inside)


def fine_distance(rng: random.Random) -> float:
    """A distance off the round values above (0.75, 2.35, 12.4 m), so that a model learns to copy any number."""
    return rng.choice(
        (round(rng.uniform(0.05, 4.95), 2), round(rng.uniform(0.1, 4.9), 1), round(rng.uniform(5.1, 30), 1))
    )


def fine_angle(rng: random.Random) -> float:
    """An angle off the round values above: any whole degree, a few halves, over-range ones."""
    return rng.choice((rng.randint(1, 359), rng.randint(1, 359), rng.choice((7.5, 12.5, 22.5, 67.5, 112.5, 157.5)),
                       rng.randint(361, 1000)))  # fmt: skip


def _en_words(value: float, rng: random.Random) -> str:
    words = num2words(int(value)) if value == int(value) else num2words(value)
    if words.startswith("one hundred") and rng.random() < 0.5:
        words = "a hundred" + words[len("one hundred") :]
    if rng.random() < 0.3:
        words = words.replace(" and ", " ")  # "two hundred seventy" (American)
    return words


def en_distance(v: float, rng: random.Random) -> str:
    unit = (
        rng.choice(("metres", "meters", "metres", "meters", "m"))
        if v != 1
        else rng.choice(("metre", "meter"))
    )
    options = [f"{format_number(v)} {unit}", f"{format_number(v)} {unit}", f"{_en_words(v, rng)} {unit}"]
    if v == int(v):
        options += [f"{_en_words(v, rng)} {unit}"]
        if v <= 10:
            options += [f"{format_number(v)}m", _en_words(v, rng)]  # "go forward three": the unit left out
    if v == 1:
        options += ["a metre", "a meter", "one metre", "one meter"]
    if v < 1:
        cm = round(v * 100)
        options += [f"{cm} centimetres", f"{num2words(cm)} centimeters", f"{cm} cm", f"{cm} centimeters"]
    if v == 0.5:
        options += ["half a metre", "half a meter", "half a metre"]
    whole, frac = divmod(v, 1)
    if frac == 0.5 and whole >= 1:
        w = num2words(int(whole))
        options += [
            f"{w} and a half metres",
            f"{w} and a half meters",
            f"{format_number(whole)} and a half metres",
        ]
        if whole == 1:
            options += ["a metre and a half", "one and a half meters"]
    return rng.choice(options)


def _zh_int(n: int, rng: random.Random) -> str:
    words = cn2an.an2cn(n)
    if words.startswith("二") and n >= 100 and rng.random() < 0.6:
        words = "两" + words[1:]  # 两百七十 is as common as 二百七十
    if n == 2 and rng.random() < 0.8:
        words = "两"
    return words


def zh_distance(v: float, rng: random.Random) -> str:
    options = [f"{format_number(v)}米", f"{format_number(v)}米"]
    whole, frac = divmod(v, 1)
    if frac == 0:
        options += [f"{_zh_int(int(v), rng)}米"] * 2
        if v == 2:
            options.append("二米")
    else:
        options.append(f"{cn2an.an2cn(v)}米")  # 一点五米, 零点三米
        if whole >= 1:
            tenth = round(frac * 10)
            head = _zh_int(int(whole), rng)
            options.append(f"{head}米{cn2an.an2cn(tenth)}")  # 一米二, 两米五
            if frac == 0.5:
                options += [f"{head}米半", f"{head}米半"]  # 三米半
    if v < 1:
        cm = round(v * 100)
        options += [f"{cn2an.an2cn(cm)}厘米", f"{cm}厘米", f"{cn2an.an2cn(cm)}公分"]
    if v == 0.5:
        options += ["半米", "半米"]
    return rng.choice(options)


def en_degrees(d: float, rng: random.Random) -> str:
    unit = rng.choice(("degrees", "degrees", "degrees", "deg", "°")) if d != 1 else "degree"
    sep = "" if unit == "°" else " "
    return rng.choice(
        (f"{d}{sep}{unit}", f"{d} degrees", f"{_en_words(d, rng)} degrees", f"{_en_words(d, rng)} degrees")
    )


def zh_degrees(d: float, rng: random.Random) -> str:
    if d != int(d):
        return rng.choice((f"{format_number(d)}度", f"{cn2an.an2cn(d)}度"))
    return rng.choice((f"{d}度", f"{_zh_int(d, rng)}度", f"{_zh_int(d, rng)}度", f"{d}°"))


def en_times(n: int, rng: random.Random) -> str:
    options = [f"{n} times", f"{num2words(n)} times", f"{num2words(n)} times"]
    if n == 1:
        options = ["once", "one time", "1 time", "a single time"]
    if n == 2:
        options += ["twice", "twice", "two times"]
    if n == 3:
        options += ["three times", "thrice"]
    return rng.choice(options)


def zh_times(n: int, rng: random.Random) -> str:
    unit = rng.choice(("声", "声", "下", "次"))
    return rng.choice((f"{n}{unit}", f"{_zh_int(n, rng)}{unit}", f"{_zh_int(n, rng)}{unit}"))
