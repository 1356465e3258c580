"""Validation of a chat export (the frozen base alone, full vocabulary): free-text answers, not programs.

Both checks run the same plain cached greedy decode (batch 1, `present` fed back as `past`, as a server decodes)
over any session with onnxruntime's `run(output_names, feed)`: the ONNX file or the torch graph behind
`validate_programs.TorchDecoderSession`.

- `greedy_agreement`: the FP32 ONNX answer equals PyTorch's token for token on real prompts;
- `teacher_forced_agreement`: a quantized file is fed PyTorch's answer token by token and, at every position,
  its top-1 token is compared with PyTorch's (and the logit vectors' cosine): a measure that does not fall apart
  after the first differing token as greedy equality does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from shadow_edge.runtime.manifest import CacheSpec


@dataclass(frozen=True)
class Decoded:
    tokens: list[int]  # chosen (greedy) or fed (teacher-forced) tokens after the prompt
    logits: list[np.ndarray]  # the logits that chose each of them, [vocab] each


def decode(
    session: Any,
    caches: Sequence[CacheSpec],
    prompt: Sequence[int],
    max_new_tokens: int,
    eos_id: int,
    forced: Sequence[int] | None = None,
) -> Decoded:
    """Greedy decode of `prompt` (or, with `forced`, feed those tokens instead of the argmax)."""
    ids = np.asarray([list(prompt)], dtype=np.int64)
    past = {
        name: np.zeros((1, cache.kv_heads, 0, cache.head_dim), dtype=np.float32)
        for cache in caches
        for name in cache.input_names()
    }
    present = [name for cache in caches for name in cache.output_names()]
    seen, tokens, logits = 0, [], []
    steps = len(forced) if forced is not None else max_new_tokens
    for step in range(steps):
        length = ids.shape[1]
        feed = {
            "input_ids": ids,
            "attention_mask": np.ones((1, seen + length), dtype=np.int64),
            "position_ids": np.arange(seen, seen + length, dtype=np.int64)[None],
            **past,
        }
        out = session.run(["logits", *present], feed)
        row = np.asarray(out[0][0], dtype=np.float32)
        token = int(forced[step]) if forced is not None else int(row.argmax())
        logits.append(row)
        tokens.append(token)
        if forced is None and token == eos_id:
            break
        seen += length
        past = dict(zip((n.replace("present.", "past.", 1) for n in present), out[1:], strict=True))
        ids = np.asarray([[token]], dtype=np.int64)
    return Decoded(tokens, logits)


def greedy_agreement(
    reference: Any, candidate: Any, caches: Sequence[CacheSpec], prompts: Sequence[Sequence[int]],
    max_new_tokens: int, eos_id: int,
) -> dict[str, Any]:  # fmt: skip
    """How many prompts get the very same greedy answer from both sessions, and the first that differ."""
    differ, same = [], 0
    for index, prompt in enumerate(prompts):
        want = decode(reference, caches, prompt, max_new_tokens, eos_id).tokens
        got = decode(candidate, caches, prompt, max_new_tokens, eos_id).tokens
        same += int(want == got)
        if want != got and len(differ) < 5:
            differ.append({"prompt": index, "reference": want, "candidate": got})
    return {"n": len(prompts), "equal": same, "rate": same / max(1, len(prompts)), "differ": differ}


def teacher_forced_agreement(
    reference: Any, candidate: Any, caches: Sequence[CacheSpec], prompts: Sequence[Sequence[int]],
    max_new_tokens: int, eos_id: int,
) -> dict[str, Any]:  # fmt: skip
    """Top-1 agreement and logit cosine of `candidate` against `reference` along the reference's greedy answers."""
    agree, total, cosines = 0, 0, []
    for prompt in prompts:
        want = decode(reference, caches, prompt, max_new_tokens, eos_id)
        got = decode(candidate, caches, prompt, max_new_tokens, eos_id, forced=want.tokens)
        for a, b in zip(want.logits, got.logits, strict=True):
            agree += int(a.argmax() == b.argmax())
            total += 1
            cosines.append(float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12)))
    return {
        "positions": total,
        "top1_agreement": agree / max(1, total),
        "mean_cosine": float(np.mean(cosines)) if cosines else 0.0,
        "min_cosine": float(np.min(cosines)) if cosines else 0.0,
    }
