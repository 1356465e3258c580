"""Greedy, grammar-constrained generation with a KV cache, over the decoder graph of the export contract.

One command = prefill the prompt (manifest prefix + text + suffix), then one-token steps that feed each step's
`present.*` back as the next `past.*`, choosing at every step the highest logit among the rows the grammar allows
(`constrained.TokenConstraint`), and stopping as soon as the program is whole: on end-of-sequence, or without another
model call when the grammar admits nothing but the end.

Speed, for batch size 1 (the robot):
- the prompt prefix (system prompt and chat markup) is the same for every command, so its K/V are computed once when
  the generator is built and every command prefills only its own text and the suffix;
- with `io_binding` the caches stay onnxruntime values between steps, so on a GPU they never leave the device; without
  it, `session.run` with numpy arrays. Auto: IOBinding when the session runs on CUDA / TensorRT, plain `run` on the
  CPU, where the per-step cache conversion is small against reading the weights (measured: a 24M-parameter decoder
  on one x86 core, 15.3 ms per step with numpy, 15.8 ms with IOBinding).

Confidence: every chosen token's probability under the *constrained* distribution (softmax over the allowed rows
only); the program's confidence is the smallest of them, the end-of-sequence decision included. A program is wrong
as soon as one token is, and the min flags that weakest decision, where a mean would be diluted by the many tokens
the grammar (almost) forces.

Batches: several commands can be decoded together (left padding, per-row grammar states) for evaluation
throughput; the prefix cache is used for batch size 1 only.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .grammar import ProgramGrammar
from .manifest import CacheSpec, Manifest

if TYPE_CHECKING:  # pragma: no cover
    from tokenizers import Tokenizer

    from .constrained import TokenConstraint

log = logging.getLogger(__name__)

DEFAULT_MAX_NEW_TOKENS = 64
GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")
STOP_EOS = "eos"  # the model chose end-of-sequence
STOP_COMPLETE = "complete"  # the grammar admits nothing more: no model call needed
STOP_MAX_TOKENS = "max_new_tokens"  # ran out of tokens; the program may be unfinished
STOP_DEAD_END = "dead_end"  # the head has no token that continues the program (a head missing tokens)


class GenerationError(RuntimeError):
    """The decoder failed (raised, or returned malformed or non-finite outputs); nothing from it may be used."""


class TokenizerError(RuntimeError):
    """The export's tokenizer.json cannot be read."""


def greedy_choice(scores: np.ndarray, step: int) -> tuple[int, float, float]:
    """Greedy pick among the allowed rows' logits: its index, its log-probability under the constrained
    distribution, and its lead over the runner-up (inf when only one row is allowed)."""
    best = int(np.argmax(scores))  # the first NaN, if there is one
    top = float(scores[best])
    if not math.isfinite(top):
        raise GenerationError(f"the decoder returned non-finite logits at step {step}")
    logprob = -float(np.log(np.sum(np.exp(scores - top))))
    if len(scores) < 2:
        return best, logprob, math.inf
    runner_up = float(np.partition(scores, -2)[-2])
    return best, logprob, top - runner_up


@dataclass
class GenerationResult:
    """One decoded program and how it was made. `text` is the model's program as written (not canonicalised)."""

    text: str
    token_ids: list[int]  # vocabulary ids of the program's tokens (end-of-sequence not included)
    token_logprobs: list[
        float
    ]  # per decision, under the constrained distribution (the eos decision last, if any)
    stop_reason: str
    prompt_tokens: int
    prefill_ms: float
    step_ms: list[float] = field(default_factory=list)
    total_ms: float = 0.0
    # per decision: how far (in log-probability) the chosen token is ahead of the runner-up; inf when forced
    token_margins: list[float] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """The grammar accepted the text as a whole program and decoding ended there."""
        return self.stop_reason in (STOP_EOS, STOP_COMPLETE)

    @property
    def new_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def confidence(self) -> float:
        """Smallest per-decision probability (1.0 when the grammar forced everything)."""
        return math.exp(min(self.token_logprobs)) if self.token_logprobs else 1.0

    @property
    def min_margin(self) -> float:
        """Smallest lead of a chosen token over the runner-up (log-probability; inf when the grammar forced all)."""
        return min(self.token_margins) if self.token_margins else math.inf

    @property
    def mean_logprob(self) -> float:
        return float(np.mean(self.token_logprobs)) if self.token_logprobs else 0.0

    @property
    def decode_ms_per_token(self) -> float | None:
        return float(np.mean(self.step_ms)) if self.step_ms else None

    def timings(self) -> dict[str, Any]:
        return {
            "prefill_ms": self.prefill_ms,
            "decode_ms_per_token": self.decode_ms_per_token,
            "steps": len(self.step_ms),
            "total_ms": self.total_ms,
        }


# -- decoder steps -----------------------------------------------------------------------------------------------


class _NumpyStepper:
    """`session.run` with numpy arrays; the caches are numpy arrays between steps."""

    def __init__(self, session: Any, caches: Sequence[CacheSpec]) -> None:
        self.session = session
        self.caches = list(caches)
        self.past_names = [n for c in self.caches for n in c.input_names()]
        self.output_names = ["logits", *(n for c in self.caches for n in c.output_names())]

    def empty_past(self, batch: int) -> list[Any]:
        return [
            np.zeros((batch, c.kv_heads, 0, c.head_dim), dtype=np.float32)
            for c in self.caches
            for _ in range(2 * c.layers)
        ]

    def __call__(
        self, ids: np.ndarray, mask: np.ndarray, pos: np.ndarray, past: list[Any]
    ) -> tuple[np.ndarray, list[Any]]:
        feed = {"input_ids": ids, "attention_mask": mask, "position_ids": pos}
        feed.update(zip(self.past_names, past, strict=True))
        outputs = self.session.run(self.output_names, feed)
        return np.asarray(outputs[0]), list(outputs[1:])


class _IOBindingStepper(_NumpyStepper):
    """IOBinding: caches stay `OrtValue`s on the session's device between steps; only the logits come back."""

    def __init__(self, session: Any, caches: Sequence[CacheSpec]) -> None:
        super().__init__(session, caches)
        import onnxruntime as ort

        self._ort = ort
        self.device = "cuda" if _runs_on_gpu(session) else "cpu"

    def empty_past(self, batch: int) -> list[Any]:
        return [self._ort.OrtValue.ortvalue_from_numpy(p, self.device, 0) for p in super().empty_past(batch)]

    def __call__(
        self, ids: np.ndarray, mask: np.ndarray, pos: np.ndarray, past: list[Any]
    ) -> tuple[np.ndarray, list[Any]]:
        binding = self.session.io_binding()
        binding.bind_cpu_input("input_ids", ids)
        binding.bind_cpu_input("attention_mask", mask)
        binding.bind_cpu_input("position_ids", pos)
        for name, value in zip(self.past_names, past, strict=True):
            binding.bind_ortvalue_input(name, value)
        binding.bind_output("logits", "cpu")
        for name in self.output_names[1:]:
            binding.bind_output(name, self.device)
        self.session.run_with_iobinding(binding)
        outputs = binding.get_outputs()
        return outputs[0].numpy(), list(outputs[1:])


# -- the generator -----------------------------------------------------------------------------------------------


def rows_interact(quantization: dict[str, Any] | None) -> bool:
    """Whether one row of a batch changes another's logits: dynamic INT8 (`DynamicQuantizeLinear`) quantizes each
    activation tensor with one scale over the whole batch, so a command's program depends on what it was batched
    with (measured: up to 0.39 in a token's probability, and another program for 5 of 48 recognised commands).
    Weight-only INT8/INT4 (`MatMulNBits`) and FP32 graphs keep rows apart."""
    return "DynamicQuantizeLinear" in str((quantization or {}).get("method", ""))


class Generator:
    """Greedy constrained generation over one decoder session (see the module docstring).

    `session`: an `onnxruntime.InferenceSession` (or any object with the same `run`) for a graph of the export
    contract; `row_token_ids`: the vocabulary id of each logits row (None: the full vocabulary); `constraint`: the
    allowed rows per grammar state for that head. Not thread-safe (the Commander serialises calls).
    """

    def __init__(
        self,
        session: Any,
        tokenizer: Tokenizer,
        caches: Sequence[CacheSpec],
        constraint: TokenConstraint,
        row_token_ids: Sequence[int] | None,
        prompt_prefix: str = "",
        prompt_suffix: str = "",
        pad_id: int = 0,
        io_binding: bool | None = None,
        prefix_cache: bool = True,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        rows_independent: bool = True,
    ) -> None:
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        self.session = session
        self.tokenizer = tokenizer
        self.caches = list(caches)
        self.constraint = constraint
        self.head_size = constraint.size
        ids = range(self.head_size) if row_token_ids is None else row_token_ids
        self.row_token_ids = np.asarray(list(ids), dtype=np.int64)
        if len(self.row_token_ids) != self.head_size:
            raise ValueError(f"{len(self.row_token_ids)} row token ids for a head of {self.head_size} rows")
        self.eos_row = constraint.eos_row
        self.pad_id = int(pad_id)
        self.max_new_tokens = int(max_new_tokens)
        self.prompt_prefix = prompt_prefix
        self.prompt_suffix = prompt_suffix
        self.rows_independent = bool(rows_independent)
        self._literal = hasattr(tokenizer, "encode_special_tokens")  # tokenizers >= 0.15
        if not self._literal:
            log.warning(
                "this tokenizer cannot encode special tokens literally; commands are tokenized as they come"
            )
        self._prefix_ids = self._encode(prompt_prefix, special=True)
        self._suffix_ids = self._encode(prompt_suffix, special=True)
        if io_binding is None:
            io_binding = _runs_on_gpu(session)
        self.io_binding = bool(io_binding)
        self._step = (
            _IOBindingStepper(session, self.caches) if self.io_binding else _NumpyStepper(session, caches)
        )
        self._prefix_past: list[Any] | None = None
        if prefix_cache and self._prefix_ids:
            ids_, mask, pos = _prefill_inputs([self._prefix_ids], self.pad_id, 0)
            _, self._prefix_past = self._run(ids_, mask, pos, self._step.empty_past(1), "prefix prefill")

    @classmethod
    def from_manifest(
        cls,
        manifest: Manifest,
        session: Any,
        tokenizer: Tokenizer | None = None,
        grammar: ProgramGrammar | None = None,
        **kwargs: Any,
    ) -> Generator:
        """A generator for a verified export directory and a session of its decoder."""
        from .constrained import TokenConstraint

        tokenizer = tokenizer or load_tokenizer(manifest)
        kwargs.setdefault("rows_independent", not rows_interact(manifest.raw.get("quantization")))
        special = manifest.special_tokens
        eos = int(special["eos"])
        pad = special.get("pad")
        head = manifest.raw["head"]
        constraint = TokenConstraint.for_head(
            grammar or ProgramGrammar(), tokenizer, eos, manifest.head_token_ids, int(head["size"])
        )
        return cls(
            session,
            tokenizer,
            manifest.caches,
            constraint,
            manifest.head_token_ids,
            prompt_prefix=manifest.prompt_prefix,
            prompt_suffix=manifest.prompt_suffix,
            pad_id=eos if pad is None else int(pad),
            **kwargs,
        )

    # -- prompts -------------------------------------------------------------------------------------------------

    def _encode(self, text: str, special: bool) -> list[int]:
        if not text:
            return []
        if special or not self._literal:
            return list(self.tokenizer.encode(text, add_special_tokens=False).ids)
        self.tokenizer.encode_special_tokens = True
        try:
            return list(self.tokenizer.encode(text, add_special_tokens=False).ids)
        finally:
            self.tokenizer.encode_special_tokens = False

    def encode_prompt(self, text: str) -> list[int]:
        """Prompt ids: prefix and suffix with their special tokens, the command's own text literally (a user who
        types "<|im_end|>" gets those characters, not the end-of-turn token). For ordinary text the ids equal those
        of tokenizing prefix + text + suffix at once, as in training."""
        return self._prefix_ids + self._encode(text, special=False) + self._suffix_ids

    # -- pieces for decoders built on this one (runtime/batched.py) -------------------------------------------------

    @property
    def prefix_ids(self) -> list[int]:
        """Token ids of the prompt prefix every command starts with."""
        return list(self._prefix_ids)

    @property
    def prefix_past(self) -> list[Any] | None:
        """The prefix's K/V for batch size 1 (None without the prefix cache); read-only by convention."""
        return self._prefix_past

    def empty_past(self, batch: int) -> list[Any]:
        """Empty caches for `batch` rows, in the stepper's form (numpy arrays, or OrtValues with io_binding)."""
        return self._step.empty_past(batch)

    def decoder_step(self, ids: np.ndarray, mask: np.ndarray, pos: np.ndarray, past: list[Any], where: str):
        """One decoder call: (logits [B, head_size], present caches); `GenerationError` if it fails or its logits
        have the wrong shape."""
        return self._run(ids, mask, pos, past, where)

    # -- decoding ------------------------------------------------------------------------------------------------

    def _run(self, ids: np.ndarray, mask: np.ndarray, pos: np.ndarray, past: list[Any], where: str):
        try:
            logits, present = self._step(ids, mask, pos, past)
        except Exception as exc:
            raise GenerationError(f"the decoder failed during {where}: {type(exc).__name__}: {exc}") from exc
        if logits.shape != (ids.shape[0], self.head_size):
            raise GenerationError(
                f"the decoder returned logits of shape {tuple(logits.shape)} during {where}; expected "
                f"{(ids.shape[0], self.head_size)} (batch, head size from the manifest)"
            )
        return logits, present

    def generate(self, text: str, max_new_tokens: int | None = None) -> GenerationResult:
        """The program for one command text (batch size 1, prefix cache)."""
        start = time.perf_counter()
        result = self.generate_ids([self.encode_prompt(text)], max_new_tokens)[0]
        result.total_ms = (time.perf_counter() - start) * 1000.0
        return result

    def generate_batch(
        self, texts: Sequence[str], max_new_tokens: int | None = None
    ) -> list[GenerationResult]:
        """Programs for several commands decoded together (left padding); same programs as one at a time, up to
        floating-point differences of the batched graph. A graph whose rows interact (`rows_interact`) decodes them
        one at a time instead, so that evaluations measure what a single command gets."""
        start = time.perf_counter()
        if self.rows_independent:
            results = self.generate_ids([self.encode_prompt(t) for t in texts], max_new_tokens)
        else:
            results = [self.generate_ids([self.encode_prompt(t)], max_new_tokens)[0] for t in texts]
        total = (time.perf_counter() - start) * 1000.0
        for r in results:
            r.total_ms = total
        return results

    def generate_ids(
        self, prompts: Sequence[Sequence[int]], max_new_tokens: int | None = None
    ) -> list[GenerationResult]:
        """Constrained greedy decoding of already tokenized prompts; raises `GenerationError` if the decoder fails."""
        if not prompts or any(len(p) == 0 for p in prompts):
            raise ValueError("every prompt needs at least one token")
        limit = self.max_new_tokens if max_new_tokens is None else int(max_new_tokens)
        start = time.perf_counter()
        batch = len(prompts)
        n_prefix = len(self._prefix_ids)
        if (
            batch == 1
            and self._prefix_past is not None
            and len(prompts[0]) > n_prefix
            and list(prompts[0][:n_prefix]) == self._prefix_ids
        ):
            ids, mask, pos = _prefill_inputs([list(prompts[0][n_prefix:])], self.pad_id, n_prefix)
            past = self._prefix_past
        else:
            ids, mask, pos = _prefill_inputs([list(p) for p in prompts], self.pad_id, 0)
            past = self._step.empty_past(batch)
        logits, past = self._run(ids, mask, pos, past, "prefill")
        prefill_ms = (time.perf_counter() - start) * 1000.0

        constraint = self.constraint
        states = [constraint.initial] * batch
        rows: list[list[int]] = [[] for _ in range(batch)]
        logprobs: list[list[float]] = [[] for _ in range(batch)]
        margins: list[list[float]] = [[] for _ in range(batch)]
        reasons: list[str | None] = [None] * batch
        next_pos = pos[:, -1] + 1
        step_ms: list[float] = []
        for step in range(limit):
            chosen = np.full((batch, 1), self.pad_id, dtype=np.int64)
            for b in range(batch):
                if reasons[b] is not None:
                    continue
                allowed = constraint.allowed_rows(states[b])
                if len(allowed) == 0:
                    reasons[b] = STOP_DEAD_END
                    continue
                best, logprob, margin = greedy_choice(logits[b, allowed], step)
                logprobs[b].append(logprob)
                margins[b].append(margin)
                row = int(allowed[best])
                if row == self.eos_row:
                    reasons[b] = STOP_EOS
                    continue
                rows[b].append(row)
                states[b] = constraint.advance(states[b], row)
                if constraint.only_eos(states[b]):
                    reasons[b] = STOP_COMPLETE
                chosen[b, 0] = self.row_token_ids[row]
            if all(r is not None for r in reasons) or step == limit - 1:
                break
            t0 = time.perf_counter()
            mask = np.concatenate([mask, np.ones((batch, 1), dtype=np.int64)], axis=1)
            logits, past = self._run(chosen, mask, next_pos[:, None].copy(), past, f"decode step {step + 1}")
            next_pos = next_pos + 1
            step_ms.append((time.perf_counter() - t0) * 1000.0)

        texts = constraint.row_texts
        return [
            GenerationResult(
                text="".join(texts[r] or "" for r in rows[b]),
                token_ids=[int(self.row_token_ids[r]) for r in rows[b]],
                token_logprobs=logprobs[b],
                token_margins=margins[b],
                stop_reason=reasons[b] or STOP_MAX_TOKENS,
                prompt_tokens=len(prompts[b]),
                prefill_ms=prefill_ms,
                step_ms=list(step_ms),
                total_ms=(time.perf_counter() - start) * 1000.0,
            )
            for b in range(batch)
        ]


def _runs_on_gpu(session: Any) -> bool:
    providers = session.get_providers() if hasattr(session, "get_providers") else []
    return bool(providers) and providers[0] in GPU_PROVIDERS and hasattr(session, "io_binding")


def _prefill_inputs(prompts: list[list[int]], pad_id: int, past_len: int) -> tuple[np.ndarray, ...]:
    """Left-padded ids, attention mask (past included) and position ids for a prefill after `past_len` tokens."""
    length = max(len(p) for p in prompts)
    ids = np.full((len(prompts), length), pad_id, dtype=np.int64)
    mask = np.zeros((len(prompts), past_len + length), dtype=np.int64)
    mask[:, :past_len] = 1
    for b, p in enumerate(prompts):
        ids[b, length - len(p) :] = p
        mask[b, past_len + length - len(p) :] = 1
    pos = np.clip(np.cumsum(mask, axis=1) - 1, 0, None)[:, past_len:].astype(np.int64)
    return ids, mask, pos


def load_tokenizer(manifest: Manifest) -> Tokenizer:
    """The export's `tokenizer.json`; a clear error naming the file if it cannot be read."""
    from tokenizers import Tokenizer

    path = manifest.tokenizer_path
    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception on a malformed file
        raise TokenizerError(f"{path}: tokenizers could not load it ({exc})") from None
