"""Check an exported ONNX graph against the torch graph it came from, at shapes other than the traced ones.

The graph is traced once (B=2, S=5, P=3); a dimension the tracer wrongly baked in, a mask that is wrong under left
padding or a cache that does not line up only shows at other shapes or over several decode steps. So this runs:

- single forwards at batch 1 and 3, 1 and 7 new tokens, 0 and several past tokens, with left padding (the past
  K/V comes from running the torch graph on the prefix, so it is real), comparing every output;
- a cached greedy decode through onnxruntime (prompt, then one token at a time feeding `present` back as `past`)
  against recomputing the whole sequence in torch at every step: logits and the chosen tokens.

Classifier graphs (no cache) get the single forwards only, with left and right padding. Everything is small, so it
costs a few seconds even for the 30-layer SmolLM2 on CPU. The result is a dict for report.json.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)

# (batch, new tokens, past tokens, left padding per row over past + new)
FORWARD_CASES = (
    (1, 7, 0, (0,)),
    (3, 7, 0, (0, 2, 5)),
    (3, 1, 6, (0, 3, 5)),
    (3, 2, 5, (6, 0, 1)),
)
CLASSIFIER_CASES = (  # (batch, tokens, padding per row; negative = right padding)
    (1, 7, (0,)),
    (3, 4, (0, 1, 3)),
    (3, 9, (0, -2, -5)),
)
DECODE_PROMPT = (2, 6, (0, 2))  # batch, prompt length, left padding


def _session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class _Runner:
    """Runs the same named inputs through torch and onnxruntime."""

    def __init__(self, path: Path, graph: nn.Module, threads: int) -> None:
        self.graph = graph
        self.session = _session(path, threads)
        self.inputs = graph.input_names()
        self.outputs = graph.output_names()
        got_in = [i.name for i in self.session.get_inputs()]
        got_out = [o.name for o in self.session.get_outputs()]
        if got_in != self.inputs or got_out != self.outputs:
            raise ValueError(
                f"{path}: the ONNX graph's I/O does not match the torch graph "
                f"(inputs {got_in[:4]}..., outputs {got_out[:4]}...; expected {self.inputs[:4]}..., {self.outputs[:4]}...)"
            )

    def torch(self, args: Sequence[torch.Tensor]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            out = self.graph(*args)
        out = out if isinstance(out, tuple) else (out,)
        return {name: tensor.numpy() for name, tensor in zip(self.outputs, out, strict=True)}

    def onnx(self, args: Sequence[torch.Tensor]) -> dict[str, np.ndarray]:
        feed = {name: tensor.numpy() for name, tensor in zip(self.inputs, args, strict=True)}
        return dict(zip(self.outputs, self.session.run(self.outputs, feed), strict=True))


def _max_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray], names: Sequence[str]) -> float:
    return max((float(np.abs(a[n] - b[n]).max(initial=0.0)) for n in names), default=0.0)


def _max_abs(outputs: dict[str, np.ndarray], names: Sequence[str]) -> float:
    """The largest |reference logit|: the scale a relative tolerance is taken of."""
    return max((float(np.abs(outputs[n]).max(initial=0.0)) for n in names), default=0.0)


def _batch(graph: nn.Module, batch: int, total: int, padding: Sequence[int], seed: int):
    """Token ids, mask and padding-aware position ids over the whole sequence (pad < 0: right padding)."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, graph.vocab_size, (batch, total), generator=gen)
    mask = torch.ones(batch, total, dtype=torch.long)
    for row, pad in enumerate(padding):
        if pad > 0:
            mask[row, :pad] = 0
        elif pad < 0:
            mask[row, pad:] = 0
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids, mask, positions


def _empty_past(graph: nn.Module, batch: int) -> list[torch.Tensor]:
    return [
        torch.zeros(batch, cache["kv_heads"], 0, cache["head_dim"])
        for cache in graph.caches
        for _ in range(2 * cache["layers"])
    ]


def _present(outputs: dict[str, np.ndarray], graph: nn.Module) -> list[torch.Tensor]:
    return [torch.from_numpy(outputs[name]) for name in graph.output_names() if name.startswith("present.")]


def _forward_checks(runner: _Runner, seed: int) -> list[dict[str, Any]]:
    graph = runner.graph
    heads = ["logits", *graph.extra_outputs]
    presents = [n for n in runner.outputs if n.startswith("present.")]
    checks = []
    for index, (batch, new, past, padding) in enumerate(FORWARD_CASES):
        ids, mask, positions = _batch(graph, batch, past + new, padding, seed + index)
        cache = _empty_past(graph, batch)
        if past:  # real K/V: the torch graph's own output for the prefix
            cache = _present(
                runner.torch((ids[:, :past], mask[:, :past], positions[:, :past], *cache)), graph
            )
        args = (ids[:, past:], mask, positions[:, past:], *cache)
        want, got = runner.torch(args), runner.onnx(args)
        full = runner.torch((ids, mask, positions, *_empty_past(graph, batch)))
        checks.append(
            {
                "check": "forward",
                "batch": batch,
                "sequence": new,
                "past": past,
                "left_padding": list(padding),
                "logit_diff": _max_diff(got, want, heads),
                "logit_scale": _max_abs(want, heads),
                "present_diff": _max_diff(got, want, presents),
                "torch_incremental_vs_full": _max_diff(want, full, heads),
            }
        )
    return checks


def _classifier_checks(runner: _Runner, seed: int) -> list[dict[str, Any]]:
    graph = runner.graph
    checks = []
    for index, (batch, tokens, padding) in enumerate(CLASSIFIER_CASES):
        ids, mask, _ = _batch(graph, batch, tokens, padding, seed + index)
        want, got = runner.torch((ids, mask)), runner.onnx((ids, mask))
        checks.append(
            {
                "check": "forward",
                "batch": batch,
                "sequence": tokens,
                "padding": list(padding),
                "logit_diff": _max_diff(got, want, ["logits", *graph.extra_outputs]),
                "logit_scale": _max_abs(want, ["logits", *graph.extra_outputs]),
            }
        )
    return checks


def _decode_check(runner: _Runner, steps: int, seed: int) -> dict[str, Any]:
    """Greedy decode with the ONNX caches vs full torch recomputation of the growing sequence at every step."""
    graph = runner.graph
    head_ids = getattr(graph, "head_token_ids", None)
    batch, prompt, padding = DECODE_PROMPT
    ids, mask, positions = _batch(graph, batch, prompt, padding, seed)
    args = (ids, mask, positions, *_empty_past(graph, batch))
    diffs, tokens_match, generated, scale = [], True, [], 0.0
    for _ in range(steps):
        got = runner.onnx(args)
        full = runner.torch((ids, mask, (mask.cumsum(-1) - 1).clamp(min=0), *_empty_past(graph, batch)))
        diffs.append(_max_diff(got, full, ["logits", *graph.extra_outputs]))
        scale = max(scale, _max_abs(full, ["logits", *graph.extra_outputs]))
        # compare token ids, not head rows: a head may list a token twice
        to_ids = (
            (lambda rows: [head_ids[r] for r in rows]) if head_ids else (lambda rows: [int(r) for r in rows])
        )
        chosen = to_ids(got["logits"].argmax(-1))
        tokens_match &= chosen == to_ids(full["logits"].argmax(-1))
        token = torch.tensor(chosen).view(batch, 1)
        generated.append(token.view(-1).tolist())
        ids = torch.cat((ids, token), dim=1)
        mask = torch.cat((mask, torch.ones(batch, 1, dtype=torch.long)), dim=1)
        step_positions = mask.sum(-1, keepdim=True) - 1
        args = (token, mask, step_positions, *_present(got, graph))
    return {
        "check": "greedy_decode",
        "batch": batch,
        "prompt": prompt,
        "left_padding": list(padding),
        "steps": steps,
        "step_logit_diffs": diffs,
        "logit_diff": max(diffs),
        "logit_scale": scale,
        "tokens_match": tokens_match,
        "tokens": generated,
    }


def validate_decoder(
    onnx_path: str | Path,
    graph: nn.Module,
    atol: float = 1e-3,
    rtol: float = 0.0,
    decode_steps: int = 4,
    seed: int = 0,
    threads: int = 0,
) -> dict[str, Any]:
    """Compare the ONNX file with `graph` (the torch module it was exported from).

    Numerical mismatches are reported, not raised (`passed` is False); a file whose I/O names differ from the
    graph's raises ValueError.

    Returns `max_abs_logit_diff` (ONNX vs torch over every check and head output), `max_abs_present_diff`,
    `max_abs_incremental_diff` (cached ONNX decode vs full torch recomputation), `greedy_tokens_match`, `passed`
    (every logit difference <= `atol + rtol * logit_scale`, the largest |reference logit|, and the greedy tokens
    agree) and the per-check details.
    """
    start = time.monotonic()
    graph.eval()
    runner = _Runner(Path(onnx_path), graph, threads)
    if graph.task == "seq_cls":
        checks = _classifier_checks(runner, seed)
    else:
        checks = [*_forward_checks(runner, seed), _decode_check(runner, decode_steps, seed + 100)]
    forward = [c for c in checks if c["check"] == "forward"]
    decode = [c for c in checks if c["check"] == "greedy_decode"]
    result = {
        "max_abs_logit_diff": max(c["logit_diff"] for c in checks),
        "max_abs_present_diff": max((c.get("present_diff", 0.0) for c in forward), default=0.0),
        "max_abs_incremental_diff": max((c["logit_diff"] for c in decode), default=0.0),
        "max_torch_incremental_vs_full": max(
            (c.get("torch_incremental_vs_full", 0.0) for c in forward), default=0.0
        ),
        "greedy_tokens_match": all(c["tokens_match"] for c in decode),
        "atol": atol,
        "rtol": rtol,
        "logit_scale": max(c["logit_scale"] for c in checks),
        "checks": checks,
    }
    # as numpy's allclose, with the scale of the logits: deep graphs accumulate float32 rounding in proportion
    result["tolerance"] = atol + rtol * result["logit_scale"]
    result["passed"] = bool(
        result["max_abs_logit_diff"] <= result["tolerance"]
        and result["max_torch_incremental_vs_full"] <= result["tolerance"]
        and result["greedy_tokens_match"]
    )
    result["seconds"] = round(time.monotonic() - start, 3)
    log = logger.info if result["passed"] else logger.warning
    log(
        "validated %s: max |logit diff| %.2e, incremental %.2e, greedy tokens %s (%.1f s)",
        onnx_path,
        result["max_abs_logit_diff"],
        result["max_abs_incremental_diff"],
        "match" if result["greedy_tokens_match"] else "DIFFER",
        result["seconds"],
    )
    return result
