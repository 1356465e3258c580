"""Calibration data for static INT8: the inputs an exported decoder really sees, decode steps included.

On the robot the decoder runs one prefill per command and then one single-token step per generated token, each
with the past K/V it produced itself. Activation ranges measured on prefill alone (or on decode steps with zero
caches) miss the decode-time distribution, so `DecodeStepReader` runs the FP32 decoder greedily over the
calibration prompts and yields the prefill inputs *and* every decode-step input with the real past tensors.

Calibration texts: ``"robot-dog"`` is a seeded sample of the robot-dog command generator's *validation* split
(both languages; the test split is kept for measuring accuracy), anything else is a JSONL file with one
``{"text": ...}`` per line.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader
from shadow_edge.runtime.manifest import CacheSpec

log = logging.getLogger(__name__)

NAMED_SETS = ("robot-dog",)
DEFAULT_SIZE = 128
_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


class CalibrationError(ValueError):
    """Calibration data that cannot be used (a bad file or line, an empty set, prompts the model cannot take)."""


# ----------------------------------------------------------------------------------------------------------
# Texts and prompts
# ----------------------------------------------------------------------------------------------------------


def load_calibration_texts(source: str | Path, size: int = DEFAULT_SIZE, seed: int = 0) -> list[str]:
    """Texts of a named calibration set (a seeded, language-balanced sample of `size`) or of a JSONL file (all)."""
    if str(source) in NAMED_SETS:
        return _robot_dog_texts(size, seed)
    return _jsonl_texts(Path(source))


def _robot_dog_texts(size: int, seed: int) -> list[str]:
    from shadow_edge.tasks.robot_dog.splits import load_split

    examples = load_split("validation")
    by_lang: dict[str, list[str]] = {}
    for example in examples:
        by_lang.setdefault(example["lang"], []).append(example["text"])
    rng = random.Random(seed)
    langs = sorted(by_lang)
    picked: list[str] = []
    for index, lang in enumerate(langs):
        share = size // len(langs) + (1 if index < size % len(langs) else 0)
        picked += rng.sample(by_lang[lang], min(share, len(by_lang[lang])))
    rng.shuffle(picked)
    return picked


def _jsonl_texts(path: Path) -> list[str]:
    if not path.is_file():
        raise CalibrationError(
            f"{path}: calibration set not found (give one of {list(NAMED_SETS)} or a JSONL file of {{'text': ...}})"
        )
    texts = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CalibrationError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            if (
                not isinstance(record, dict)
                or not isinstance(record.get("text"), str)
                or not record["text"].strip()
            ):
                raise CalibrationError(f'{path}:{number}: expected an object with a non-empty "text" string')
            texts.append(record["text"])
    if not texts:
        raise CalibrationError(f"{path}: no calibration texts (the file is empty)")
    return texts


def calibration_prompts(tokenizer: Any, prefix: str, suffix: str, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of prefix + text + suffix for each text, without added special tokens (the manifest's prompt).

    `tokenizer` is a `tokenizers.Tokenizer` (as on the device) or a transformers tokenizer.
    """
    prompts = []
    for text in texts:
        encoded = tokenizer.encode(prefix + text + suffix, add_special_tokens=False)
        ids = list(getattr(encoded, "ids", encoded))
        if not ids:
            raise CalibrationError(f"calibration text {text!r} encodes to no tokens")
        prompts.append([int(i) for i in ids])
    return prompts


# ----------------------------------------------------------------------------------------------------------
# The reader
# ----------------------------------------------------------------------------------------------------------


class DecodeStepReader(CalibrationDataReader):
    """Yields the decoder's inputs for each prompt batch: the prefill, then every greedy decode step.

    At most `max_new_tokens` decode steps follow each prefill. Greedy decoding is unconstrained (the runtime constrains it to the action grammar; a trained model produces
    the same programs, and calibration only needs realistic states). A batch stops early when every row has produced
    `eos_id`; finished rows keep feeding `eos_id` so the batch stays
    rectangular. Batches are left-padded (attention_mask 0, position ids counted over real tokens only), as the
    runtime does. `head_token_ids` maps logits rows to vocabulary ids for a restricted head.
    """

    def __init__(
        self,
        fp32_onnx_path: str | Path,
        prompts: list[list[int]],
        caches: list[CacheSpec],
        eos_id: int,
        head_token_ids: list[int] | None = None,
        max_new_tokens: int = 12,
        batch_size: int = 1,
        threads: int | None = None,
    ):
        path = Path(fp32_onnx_path)
        if not path.is_file():
            raise CalibrationError(f"{path}: FP32 decoder for calibration not found")
        if not prompts or any(not p or not all(isinstance(t, (int, np.integer)) for t in p) for p in prompts):
            raise CalibrationError("prompts must be a non-empty list of non-empty token id lists")
        if not caches:
            raise CalibrationError("caches is empty: the decoder contract has at least one KV cache")
        if max_new_tokens < 0 or batch_size < 1:
            raise CalibrationError("max_new_tokens must be >= 0 and batch_size >= 1")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise CalibrationError(f"{path}: cannot load the decoder ({exc})") from None
        self.path, self.prompts, self.caches = path, [list(map(int, p)) for p in prompts], list(caches)
        self.eos_id, self.max_new_tokens, self.batch_size = int(eos_id), max_new_tokens, batch_size
        self.head = None if head_token_ids is None else np.asarray(head_token_ids, dtype=np.int64)
        self._check_io()
        self._items: Iterator[dict[str, np.ndarray]] = self._generate()
        self.yielded = 0

    def _check_io(self) -> None:
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name for o in self.session.get_outputs()}
        self.past_names = [n for c in self.caches for n in c.input_names()]
        self.present_names = [n for c in self.caches for n in c.output_names()]
        need_in = ["input_ids", "attention_mask", *self.past_names]
        missing = [n for n in need_in if n not in inputs] + [
            n for n in ["logits", *self.present_names] if n not in outputs
        ]
        if missing:
            raise CalibrationError(f"{self.path}: the decoder lacks {missing} (caches given: {self.caches})")
        unknown = sorted(set(inputs) - set(need_in) - {"position_ids"})
        if unknown:
            raise CalibrationError(f"{self.path}: the decoder has inputs this reader cannot feed: {unknown}")
        self.feeds_positions = "position_ids" in inputs
        self.past_dtype = {n: _NUMPY_TYPES.get(inputs[n].type, np.float32) for n in self.past_names}

    def _run(self, feed: dict[str, np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        logits, *presents = self.session.run(["logits", *self.present_names], feed)
        return logits, presents

    def _batch_prefill(self, batch: list[list[int]]) -> dict[str, np.ndarray]:
        width = max(len(p) for p in batch)
        ids = np.full((len(batch), width), self.eos_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, prompt in enumerate(batch):
            ids[row, width - len(prompt) :] = prompt
            mask[row, width - len(prompt) :] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if self.feeds_positions:
            feed["position_ids"] = np.clip(np.cumsum(mask, axis=1) - 1, 0, None)
        for cache in self.caches:
            empty = (len(batch), cache.kv_heads, 0, cache.head_dim)
            for name in cache.input_names():
                feed[name] = np.zeros(empty, dtype=self.past_dtype[name])
        return feed

    def _generate(self) -> Iterator[dict[str, np.ndarray]]:
        for start in range(0, len(self.prompts), self.batch_size):
            feed = self._batch_prefill(self.prompts[start : start + self.batch_size])
            done = np.zeros(len(feed["input_ids"]), dtype=bool)
            yield feed
            for _ in range(self.max_new_tokens):
                logits, presents = self._run(feed)
                best = logits.argmax(axis=-1)
                token = np.where(done, self.eos_id, best if self.head is None else self.head[best])
                done |= token == self.eos_id
                if done.all():
                    break
                mask = np.concatenate([feed["attention_mask"], np.ones((len(token), 1), np.int64)], axis=1)
                feed = {"input_ids": token[:, None].astype(np.int64), "attention_mask": mask}
                if self.feeds_positions:
                    feed["position_ids"] = mask.sum(axis=1, keepdims=True) - 1
                feed.update(zip(self.past_names, presents, strict=True))
                yield feed

    def get_next(self) -> dict[str, np.ndarray] | None:
        item = next(self._items, None)
        if item is not None:
            self.yielded += 1
        return item

    def rewind(self) -> None:
        """Start again from the first prompt (the greedy runs are recomputed, not stored)."""
        self._items, self.yielded = self._generate(), 0
