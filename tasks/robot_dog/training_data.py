"""What the robot-dog models train on: the packaged train split, optionally more draws of its train-side frames
under other seeds, train commands as a speech recogniser heard them (`train_asr*.jsonl`, made by
`scripts/make_asr_transcripts.py`: `train_asr.jsonl` from espeak-ng voices, `train_asr_voices.jsonl` from espeak-ng
and flite voices in turn), and politeness stacked on the fly.

People pile courtesy onto a command ("sit down, please, thank you", "hey buddy, okay, sit"); a model that has only
seen one opener or closer at a time reads the second one as another step. `PolitenessStacker` adds a second
train-side or train-only opener or closer (never a test-side frame) to a fraction of the examples each time they are drawn; the
program is unchanged, because courtesy never changes what the dog does.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections.abc import Sequence
from pathlib import Path

from . import phrases_en, phrases_zh
from .generator import draw_more_training, split_pool
from .phrases_train_only import TRAIN_ONLY, ZH_VOCATIVES
from .splits import DATA_DIR, SPLITS, load_split

ASR_TRANSCRIPTS = "train_asr.jsonl"  # espeak-ng voices (the first set)
ASR_SET_PATTERN = re.compile(r"train_asr[\w-]*\.jsonl")  # recognised train commands live in the data folder

# Chinese openers that address the dog rather than start the sentence's grammar, so they can precede any command
_ZH_VOCATIVES = (
    "小狗",
    "狗狗",
    "嘿",
    "乖",
    "小家伙",
    "旺财",
    "机器狗",
    "听话",
    "小可爱",
    "狗子",
    "好了",
    "哎你",
    *ZH_VOCATIVES,
)
_EN_END = re.compile(r"[.!?,]+$")
_ZH_END = re.compile(r"[。！？，!?]+$")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The training scripts' shared data options (--extra-seeds, --stack-politeness)."""
    parser.add_argument(
        "--extra-seeds",
        type=lambda v: [int(x) for x in v.split(",") if x],
        default=[],
        help="comma-separated generator seeds: more train-side draws beside the train split (never a test text)",
    )
    parser.add_argument(
        "--stack-politeness", type=float, default=0.0, help="share of draws given one more opener or closer"
    )
    parser.add_argument(
        "--asr-repeats",
        type=int,
        default=0,
        help="add the recognised train commands (--asr-sets) this many times (0: not at all)",
    )
    parser.add_argument(
        "--asr-sets",
        type=lambda v: [x for x in v.split(",") if x],
        default=[ASR_TRANSCRIPTS],
        help=f"comma-separated files of recognised train commands in the data folder (default {ASR_TRANSCRIPTS})",
    )


def training_examples(
    extra_seeds: Sequence[int] = (),
    data_dir: str | Path | None = None,
    asr_repeats: int = 0,
    asr_sets: Sequence[str] = (ASR_TRANSCRIPTS,),
) -> list[dict]:
    """The train split, plus fresh draws under each of `extra_seeds` that avoid every validation, dev and test text,
    plus `asr_repeats` copies of the recognised train commands of each of `asr_sets`."""
    train = load_split("train", data_dir)
    if extra_seeds:
        reserved = [ex for split in SPLITS if split != "train" for ex in load_split(split, data_dir)]
        for seed in extra_seeds:
            train = train + draw_more_training(seed, reserved)
    if asr_repeats:
        for name in asr_sets:
            train = train + asr_transcripts(data_dir, name) * asr_repeats
    return train


def asr_transcripts(data_dir: str | Path | None = None, name: str = ASR_TRANSCRIPTS) -> list[dict]:
    """The recognised train commands of `name` (a `train_asr*.jsonl` of the data folder): each line's `text` is
    what a recogniser heard for a train-split text."""
    if not ASR_SET_PATTERN.fullmatch(name):
        raise ValueError(
            f"{name!r}: recognised train commands are a train_asr*.jsonl file of the data folder"
        )
    path = Path(data_dir or DATA_DIR) / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; make it with scripts/make_asr_transcripts.py")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    train_texts = {ex["text"] for ex in load_split("train", data_dir)}
    foreign = [r["id"] for r in rows if r.get("said") not in train_texts]
    if foreign:  # a recording of anything but a train text would leak evaluation commands into training
        raise ValueError(f"{path}: {len(foreign)} line(s) not spoken from a train text, e.g. {foreign[:3]}")
    return rows


def _train_side(items: Sequence[str]) -> list[str]:
    return [x for _, x in split_pool(items, "train")]


class PolitenessStacker:
    """With probability `rate`, one more train-side opener and/or closer around an example's text."""

    def __init__(self, rate: float, seed: int = 0) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be in [0, 1], got {rate}")
        self.rate = rate
        self.rng = random.Random(f"{seed}:politeness")
        en, zh = TRAIN_ONLY["en"], TRAIN_ONLY["zh"]
        self.en_openers = [o for o in _train_side(phrases_en.OPENERS) + en["OPENERS"] if o.endswith(",")]
        self.en_closers = _train_side(phrases_en.CLOSERS) + en["CLOSERS"]
        self.zh_openers = [o for o in _train_side(phrases_zh.OPENERS) + zh["OPENERS"] if o in _ZH_VOCATIVES]
        self.zh_closers = _train_side(phrases_zh.CLOSERS) + zh["CLOSERS"]

    def __call__(self, example: dict) -> str:
        text = example["text"]
        if self.rate == 0.0 or self.rng.random() >= self.rate:
            return text
        mode = self.rng.choice(("closer", "closer", "opener", "both"))
        if example["lang"] == "zh":
            return self._zh(text, mode)
        return self._en(text, mode)

    def _en(self, text: str, mode: str) -> str:
        spoken = text == text.lower() and not re.search(r"[,.!?]", text)  # ASR style: keep it so
        end = _EN_END.search(text)
        body, punct = (text[: end.start()], end.group()) if end else (text, "")
        if mode in ("closer", "both"):
            joiner = self.rng.choice((", ", " and ", ", ", " "))
            body = f"{body}{joiner}{self.rng.choice(self.en_closers)}"
        if mode in ("opener", "both"):
            body = f"{self.rng.choice(self.en_openers)} {body[:1].lower()}{body[1:]}"
            body = body[:1].upper() + body[1:]
        if spoken:
            return re.sub(r"\s+", " ", re.sub(r"[,.!?]", " ", body.lower())).strip()
        return body + (punct.strip(",") or "")

    def _zh(self, text: str, mode: str) -> str:
        end = _ZH_END.search(text)
        body, punct = (text[: end.start()], end.group()) if end else (text, "")
        if mode in ("closer", "both"):
            body = f"{body}{self.rng.choice(('，', ''))}{self.rng.choice(self.zh_closers)}"
        if mode in ("opener", "both"):
            body = f"{self.rng.choice(self.zh_openers)}{self.rng.choice(('，', ''))}{body}"
        return body + punct
