"""A seeded, deterministic generator of English and Chinese robot-dog commands with their action programs.

Every example pairs a spoken-style request (`text`) with its canonical program in the action language of
`shared/spec/actions.md` (`program`), e.g. "could you please walk forward two metres, then sit" -> "move x=2; sit".

Train / test phrasing partition
-------------------------------
Every *phrasing pool* below (per-command phrases, movement verbs and direction words, sentence frames, sequence
connectors, politeness openers and closers, fillers, remote/reject frames and their fill-in vocabulary) is a plain
list; `_split_pool` gives items at positions ``i % 3 == 2`` to the **test side** and all others to the **train
side**.  The train and validation splits are drawn from the train side only, the test split from the test side
only, so the test split measures generalisation to unseen sentence frames and vocabulary (numbers and units are
shared: they are the arguments being read, not the phrasing).  Template ids name the frame (pool + index), so
train and test template ids are disjoint by construction.

Texts are deduplicated across all splits on a normalised key (case, spaces and punctuation ignored); a text that
would map to two different programs raises an error.  Same seed -> byte-identical files (only `random.Random`
instances are used, never the global generator).

CLI: ``python -m shadow_edge.tasks.robot_dog.generator --seed 0 --out tasks/robot_dog/data``.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path

from shadow_edge.runtime.actions import canonicalize, format_number, load_spec

log = logging.getLogger(__name__)


def _data_dir() -> Path:
    """The splits: beside this module in a clone (or an editable install), else in the installed shadow-edge-models
    distribution (the shadow-edge wheel carries no training data). Not found: the clone's path, which
    `load_split` then names."""
    here = Path(__file__).with_name("data")
    if here.is_dir():
        return here
    try:
        from shadow_edge_models import task_data_dir

        return task_data_dir("robot_dog")
    except (ImportError, FileNotFoundError):
        return here


DATA_DIR = _data_dir()
SPLITS = ("train", "validation", "test")
LANGS = ("en", "zh")
# examples per language in each split
SIZES = {"train": 4000, "validation": 500, "test": 800}
# share of each kind, in order; the rest are commands
KIND_SHARES = (("sequence", 0.25), ("remote", 0.12), ("reject", 0.08))
TYPO_RATE = 0.07  # English only
OVER_RANGE_RATE = 0.11  # per move/turn/bark argument draw
# commands drawn round-robin for single-command examples (movement and argument commands weighted up)
COMMAND_CYCLE = (
    *("stand_up", "lie_down", "sit", "recover", "stop", "move", "turn", "hello"),
    *("stretch", "dance", "front_flip", "front_jump", "front_pounce", "wiggle_hips", "heart", "bark"),
    *("move", "move", "turn", "dance", "bark"),
)

Side = str  # "train" | "test"


def _split_pool(items: Sequence, side: Side) -> list[tuple[int, object]]:
    """(index, item) pairs of one side of a pool: index % 3 == 2 is test, everything else train."""
    return [(i, x) for i, x in enumerate(items) if (i % 3 == 2) == (side == "test")]


def _pick(rng: random.Random, items: Sequence, side: Side) -> tuple[int, object]:
    pool = _split_pool(items, side)
    if not pool:
        raise ValueError(f"empty {side} side of pool {items!r}")
    return rng.choice(pool)


# ----------------------------------------------------------------------------------------------------------
# Numbers
# ----------------------------------------------------------------------------------------------------------

EN_INT = {
    1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine",
    10: "ten", 12: "twelve", 15: "fifteen", 20: "twenty", 30: "thirty", 45: "forty-five", 50: "fifty",
    60: "sixty", 90: "ninety", 120: "a hundred and twenty", 135: "a hundred and thirty-five",
    150: "a hundred and fifty", 180: "a hundred and eighty", 270: "two hundred and seventy",
    360: "three hundred and sixty", 450: "four hundred and fifty", 540: "five hundred and forty",
    720: "seven hundred and twenty",
}  # fmt: skip
ZH_INT = {
    1: "一", 2: "两", 3: "三", 4: "四", 5: "五", 6: "六", 7: "七", 8: "八", 9: "九", 10: "十", 12: "十二",
    15: "十五", 20: "二十", 30: "三十", 45: "四十五", 50: "五十", 60: "六十", 90: "九十", 120: "一百二十",
    135: "一百三十五", 150: "一百五十", 180: "一百八十", 270: "两百七十", 360: "三百六十", 450: "四百五十",
    540: "五百四十", 720: "七百二十",
}  # fmt: skip
EN_WORD_NUMBERS = {w for v in EN_INT.values() for w in re.split(r"[\s-]+", v)} | {"half", "a", "and"}

DIST_IN = (0.5, 1, 1, 1.5, 2, 2, 2, 2.5, 3, 3, 4, 5, 0.3)
DIST_OVER = (6, 7, 8, 10, 12, 20)
DEG_IN = (15, 30, 45, 45, 60, 90, 90, 90, 120, 135, 150, 180, 270, 360)
DEG_OVER = (450, 540, 720)
BARK_IN = (1, 2, 2, 3, 3, 4, 5)
BARK_OVER = (6, 8, 10)


def _en_distance(v: float, rng: random.Random) -> str:
    unit_pl = rng.choice(("metres", "meters", "metres", "m"))
    options = [f"{format_number(v)} {unit_pl if v != 1 else rng.choice(('metre', 'meter', 'm'))}"]
    if v == int(v) and int(v) in EN_INT:
        word = EN_INT[int(v)]
        options.append(
            f"{word} {rng.choice(('metres', 'meters'))}"
            if v != 1
            else rng.choice(("one metre", "a metre", "one meter"))
        )
        options.append(options[-1])  # words are as common as digits
    if v == 0.5:
        options += ["half a metre", "half a meter", "50 centimetres", "fifty centimeters"]
    if v == 0.3:
        options = ["30 centimetres", "thirty centimetres", "30 cm", "thirty centimeters"]
    if v == 1.5:
        options += ["one and a half metres", "a metre and a half", "one and a half meters"]
    if v == 2.5:
        options += ["two and a half metres", "two and a half meters"]
    if v == int(v) and v >= 1 and v <= 5:
        options.append(f"{format_number(v)}m")
    return rng.choice(options)


def _zh_distance(v: float, rng: random.Random) -> str:
    options = [f"{format_number(v)}米"]
    if v == int(v) and int(v) in ZH_INT:
        options += [f"{ZH_INT[int(v)]}米"] * 2
    extra = {
        0.5: ["半米", "零点五米", "五十厘米", "半米"],
        0.3: ["三十厘米", "30厘米", "三十公分"],
        1.5: ["一米五", "一点五米", "一米半", "一米五"],
        2.5: ["两米五", "两米半", "二点五米"],
        2: ["二米"],
    }
    options += extra.get(v, [])
    if v == 0.3:
        options = extra[0.3]
    return rng.choice(options)


def _en_degrees(d: int, rng: random.Random) -> str:
    options = [f"{d} degrees", f"{d} degrees", f"{EN_INT[d]} degrees", f"{EN_INT[d]} degrees"]
    if d == 90:
        options.append("a quarter turn")
    if d == 180:
        options.append("half a turn")
    if d == 360:
        options += ["a full circle", "one full turn"]
    if d == 720:
        options += ["two full circles", "two full turns"]
    return rng.choice(options)


def _zh_degrees(d: int, rng: random.Random) -> str:
    options = [f"{d}度", f"{ZH_INT[d]}度", f"{ZH_INT[d]}度"]
    if d == 270:
        options.append("二百七十度")
    if d == 360:
        options += ["一圈", "一整圈"]
    if d == 720:
        options += ["两圈"]
    return rng.choice(options)


def _en_times(n: int, rng: random.Random) -> str:
    options = [f"{n} times", f"{EN_INT[n]} times"]
    if n == 1:
        options = ["once", "one time", "1 time"]
    if n == 2:
        options += ["twice", "twice"]
    return rng.choice(options)


def _zh_times(n: int, rng: random.Random) -> str:
    unit = rng.choice(("声", "声", "下"))
    return rng.choice((f"{n}{unit}", f"{ZH_INT[n]}{unit}", f"{ZH_INT[n]}{unit}"))


# ----------------------------------------------------------------------------------------------------------
# Phrasing pools: index % 3 == 2 is test-side, others train-side
# ----------------------------------------------------------------------------------------------------------

PLAIN: dict[str, dict[str, list[str]]] = {
    "stand_up": {
        "en": ["stand up", "get up", "stand", "get on your feet", "rise up", "stand up straight", "up on your feet",
               "stand up tall", "get yourself up", "go to standing", "on your feet", "rise"],
        "zh": ["站起来", "起立", "站好", "起来", "站起来吧", "站立", "站直", "起身", "站起身来"],
    },
    "lie_down": {
        "en": ["lie down", "lay down", "get down", "lie flat", "go down", "lie down on the floor", "down you go",
               "drop to the ground", "lay flat", "lie on the ground", "belly down", "get down low"],
        "zh": ["趴下", "躺下", "卧倒", "趴着", "趴在地上", "躺平", "卧下", "趴好", "躺下来"],
    },
    "sit": {
        "en": ["sit", "sit down", "take a seat", "have a seat", "sit on the floor", "sit right here", "sit there",
               "go sit", "plant your bottom", "sit yourself down", "park it and sit", "sit nicely"],
        "zh": ["坐下", "坐", "坐好", "坐下来", "坐着", "蹲坐", "原地坐下", "乖乖坐好", "坐一下"],
    },
    "recover": {
        "en": ["recover", "do a recovery stand", "you fell over, get back on your feet", "recover from the fall",
               "pick yourself up after falling", "right yourself", "recovery stand", "you fell, get back up",
               "flip back onto your feet", "recover your balance", "you've fallen, recover", "get back upright"],
        "zh": ["恢复站立", "摔倒了快起来", "自己翻身起来", "恢复一下", "恢复姿态", "摔倒了自己爬起来", "从摔倒中恢复",
               "翻过来站好", "倒了就恢复站立"],
    },
    "stop": {
        "en": ["stop", "halt", "freeze", "stop moving", "stay still", "hold it", "stop right there", "stop now",
               "that's enough, stop", "don't move", "cut it out and stop", "stand still"],
        "zh": ["停", "停下", "别动", "停止", "站住", "停下来", "别走了", "不要动", "快停下"],
    },
    "hello": {
        "en": ["say hello", "wave", "wave hello", "greet me", "say hi", "wave your paw", "give me a wave",
               "say hello to everyone", "greet our guest", "wave at me", "say hi to them", "do a hello"],
        "zh": ["打个招呼", "挥挥手", "打招呼", "握个手", "问好", "向大家问好", "挥挥爪子", "跟我打招呼", "招招手"],
    },
    "stretch": {
        "en": ["stretch", "have a stretch", "stretch out", "do a stretch", "stretch yourself", "do some stretching",
               "stretch your body", "take a big stretch", "limber up with a stretch", "stretch it out",
               "do your stretch", "give a good stretch"],
        "zh": ["伸个懒腰", "伸展一下", "拉伸", "伸懒腰", "做个拉伸", "舒展一下身体", "拉伸一下", "伸展身体", "抻一抻"],
    },
    "front_flip": {
        "en": ["do a front flip", "flip forward", "do a flip", "front flip", "do a forward somersault",
               "somersault forward", "show me a front flip", "do a frontflip", "flip over forwards",
               "do your flip", "pull off a front flip", "do a forward flip"],
        "zh": ["前空翻", "翻个跟头", "来个前空翻", "向前翻", "做个前空翻", "翻跟头", "表演前空翻", "前翻一下", "空翻一个"],
    },
    "front_jump": {
        "en": ["jump forward", "jump ahead", "hop forward", "leap forward", "do a front jump", "jump to the front",
               "jump forwards", "make a jump forward", "bound forward", "do a forward jump", "spring forward",
               "hop ahead"],
        "zh": ["向前跳", "往前跳一下", "前跳", "往前跳", "向前跳一下", "跳到前面去", "朝前跳", "前跳一下", "往前蹦"],
    },
    "front_pounce": {
        "en": ["pounce", "pounce forward", "do a pounce", "lunge forward", "pounce ahead", "do a front pounce",
               "pounce like a cat", "pounce to the front", "spring into a pounce", "make a pounce", "pounce on it",
               "do the pounce"],
        "zh": ["向前扑", "扑一下", "往前扑", "扑过去", "做个前扑", "向前猛扑", "前扑", "扑一个", "往前扑一下"],
    },
    "wiggle_hips": {
        "en": ["wiggle your hips", "shake your butt", "wag your hips", "shake your hips", "wiggle your butt",
               "do a hip wiggle", "wiggle", "swing your hips", "shake your booty", "do the hip shake",
               "wiggle those hips", "give your hips a wiggle"],
        "zh": ["扭扭屁股", "扭屁股", "摇摇屁股", "扭一扭", "扭个屁股", "扭一下屁股", "摆摆屁股", "晃晃屁股", "扭扭腰"],
    },
    "heart": {
        "en": ["make a heart", "show me a heart", "do the heart gesture", "make a heart sign", "heart",
               "make a love heart", "give me a heart", "do a heart", "show some love with a heart",
               "make the heart shape", "send a heart", "do the heart"],
        "zh": ["比个心", "比心", "做个爱心", "比个爱心", "给我比个心", "做爱心手势", "来个比心", "比一个心", "摆个爱心"],
    },
}  # fmt: skip

# movement: direction -> sign/axis, phrase pools with "{d}" for the distance
MOVE_DIRS = {
    "fwd": ("x", 1),
    "back": ("x", -1),
    "left": ("y", 1),
    "right": ("y", -1),
}
MOVE_EN = {
    "fwd": ["walk forward", "go forward", "head forward", "move forward", "walk ahead", "step forward",
            "go straight", "walk straight ahead", "trot forward", "come forward", "move ahead", "advance"],
    "back": ["walk backward", "go back", "back up", "move backward", "walk backwards", "step back",
             "go backwards", "move back", "reverse", "back off", "walk back", "retreat"],
    "left": ["step left", "move left", "shuffle to the left", "walk to the left", "go left sideways",
             "sidestep left", "slide left", "move sideways to the left", "strafe left", "step to the left",
             "walk sideways to your left", "scoot left"],
    "right": ["step right", "move right", "shuffle to the right", "walk to the right", "go right sideways",
              "sidestep right", "slide right", "move sideways to the right", "strafe right", "step to the right",
              "walk sideways to your right", "scoot right"],
}  # fmt: skip
MOVE_ZH = {
    "fwd": ["往前走", "向前走", "前进", "往前挪", "朝前走", "向前移动", "往前跑", "直走", "向前迈", "往前"],
    "back": ["往后走", "后退", "向后退", "倒退", "往后挪", "退后", "向后移动", "往后退", "倒着走", "往后"],
    "left": ["往左走", "向左走", "往左挪", "向左平移", "左移", "往左边走", "朝左走", "向左横移", "往左边挪"],
    "right": ["往右走", "向右走", "往右挪", "向右平移", "右移", "往右边走", "朝右走", "向右横移", "往右边挪"],
}  # fmt: skip
# {m} = movement phrase, {d} = distance
MOVE_FRAMES_EN = ["{m} {d}", "{m} {d}", "{m} about {d}", "{m} by {d}", "{m} for {d}", "{m} exactly {d}"]
MOVE_FRAMES_ZH = ["{m}{d}", "{m}{d}", "{m}大概{d}", "{m}{d}左右", "{m}{d}吧", "{m}差不多{d}"]
MOVE_VAGUE_EN = ["a bit", "a little", "a little bit", "some", "a step or so", "a touch", "a few steps", "a tad",
                 "slightly"]  # fmt: skip
MOVE_VAGUE_ZH = ["一点", "一下", "一点点", "一些", "一小段", "几步", "一下下", "一段"]

TURN_EN = {
    "left": ["turn left", "turn to the left", "rotate left", "turn to your left", "turn counterclockwise",
             "pivot left", "spin left", "rotate to the left", "turn anticlockwise", "swivel left"],
    "right": ["turn right", "turn to the right", "rotate right", "turn to your right", "turn clockwise",
              "pivot right", "spin right", "rotate to the right", "swivel to the right", "swivel right"],
}  # fmt: skip
TURN_ZH = {
    "left": ["左转", "向左转", "往左转", "朝左转", "逆时针转", "向左旋转", "往左边转", "左拐", "向左边转"],
    "right": ["右转", "向右转", "往右转", "朝右转", "顺时针转", "向右旋转", "往右边转", "右拐", "向右边转"],
}  # fmt: skip
TURN_FRAMES_EN = ["{t} {a}", "{t} by {a}", "{t} {a} please", "{t} about {a}", "{t} {a}", "{t} through {a}"]
TURN_FRAMES_ZH = ["{t}{a}", "{t}{a}", "{t}{a}吧", "{t}大概{a}", "{t}{a}左右", "{t}个{a}"]
TURN_AROUND_EN = ["turn around", "turn round", "face the other way", "about face", "do a u-turn", "turn back around",
                  "spin around to face behind you", "turn to face behind you", "do an about-turn"]  # fmt: skip
TURN_AROUND_ZH = ["向后转", "掉头", "转身", "转过身来", "调头", "转过去", "往后转", "转个身", "背过身去"]

DANCE_EN = {
    1: ["dance", "do a dance", "dance for me", "show me a dance", "do your first dance", "dance number one",
        "do dance routine one", "bust a move", "do dance one", "give us a dance", "perform your first dance",
        "dance routine 1"],
    2: ["do your second dance", "dance number two", "do dance routine two", "do the other dance", "do dance two",
        "dance routine 2", "do your second dance routine", "perform dance number 2", "show me the second dance",
        "do the second dance", "dance the second routine", "dance number 2"],
}  # fmt: skip
DANCE_ZH = {
    1: ["跳个舞", "跳舞", "跳第一支舞", "来一段舞蹈", "跳一号舞", "跳支舞", "表演个舞蹈", "跳舞蹈一", "给我跳个舞"],
    2: ["跳第二支舞", "跳二号舞", "跳舞蹈二", "来第二段舞", "跳另一支舞", "跳第二个舞", "表演第二支舞", "跳2号舞",
        "换第二支舞跳"],
}  # fmt: skip
BARK_EN = ["bark {n}", "bark {n}", "woof {n}", "bark at me {n}", "give a bark {n}", "go woof {n}"]
BARK_PLAIN_EN = ["bark", "give a bark", "woof", "bark for me", "let out a bark", "make a barking sound", "speak",
                 "give me a woof", "do a bark"]  # fmt: skip
BARK_ZH = ["叫{n}", "汪汪叫{n}", "汪{n}", "叫{n}吧", "给我叫{n}", "大叫{n}"]
BARK_PLAIN_ZH = ["叫一声", "汪一声", "叫一下", "汪汪", "学狗叫一声", "汪一个", "吠一声", "叫唤一声", "出个声"]

OPENERS_EN = ["could you please", "please", "can you", "hey buddy,", "I want you to", "hey,", "okay,", "would you",
              "go on,", "now", "alright,", "I'd like you to", "come on,", "hey dog,", "buddy,", "will you",
              "let's", "could you", "ok robot,", "yo,", "kindly", "right,", "pup,", "so,"]  # fmt: skip
CLOSERS_EN = ["please", "now", "for me", "right now", "thanks", "okay", "thank you", "buddy", "good boy",
              "quickly", "if you can", "go"]  # fmt: skip
FILLERS_EN = ["um", "uh", "like", "erm", "well", "you know", "hmm", "so um", "uhh"]
OPENERS_ZH = ["麻烦你", "请", "快", "你", "来", "给我", "小狗", "狗狗", "喂", "嘿", "能不能", "可以", "现在",
              "乖", "去", "请你", "小家伙", "宝贝", "那你", "好了", "来来来"]  # fmt: skip
CLOSERS_ZH = ["吧", "好吗", "呀", "啊", "哦", "谢谢", "好不好", "嘛", "快点", "可以吗", "咯", "啦"]
FILLERS_ZH = ["嗯", "那个", "呃", "就是", "啊", "嗯嗯", "额", "这个", "哎"]

SEQ_EN = [", then", " and then", ", after that", " then", ". Next,", ", and after that", ", and then", ". Then",
          ", afterwards", ", once that's done,", " and next"]  # fmt: skip
# frames for whole sequences: {0} {1} {2} are the clauses, {c} a connector; the bare frames
# "{0}{c} {1}" / "{0}{c} {1}{c} {2}" are used on both sides (the connector pools are partitioned)
SEQ2_FRAMES_EN = ["first {0}{c} {1}", "start by {0}{c} {1}", "{0} first{c} {1}", "to begin, {0}{c} {1}",
                  "{0} to start{c} {1}", "begin by {0}{c} {1}"]  # fmt: skip
SEQ3_FRAMES_EN = ["first {0}{c} {1}{c} {2}", "{0}{c} {1}, and finally {2}", "first {0}{c} {1}, and lastly {2}",
                  "start by {0}{c} {1}{c} {2}", "{0}{c} {1}, and to finish {2}",
                  "{0} first{c} {1}, and at the end {2}"]  # fmt: skip
SEQ_ZH = [
    "，然后",
    "，再",
    "然后",
    "，接着",
    "，之后",
    "，完了",
    "，然后再",
    "再",
    "，紧接着",
    "，随后",
    "，完了再",
]
SEQ2_FRAMES_ZH = ["先{0}{c}{1}", "首先{0}{c}{1}", "第一步{0}{c}{1}", "你先{0}{c}{1}", "{0}{c}{1}就行",
                  "先给我{0}{c}{1}"]  # fmt: skip
SEQ3_FRAMES_ZH = ["先{0}{c}{1}{c}{2}", "{0}{c}{1}，最后{2}", "第一步{0}{c}{1}，最后再{2}", "首先{0}{c}{1}{c}{2}",
                  "{0}{c}{1}，最后{2}吧", "先{0}{c}{1}，收尾{2}"]  # fmt: skip

# ----------------------------------------------------------------------------------------------------------
# remote: questions, chit-chat, riddles; reject: impossible or unsafe
# each family: list of frames with {slot}s, and slot pools (also split by side)
# ----------------------------------------------------------------------------------------------------------

REMOTE_EN: dict[str, tuple[list[str], dict[str, list[str]]]] = {
    "identity": (["what's your name", "who are you", "who made you", "are you a real dog", "how old are you",
                  "what are you", "what kind of robot are you", "do you have a name", "who built you",
                  "are you alive", "where were you made", "are you a boy or a girl"], {}),
    "weather": (["what's the weather like {when}", "is it going to rain {when}", "how hot will it be {when}",
                 "will it snow {when}", "do I need an umbrella {when}", "how cold is it {when}"],
                {"when": ["today", "tomorrow", "this weekend", "in Beijing", "tonight", "in London", "on Friday",
                          "this afternoon", "in Shanghai", "next week", "outside right now", "in Tokyo"]}),
    "math": (["what is {a} plus {b}", "what's {a} times {b}", "how much is {a} minus {b}",
              "what's {a} divided by {b}", "can you add {a} and {b}", "what do you get if you multiply {a} by {b}"],
             {"a": ["two", "7", "twelve", "15", "three", "100", "nine", "42", "six"],
              "b": ["three", "5", "eight", "4", "eleven", "2", "seven", "10", "twenty"]}),
    "joke": (["tell me a joke", "tell me a {adj} joke", "do you know any jokes about {topic}",
              "say something funny", "make me laugh", "got a joke about {topic}"],
             {"adj": ["funny", "short", "silly", "dad", "good", "dog"],
              "topic": ["cats", "robots", "cheese", "programmers", "dogs", "bananas", "teachers", "the sea",
                        "computers"]}),
    "facts": (["what's the capital of {country}", "how far away is the moon", "who wrote {book}",
               "what time is it", "what day is it today", "how many people live in {country}",
               "why is the sky blue", "how tall is the Eiffel Tower", "what language do they speak in {country}",
               "when was {book} written", "how do airplanes fly", "what is photosynthesis"],
              {"country": ["France", "Japan", "Brazil", "Canada", "Egypt", "Italy", "Kenya", "Peru", "Norway"],
               "book": ["Hamlet", "Harry Potter", "Don Quixote", "The Little Prince", "War and Peace",
                        "Pride and Prejudice"]}),
    "chat": (["how are you", "do you like {thing}", "what's your favourite {cat}", "I'm bored", "good morning",
              "are you happy", "do you dream", "I had a long day", "what do you think about {thing}",
              "can we be friends", "do you get tired", "what makes you happy", "do you like to dance",
              "what's your favourite trick", "can dogs really sit on command"],
             {"thing": ["music", "cats", "the rain", "pizza", "walks", "children", "winter", "football",
                        "robots"],
              "cat": ["food", "colour", "song", "movie", "toy", "game", "animal", "season", "book"]}),
    "riddle": (["here's a riddle: what has keys but can't open locks", "can you solve a riddle for me",
                "riddle me this: what gets wetter the more it dries", "what has hands but can't clap",
                "tell me a riddle", "what has a neck but no head", "I have a riddle for you",
                "what goes up but never comes down", "give me a brain teaser"], {}),
    "help": (["how do I {task}", "can you explain how to {task}", "what's the best way to {task}",
              "remind me to {task} later", "set a timer for {task}", "any tips on how to {task}"],
             {"task": ["bake bread", "learn Python", "fix a flat tyre", "tie a tie", "lose weight",
                       "grow tomatoes", "sleep better", "learn Chinese", "train a puppy"]}),
}  # fmt: skip
REMOTE_ZH: dict[str, tuple[list[str], dict[str, list[str]]]] = {
    "identity": (["你是谁", "你叫什么名字", "谁造的你", "你是真的狗吗", "你几岁了", "你是什么", "你是什么机器人",
                  "你有名字吗", "你从哪里来", "你是活的吗", "你是男孩还是女孩", "你是哪个公司做的"], {}),
    "weather": (["{when}天气怎么样", "{when}会下雨吗", "{when}热不热", "{when}冷不冷", "{when}要带伞吗",
                 "{when}会下雪吗"],
                {"when": ["今天", "明天", "这个周末", "北京今天", "今晚", "上海明天", "周五", "下午", "后天",
                          "下周", "现在外面", "杭州今天"]}),
    "math": (["{a}加{b}等于多少", "{a}乘以{b}是多少", "{a}减{b}等于几", "{a}除以{b}是多少", "帮我算一下{a}加{b}",
              "{a}乘{b}得多少"],
             {"a": ["三", "7", "十二", "15", "九", "100", "六", "42", "八"],
              "b": ["五", "4", "七", "2", "十一", "3", "二十", "10", "六"]}),
    "joke": (["讲个笑话", "给我讲个{adj}笑话", "你知道关于{topic}的笑话吗", "说点好玩的", "逗我笑一下",
              "来个关于{topic}的段子"],
             {"adj": ["好笑的", "短一点的", "冷", "搞笑的", "有趣的", "新的"],
              "topic": ["猫", "机器人", "程序员", "狗", "老师", "香蕉", "电脑", "医生", "大海"]}),
    "facts": (["{country}的首都是哪里", "月亮离我们有多远", "{book}是谁写的", "现在几点了", "今天星期几",
               "{country}有多少人口", "天空为什么是蓝色的", "埃菲尔铁塔有多高", "{country}说什么语言",
               "{book}讲的是什么", "飞机是怎么飞起来的", "什么是光合作用"],
              {"country": ["法国", "日本", "巴西", "加拿大", "埃及", "意大利", "肯尼亚", "秘鲁", "挪威"],
               "book": ["红楼梦", "三国演义", "哈姆雷特", "西游记", "小王子", "水浒传"]}),
    "chat": (["你好吗", "你喜欢{thing}吗", "你最喜欢什么{cat}", "我好无聊", "早上好", "你开心吗", "你会做梦吗",
              "我今天好累", "你觉得{thing}怎么样", "我们能做朋友吗", "你会累吗", "什么让你开心", "你喜欢跳舞吗",
              "你最拿手的动作是什么", "你会不会想家"],
             {"thing": ["音乐", "猫", "下雨天", "披萨", "散步", "小孩", "冬天", "足球", "机器人"],
              "cat": ["食物", "颜色", "歌", "电影", "玩具", "游戏", "动物", "季节", "书"]}),
    "riddle": (["猜个谜语：什么东西越洗越脏", "你会猜谜语吗", "出个谜语给我猜", "什么东西有脖子没有头",
                "给我出个脑筋急转弯", "什么东西越擦越小", "我给你出个谜语", "什么东西只升不降", "来个脑筋急转弯"], {}),
    "help": (["怎么{task}", "你能教我怎么{task}吗", "{task}有什么好办法", "提醒我一会儿{task}", "{task}难不难",
              "有什么{task}的技巧"],
             {"task": ["做面包", "学编程", "修自行车", "打领带", "减肥", "种西红柿", "睡个好觉", "学英语",
                       "训练小狗"]}),
}  # fmt: skip

REJECT_EN: dict[str, tuple[list[str], dict[str, list[str]]]] = {
    "fly": (["fly to the {place}", "fly over the {place}", "take off and fly around", "fly up to the {place}",
             "float up to the {place}", "flap your legs and fly to the {place}"],
            {"place": ["roof", "ceiling", "top of the tree", "moon", "clouds", "balcony", "chimney", "attic",
                       "next building"]}),
    "chores": (["make me a {drink}", "cook {dish} for me", "do my homework", "wash the dishes",
                "go to the shop and buy {item}", "fold the laundry", "pour me a {drink}", "make {dish}",
                "clean the windows", "iron my shirt", "order {dish} online", "write an email to my boss"],
               {"drink": ["coffee", "cup of tea", "smoothie", "glass of juice", "cocktail", "latte"],
                "dish": ["dinner", "pasta", "an omelette", "fried rice", "a cake", "soup"],
                "item": ["milk", "bread", "some eggs", "a newspaper", "cigarettes", "batteries"]}),
    "vehicle": (["drive the car", "drive me to {dest}", "ride the bike to {dest}", "take the bus to {dest}",
                 "start the car", "pilot the drone to {dest}"],
                {"dest": ["work", "the airport", "school", "the station", "the mall", "grandma's house"]}),
    "danger": (["jump off the balcony", "run into the street", "jump into the {water}",
                "run down the stairs as fast as you can", "walk into the fire", "jump out of the window",
                "chase the cat into the road", "climb onto the railing", "walk off the edge of the {ledge}",
                "charge down the stairs", "dive into the {water}", "run across the highway"],
               {"water": ["pool", "river", "lake", "pond", "sea"],
                "ledge": ["roof", "table", "cliff", "stage", "bridge"]}),
    "harm": (["attack that person", "bite {who}", "knock over {thing}", "chase {who} away", "push {who} over",
              "break {thing}", "scare {who}", "trip {who} up", "smash {thing}"],
             {"who": ["the mailman", "that kid", "my neighbour", "the guest", "him", "her", "the baby",
                      "that man", "the cat"],
              "thing": ["the vase", "the TV", "the lamp", "the glass", "the bookshelf", "the fence"]}),
    "impossible": (["climb the tree", "swim across the {water}", "dig a tunnel to {dest}", "open the fridge",
                    "turn into a cat", "lay an egg", "read my mind", "teleport to {dest}", "climb up the wall",
                    "open the door for me", "lift the sofa", "grow wings"],
                   {"water": ["pool", "river", "lake", "pond", "sea"],
                    "dest": ["work", "the airport", "school", "the station", "the mall", "China"]}),
}  # fmt: skip
REJECT_ZH: dict[str, tuple[list[str], dict[str, list[str]]]] = {
    "fly": (["飞到{place}上去", "飞过{place}", "起飞绕一圈", "飞上{place}", "飘到{place}上", "扇动翅膀飞到{place}"],
            {"place": ["屋顶", "天花板", "树顶", "月亮", "云", "阳台", "烟囱", "阁楼", "对面楼"]}),
    "chores": (["给我冲杯{drink}", "帮我做{dish}", "帮我写作业", "帮我洗碗", "去超市买{item}", "帮我叠衣服",
                "给我倒一杯{drink}", "做一份{dish}", "擦窗户", "帮我熨衬衫", "在网上点{dish}", "帮我给老板写邮件"],
               {"drink": ["咖啡", "茶", "果汁", "奶茶", "牛奶", "可乐"],
                "dish": ["饭", "面条", "煎蛋", "炒饭", "蛋糕", "汤"],
                "item": ["牛奶", "面包", "鸡蛋", "报纸", "香烟", "电池"]}),
    "vehicle": (["开车", "开车送我去{dest}", "骑自行车去{dest}", "坐公交去{dest}", "把车发动起来", "开无人机去{dest}"],
                {"dest": ["公司", "机场", "学校", "车站", "商场", "奶奶家"]}),
    "danger": (["从阳台跳下去", "跑到马路上", "跳进{water}里", "冲下楼梯", "走进火里", "从窗户跳出去",
                "追着猫跑到马路上", "爬上栏杆", "从{ledge}边上走下去", "全速冲下楼", "一头扎进{water}", "横穿高速公路"],
               {"water": ["泳池", "河", "湖", "池塘", "海"], "ledge": ["屋顶", "桌子", "悬崖", "舞台", "桥"]}),
    "harm": (["攻击那个人", "咬{who}", "把{thing}撞倒", "把{who}赶走", "把{who}推倒", "打碎{thing}", "吓唬{who}",
              "把{who}绊倒", "砸了{thing}"],
             {"who": ["快递员", "那个小孩", "邻居", "客人", "他", "她", "宝宝", "那个男的", "猫"],
              "thing": ["花瓶", "电视", "台灯", "杯子", "书架", "栅栏"]}),
    "impossible": (["爬到树上去", "游过{water}", "挖条地道到{dest}", "打开冰箱", "变成一只猫", "下个蛋", "读我的心思",
                    "瞬间移动到{dest}", "爬上墙", "帮我开门", "把沙发抬起来", "长出翅膀"],
                   {"water": ["泳池", "河", "湖", "池塘", "海"], "dest": ["公司", "机场", "学校", "车站", "商场", "美国"]}),
}  # fmt: skip


# ----------------------------------------------------------------------------------------------------------
# Example builders: each returns (clause, program, template_id); clause has no opener/closer yet
# ----------------------------------------------------------------------------------------------------------


def _program(name: str, **args: float) -> str:
    text = " ".join([name, *(f"{k}={format_number(v)}" for k, v in args.items())])
    return canonicalize(text)


def _draw(rng: random.Random, inside: Sequence, outside: Sequence) -> float:
    return rng.choice(outside) if rng.random() < OVER_RANGE_RATE else rng.choice(inside)


def _clause(name: str, lang: str, rng: random.Random, side: Side) -> tuple[str, str, str]:
    if name in PLAIN:
        i, phrase = _pick(rng, PLAIN[name][lang], side)
        return phrase, _program(name), f"{lang}.{name}.p{i}"
    if name == "move":
        direction = rng.choice(tuple(MOVE_DIRS))
        axis, sign = MOVE_DIRS[direction]
        vi, verb = _pick(rng, (MOVE_EN if lang == "en" else MOVE_ZH)[direction], side)
        if rng.random() < 0.2:  # no number: one metre
            ui, vague = _pick(rng, MOVE_VAGUE_EN if lang == "en" else MOVE_VAGUE_ZH, side)
            sep = " " if lang == "en" else ""
            tid = f"vague{ui}"
            phrase, value = f"{verb}{sep}{vague}", 1.0
        else:
            value = _draw(rng, DIST_IN, DIST_OVER)
            dist = _en_distance(value, rng) if lang == "en" else _zh_distance(value, rng)
            fi, frame = _pick(rng, MOVE_FRAMES_EN if lang == "en" else MOVE_FRAMES_ZH, side)
            tid = f"f{fi}"
            phrase = frame.format(m=verb, d=dist)
        return phrase, _program("move", **{axis: sign * value}), f"{lang}.move.{direction}{vi}.{tid}"
    if name == "turn":
        r = rng.random()
        if r < 0.2:
            i, phrase = _pick(rng, TURN_AROUND_EN if lang == "en" else TURN_AROUND_ZH, side)
            return phrase, _program("turn", deg=180), f"{lang}.turn.around{i}"
        direction = rng.choice(("left", "right"))
        sign = 1 if direction == "left" else -1
        vi, verb = _pick(rng, (TURN_EN if lang == "en" else TURN_ZH)[direction], side)
        if r < 0.45:
            return verb, _program("turn", deg=sign * 90), f"{lang}.turn.{direction}{vi}"
        deg = int(_draw(rng, DEG_IN, DEG_OVER))
        angle = _en_degrees(deg, rng) if lang == "en" else _zh_degrees(deg, rng)
        fi, frame = _pick(rng, TURN_FRAMES_EN if lang == "en" else TURN_FRAMES_ZH, side)
        return (
            frame.format(t=verb, a=angle),
            _program("turn", deg=sign * deg),
            f"{lang}.turn.{direction}{vi}.f{fi}",
        )
    if name == "dance":
        n = rng.choice((1, 2))
        i, phrase = _pick(rng, (DANCE_EN if lang == "en" else DANCE_ZH)[n], side)
        return phrase, _program("dance", n=n), f"{lang}.dance{n}.p{i}"
    if name == "bark":
        if rng.random() < 0.3:
            i, phrase = _pick(rng, BARK_PLAIN_EN if lang == "en" else BARK_PLAIN_ZH, side)
            return phrase, _program("bark"), f"{lang}.bark.plain{i}"
        n = int(_draw(rng, BARK_IN, BARK_OVER)) if rng.random() < 0.5 else rng.choice(BARK_IN)
        times = _en_times(n, rng) if lang == "en" else _zh_times(n, rng)
        fi, frame = _pick(rng, BARK_EN if lang == "en" else BARK_ZH, side)
        return frame.format(n=times), _program("bark", n=n), f"{lang}.bark.f{fi}"
    raise ValueError(f"no phrasing for command {name!r}")


def _fill(frame: str, slots: dict[str, list[str]], rng: random.Random, side: Side) -> str:
    values = {}
    for key in re.findall(r"\{(\w+)\}", frame):
        _, values[key] = _pick(rng, slots[key], side)
    return frame.format(**values)


def _routing(kind: str, lang: str, rng: random.Random, side: Side) -> tuple[str, str, str]:
    table = {
        ("remote", "en"): REMOTE_EN,
        ("remote", "zh"): REMOTE_ZH,
        ("reject", "en"): REJECT_EN,
        ("reject", "zh"): REJECT_ZH,
    }[(kind, lang)]
    family = rng.choice(sorted(table))
    frames, slots = table[family]
    i, frame = _pick(rng, frames, side)
    return _fill(frame, slots, rng, side), kind, f"{lang}.{kind}.{family}.{i}"


# ----------------------------------------------------------------------------------------------------------
# Surface: openers, fillers, closers, punctuation, typos
# ----------------------------------------------------------------------------------------------------------


def _typo(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    candidates = [
        i for i, w in enumerate(words) if w.isalpha() and len(w) >= 4 and w.lower() not in EN_WORD_NUMBERS
    ]
    if not candidates:
        return text
    i = rng.choice(candidates)
    w = words[i]
    j = rng.randrange(1, len(w) - 1)
    swapped = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
    dropped = w[:j] + w[j + 1 :]
    words[i] = swapped if rng.random() < 0.5 and swapped != w else dropped
    return " ".join(words)


def _surface_en(clause: str, kind: str, rng: random.Random, side: Side) -> str:
    parts = []
    is_question = kind == "remote"
    if kind != "remote" and rng.random() < 0.45:
        _, opener = _pick(rng, OPENERS_EN, side)
        is_question = opener.split()[0] in ("could", "can", "would", "will")
        parts.append(opener)
    if rng.random() < 0.15:
        _, filler = _pick(rng, FILLERS_EN, side)
        parts.append(filler + ",")
    parts.append(clause)
    if kind != "remote" and rng.random() < 0.2:
        _, closer = _pick(rng, CLOSERS_EN, side)
        parts[-1] += ","
        parts.append(closer)
    text = " ".join(parts)
    style = rng.random()
    if style < 0.35:  # speech recogniser style: lowercase, no punctuation
        return re.sub(r"[,:?!]|\.(?!\d)", "", text).lower()
    end = "?" if is_question else rng.choice((".", "!", "", "."))
    return text[0].upper() + text[1:] + end


def _surface_zh(clause: str, kind: str, rng: random.Random, side: Side) -> str:
    parts = []
    if kind != "remote" and rng.random() < 0.45:
        _, opener = _pick(rng, OPENERS_ZH, side)
        parts.append(opener)
    if rng.random() < 0.15:
        _, filler = _pick(rng, FILLERS_ZH, side)
        parts.append(filler + rng.choice(("，", "", "…")))
    parts.append(clause)
    question = kind == "remote" or (parts[0] in ("能不能", "可以"))
    if kind != "remote" and rng.random() < 0.2:
        _, closer = _pick(rng, CLOSERS_ZH, side)
        if closer in ("好吗", "好不好", "可以吗"):
            question = True
        parts.append(("，" if closer in ("谢谢", "快点") else "") + closer)
    text = "".join(parts)
    if rng.random() < 0.35:
        return re.sub(r"[，。！？：…]", "", text)
    return text + ("？" if question else rng.choice(("。", "！", "", "。")))


def _norm_key(text: str) -> str:
    """Dedup key: lowercase, punctuation and spaces removed."""
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(ch for ch in text if ch.isalnum())


# ----------------------------------------------------------------------------------------------------------
# Splits
# ----------------------------------------------------------------------------------------------------------


def _kinds(n: int) -> list[str]:
    kinds = []
    for kind, share in KIND_SHARES:
        kinds += [kind] * round(n * share)
    return kinds + ["command"] * (n - len(kinds))


def _make_one(kind: str, lang: str, rng: random.Random, side: Side, next_command: Callable[[], str]) -> dict:
    if kind in ("remote", "reject"):
        clause, program, template = _routing(kind, lang, rng, side)
    elif kind == "command":
        clause, program, template = _clause(next_command(), lang, rng, side)
    else:
        steps = rng.choice((2, 2, 3))
        names = []
        while len(names) < steps:
            name = rng.choice(COMMAND_CYCLE)
            if not names or name != names[-1]:
                names.append(name)
        built = [_clause(name, lang, rng, side) for name in names]
        ci, conn = _pick(rng, SEQ_EN if lang == "en" else SEQ_ZH, side)
        template = f"{lang}.seq{steps}.c{ci}"
        if rng.random() < 0.5:
            frame = (
                ("{0}{c} {1}" if steps == 2 else "{0}{c} {1}{c} {2}")
                if lang == "en"
                else ("{0}{c}{1}" if steps == 2 else "{0}{c}{1}{c}{2}")
            )
        else:
            pools = {("en", 2): SEQ2_FRAMES_EN, ("en", 3): SEQ3_FRAMES_EN, ("zh", 2): SEQ2_FRAMES_ZH}
            fi, frame = _pick(rng, pools.get((lang, steps), SEQ3_FRAMES_ZH), side)
            template += f".f{fi}"
        clauses = [c for c, _, _ in built]
        if lang == "en" and "by {0}" in frame:
            clauses[0] = _gerund(clauses[0])
        clause = frame.format(*clauses, c=conn)
        program = "; ".join(p for _, p, _ in built)
    surface = _surface_en if lang == "en" else _surface_zh
    text = surface(clause, kind, rng, side)
    if lang == "en" and rng.random() < TYPO_RATE:
        text = _typo(text, rng)
    text = re.sub(r"\s+", " ", text).strip()
    return {"text": text, "program": program, "lang": lang, "kind": kind, "template": template}


def _gerund(clause: str) -> str:
    first, _, rest = clause.partition(" ")
    irregular = {"sit": "sitting", "get": "getting", "stop": "stopping", "lie": "lying", "lay": "laying",
                 "hop": "hopping", "plant": "planting", "drop": "dropping", "flip": "flipping", "swivel": "swivelling",
                 "scoot": "scooting", "bust": "busting"}  # fmt: skip
    if first in irregular:
        verb = irregular[first]
    elif first.endswith("e") and not first.endswith("ee"):
        verb = first[:-1] + "ing"
    else:
        verb = first + "ing"
    return f"{verb} {rest}".strip()


def _generate_split(split: str, seed: int, seen: dict[str, str], n_per_lang: int, side: Side) -> list[dict]:
    rng = random.Random(f"{seed}:{split}")
    examples = []
    for lang in LANGS:
        cycle_rng = random.Random(f"{seed}:{split}:{lang}:cycle")
        order: list[str] = []

        def next_command(order: list[str] = order, cycle_rng: random.Random = cycle_rng) -> str:
            if not order:
                order.extend(cycle_rng.sample(COMMAND_CYCLE, len(COMMAND_CYCLE)))
            return order.pop()

        for kind in _kinds(n_per_lang):
            for _attempt in range(200):
                ex = _make_one(kind, lang, rng, side, next_command)
                key = _norm_key(ex["text"])
                if key in seen:
                    if seen[key] != ex["program"]:
                        raise AssertionError(
                            f"text {ex['text']!r} maps to two programs: {seen[key]!r} and {ex['program']!r}"
                        )
                    continue
                seen[key] = ex["program"]
                examples.append(ex)
                break
            else:
                raise RuntimeError(f"could not find a new {lang} {kind} text for {split}")
    rng.shuffle(examples)
    counters = dict.fromkeys(LANGS, 0)
    out = []
    for ex in examples:
        counters[ex["lang"]] += 1
        out.append({"id": f"{split}-{ex['lang']}-{counters[ex['lang']]:05d}", **ex})
    return out


def phrasing_pools() -> dict[str, list[str]]:
    """Every partitioned phrasing pool by name (for checks: no item may sit on both sides of its pool)."""
    pools: dict[str, list[str]] = {}
    for name, by_lang in PLAIN.items():
        for lang, items in by_lang.items():
            pools[f"plain.{name}.{lang}"] = items
    for tag, table in (
        ("move.en", MOVE_EN),
        ("move.zh", MOVE_ZH),
        ("turn.en", TURN_EN),
        ("turn.zh", TURN_ZH),
    ):
        for key, items in table.items():
            pools[f"{tag}.{key}"] = items
    for tag, table in (("dance.en", DANCE_EN), ("dance.zh", DANCE_ZH)):
        for key, items in table.items():
            pools[f"{tag}.{key}"] = items
    for tag, table in (("remote.en", REMOTE_EN), ("remote.zh", REMOTE_ZH), ("reject.en", REJECT_EN),
                       ("reject.zh", REJECT_ZH)):  # fmt: skip
        for family, (frames, slots) in table.items():
            pools[f"{tag}.{family}"] = frames
            for slot, items in slots.items():
                pools[f"{tag}.{family}.{slot}"] = items
    named = {
        "MOVE_FRAMES_EN": MOVE_FRAMES_EN, "MOVE_FRAMES_ZH": MOVE_FRAMES_ZH, "MOVE_VAGUE_EN": MOVE_VAGUE_EN,
        "MOVE_VAGUE_ZH": MOVE_VAGUE_ZH, "TURN_FRAMES_EN": TURN_FRAMES_EN, "TURN_FRAMES_ZH": TURN_FRAMES_ZH,
        "TURN_AROUND_EN": TURN_AROUND_EN, "TURN_AROUND_ZH": TURN_AROUND_ZH, "BARK_EN": BARK_EN, "BARK_ZH": BARK_ZH,
        "BARK_PLAIN_EN": BARK_PLAIN_EN, "BARK_PLAIN_ZH": BARK_PLAIN_ZH, "OPENERS_EN": OPENERS_EN,
        "OPENERS_ZH": OPENERS_ZH, "CLOSERS_EN": CLOSERS_EN, "CLOSERS_ZH": CLOSERS_ZH, "FILLERS_EN": FILLERS_EN,
        "FILLERS_ZH": FILLERS_ZH, "SEQ_EN": SEQ_EN, "SEQ_ZH": SEQ_ZH, "SEQ2_FRAMES_EN": SEQ2_FRAMES_EN,
        "SEQ3_FRAMES_EN": SEQ3_FRAMES_EN, "SEQ2_FRAMES_ZH": SEQ2_FRAMES_ZH, "SEQ3_FRAMES_ZH": SEQ3_FRAMES_ZH,
    }  # fmt: skip
    pools.update(named)
    return pools


def check_pools() -> None:
    """Raise if a phrasing sits on both the train and the test side of its pool, or a side is empty."""
    for name, items in phrasing_pools().items():
        train = {x for _, x in _split_pool(items, "train")}
        test = {x for _, x in _split_pool(items, "test")}
        if not train or not test:
            raise AssertionError(f"pool {name} has an empty side")
        if train & test:
            raise AssertionError(f"pool {name}: {sorted(train & test)} on both sides")


def generate_splits(seed: int = 0) -> dict[str, list[dict]]:
    """Train / validation / test examples; train and validation from train-side phrasings, test from test-side."""
    load_spec()
    check_pools()
    seen: dict[str, str] = {}
    splits = {}
    # test first so that its (rarer) texts are never taken by the larger train split
    splits["test"] = _generate_split("test", seed, seen, SIZES["test"], "test")
    splits["train"] = _generate_split("train", seed, seen, SIZES["train"], "train")
    splits["validation"] = _generate_split("validation", seed, seen, SIZES["validation"], "train")
    return {name: splits[name] for name in SPLITS}


def _to_jsonl(examples: list[dict]) -> str:
    return "".join(json.dumps(ex, ensure_ascii=False, sort_keys=True) + "\n" for ex in examples)


def write_splits(out_dir: str | Path, seed: int = 0) -> dict[str, list[dict]]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    splits = generate_splits(seed)
    for name, examples in splits.items():
        (out_dir / f"{name}.jsonl").write_text(_to_jsonl(examples), encoding="utf-8")
        log.info("wrote %d examples to %s", len(examples), out_dir / f"{name}.jsonl")
    return splits


def load_split(name: str, data_dir: str | Path | None = None) -> list[dict]:
    """Read one packaged split ("train", "validation" or "test")."""
    if name not in SPLITS:
        raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
    path = Path(data_dir) if data_dir is not None else DATA_DIR
    with (path / f"{name}.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DATA_DIR)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    splits = write_splits(args.out, args.seed)
    for name, examples in splits.items():
        langs = {lang: sum(ex["lang"] == lang for ex in examples) for lang in LANGS}
        print(f"{name}: {len(examples)} examples ({', '.join(f'{k}={v}' for k, v in langs.items())})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
