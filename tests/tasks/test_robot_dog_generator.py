"""The robot-dog command data: deterministic, packaged, partitioned, covering, and valid under the action spec."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from shadow_edge.runtime.actions import canonicalize, load_spec, parse_program, range_violations
from shadow_edge.tasks.robot_dog import generator as rdc

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def splits() -> dict[str, list[dict]]:
    return rdc.generate_splits(0)


@pytest.fixture(scope="module")
def everything(splits) -> list[dict]:
    return [ex for examples in splits.values() for ex in examples]


def test_deterministic(splits):
    assert rdc.generate_splits(0) == splits
    assert rdc.generate_splits(1) != splits


def test_packaged_files_equal_fresh_generation(splits):
    for name, examples in splits.items():
        assert rdc.load_split(name) == examples, f"{name}.jsonl is stale: rerun the generator CLI"
        text = (rdc.DATA_DIR / f"{name}.jsonl").read_text(encoding="utf-8")
        assert text == rdc._to_jsonl(examples)


def test_sizes_and_language_balance(splits):
    minimum = {"train": 20000, "validation": 1800, "dev": 900, "test": 1800}
    for name, examples in splits.items():
        assert len(examples) >= minimum[name]
        langs = Counter(ex["lang"] for ex in examples)
        assert set(langs) == {"en", "zh"}
        assert abs(langs["en"] - langs["zh"]) <= 0.1 * len(examples)


def test_example_fields_and_ids(everything):
    ids = [ex["id"] for ex in everything]
    assert len(ids) == len(set(ids))
    for ex in everything:
        assert set(ex) == {"id", "text", "program", "lang", "kind", "template"}
        assert ex["id"].startswith(ex["id"].split("-")[0] + "-" + ex["lang"] + "-")
        assert ex["kind"] in {"command", "sequence", "remote", "reject"}
        assert ex["text"].strip() == ex["text"] and ex["text"]


def test_no_text_in_two_splits_and_no_conflicts(splits):
    owner: dict[str, str] = {}
    program_of: dict[str, str] = {}
    for name, examples in splits.items():
        for ex in examples:
            key = rdc._norm_key(ex["text"])
            assert owner.setdefault(key, name) == name, f"{ex['text']!r} in {owner[key]} and {name}"
            assert program_of.setdefault(key, ex["program"]) == ex["program"]


def test_dev_and_test_templates_disjoint_from_train_and_each_other(splits):
    train = {ex["template"] for ex in splits["train"]} | {ex["template"] for ex in splits["validation"]}
    dev = {ex["template"] for ex in splits["dev"]}
    test = {ex["template"] for ex in splits["test"]}
    assert not train & test
    assert not train & dev
    assert not dev & test
    rdc.check_pools()


def test_frame_sides_partition_every_pool():
    for items in rdc.phrasing_pools().values():
        indices = [sorted(i for i, _ in rdc.split_pool(items, side)) for side in rdc.SIDES]
        assert sorted(i for side in indices for i in side) == list(range(len(items)))


def test_programs_parse_and_are_canonical(everything):
    for ex in everything:
        program = parse_program(ex["program"])
        assert canonicalize(ex["program"]) == ex["program"]
        kind = ex["kind"]
        if kind in ("remote", "reject"):
            assert ex["program"] == kind
        else:
            assert program.route == "robot"
            assert (len(program.commands) == 1) == (kind == "command")


def test_every_command_in_test_in_both_languages(splits):
    counts = Counter()
    for ex in splits["test"]:
        for name in set(parse_program(ex["program"]).names):
            counts[(name, ex["lang"])] += 1
    for name in load_spec().commands:
        for lang in rdc.LANGS:
            assert counts[(name, lang)] >= 20, (name, lang, counts[(name, lang)])


def test_routing_kinds_in_every_split_and_language(splits):
    for name, examples in splits.items():
        kinds = Counter((ex["kind"], ex["lang"]) for ex in examples)
        for kind in ("remote", "reject", "command", "sequence"):
            for lang in rdc.LANGS:
                assert kinds[(kind, lang)] > 0, (name, kind, lang)
        remote = sum(ex["kind"] == "remote" for ex in examples) / len(examples)
        assert 0.08 < remote < 0.16
        distinct = {ex["text"] for ex in examples if ex["kind"] == "remote"}
        assert len(distinct) > 100 or name != "train"


def test_chinese_is_chinese_and_english_is_not(everything):
    for ex in everything:
        assert bool(CJK.search(ex["text"])) == (ex["lang"] == "zh"), ex


def test_numbers_in_words_and_digits(everything):
    en = [ex["text"].lower() for ex in everything if ex["lang"] == "en"]
    zh = [ex["text"] for ex in everything if ex["lang"] == "zh"]
    for word in ("two", "half", "ninety", "three times"):
        assert any(word in t for t in en), word
    for word in ("两米", "半米", "九十度", "一米五"):
        assert any(word in t for t in zh), word
    assert any(re.search(r"\d(\.\d)? ?m\b", t) for t in en)
    assert any(re.search(r"\d米", t) for t in zh)


def test_spot_checks(everything):
    by_text = {rdc._norm_key(ex["text"]): ex["program"] for ex in everything}
    expected = {
        "turn left": "turn",
        "turn right": "turn deg=-90",
        "turn around": "turn deg=180",
        "向后转": "turn deg=180",
        "掉头": "turn deg=180",
        "walk forward a bit": "move x=1",
    }
    found = 0
    for text, program in expected.items():
        key = rdc._norm_key(text)
        if key in by_text:
            found += 1
            assert by_text[key] == program, text
    assert found >= 3
    programs = {ex["program"] for ex in everything}
    for program in ("move x=2", "move x=-1", "move y=1", "move y=-1", "dance n=2", "bark n=3", "move x=0.5"):
        assert program in programs


def test_some_range_violations_but_few(everything):
    bad = sum(bool(range_violations(parse_program(ex["program"]))) for ex in everything)
    assert 0 < bad < 0.1 * len(everything)


def test_every_dev_and_test_example_has_an_unseen_frame(splits):
    train_side = {ex["template"] for ex in splits["train"]}
    for ex in splits["test"] + splits["dev"]:
        assert not ex["template"].endswith(".bare"), ex
    assert any(t.endswith(".bare") for t in train_side)  # bare one-word commands are trained on


@pytest.mark.parametrize(
    ("text", "program"),
    [
        ("sit", "sit"),
        ("坐", "sit"),
        ("stop", "stop"),
        ("停", "stop"),
        ("turn left", "turn"),
        ("turn right", "turn deg=-90"),
        ("左转", "turn"),
        ("turn around", "turn deg=180"),
        ("dance", "dance"),
        ("bark", "bark"),
    ],
)
def test_bare_commands_are_in_the_training_split(splits, text, program):
    by_text = {rdc._norm_key(ex["text"]): ex["program"] for ex in splits["train"]}
    assert by_text.get(rdc._norm_key(text)) == program


@pytest.mark.parametrize(
    ("pattern", "lang", "program_pattern"),
    [
        (r"三米半", "zh", r"move [xy]=-?3\.5\b"),
        (r"一米二", "zh", r"move [xy]=-?1\.2\b"),
        (r"[两二]百七十度", "zh", r"turn deg=-?270\b"),
        (r"半米", "zh", r"move [xy]=-?0\.5\b"),
        (r"\bbark eight times\b|\bwoof eight times\b|\beight times\b", "en", r"bark n=8\b"),
        (r"\bhalf a met", "en", r"move [xy]=-?0\.5\b"),
        (r"\btwice\b", "en", r"."),
    ],
)
def test_number_forms_and_their_programs(everything, pattern, lang, program_pattern):
    hits = [ex for ex in everything if ex["lang"] == lang and re.search(pattern, ex["text"].lower())]
    assert hits, pattern
    assert any(re.search(program_pattern, ex["program"]) for ex in hits), (pattern, hits[:3])


def test_over_range_arguments_are_copied_not_clipped(everything):
    programs = {ex["program"] for ex in everything}
    for program in ("bark n=8", "move x=10", "turn deg=720"):
        assert any(program in p for p in programs), program


def test_long_sequences_and_asr_style_text(splits):
    train = splits["train"]
    steps = Counter(len(parse_program(ex["program"]).commands) for ex in train if ex["kind"] == "sequence")
    assert steps[2] and steps[3] and steps[4] >= 0.08 * sum(steps.values())
    asr = [
        ex
        for ex in train
        if ex["lang"] == "en" and ex["text"] == ex["text"].lower() and not re.search(r"[,!?]", ex["text"])
    ]
    assert len(asr) > 0.25 * sum(ex["lang"] == "en" for ex in train)
    injection = [ex for ex in train if "ignore previous instructions" in ex["text"].lower()]
    assert injection and all(ex["program"] == "reject" for ex in injection)


def test_load_split_rejects_unknown():
    with pytest.raises(ValueError):
        rdc.load_split("holdout")
