"""Program-level validation of an export: what the robot would actually receive, not only logits.

The runtime's own `Generator` (constrained greedy decoding with the prefix KV cache) is driven by three kinds of
session so that every comparison runs exactly the decoding code the robot runs:

- `TorchDecoderSession`: the torch export graph behind the `session.run(output_names, feed)` interface, i.e. the
  PyTorch reference with the same I/O contract as the ONNX file;
- an onnxruntime session of the FP32 file;
- an onnxruntime session of the quantized file.

Checks (each a plain dict for report.json):

- `program_agreement`: share of real prompts on which two sessions produce the same program (ONNX vs PyTorch;
  restricted action head vs full head);
- the task's accuracy on a labelled split is scored by the task plug-in (`export.task_checks`; the robot dog:
  the spec's exact-match scoring, overall / per language / per command).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from shadow_edge.runtime.constrained import TokenConstraint
from shadow_edge.runtime.generate import Generator
from shadow_edge.runtime.grammar import ProgramGrammar
from shadow_edge.runtime.manifest import CacheSpec
from shadow_edge.runtime.scoring import program_matches
from torch import nn
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

DEFAULT_BATCH = 16
MAX_NEW_TOKENS = 48  # the longest program in the test split is 41 tokens with SmolLM2's tokenizer


class TorchDecoderSession:
    """A torch export graph (`export.decoder_graph`) with onnxruntime's `run(output_names, feed)` interface."""

    def __init__(self, graph: nn.Module) -> None:
        self.graph = graph.eval()
        self.input_names = graph.input_names()
        self.output_names = graph.output_names()

    def run(self, output_names: Sequence[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        args = [torch.from_numpy(np.ascontiguousarray(feed[name])) for name in self.input_names]
        with torch.inference_mode():
            out = self.graph(*args)
        out = out if isinstance(out, tuple) else (out,)
        named = dict(zip(self.output_names, (t.numpy() for t in out), strict=True))
        return [named[name] for name in (output_names or self.output_names)]


def make_generator(
    session: Any,
    tokenizer: Any,
    caches: Sequence[CacheSpec],
    head_token_ids: Sequence[int] | None,
    head_size: int,
    eos_id: int,
    pad_id: int,
    prefix: str,
    suffix: str,
    grammar: ProgramGrammar | None = None,
    rows_independent: bool = True,
) -> Generator:
    """A runtime generator over `session`, built the way `Generator.from_manifest` builds it on the device
    (`rows_independent`: False for a graph whose batch rows interact, see `runtime.generate.rows_interact`)."""
    constraint = TokenConstraint.for_head(
        grammar or ProgramGrammar(), tokenizer, eos_id, head_token_ids, head_size
    )
    return Generator(
        session,
        tokenizer,
        caches,
        constraint,
        head_token_ids,
        prompt_prefix=prefix,
        prompt_suffix=suffix,
        pad_id=pad_id,
        io_binding=False,
        max_new_tokens=MAX_NEW_TOKENS,
        rows_independent=rows_independent,
    )


def generate_programs(
    generator: Generator, texts: Sequence[str], what: str, batch_size: int = DEFAULT_BATCH
) -> list[str]:
    """Programs for `texts` in batches (left padding, as the runtime batches), with a progress bar."""
    programs: list[str] = []
    with tqdm(total=len(texts), desc=what, unit="cmd", leave=False) as bar:
        for start in range(0, len(texts), batch_size):
            chunk = list(texts[start : start + batch_size])
            programs += [r.text for r in generator.generate_batch(chunk)]
            bar.update(len(chunk))
    return programs


def program_agreement(
    reference: Sequence[str], candidate: Sequence[str], texts: Sequence[str], limit: int = 10
) -> dict[str, Any]:
    """Share of prompts with the same program (canonical comparison), and the first disagreements."""
    same = [program_matches(c, r) or c == r for r, c in zip(reference, candidate, strict=True)]
    differ = [
        {"text": t, "reference": r, "candidate": c}
        for t, r, c, ok in zip(texts, reference, candidate, same, strict=True)
        if not ok
    ]
    return {
        "n": len(same),
        "agree": int(sum(same)),
        "rate": sum(same) / max(1, len(same)),
        "differ": differ[:limit],
    }


def accuracy_loss_points(reference: dict[str, Any], candidate: dict[str, Any]) -> float:
    """Accuracy points lost by `candidate` against `reference` on the same examples (negative: it gained)."""
    return round(100.0 * (reference["accuracy"] - candidate["accuracy"]), 3)
