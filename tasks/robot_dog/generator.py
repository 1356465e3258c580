"""A seeded, deterministic generator of English and Chinese robot-dog commands with their action programs.

Every example pairs a spoken-style request (`text`) with its canonical program in the action language of
`docs/spec/actions.md` (`program`), e.g. "could you please walk forward two metres, then sit" -> "move x=2; sit".

What the data covers: single commands (bare one-word ones too, casual and polite), default turns and distances,
numbers in digits and words (Chinese forms such as 三米半, 一米二, 两百七十度, 半圈), over-range arguments copied
exactly so that the safety layer can refuse them ("bark eight times" -> `bark n=8`), 2-4-step sequences with every
connector and numbers inside the steps, repeated steps, speech-recogniser-style text (lower case, no punctuation,
misheard words), questions for the cloud model (`remote`) and requests to refuse (`reject`: impossible, unsafe,
negated, nonsense and prompt injection).

Train / test partition
----------------------
The phrasings come from `phrases_en` / `phrases_zh`. *Vocabulary* pools (how a command is named, movement and turn
verbs, connectors, fillers, slot fillers of questions) are shared by every split: a model must know the words people
use. *Frame* pools (openers, closers, number frames, sequence frames, question and refusal sentences) are partitioned
by position (`split_pool`): ``i % 3 != 2`` is the train side, ``i % 6 == 2`` the dev side and ``i % 6 == 5`` the
test side. Train and validation draw from the train side; the dev split (for calibrating the confidence gate) from
the dev side and the test split from the test side, and every dev or test example contains at least one frame of its
side: both measure unseen sentence frames, and a threshold chosen on dev is measured on frames it never saw either.
Template ids name the frames used, so train, dev and test template ids are disjoint.

Texts are deduplicated across all splits on a normalised key (case, spaces and punctuation ignored); a text that
would map to two different programs raises an error. Same seed -> byte-identical files (only `random.Random`
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
from types import ModuleType

from shadow_edge.runtime.actions import canonicalize, format_number, load_spec

from . import numbers, phrases_en, phrases_zh
from .phrases_train_only import AUGMENTED_FRAMES, REPEAT_COUNT_FRAMES, REPEAT_COUNT_WORDS, TRAIN_ONLY
from .splits import DATA_DIR, LANGS, SPLITS, load_split  # noqa: F401  (load_split: the split reader, re-exported)

log = logging.getLogger(__name__)


PHRASES: dict[str, ModuleType] = {"en": phrases_en, "zh": phrases_zh}
SIZES = {"train": 12000, "validation": 1000, "dev": 500, "test": 1000}  # examples per language in each split
KIND_SHARES = (("sequence", 0.33), ("remote", 0.11), ("reject", 0.09))  # the rest are single commands
SEQUENCE_STEPS = (2, 2, 2, 2, 3, 3, 3, 4, 4)
TYPO_RATE = 0.05  # English, written text only
ASR_STYLE_RATE = 0.35  # lower case, no punctuation
ASR_CONFUSION_RATE = 0.25  # of ASR-style texts: one misheard word
# Extra draws from seed AUGMENTED_FROM_SEED on (never the committed splits; seeds 1-6 were drawn before, and the
# bundled adapter trained on them): distances and angles off the round values, a step repeated a counted number of
# times, and the frames of `phrases_train_only.AUGMENTED_FRAMES`.
AUGMENTED_FROM_SEED = 7
FINE_NUMBER_RATE = 0.3
REPEAT_COUNT_RATE = 0.05
# single commands drawn round-robin (movement and argument commands weighted up)
COMMAND_CYCLE = (
    *("stand_up", "lie_down", "sit", "recover", "stop", "move", "turn", "hello"),
    *("stretch", "dance", "front_flip", "front_jump", "front_pounce", "wiggle_hips", "heart", "bark"),
    *("move", "move", "move", "turn", "turn", "dance", "bark", "bark"),
)
FRAME_POOLS = (
    "OPENERS", "CLOSERS", "MOVE_FRAMES", "TURN_FRAMES", "BARK_FRAMES", "SEQ2_FRAMES", "SEQ3_FRAMES", "SEQ4_FRAMES",
    "SEQ_REPEAT_FRAMES",
)  # fmt: skip

Side = str  # "train" | "dev" | "test"
SIDES = {"train": lambda i: i % 3 != 2, "dev": lambda i: i % 6 == 2, "test": lambda i: i % 6 == 5}
MOVE_AXES = {
    "fwd": ("x", 1),
    "back": ("x", -1),
    "left": ("y", 1),
    "right": ("y", -1),
}  # direction -> axis, sign


def split_pool(items: Sequence, side: Side) -> list[tuple[int, object]]:
    """(index, item) pairs of one side of a frame pool (`SIDES`)."""
    return [(i, x) for i, x in enumerate(items) if SIDES[side](i)]


class _Draw:
    """The random choices for one example, recording which partitioned frames it used."""

    def __init__(
        self,
        rng: random.Random,
        lang: str,
        side: Side,
        train_only_frames: bool = False,
        augmented: bool = False,
    ) -> None:
        self.rng, self.lang, self.side = rng, lang, side
        self.train_only = TRAIN_ONLY[lang] if train_only_frames and side == "train" else {}
        self.augmented = augmented and bool(self.train_only)
        self.augmented_frames = AUGMENTED_FRAMES[lang] if self.augmented else {}
        self.p = PHRASES[lang]
        self.frames: list[str] = []

    def frame(self, pool_name: str, items: Sequence | None = None) -> str:
        pool = split_pool(items if items is not None else getattr(self.p, pool_name), self.side)
        pool += [(f"t{j}", x) for j, x in enumerate(self.train_only.get(pool_name, ()))]
        pool += [(f"a{j}", x) for j, x in enumerate(self.augmented_frames.get(pool_name, ()))]
        if not pool:
            raise ValueError(f"empty {self.side} side of frame pool {pool_name}")
        i, item = self.rng.choice(pool)
        self.frames.append(f"{pool_name}{i}")
        return item

    def word(self, items: Sequence) -> str:
        return self.rng.choice(items)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p


def _program(name: str, **args: float) -> str:
    return canonicalize(" ".join([name, *(f"{k}={format_number(v)}" for k, v in args.items())]))


# ------------------------------------------------------------------------------------------ clauses


def _move(d: _Draw) -> tuple[str, str]:
    direction = d.word(("fwd", "fwd", "back", "left", "right"))
    axis, sign = MOVE_AXES[direction]
    verb = d.word(d.p.MOVE[direction])
    sep = " " if d.lang == "en" else ""
    if d.chance(0.22):  # no number: the spec's default distance
        default = load_spec().defaults_without_number["move"]["x"]
        phrase = f"{verb}{sep}{d.word(d.p.MOVE_VAGUE)}" if d.chance(0.5) else verb
        return phrase, _program("move", **{axis: sign * default})
    if d.augmented and d.chance(FINE_NUMBER_RATE):  # the committed splits and seeds 1-6 stay as they were
        value = numbers.fine_distance(d.rng)
    else:
        value = numbers.draw(d.rng, numbers.DIST_IN, numbers.DIST_OVER)
    dist = numbers.en_distance(value, d.rng) if d.lang == "en" else numbers.zh_distance(value, d.rng)
    return d.frame("MOVE_FRAMES").format(m=verb, d=dist), _program("move", **{axis: sign * value})


def _turn(d: _Draw) -> tuple[str, str]:
    r = d.rng.random()
    if r < 0.14:
        return d.word(d.p.TURN_AROUND), _program(
            "turn", deg=load_spec().defaults_without_number["turn_around"]["deg"]
        )
    if r < 0.19:
        return d.word(d.p.SPIN_FULL), _program("turn", deg=360)
    direction = d.word(("left", "right"))
    sign = 1 if direction == "left" else -1
    verb = d.word(d.p.TURN[direction])
    if r < 0.42:  # no angle: the spec's default turn
        return verb, _program("turn", deg=sign * load_spec().defaults_without_number["turn"]["deg"])
    if r < 0.5:
        deg = d.word(sorted(d.p.TURN_AMOUNTS))
        angle = d.word(d.p.TURN_AMOUNTS[deg])
    else:
        if d.augmented and d.chance(FINE_NUMBER_RATE):
            deg = numbers.fine_angle(d.rng)
        else:
            deg = int(numbers.draw(d.rng, numbers.DEG_IN, numbers.DEG_OVER))
        angle = numbers.en_degrees(deg, d.rng) if d.lang == "en" else numbers.zh_degrees(deg, d.rng)
    return d.frame("TURN_FRAMES").format(t=verb, a=angle), _program("turn", deg=sign * deg)


def _bark(d: _Draw) -> tuple[str, str]:
    if d.chance(0.3):
        return d.word(d.p.BARK_PLAIN), _program("bark")
    n = int(numbers.draw(d.rng, numbers.BARK_IN, numbers.BARK_OVER))
    times = numbers.en_times(n, d.rng) if d.lang == "en" else numbers.zh_times(n, d.rng)
    return d.frame("BARK_FRAMES").format(v=d.word(d.p.BARK_VERBS), n=times), _program("bark", n=n)


def _clause(name: str, d: _Draw) -> tuple[str, str]:
    if name in d.p.PLAIN:
        return d.word(d.p.PLAIN[name]), _program(name)
    if name == "dance":
        n = d.word((1, 1, 2))
        return d.word(d.p.DANCE[n]), _program("dance", n=n)
    builders: dict[str, Callable[[_Draw], tuple[str, str]]] = {"move": _move, "turn": _turn, "bark": _bark}
    if name not in builders:
        raise ValueError(f"no phrasing for command {name!r}")
    return builders[name](d)


def _gerund(clause: str) -> str:
    first, _, rest = clause.partition(" ")
    irregular = {"sit": "sitting", "get": "getting", "stop": "stopping", "lie": "lying", "lay": "laying",
                 "hop": "hopping", "plant": "planting", "drop": "dropping", "flip": "flipping",
                 "swivel": "swivelling", "scoot": "scooting", "bust": "busting", "jog": "jogging", "set": "setting",
                 "shimmy": "shimmying", "pop": "popping", "plop": "plopping", "up": "getting up", "be": "being",
                 "spin": "spinning", "run": "running", "step": "stepping", "sidestep": "sidestepping",
                 "trot": "trotting", "hit": "hitting", "skip": "skipping", "wag": "wagging", "nod": "nodding",
                 "gimme": "giving me", "down": "getting down", "dip": "dipping", "tap": "tapping"}  # fmt: skip
    if first in irregular:
        verb = irregular[first]
    elif first.endswith("e") and not first.endswith("ee"):
        verb = first[:-1] + "ing"
    else:
        verb = first + "ing"
    return f"{verb} {rest}".strip()


def _repeated_step(d: _Draw, next_command: Callable[[], str]) -> tuple[str, str]:
    name = next_command()
    while name in ("bark", "stop"):  # "bark twice" is `bark n=2`; repeating stop means nothing
        name = next_command()
    return _clause(name, d)


def _sequence(d: _Draw, next_command: Callable[[], str]) -> tuple[str, str]:
    if d.chance(0.07):  # a repeated step: "dance twice" -> "dance; dance"
        clause, program = _repeated_step(d, next_command)
        return d.frame("SEQ_REPEAT_FRAMES").format(clause), f"{program}; {program}"
    if d.augmented and d.chance(REPEAT_COUNT_RATE):  # "jump forward three times" -> three jumps
        clause, program = _repeated_step(d, next_command)
        n = d.word((3, 3, 4))
        frame = d.word(REPEAT_COUNT_FRAMES[d.lang])
        return frame.format(clause, n=d.word(REPEAT_COUNT_WORDS[d.lang][n])), "; ".join([program] * n)
    steps = d.word(SEQUENCE_STEPS)
    names: list[str] = []
    while len(names) < steps:
        name = d.word(COMMAND_CYCLE)
        if not names or name != names[-1]:
            names.append(name)
    built = [_clause(name, d) for name in names]
    clauses = [c for c, _ in built]
    same_connector = d.chance(0.5)
    first = d.word(d.p.CONNECTORS)
    connectors = [first if same_connector else d.word(d.p.CONNECTORS) for _ in range(steps - 1)]
    sep = " " if d.lang == "en" else ""
    if d.chance(0.45):
        text = clauses[0] + "".join(
            f"{c}{sep}{clause}" for c, clause in zip(connectors, clauses[1:], strict=True)
        )
    else:
        frame = d.frame(f"SEQ{steps}_FRAMES")
        if d.lang == "en" and "by {0}" in frame:
            clauses[0] = _gerund(clauses[0])
        text = frame.format(*clauses, c=first)
    return text, "; ".join(p for _, p in built)


def _routing(kind: str, d: _Draw) -> tuple[str, str]:
    table = d.p.REMOTE if kind == "remote" else d.p.REJECT
    family = d.word(sorted(table))
    frames, slots = table[family]
    frame = d.frame(f"{kind}.{family}", frames)
    return frame.format(**{key: d.word(slots[key]) for key in re.findall(r"\{(\w+)\}", frame)}), kind


# ------------------------------------------------------------------------------------------ surface


def _asr_confuse(text: str, d: _Draw) -> str:
    hits = [(w, alts) for w, alts in d.p.ASR_CONFUSIONS.items() if w in text]
    if not hits:
        return text
    word, alts = d.word(hits)
    if d.lang == "en":
        return re.sub(rf"\b{re.escape(word)}\b", d.word(alts), text, count=1)
    return text.replace(word, d.word(alts), 1)


def _typo(text: str, d: _Draw) -> str:
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if w.isalpha() and len(w) >= 5]
    if not candidates:
        return text
    i = d.word(candidates)
    w = words[i]
    j = d.rng.randrange(1, len(w) - 1)
    swapped = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
    words[i] = swapped if d.chance(0.5) and swapped != w else w[:j] + w[j + 1 :]
    return " ".join(words)


def _surface(clause: str, kind: str, d: _Draw) -> str:
    """Openers, fillers, closers, punctuation; ASR-style or written. In the dev and test splits at least one frame
    of their side is used (an opener or closer is added when the clause itself used none)."""
    en = d.lang == "en"
    parts = []
    must_frame = d.side != "train" and not d.frames
    wrap = kind not in ("remote", "reject") or must_frame
    opener = closer = None
    if wrap and (d.chance(0.4) or must_frame):
        opener = d.frame("OPENERS")
        parts.append(opener)
    if d.chance(0.12):
        parts.append(d.word(d.p.FILLERS) + ("," if en else d.word(("，", "", "…"))))
    parts.append(clause)
    if wrap and (d.chance(0.18) or (must_frame and d.chance(0.4))):
        closer = d.frame("CLOSERS")
        parts.append(closer)
        parts[-2] += "," if en else ""
    text = " ".join(parts) if en else "".join(parts)
    question = kind == "remote" or bool(
        (
            opener
            and opener.split()[0] in ("could", "can", "would", "will", "能不能", "可以", "你能", "你可以")
        )
        or (closer and closer in ("will you", "would you", "好吗", "好不好", "可以吗", "行不行"))
    )
    if d.chance(ASR_STYLE_RATE):
        text = re.sub(r"[,:;?!，。！？：；…、]|\.(?!\d)", " " if en else "", text)
        text = text.lower() if en else text
        if d.chance(ASR_CONFUSION_RATE):
            text = _asr_confuse(text, d)
        return re.sub(r"\s+", " ", text).strip()
    if en and d.chance(TYPO_RATE):
        text = _typo(text, d)
    if en:
        text = text[0].upper() + text[1:]
        return text.rstrip(",") + ("?" if question else d.word((".", "!", "", ".")))
    return text + ("？" if question else d.word(("。", "！", "", "。")))


def _norm_key(text: str) -> str:
    """Dedup key: lowercase, punctuation and spaces removed."""
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(ch for ch in text if ch.isalnum())


# ------------------------------------------------------------------------------------------ splits


def _kinds(n: int) -> list[str]:
    kinds = []
    for kind, share in KIND_SHARES:
        kinds += [kind] * round(n * share)
    return kinds + ["command"] * (n - len(kinds))


def _make_one(kind: str, d: _Draw, next_command: Callable[[], str]) -> dict:
    if kind in ("remote", "reject"):
        clause, program = _routing(kind, d)
    elif kind == "command":
        clause, program = _clause(next_command(), d)
    else:
        clause, program = _sequence(d, next_command)
    text = _surface(clause, kind, d)
    template = ".".join([d.lang, kind, *d.frames]) if d.frames else f"{d.lang}.{kind}.bare"
    return {"text": text, "program": program, "lang": d.lang, "kind": kind, "template": template}


def _generate_split(
    split: str,
    seed: int,
    seen: dict[str, str],
    n_per_lang: int,
    side: Side,
    extra: Sequence[dict] = (),
    train_only_frames: bool = False,
    augmented: bool = False,
) -> list[dict]:
    rng = random.Random(f"{seed}:{split}")
    examples = list(extra)
    for lang in LANGS:
        cycle_rng = random.Random(f"{seed}:{split}:{lang}:cycle")
        order: list[str] = []

        def next_command(order: list[str] = order, cycle_rng: random.Random = cycle_rng) -> str:
            if not order:
                order.extend(cycle_rng.sample(COMMAND_CYCLE, len(COMMAND_CYCLE)))
            return order.pop()

        for kind in _kinds(n_per_lang):
            for _attempt in range(200):
                ex = _make_one(kind, _Draw(rng, lang, side, train_only_frames, augmented), next_command)
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


def _vocabulary_examples(seed: int, seen: dict[str, str]) -> list[dict]:
    """Every command phrasing once on its own ("sit", "坐", "turn left", "walk forward" -> the default distance), so
    that the training split covers the whole vocabulary and not just what the random draws happened to pick."""
    rng = random.Random(f"{seed}:vocabulary")
    spec = load_spec()
    out = []
    for lang, p in PHRASES.items():
        entries = [(phrase, _program(name)) for name, phrases in p.PLAIN.items() for phrase in phrases]
        for direction, phrases in p.MOVE.items():
            axis, sign = MOVE_AXES[direction]
            default = spec.defaults_without_number["move"]["x"]
            entries += [(phrase, _program("move", **{axis: sign * default})) for phrase in phrases]
        for direction, phrases in p.TURN.items():
            deg = spec.defaults_without_number["turn"]["deg"] * (1 if direction == "left" else -1)
            entries += [(phrase, _program("turn", deg=deg)) for phrase in phrases]
        around = spec.defaults_without_number["turn_around"]["deg"]
        entries += [(phrase, _program("turn", deg=around)) for phrase in p.TURN_AROUND]
        entries += [(phrase, _program("turn", deg=360)) for phrase in p.SPIN_FULL]
        entries += [(phrase, _program("dance", n=n)) for n, phrases in p.DANCE.items() for phrase in phrases]
        entries += [(phrase, _program("bark")) for phrase in p.BARK_PLAIN]
        for phrase, program in entries:
            d = _Draw(rng, lang, "train")
            # the bare phrasing always, and half of them once more in a sentence
            texts = [phrase, _surface(phrase, "command", d)] if d.chance(0.5) else [phrase]
            for text in texts:
                key = _norm_key(text)
                if key in seen:
                    if seen[key] != program:
                        raise AssertionError(
                            f"text {text!r} maps to two programs: {seen[key]!r} and {program!r}"
                        )
                    continue  # already drawn (never a dev or test text: those carry a frame of their side)
                seen[key] = program
                template = ".".join([lang, "command", *d.frames]) if text != phrase and d.frames else None
                out.append({"text": text, "program": program, "lang": lang, "kind": "command",
                            "template": template or f"{lang}.command.bare"})  # fmt: skip
    return out


def draw_more_training(seed: int, reserved: Sequence[dict], n_per_lang: int = SIZES["train"]) -> list[dict]:
    """More training examples from the train-side frames and the train-only ones (`phrases_train_only`), drawn under
    another seed. No text of `reserved` (the test and validation splits) is ever drawn, so training on these keeps
    both splits clean. (The packaged train split does not use the train-only frames: the recognised train commands
    of `train_asr.jsonl` are tied to its texts.) From seed `AUGMENTED_FROM_SEED` on, the draws also have distances
    and angles off the round values, counted repeats ("jump forward three times") and `AUGMENTED_FRAMES`."""
    seen = {_norm_key(ex["text"]): ex["program"] for ex in reserved}
    augmented = seed >= AUGMENTED_FROM_SEED
    return _generate_split(
        f"train-seed{seed}", seed, seen, n_per_lang, "train", train_only_frames=True, augmented=augmented
    )


def phrasing_pools() -> dict[str, list[str]]:
    """Every partitioned frame pool by name (for checks: no item may sit on both sides of its pool)."""
    pools: dict[str, list[str]] = {}
    for lang, p in PHRASES.items():
        for name in FRAME_POOLS:
            pools[f"{name}.{lang}"] = getattr(p, name)
        for kind, table in (("remote", p.REMOTE), ("reject", p.REJECT)):
            for family, (frames, _slots) in table.items():
                pools[f"{kind}.{family}.{lang}"] = frames
    return pools


def check_pools() -> None:
    """Raise if a frame sits on two sides of its pool, a side is empty, or a train-only frame (`phrases_train_only`)
    names no pool or repeats one of its pool's frames (it would put a dev or test frame into training)."""
    pools = phrasing_pools()
    for lang, extras in [*TRAIN_ONLY.items(), *AUGMENTED_FRAMES.items()]:
        for pool_name, extra in extras.items():
            if f"{pool_name}.{lang}" not in pools:
                raise AssertionError(f"train-only frames for unknown pool {pool_name!r} ({lang})")
            taken = {_norm_key(x) for x in pools[f"{pool_name}.{lang}"]}
            repeated = sorted(x for x in extra if _norm_key(x) in taken)
            if repeated or len({_norm_key(x) for x in extra}) != len(extra):
                raise AssertionError(
                    f"train-only {pool_name} ({lang}) repeats frames: {repeated or 'its own'}"
                )
    for name, items in pools.items():
        sides = {side: {x for _, x in split_pool(items, side)} for side in SIDES}
        if not all(sides.values()):
            raise AssertionError(f"pool {name} has an empty side")
        for a, b in (("train", "dev"), ("train", "test"), ("dev", "test")):
            if sides[a] & sides[b]:
                raise AssertionError(f"pool {name}: {sorted(sides[a] & sides[b])} on the {a} and {b} sides")


def generate_splits(seed: int = 0) -> dict[str, list[dict]]:
    """Train / validation / dev / test examples; train and validation from train-side frames, dev and test from
    their own sides."""
    load_spec()
    check_pools()
    seen: dict[str, str] = {}
    splits = {}
    # test and dev first so that their texts are never taken by the larger train split
    splits["test"] = _generate_split("test", seed, seen, SIZES["test"], "test")
    splits["dev"] = _generate_split("dev", seed, seen, SIZES["dev"], "dev")
    vocabulary = _vocabulary_examples(seed, seen)
    splits["train"] = _generate_split("train", seed, seen, SIZES["train"], "train", extra=vocabulary)
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DATA_DIR)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    splits = write_splits(args.out, args.seed)
    for name, examples in splits.items():
        langs = {lang: sum(ex["lang"] == lang for ex in examples) for lang in LANGS}
        log.info("%s: %d examples (%s)", name, len(examples), ", ".join(f"{k}={v}" for k, v in langs.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
