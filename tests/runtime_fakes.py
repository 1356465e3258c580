"""Fakes for the runtime's decoding tests: a tiny byte-level BPE tokenizer, decoders that follow the export
contract (a scripted numpy session and a scripted ONNX graph), and export directories around them.

- `tiny_tokenizer()`: GPT-2 style byte-level BPE ("Ġ" = space) trained in memory on the robot-dog programs and
  texts, with SmolLM2's chat special tokens (`<|im_end|>` = id 2 = end of turn).
- `ScriptedSession`: a numpy stand-in for an `InferenceSession` that answers each command text with a chosen
  program. Its KV cache *stores the token ids*, so it rebuilds the whole history from `past.*` at every step: a
  runtime that reuses the cache wrongly (or sends wrong position ids, which it checks) decodes something else.
- `bigram_decoder()`: an ONNX graph whose logits are a bigram table (previous token -> next row) plus an optional
  history-dependent term (masked mean of its value cache, position embedding): scripted output for CLI tests, or
  cache-dependent noise for consistency tests.
- `write_export_dir()`: a complete export directory (decoder.onnx, tokenizer.json, manifest.json).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from shadow_edge.runtime.actions import load_spec
from shadow_edge.runtime.manifest import CacheSpec, past_name, present_name, write_manifest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tasks" / "robot_dog" / "data"
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
EOS_ID = 2
PREFIX = (
    "<|im_start|>system\nConvert the command to a robot-dog action program.<|im_end|>\n<|im_start|>user\n"
)
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n"


def split_rows(limit: int | None = None) -> list[dict[str, Any]]:
    rows = [
        json.loads(line) for line in (DATA / "test.jsonl").read_text(encoding="utf-8").splitlines() if line
    ]
    return rows[:limit] if limit else rows


@functools.lru_cache(maxsize=1)
def _tiny_tokenizer_json() -> str:
    rows = [
        json.loads(line) for line in (DATA / "train.jsonl").read_text(encoding="utf-8").splitlines() if line
    ]
    corpus = (
        [r["program"] for r in rows]
        + [r["text"] for r in rows if r["lang"] == "en"][:2000]
        + [PREFIX, SUFFIX]
    )
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    return tokenizer.to_str()


def tiny_tokenizer() -> Tokenizer:
    """A fresh copy each call (tokenizers objects are mutable)."""
    return Tokenizer.from_str(_tiny_tokenizer_json())


# ----------------------------------------------------------------------------------------------------------------
# A scripted numpy session


class _Info:
    def __init__(self, name: str) -> None:
        self.name = name


class ScriptedSession:
    """Answers command text T with `answers[T]` (default "reject"), token by token, then end-of-turn.

    `answers` values are a program or (program, margin): the wanted row gets logit `margin` (others 0), so its
    constrained probability is known. `fail_at`: raise RuntimeError on that call of `run` (1 = the first call).
    `full_head`: logits over the whole vocabulary; else over `head_token_ids`.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        answers: dict[str, Any],
        head_token_ids: Sequence[int] | None = None,
        caches: Sequence[CacheSpec] = (CacheSpec("shadow", 2, 1, 2),),
        fail_at: int | None = None,
        nan_at: int | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.answers = answers
        vocab = tokenizer.get_vocab_size(with_added_tokens=True)
        self.row_ids = list(range(vocab)) if head_token_ids is None else list(head_token_ids)
        self.row_of = {t: r for r, t in enumerate(self.row_ids)}
        self.caches = list(caches)
        self.fail_at = fail_at
        self.nan_at = nan_at
        self.calls = 0
        self.fed_tokens = 0  # how many tokens went through the model (prefill + steps)
        self.prefix_ids = tokenizer.encode(PREFIX, add_special_tokens=False).ids
        self.suffix_ids = tokenizer.encode(SUFFIX, add_special_tokens=False).ids

    def get_inputs(self) -> list[_Info]:
        names = ["input_ids", "attention_mask", "position_ids"]
        return [_Info(n) for n in names + [n for c in self.caches for n in c.input_names()]]

    def get_outputs(self) -> list[_Info]:
        return [_Info(n) for n in ["logits"] + [n for c in self.caches for n in c.output_names()]]

    def _wanted(self, history: list[int]) -> tuple[int, float]:
        n_prefix, suffix = len(self.prefix_ids), self.suffix_ids
        assert history[:n_prefix] == self.prefix_ids, "the prompt does not start with the manifest prefix"
        end = next((k for k in range(n_prefix, len(history)) if history[k : k + len(suffix)] == suffix), None)
        if end is None:  # the prompt so far (the prefix cache): the logits are not used
            return EOS_ID, 0.0
        text = self.tokenizer.decode(history[n_prefix:end], skip_special_tokens=False)
        generated = history[end + len(suffix) :]
        answer = self.answers.get(text, "reject")
        program, margin = answer if isinstance(answer, tuple) else (answer, 10.0)
        target = self.tokenizer.encode(program, add_special_tokens=False).ids + [EOS_ID]
        if generated == target[: len(generated)] and len(generated) < len(target):
            return target[len(generated)], margin
        return EOS_ID, margin

    def run(self, output_names: Sequence[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise RuntimeError("fake decoder failure (injected)")
        ids, mask, pos = feed["input_ids"], feed["attention_mask"], feed["position_ids"]
        batch, new = ids.shape
        self.fed_tokens += int((mask[:, -new:] == 1).sum())
        first = self.caches[0]
        past = feed[past_name(first.name, 0, "key")]
        assert past.shape[2] + new == mask.shape[1], "attention_mask does not cover past + new tokens"
        all_ids = np.concatenate([past[:, 0, :, 0].astype(np.int64), ids], axis=1)
        logits = np.zeros((batch, len(self.row_ids)), dtype=np.float32)
        for b in range(batch):
            real = mask[b] == 1
            expected = np.cumsum(real)[-new:] - 1
            assert np.array_equal(pos[b][real[-new:]], expected[real[-new:]]), (pos[b], expected)
            token, margin = self._wanted([int(t) for t in all_ids[b][real]])
            if token in self.row_of:
                logits[b, self.row_of[token]] = margin
        if self.nan_at is not None and self.calls >= self.nan_at:
            logits[:] = np.nan
        outputs = {"logits": logits}
        for cache in self.caches:
            block = np.broadcast_to(ids[:, None, :, None], (batch, cache.kv_heads, new, cache.head_dim))
            for i in range(cache.layers):
                for kind in ("key", "value"):
                    outputs[present_name(cache.name, i, kind)] = np.concatenate(
                        [feed[past_name(cache.name, i, kind)], block.astype(np.float32)], axis=2
                    )
        names = output_names or [o.name for o in self.get_outputs()]
        return [outputs[n] for n in names]


# ----------------------------------------------------------------------------------------------------------------
# A scripted ONNX graph


def bigram_decoder(
    path: Path,
    vocab: int,
    head_token_ids: Sequence[int] | None,
    script: Sequence[int] = (),
    start_id: int | None = None,
    margin: float = 20.0,
    noise: float = 0.0,
    caches: Sequence[CacheSpec] = (CacheSpec("shadow", 2, 2, 4),),
    seed: int = 0,
) -> Path:
    """logits[b] = bigram[last token of b] + noise * (mean of the real positions' cached values + position embedding)
    @ W. `script` (vocabulary ids, then eos) is written into the bigram table after `start_id`."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    rows = list(range(vocab)) if head_token_ids is None else list(head_token_ids)
    row_of = {t: r for r, t in enumerate(rows)}
    bigram = np.zeros((vocab, len(rows)), dtype=np.float32)
    previous = start_id
    for token in script:
        bigram[previous, row_of[token]] = margin
        previous = token
    kv = caches[0].kv_heads * caches[0].head_dim
    emb = rng.normal(0, 1, (vocab, kv)).astype(np.float32)
    pos_emb = rng.normal(0, 1, (512, caches[0].head_dim)).astype(np.float32)
    w = rng.normal(0, 1, (caches[0].head_dim, len(rows))).astype(np.float32)
    inits = [
        numpy_helper.from_array(a, n)
        for n, a in [
            ("bigram", bigram),
            ("emb", emb),
            ("pos_emb", pos_emb),
            ("w", (noise * w).astype(np.float32)),
            ("last", np.array([-1], np.int64)),
            ("big", np.array([1 << 30], np.int64)),
            ("one", np.array([1], np.int64)),
            ("axes_13", np.array([1, 3], np.int64)),
            ("axes_12", np.array([1, 2], np.int64)),
            ("axis_2", np.array([2], np.int64)),
        ]
    ]
    nodes = [
        helper.make_node("Slice", ["input_ids", "last", "big", "one"], ["last_ids2"]),
        helper.make_node("Squeeze", ["last_ids2", "one"], ["last_ids"]),
        helper.make_node("Gather", ["bigram", "last_ids"], ["bigram_logits"]),
        helper.make_node("Slice", ["position_ids", "last", "big", "one"], ["last_pos2"]),
        helper.make_node("Squeeze", ["last_pos2", "one"], ["last_pos"]),
        helper.make_node("Gather", ["pos_emb", "last_pos"], ["pos_vec"]),
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", "axes_13"], ["mask_4d"]),
        helper.make_node("ReduceSum", ["mask_f", "one"], ["count"], keepdims=1),
        helper.make_node("Gather", ["emb", "input_ids"], ["new_flat"]),
        helper.make_node("Reshape", ["new_flat", "kv_shape"], ["new_split"]),  # [B, S, H, D]
        helper.make_node("Transpose", ["new_split"], ["new_kv"], perm=[0, 2, 1, 3]),
    ]
    inits.append(
        numpy_helper.from_array(
            np.array([0, 0, caches[0].kv_heads, caches[0].head_dim], np.int64), "kv_shape"
        )
    )
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "total"]),
        helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["batch", "seq"]),
    ]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(rows)])]
    sums = []
    for cache in caches:
        if cache.kv_heads * cache.head_dim != kv or cache.head_dim != caches[0].head_dim:
            raise ValueError("the fake decoder wants every cache of the same shape")
        for i in range(cache.layers):
            for kind in ("key", "value"):
                past, present = past_name(cache.name, i, kind), present_name(cache.name, i, kind)
                shape = ["batch", cache.kv_heads, "past", cache.head_dim]
                inputs.append(helper.make_tensor_value_info(past, TensorProto.FLOAT, shape))
                outputs.append(
                    helper.make_tensor_value_info(
                        present, TensorProto.FLOAT, ["batch", cache.kv_heads, "total", cache.head_dim]
                    )
                )
                nodes.append(helper.make_node("Concat", [past, "new_kv"], [present], axis=2))
            value = present_name(cache.name, i, "value")
            nodes += [
                helper.make_node("Mul", [value, "mask_4d"], [f"{value}_masked"]),
                helper.make_node("ReduceSum", [f"{value}_masked", "axes_12"], [f"{value}_sum"], keepdims=0),
            ]
            sums.append(f"{value}_sum")
    nodes.append(helper.make_node("Sum", sums, ["hist_sum"]))
    nodes += [
        helper.make_node("Div", ["hist_sum", "count"], ["hist_mean"]),
        helper.make_node("Add", ["hist_mean", "pos_vec"], ["features"]),
        helper.make_node("MatMul", ["features", "w"], ["noise_logits"]),
        helper.make_node("Add", ["bigram_logits", "noise_logits"], ["logits"]),
    ]
    graph = helper.make_graph(nodes, "bigram_decoder", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path))
    return path


def write_export_dir(
    directory: Path,
    tokenizer: Tokenizer,
    head_token_ids: Sequence[int] | None,
    build_decoder: Any,
    caches: Sequence[CacheSpec] = (CacheSpec("shadow", 2, 2, 4),),
    **extra: Any,
) -> Path:
    """An export directory: `build_decoder(path)` writes decoder.onnx; the manifest follows the contract."""
    directory.mkdir(parents=True, exist_ok=True)
    build_decoder(directory / "decoder.onnx")
    (directory / "tokenizer.json").write_text(tokenizer.to_str(), encoding="utf-8")
    vocab = tokenizer.get_vocab_size(with_added_tokens=True)
    head = (
        {"kind": "full", "size": vocab}
        if head_token_ids is None
        else {"kind": "action", "size": len(head_token_ids), "token_ids": list(head_token_ids)}
    )
    fields = {
        "mode": "detached",
        "precision": "fp32",
        "task": "causal_lm",
        "decoder": "decoder.onnx",
        "architecture": {
            "model_type": "llama",
            "hidden_size": 8,
            "vocab_size": vocab,
            "caches": [
                {"name": c.name, "layers": c.layers, "kv_heads": c.kv_heads, "head_dim": c.head_dim}
                for c in caches
            ],
        },
        "head": head,
        "special_tokens": {"bos": None, "eos": EOS_ID, "pad": EOS_ID},
        "prompt": {"prefix": PREFIX, "suffix": SUFFIX},
        "action_language": {"version": str(load_spec().version)},
        **extra,
    }
    write_manifest(directory, fields, ["decoder.onnx", "tokenizer.json"])
    return directory


def scripted_export(
    directory: Path, program: str, *, action_head: bool = True, noise: float = 0.05, **extra: Any
) -> Path:
    """An export directory over the tiny tokenizer whose decoder (a real onnxruntime graph) answers every command
    with `program`: over the action head, or with `action_head=False` over the full vocabulary (a chat model's
    answer); `extra` goes into the manifest."""
    from shadow_edge.runtime.grammar import action_vocabulary

    tokenizer = tiny_tokenizer()
    ids = action_vocabulary(tokenizer, EOS_ID) if action_head else None
    script = [*tokenizer.encode(program, add_special_tokens=False).ids, EOS_ID]
    start = tokenizer.encode(SUFFIX, add_special_tokens=False).ids[-1]
    vocab = tokenizer.get_vocab_size(with_added_tokens=True)
    return write_export_dir(
        directory,
        tokenizer,
        ids,
        lambda path: bigram_decoder(path, vocab, ids, script, start_id=start, noise=noise),
        **extra,
    )


# the Cyclone DDS profile the project ships for loopback-only runs (bound to lo, multicast off, peer 127.0.0.1)
CYCLONE_LOOPBACK = (
    Path(__file__).resolve().parents[1]
    / "ros2_ws"
    / "src"
    / "shadow_dog"
    / "config"
    / "cyclonedds_loopback.xml"
)
