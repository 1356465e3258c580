"""Continuous batching: concurrent commands share the decoder's steps (one batched KV-cache decode).

`BatchedDecoder(generator, max_batch)` runs one decoding thread over a `Generator`'s session. Commands are submitted
from any thread (`submit(text) -> Future[GenerationResult]`, or the blocking `generate(text)`); at every step
boundary the thread

1. takes waiting commands (up to `max_batch` rows in flight) and prefills them after the shared prompt prefix (the
   generator's prefix cache, repeated per row), choosing each one's first token. Commands of the same length share
   a prefill call; no prefill is padded (see `_length_groups`);
2. merges their caches into the running batch in one copy (left padding: every row's attention mask is 0 where it
   has no token, positions count real tokens only, as `Generator.generate_batch` does);
3. runs one decode step for every row in flight, chooses each row's next token under its own grammar state, and
   drops the rows that finished (and the cache columns no row needs any more).

A command arriving mid-batch therefore waits at most one step, not for the whole batch to end. Token choice is the
same as `Generator.generate_ids` (greedy over the allowed rows, logprob under the constrained distribution, the same
stop reasons and `max_new_tokens` budget); a test checks the results against the generator's field by field.

Faults stay local: a decoder failure during a join fails the joining commands only, one during a step fails the rows
in flight, non-finite logits fail their row; the thread itself never dies, and `close()` fails what is left.

Caches are numpy arrays (rows are merged and dropped between steps), so the generator must not use IOBinding.
`BatchingCommander` is the `Commander` whose decodes go through a `BatchedDecoder` (same manifest checks,
sanitation, routing and safety layer).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .commander import Commander
from .generate import (
    STOP_COMPLETE,
    STOP_DEAD_END,
    STOP_EOS,
    STOP_MAX_TOKENS,
    GenerationError,
    GenerationResult,
    Generator,
    greedy_choice,
)
from .grammar import State

log = logging.getLogger(__name__)

DEFAULT_MAX_BATCH = 8
DEFAULT_MAX_QUEUE = 256
_IDLE_POLL_S = 0.1  # how often an idle decoding thread looks whether it was closed
PREFILL_MAX_PADDING = (
    1.25  # a prefill call computes at most this many tokens per real one (see _length_groups)
)


class DecoderClosed(RuntimeError):
    """The batched decoder was closed; the command was not decoded."""


class QueueFull(RuntimeError):
    """More commands are waiting than the decoder accepts; the command was not decoded."""


@dataclass
class _Row:
    """One command in flight: its prompt, grammar state, choices so far and where its result goes."""

    text: str
    limit: int
    future: Future
    submitted: float
    prompt: list[int] = field(default_factory=list)
    state: State | None = None
    rows: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    margins: list[float] = field(default_factory=list)
    reason: str | None = None
    choices: int = 0
    next_token: int = 0
    next_pos: int = 0
    prefill_ms: float = 0.0
    step_ms: list[float] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.reason is not None


class BatchedDecoder:
    """Shares decode steps between concurrent commands over one generator (see the module docstring).

    `on_step(rows)` is called after every decoder call with the number of rows it decoded (metrics).
    """

    def __init__(
        self,
        generator: Generator,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_queue: int = DEFAULT_MAX_QUEUE,
        on_step: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if generator.io_binding:
            raise ValueError(
                "batched decoding merges numpy caches: build the generator with io_binding=False"
            )
        self.generator = generator
        self.max_batch = int(max_batch)
        self.on_step = on_step
        self._queue: queue.Queue[_Row] = queue.Queue(maxsize=max_queue)
        self._closed = threading.Event()
        self._active: list[_Row] = []
        self._past: list[np.ndarray] = []
        self._mask = np.zeros((0, 0), dtype=np.int64)
        self._thread = threading.Thread(target=self._loop, name="batched-decoder", daemon=True)
        self._thread.start()

    # -- the callers' side -------------------------------------------------------------------------------------------

    def submit(self, text: str, max_new_tokens: int | None = None) -> Future:
        """Queue one command; the future resolves to its `GenerationResult` (or `GenerationError`)."""
        if self._closed.is_set():
            raise DecoderClosed("the batched decoder is closed")
        limit = self.generator.max_new_tokens if max_new_tokens is None else int(max_new_tokens)
        if limit < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {limit}")
        row = _Row(text=text, limit=limit, future=Future(), submitted=time.perf_counter())
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            raise QueueFull(f"{self._queue.maxsize} commands are already waiting") from None
        return row.future

    def generate(
        self, text: str, max_new_tokens: int | None = None, timeout: float | None = None
    ) -> GenerationResult:
        """`submit` and wait; raises what decoding raised, or `TimeoutError` after `timeout` seconds."""
        return self.submit(text, max_new_tokens).result(timeout)

    @property
    def in_flight(self) -> int:
        """Rows being decoded now (read without a lock: a gauge, not a promise)."""
        return len(self._active)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the decoding thread; commands not finished by then fail with `DecoderClosed`."""
        self._closed.set()
        self._thread.join(timeout)
        for row in self._drain():
            _fail(row, DecoderClosed("the batched decoder was closed"))

    def __enter__(self) -> BatchedDecoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the decoding thread -----------------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._closed.is_set():
            try:
                new = self._take()
                if new:
                    self._join(new)
                if self._active:
                    self._step()
            except Exception as exc:  # a bug: fail what is in flight, keep serving
                log.exception("batched decoding failed")
                self._fail_active(GenerationError(f"batched decoding failed: {type(exc).__name__}: {exc}"))
        for row in self._active:
            _fail(row, DecoderClosed("the batched decoder was closed"))
        self._active = []

    def _take(self) -> list[_Row]:
        """Waiting commands that fit in the batch; blocks (briefly, in turns) only when nothing is in flight."""
        room = self.max_batch - len(self._active)
        rows: list[_Row] = []
        if room <= 0:
            return rows
        if not self._active:
            try:
                rows.append(self._queue.get(timeout=_IDLE_POLL_S))
            except queue.Empty:
                return rows
        while len(rows) < room:
            try:
                rows.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return [r for r in rows if r.future.set_running_or_notify_cancel()]

    def _join(self, rows: list[_Row]) -> None:
        """Prefill new commands (in groups of the same length) and merge the unfinished ones into the running batch."""
        gen = self.generator
        tails: list[tuple[_Row, list[int], int]] = []
        for row in rows:
            try:
                row.prompt = gen.encode_prompt(row.text)
            except Exception as exc:  # a tokenizer failure concerns this command only
                _fail(row, GenerationError(f"the command could not be tokenized: {exc}"))
                continue
            row.state = gen.constraint.initial
            tails.append((row, *self._tail(row.prompt)))
        parts: list[tuple[list[np.ndarray], np.ndarray]] = []
        joined: list[_Row] = []
        for group in _length_groups(tails):
            part = self._prefill_group(group)
            if part is not None:
                parts.append(part[:2])
                joined.extend(part[2])
        if not parts:
            return
        if self._active:
            parts.insert(0, (self._past, self._mask))
        self._past, self._mask = _merge_right_aligned(parts)
        self._active = self._active + joined

    def _tail(self, prompt: list[int]) -> tuple[list[int], int]:
        """What a prompt prefills after the shared prefix cache, and how long that cached prefix is (0: none)."""
        gen = self.generator
        prefix = gen.prefix_ids
        n = len(prefix)
        if gen.prefix_past is not None and n and len(prompt) > n and prompt[:n] == prefix:
            return prompt[n:], n
        return prompt, 0

    def _prefill_group(
        self, group: list[tuple[_Row, list[int], int]]
    ) -> tuple[list[np.ndarray], np.ndarray, list[_Row]] | None:
        """One prefill call for rows with the same cached prefix; their first choices; the cache and mask of the
        rows that go on decoding (None when none does or the call failed)."""
        gen = self.generator
        rows = [r for r, _, _ in group]
        start = time.perf_counter()
        try:
            ids, mask, pos, past = self._prefill_inputs([t for _, t, _ in group], group[0][2])
            logits, present = gen.decoder_step(ids, mask, pos, past, "prefill")
        except Exception as exc:  # only these joining commands are affected
            for row in rows:
                _fail(row, exc if isinstance(exc, GenerationError) else GenerationError(str(exc)))
            return None
        self._notify(len(rows))
        elapsed = (time.perf_counter() - start) * 1000.0
        for b, row in enumerate(rows):
            row.prefill_ms = elapsed
            row.next_pos = int(pos[b, -1]) + 1
        keep = self._choose(rows, logits)
        if not keep:
            return None
        if len(keep) < len(rows):
            present, mask = [np.asarray(p)[keep] for p in present], mask[keep]
        return [np.asarray(p) for p in present], mask, [rows[i] for i in keep]

    def _prefill_inputs(self, tails: Sequence[list[int]], past_len: int) -> tuple[Any, ...]:
        """Left-padded ids, mask and positions for `tails` after `past_len` cached prefix tokens, and that cache."""
        gen = self.generator
        length = max(len(t) for t in tails)
        ids = np.full((len(tails), length), gen.pad_id, dtype=np.int64)
        mask = np.zeros((len(tails), past_len + length), dtype=np.int64)
        mask[:, :past_len] = 1
        for b, tail in enumerate(tails):
            ids[b, length - len(tail) :] = tail
            mask[b, past_len + length - len(tail) :] = 1
        pos = np.clip(np.cumsum(mask, axis=1) - 1, 0, None)[:, past_len:].astype(np.int64)
        if past_len:
            past = [np.repeat(np.asarray(p), len(tails), axis=0) for p in gen.prefix_past]
        else:
            past = gen.empty_past(len(tails))
        return ids, mask, pos, past

    def _step(self) -> None:
        """One decode step for every row in flight, then each row's next choice; finished rows leave."""
        rows = self._active
        ids = np.asarray([[r.next_token] for r in rows], dtype=np.int64)
        pos = np.asarray([[r.next_pos] for r in rows], dtype=np.int64)
        mask = np.concatenate([self._mask, np.ones((len(rows), 1), dtype=np.int64)], axis=1)
        start = time.perf_counter()
        try:
            logits, present = self.generator.decoder_step(
                ids, mask, pos, self._past, f"decode step (batch of {len(rows)})"
            )
        except GenerationError as exc:
            self._fail_active(exc)
            return
        self._notify(len(rows))
        elapsed = (time.perf_counter() - start) * 1000.0
        for row in rows:
            row.step_ms.append(elapsed)
            row.next_pos += 1
        keep = self._choose(rows, logits)
        if len(keep) == len(rows):
            self._past, self._mask = [np.asarray(p) for p in present], mask
            return
        self._active = [rows[i] for i in keep]
        if not keep:
            self._past, self._mask = [], np.zeros((0, 0), dtype=np.int64)
            return
        mask = mask[keep]
        # Columns no remaining row attends to (the left padding of rows that left) are dropped; one copy per cache
        # (rows and columns at once), contiguous as onnxruntime wants its inputs.
        first = int(np.flatnonzero(mask.any(axis=0))[0])
        self._past = [np.asarray(p)[keep, :, first:] for p in present]
        self._mask = mask[:, first:]

    def _choose(self, rows: list[_Row], logits: np.ndarray) -> list[int]:
        """Each row's next token from its logits row (as `Generator.generate_ids` chooses); finished rows get their
        results. Returns the indices of the rows still decoding."""
        keep = []
        for b, row in enumerate(rows):
            try:
                self._choose_one(row, logits[b])
            except GenerationError as exc:
                _fail(row, exc)
                continue
            if row.done:
                self._finish(row)
            else:
                keep.append(b)
        return keep

    def _choose_one(self, row: _Row, scores_row: np.ndarray) -> None:
        gen = self.generator
        constraint = gen.constraint
        allowed = constraint.allowed_rows(row.state)
        if len(allowed) == 0:
            row.reason = STOP_DEAD_END
            return
        best, logprob, margin = greedy_choice(scores_row[allowed], row.choices)
        row.logprobs.append(logprob)
        row.margins.append(margin)
        row.choices += 1
        chosen = int(allowed[best])
        if chosen == gen.eos_row:
            row.reason = STOP_EOS
            return
        row.rows.append(chosen)
        row.state = constraint.advance(row.state, chosen)
        if constraint.only_eos(row.state):
            row.reason = STOP_COMPLETE
        elif row.choices >= row.limit:
            row.reason = STOP_MAX_TOKENS
        row.next_token = int(gen.row_token_ids[chosen])

    def _finish(self, row: _Row) -> None:
        gen = self.generator
        texts = gen.constraint.row_texts
        result = GenerationResult(
            text="".join(texts[r] or "" for r in row.rows),
            token_ids=[int(gen.row_token_ids[r]) for r in row.rows],
            token_logprobs=row.logprobs,
            token_margins=row.margins,
            stop_reason=row.reason or STOP_MAX_TOKENS,
            prompt_tokens=len(row.prompt),
            prefill_ms=row.prefill_ms,
            step_ms=row.step_ms,
            total_ms=(time.perf_counter() - row.submitted) * 1000.0,
        )
        if not row.future.done():
            row.future.set_result(result)

    def _fail_active(self, exc: Exception) -> None:
        for row in self._active:
            _fail(row, exc)
        self._active, self._past = [], []
        self._mask = np.zeros((0, 0), dtype=np.int64)

    def _notify(self, rows: int) -> None:
        if self.on_step is not None:
            try:
                self.on_step(rows)
            except Exception:  # metrics must never stop decoding
                log.exception("the on_step callback failed")

    def _drain(self) -> list[_Row]:
        rows = []
        while True:
            try:
                rows.append(self._queue.get_nowait())
            except queue.Empty:
                return rows


def _fail(row: _Row, exc: Exception) -> None:
    if not row.future.done():
        if not row.future.running():
            row.future.set_running_or_notify_cancel()
        if not row.future.cancelled():
            row.future.set_exception(exc)


def _length_groups(tails: list[tuple[_Row, list[int], int]]) -> list[list[tuple[_Row, list[int], int]]]:
    """Joining rows grouped for prefill: the same cached prefix and the same tail length, so that no prefill call
    pads. A padded token costs as much compute as a real one, and padding is not neutral for every export: measured
    on the attached INT8 pair, masked padding moved the logits by up to 0.65, enough to flip near-tie choices."""
    groups: dict[tuple[int, int], list[tuple[_Row, list[int], int]]] = {}
    for entry in tails:
        groups.setdefault((entry[2], len(entry[1])), []).append(entry)
    return list(groups.values())


def _merge_right_aligned(
    parts: Sequence[tuple[list[np.ndarray], np.ndarray]],
) -> tuple[list[np.ndarray], np.ndarray]:
    """Caches and masks of several row groups stacked into one batch, each right-aligned (left padding, mask 0),
    written once into arrays of the widest group's length."""
    width = max(mask.shape[1] for _, mask in parts)
    total = sum(mask.shape[0] for _, mask in parts)
    mask_out = np.zeros((total, width), dtype=np.int64)
    past_out = []
    for i, first in enumerate(parts[0][0]):
        out = np.zeros((total, first.shape[1], width, first.shape[3]), dtype=first.dtype)
        row = 0
        for past, mask in parts:
            n, w = mask.shape
            out[row : row + n, :, width - w :] = past[i]
            row += n
        past_out.append(out)
    row = 0
    for _, mask in parts:
        n, w = mask.shape
        mask_out[row : row + n, width - w :] = mask
        row += n
    return past_out, mask_out


class BatchingCommander(Commander):
    """A `Commander` whose single-command decodes share steps through a `BatchedDecoder` (thread-safe: call `run`
    from as many threads as there are concurrent commands). `close()` stops the decoding thread."""

    def __init__(
        self,
        model_dir: str | Path,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_queue: int = DEFAULT_MAX_QUEUE,
        on_step: Callable[[int], None] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs["io_binding"] = False
        super().__init__(model_dir, **kwargs)
        self.batcher = BatchedDecoder(
            self.generator, _batch_limit(self.generator, max_batch), max_queue, on_step
        )

    @classmethod
    def from_generator(  # type: ignore[override]
        cls,
        generator: Generator,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_queue: int = DEFAULT_MAX_QUEUE,
        on_step: Callable[[int], None] | None = None,
        **kwargs: Any,
    ) -> BatchingCommander:
        self = super().from_generator(generator, **kwargs)
        self.batcher = BatchedDecoder(generator, _batch_limit(generator, max_batch), max_queue, on_step)
        return self

    def _generate(self, model_text: str) -> GenerationResult:
        return self.batcher.generate(model_text)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "max_batch": self.batcher.max_batch}

    def close(self) -> None:
        self.batcher.close()


def _batch_limit(generator: Generator, max_batch: int) -> int:
    """`max_batch`, or 1 for a graph whose batch rows interact (dynamic INT8): a command's program must not depend
    on which other commands were decoded with it."""
    if max_batch > 1 and not generator.rows_independent:
        log.warning(
            "this export's batch rows interact (dynamic INT8 activations): decoding one command at a time instead "
            "of batches of %d; export with --int8-method nbits to batch",
            max_batch,
        )
        return 1
    return max_batch
