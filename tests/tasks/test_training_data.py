"""What the training scripts read: extra train-side draws that never contain a validation or test text, and
politeness stacking that keeps the program and only ever uses train-side frames."""

from __future__ import annotations

import json
import re

import pytest
from shadow_edge.tasks.robot_dog import generator, phrases_en, phrases_zh
from shadow_edge.tasks.robot_dog.generator import _norm_key, split_pool
from shadow_edge.tasks.robot_dog.phrases_train_only import TRAIN_ONLY, ZH_VOCATIVES
from shadow_edge.tasks.robot_dog.training_data import (
    ASR_TRANSCRIPTS,
    PolitenessStacker,
    asr_transcripts,
    training_examples,
)


@pytest.fixture(scope="module")
def packaged() -> dict[str, list[dict]]:
    return {name: generator.load_split(name) for name in generator.SPLITS}


@pytest.fixture(scope="module")
def with_extra_draws() -> list[dict]:
    return training_examples((1,))


def test_no_extra_seeds_is_the_train_split(packaged):
    assert training_examples(()) == packaged["train"]


def test_extra_draws_add_new_texts_and_never_a_reserved_one(packaged, with_extra_draws):
    assert len(with_extra_draws) > 1.5 * len(packaged["train"])
    reserved = {_norm_key(ex["text"]) for name in ("validation", "test") for ex in packaged[name]}
    assert not reserved & {_norm_key(ex["text"]) for ex in with_extra_draws}
    extra = with_extra_draws[len(packaged["train"]) :]
    assert all(ex["id"].startswith("train-seed1-") for ex in extra)
    test_templates = {ex["template"] for ex in packaged["test"]}
    assert not test_templates & {ex["template"] for ex in extra}


def test_extra_draws_use_train_only_frames_and_the_packaged_splits_do_not(packaged, with_extra_draws):
    train_only = re.compile(r"(OPENERS|CLOSERS|reject\.\w+)t\d+")
    extra = with_extra_draws[len(packaged["train"]) :]
    used = [ex for ex in extra if train_only.search(ex["template"])]
    assert len(used) > 0.1 * len(extra)
    assert {ex["lang"] for ex in used} == {"en", "zh"}
    assert any(ex["program"] == "reject" for ex in used)
    assert not any(train_only.search(ex["template"]) for split in packaged.values() for ex in split)


def test_train_only_vocatives_are_train_only_openers():
    assert set(ZH_VOCATIVES) <= set(TRAIN_ONLY["zh"]["OPENERS"])
    assert set(ZH_VOCATIVES) <= set(PolitenessStacker(1.0).zh_openers)


def test_train_only_frames_repeating_a_pool_frame_are_refused(monkeypatch):
    test_closer = split_pool(phrases_en.CLOSERS, "test")[0][1]
    monkeypatch.setitem(TRAIN_ONLY["en"], "CLOSERS", [*TRAIN_ONLY["en"]["CLOSERS"], test_closer.upper()])
    with pytest.raises(AssertionError, match="repeats"):
        generator.check_pools()
    monkeypatch.undo()
    monkeypatch.setitem(TRAIN_ONLY["en"], "NO_SUCH_POOL", ["hi"])
    with pytest.raises(AssertionError, match="unknown pool"):
        generator.check_pools()


def test_extra_draws_are_deterministic():
    assert training_examples((2,))[-5:] == training_examples((2,))[-5:]


@pytest.mark.parametrize(
    ("example", "pattern"),
    [
        ({"text": "Sit down.", "lang": "en"}, r"^[A-Z].*sit down.*[.]$|^Sit down.*\.$"),
        ({"text": "sit down", "lang": "en"}, r"^[a-z ']+$"),  # ASR style stays lower case, no punctuation
        ({"text": "坐下。", "lang": "zh"}, r"坐下.*。$"),
    ],
)
def test_stacking_keeps_the_command_and_its_style(example, pattern):
    stack = PolitenessStacker(1.0, seed=0)
    outputs = {stack(example) for _ in range(40)}
    assert len(outputs) > 5  # it varies
    for text in outputs:
        assert text != example["text"]
        assert re.search(pattern, text, flags=re.IGNORECASE), text


def test_stacking_uses_train_side_frames_only():
    stack = PolitenessStacker(1.0, seed=0)
    for used, pool, lang, name in (
        (stack.en_openers, phrases_en.OPENERS, "en", "OPENERS"),
        (stack.en_closers, phrases_en.CLOSERS, "en", "CLOSERS"),
        (stack.zh_openers, phrases_zh.OPENERS, "zh", "OPENERS"),
        (stack.zh_closers, phrases_zh.CLOSERS, "zh", "CLOSERS"),
    ):
        assert used
        assert set(used) <= {x for _, x in split_pool(pool, "train")} | set(TRAIN_ONLY[lang][name])
        assert set(used) & set(TRAIN_ONLY[lang][name])


def test_rate_zero_is_identity_and_bad_rates_are_refused():
    stack = PolitenessStacker(0.0)
    assert all(stack({"text": t, "lang": "en"}) == t for t in ("Sit.", "walk forward 2 metres"))
    for rate in (-0.1, 1.5):
        with pytest.raises(ValueError):
            PolitenessStacker(rate)


@pytest.mark.parametrize("name", [ASR_TRANSCRIPTS, "train_asr_voices.jsonl"])
def test_recognised_transcripts_are_only_of_train_texts(packaged, name):
    rows = asr_transcripts(name=name)
    assert len(rows) > 1000
    train_texts = {ex["text"] for ex in packaged["train"]}
    assert all(r["said"] in train_texts and r["lang"] == "en" for r in rows)
    assert (
        sum(r["text"] != r["said"] for r in rows) > len(rows) / 2
    )  # they are what was heard, not what was said
    assert len(training_examples((), asr_repeats=2, asr_sets=[name])) == len(packaged["train"]) + 2 * len(
        rows
    )
    if name != ASR_TRANSCRIPTS:  # the second set hears both synthesisers
        assert {r["source"] for r in rows} == {"espeak-ng", "flite"}


def _data_dir(tmp_path, said: str) -> None:
    for name in generator.SPLITS:
        (tmp_path / f"{name}.jsonl").write_text(
            json.dumps({"id": f"{name}-1", "text": f"{name} text"}) + "\n"
        )
    row = {"id": "x", "text": "sit dawn", "said": said, "program": "sit", "lang": "en"}
    (tmp_path / ASR_TRANSCRIPTS).write_text(json.dumps(row) + "\n")


@pytest.mark.parametrize(("said", "ok"), [("train text", True), ("test text", False), ("made up", False)])
def test_a_transcript_of_anything_but_a_train_text_is_refused(tmp_path, said, ok):
    _data_dir(tmp_path, said)
    if ok:
        assert [r["text"] for r in asr_transcripts(tmp_path)] == ["sit dawn"]
    else:
        with pytest.raises(ValueError, match="not spoken from a train text"):
            asr_transcripts(tmp_path)


def test_missing_transcripts_say_how_to_make_them(tmp_path):
    _data_dir(tmp_path, "train text")
    (tmp_path / ASR_TRANSCRIPTS).unlink()
    with pytest.raises(FileNotFoundError, match="make_asr_transcripts.py"):
        training_examples((), tmp_path, asr_repeats=1)


def test_asr_sets_add_each_file_and_refuse_other_paths(tmp_path):
    _data_dir(tmp_path, "train text")
    second = {"id": "y", "text": "bark tree times", "said": "train text", "program": "bark n=3", "lang": "en"}
    (tmp_path / "train_asr_voices.jsonl").write_text(json.dumps(second) + "\n")
    both = training_examples(
        (), tmp_path, asr_repeats=2, asr_sets=[ASR_TRANSCRIPTS, "train_asr_voices.jsonl"]
    )
    assert [r["text"] for r in both[1:]] == ["sit dawn", "sit dawn", "bark tree times", "bark tree times"]
    for name in ("../train_asr.jsonl", "test.jsonl", "train_asr.json"):
        with pytest.raises(ValueError, match="train_asr"):
            asr_transcripts(tmp_path, name)


def _arguments(program: str) -> list[tuple[str, float]]:
    return [(key, abs(float(v))) for key, v in re.findall(r"(x|y|deg)=(-?[0-9.]+)", program)]


@pytest.fixture(scope="module")
def augmented_draws() -> list[dict]:
    return training_examples((generator.AUGMENTED_FROM_SEED,))


def test_augmented_draws_have_off_grid_numbers_and_counted_repeats_and_earlier_ones_do_not(
    packaged, with_extra_draws, augmented_draws
):
    from shadow_edge.tasks.robot_dog import numbers

    grid = {"x": {*numbers.DIST_IN, *numbers.DIST_OVER, 1}, "y": {*numbers.DIST_IN, *numbers.DIST_OVER, 1}}
    grid["deg"] = {*numbers.DEG_IN, *numbers.DEG_OVER, *(d for d in range(0, 1081, 90))}

    def off_grid(ex: dict) -> bool:
        return any(value not in grid[key] for key, value in _arguments(ex["program"]))

    def counted_repeat(ex: dict) -> bool:
        steps = ex["program"].split("; ")
        return len(steps) >= 3 and len(set(steps)) == 1

    extra = augmented_draws[len(packaged["train"]) :]
    fine = [ex for ex in extra if off_grid(ex)]
    repeats = [ex for ex in extra if counted_repeat(ex)]
    assert len(fine) > 0.02 * len(extra) and {ex["lang"] for ex in fine} == {"en", "zh"}
    assert len(repeats) > 0.005 * len(extra) and {ex["lang"] for ex in repeats} == {"en", "zh"}
    count_words = {3: ("3", "three", "三"), 4: ("4", "four", "四")}
    said = [
        any(w in ex["text"].lower() for w in count_words[len(ex["program"].split("; "))]) for ex in repeats
    ]
    assert sum(said) > 0.95 * len(repeats)  # the rest carry a typo or a misheard word ("for times")
    # the TURN_AMOUNTS phrasings give a few off-grid angles ("a quarter turn" is 90, "a third of a turn" is not)
    assert sum(off_grid(ex) for split in packaged.values() for ex in split) < 0.1 * len(fine)
    assert not any(counted_repeat(ex) for split in packaged.values() for ex in split)
    assert not any(counted_repeat(ex) for ex in with_extra_draws)  # seed 1 is drawn as it always was
