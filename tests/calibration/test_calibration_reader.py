"""The calibration reader feeds the decoder what it sees on the robot: a prefill, then greedy decode steps with the
real past K/V the FP32 model produced; and the calibration texts come from the validation split or a JSONL file."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from shadow_edge.calibration.decode_steps import (
    CalibrationError,
    DecodeStepReader,
    calibration_prompts,
    load_calibration_texts,
)
from shadow_edge.runtime.manifest import CacheSpec
from shadow_edge.tasks.robot_dog.splits import load_split
from tiny_onnx_decoder import TinyDecoder, build

SPEC = TinyDecoder(vocab=96, hidden=32, heads=2, layers=2, mlp=64, seed=3)
HEADED = TinyDecoder(vocab=96, hidden=32, heads=2, layers=2, mlp=64, seed=4, head_size=24)
HEAD_IDS = list(range(40, 64))  # logits row i is token 40 + i
PROMPTS = [[5, 6, 7, 8, 9], [10, 11, 12], [13, 14, 15, 16, 17, 18, 19]]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return build(SPEC, tmp_path_factory.mktemp("reader") / "decoder.onnx")


@pytest.fixture(scope="module")
def headed_model(tmp_path_factory) -> Path:
    return build(HEADED, tmp_path_factory.mktemp("reader-head") / "decoder.onnx")


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def drain(reader: DecodeStepReader) -> list[dict[str, np.ndarray]]:
    items = []
    while (item := reader.get_next()) is not None:
        items.append(item)
    return items


def split_runs(items: list[dict[str, np.ndarray]]) -> list[list[dict[str, np.ndarray]]]:
    """Group the flat stream into prompt batches: a run starts at each prefill (empty past)."""
    runs: list[list[dict[str, np.ndarray]]] = []
    for item in items:
        if item["past.shadow.0.key"].shape[2] == 0:
            runs.append([])
        runs[-1].append(item)
    return runs


@pytest.mark.parametrize("batch_size", [1, 2])
@pytest.mark.parametrize("restricted_head", [False, True], ids=["full-head", "action-head"])
def test_prefill_then_decode_steps_with_real_past(model, headed_model, batch_size, restricted_head):
    path, spec = (headed_model, HEADED) if restricted_head else (model, SPEC)
    head_ids = HEAD_IDS if restricted_head else None
    reader = DecodeStepReader(path, PROMPTS, spec.caches, eos_id=1, head_token_ids=head_ids, max_new_tokens=6,
                              threads=1, batch_size=batch_size)  # fmt: skip
    runs = split_runs(drain(reader))
    assert len(runs) == -(-len(PROMPTS) // batch_size)
    ref = session(path)
    past_names = [n for c in spec.caches for n in c.input_names()]
    present_names = [n for c in spec.caches for n in c.output_names()]
    for index, run in enumerate(runs):
        prompts = PROMPTS[index * batch_size : (index + 1) * batch_size]
        prefill = run[0]
        assert prefill["input_ids"].shape == (len(prompts), max(len(p) for p in prompts))
        assert all(prefill[name].shape[2] == 0 for name in past_names)
        assert len(run) == 7  # prefill + max_new_tokens decode steps (EOS id 1 never wins on this model)
        for previous, step in zip(run, run[1:], strict=False):
            logits, *presents = ref.run(["logits", *present_names], previous)
            want = logits.argmax(-1)
            want = np.asarray(HEAD_IDS)[want] if restricted_head else want
            assert step["input_ids"].shape == (len(want), 1)
            np.testing.assert_array_equal(step["input_ids"][:, 0], want)  # greedy on the FP32 model
            width = previous["attention_mask"].shape[1]
            assert step["attention_mask"].shape[1] == width + 1  # grows by one per step
            np.testing.assert_array_equal(step["position_ids"], previous["position_ids"][:, -1:] + 1)
            for name, present in zip(past_names, presents, strict=True):
                assert step[name].shape[2] == width  # past length = everything fed so far
                assert np.abs(step[name]).max() > 0.1  # real K/V, not zeros
                np.testing.assert_array_equal(step[name], present)  # exactly what the model returned


def test_batching_left_pads_and_matches_unbatched_decoding(model):
    one = split_runs(drain(DecodeStepReader(model, PROMPTS[:2], SPEC.caches, eos_id=1, threads=1)))
    two = split_runs(
        drain(DecodeStepReader(model, PROMPTS[:2], SPEC.caches, eos_id=1, threads=1, batch_size=2))
    )
    (batched,) = two
    prefill = batched[0]
    short = len(PROMPTS[1])
    width = len(PROMPTS[0])
    np.testing.assert_array_equal(prefill["attention_mask"][1], [0] * (width - short) + [1] * short)
    np.testing.assert_array_equal(prefill["position_ids"][1, width - short :], np.arange(short))
    for row, run in enumerate(one):
        tokens = [int(item["input_ids"][0, 0]) for item in run[1:]]
        batched_tokens = [int(item["input_ids"][row, 0]) for item in batched[1:]]
        assert tokens == batched_tokens  # left padding does not change what the model generates


def test_stops_at_eos_and_caps_decode_steps(model):
    (prefill,) = drain(
        DecodeStepReader(model, PROMPTS[:1], SPEC.caches, eos_id=1, max_new_tokens=0, threads=1)
    )
    first = int(session(model).run(["logits"], prefill)[0].argmax())
    stopped = drain(DecodeStepReader(model, PROMPTS[:1], SPEC.caches, eos_id=first, threads=1))
    assert len(stopped) == 1  # the first generated token is EOS: only the prefill is fed
    capped = drain(DecodeStepReader(model, PROMPTS[:1], SPEC.caches, eos_id=1, max_new_tokens=3, threads=1))
    assert len(capped) == 4


def test_rewind_replays_the_same_inputs(model):
    reader = DecodeStepReader(model, PROMPTS, SPEC.caches, eos_id=1, max_new_tokens=3, threads=1)
    first = drain(reader)
    assert reader.get_next() is None
    reader.rewind()
    second = drain(reader)
    assert len(first) == len(second) == reader.yielded == 3 * 4
    for a, b in zip(first, second, strict=True):
        assert a.keys() == b.keys()
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])


def test_bad_reader_inputs(model, tmp_path):
    with pytest.raises(CalibrationError, match="not found"):
        DecodeStepReader(tmp_path / "missing.onnx", PROMPTS, SPEC.caches, eos_id=1)
    with pytest.raises(CalibrationError, match="lacks.*past.base.0.key"):
        DecodeStepReader(model, PROMPTS, [CacheSpec("base", 2, 2, 16)], eos_id=1)
    with pytest.raises(CalibrationError, match="lacks.*past.shadow.2.key"):
        DecodeStepReader(model, PROMPTS, [CacheSpec("shadow", 3, 2, 16)], eos_id=1)
    with pytest.raises(CalibrationError, match="cannot feed.*past.shadow.1"):
        DecodeStepReader(model, PROMPTS, [CacheSpec("shadow", 1, 2, 16)], eos_id=1)
    with pytest.raises(CalibrationError, match="non-empty"):
        DecodeStepReader(model, [], SPEC.caches, eos_id=1)
    with pytest.raises(CalibrationError, match="non-empty"):
        DecodeStepReader(model, [[1, 2], []], SPEC.caches, eos_id=1)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(CalibrationError, match="cannot load"):
        DecodeStepReader(garbage, PROMPTS, SPEC.caches, eos_id=1)


# ---------------------------------------------------------------------------------------------- texts and prompts


def test_robot_dog_set_is_a_seeded_balanced_validation_sample():
    texts = load_calibration_texts("robot-dog")
    assert len(texts) == len(set(texts)) == 128
    validation = {ex["text"]: ex["lang"] for ex in load_split("validation")}
    test_texts = {ex["text"] for ex in load_split("test")}
    assert all(t in validation for t in texts)
    assert not set(texts) & test_texts
    langs = [validation[t] for t in texts]
    assert langs.count("en") == langs.count("zh") == 64
    assert load_calibration_texts("robot-dog") == texts
    assert load_calibration_texts("robot-dog", seed=1) != texts
    assert len(load_calibration_texts("robot-dog", size=9)) == 9


def test_jsonl_calibration_file(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text('{"text": "sit"}\n\n{"text": "走两米", "program": "move x=2"}\n', encoding="utf-8")
    assert load_calibration_texts(good) == ["sit", "走两米"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        ("\n  \n", "empty"),
        ('{"text": "sit"}\n{"text": \n', r"bad.jsonl:2: not valid JSON"),
        ('{"txt": "sit"}\n', r"bad.jsonl:1: expected an object"),
        ('["sit"]\n', r"bad.jsonl:1: expected an object"),
        ('{"text": 3}\n', r"bad.jsonl:1: expected an object"),
        ('{"text": "  "}\n', r"bad.jsonl:1: expected an object"),
    ],
    ids=["empty", "blank-lines", "bad-json", "no-text", "not-object", "text-not-string", "blank-text"],
)
def test_bad_jsonl_files(tmp_path, content, message):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content, encoding="utf-8")
    with pytest.raises(CalibrationError, match=message):
        load_calibration_texts(bad)


def test_unknown_set_or_missing_file(tmp_path):
    with pytest.raises(CalibrationError, match="not found.*robot-dog"):
        load_calibration_texts(tmp_path / "nope.jsonl")
    with pytest.raises(CalibrationError, match="not found"):
        load_calibration_texts("robot-cat")


def _word_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {
        "[unk]": 0,
        "<s>": 1,
        **{w: i + 2 for i, w in enumerate(["do", "it", "now", ":", "please", "sit", "walk"])},
    }
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[unk]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return tokenizer


def test_calibration_prompts_with_tokenizers_tokenizer():
    tokenizer = _word_tokenizer()
    prompts = calibration_prompts(tokenizer, "do it : ", " now", ["sit", "please walk"])
    assert prompts == [
        tokenizer.encode("do it : sit now", add_special_tokens=False).ids,
        tokenizer.encode("do it : please walk now", add_special_tokens=False).ids,
    ]
    assert prompts[0] == [2, 3, 5, 7, 4]


def test_calibration_prompts_with_the_smollm2_tokenizer(smollm2_tokenizer):
    prefix, suffix = "<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n"
    texts = load_calibration_texts("robot-dog", size=4)
    prompts = calibration_prompts(smollm2_tokenizer, prefix, suffix, texts)
    for text, ids in zip(texts, prompts, strict=True):
        assert ids == smollm2_tokenizer.encode(prefix + text + suffix, add_special_tokens=False)
        assert smollm2_tokenizer.decode(ids) == prefix + text + suffix


# ---------------------------------------------------------------------------------------------- no torch here

ALLOWED = {"numpy", "onnxruntime", "tokenizers", "shadow_edge"}
SOURCE = Path(__file__).resolve().parents[2] / "calibration" / "decode_steps.py"


def test_reader_imports_only_device_side_modules():
    tree = ast.parse(SOURCE.read_text(encoding="utf-8"))
    modules = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    modules += [
        n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0 and n.module
    ]
    bad = [
        m
        for m in modules
        if m.split(".")[0] not in ALLOWED | {"__future__"} and m.split(".")[0] not in sys.stdlib_module_names
    ]
    assert not bad
    shadow = [m for m in modules if m.startswith("shadow_edge")]
    # the task generator is torch-free: it is where the named calibration set comes from
    device_side = ("shadow_edge.runtime", "shadow_edge.calibration", "shadow_edge.tasks.robot_dog.splits")
    assert all(m.startswith(device_side) for m in shadow), shadow


def test_importing_the_reader_loads_no_torch():
    code = (
        "import json, sys\nimport shadow_edge.calibration.decode_steps\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'peft'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
