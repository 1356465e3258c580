"""Text answers for the commands the model routes to `remote`: greedy decoding of a chat export.

`shadow-export --mode chat` writes the frozen base alone as a plain causal LM (full vocabulary, KV cache, the chat
prompt around the user's text). `ChatAnswerer(model_dir)` loads it through the runtime's own checks (manifest and
sha256, session, I/O contract) and answers one question at a time, greedily, until end-of-turn, `max_new_tokens`
or `timeout_s` -- whichever comes first (a cut answer ends with "..."). Questions are rare next to commands, so
answers are serialised by a lock rather than batched.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from shadow_edge.runtime.commander import ModelLoadError
from shadow_edge.runtime.generate import TokenizerError, load_tokenizer
from shadow_edge.runtime.manifest import ManifestError, load_manifest
from shadow_edge.runtime.session import SessionError, create_decoder_session

log = logging.getLogger(__name__)

CHAT_MODE = "chat"
DEFAULT_ANSWER_TOKENS = 64
DEFAULT_ANSWER_TIMEOUT_S = 5.0


class ChatAnswerer:
    """Greedy answers from a chat export directory (see the module docstring); `answer(text) -> str | None`."""

    def __init__(
        self,
        model_dir: str | Path,
        *,
        max_new_tokens: int = DEFAULT_ANSWER_TOKENS,
        timeout_s: float = DEFAULT_ANSWER_TIMEOUT_S,
        providers: str | None = None,
        threads: int | None = None,
    ) -> None:
        if max_new_tokens < 1 or not timeout_s > 0:
            raise ValueError("an answer needs max_new_tokens >= 1 and timeout_s > 0")
        try:
            manifest = load_manifest(model_dir)
            if manifest.mode != CHAT_MODE or manifest.head_token_ids is not None:
                raise ManifestError(
                    f"{manifest.directory}: mode {manifest.mode!r}; answers need a full-vocabulary chat export "
                    "(shadow-export --mode chat)"
                )
            self.session = create_decoder_session(manifest, providers=providers, threads=threads)
            self.tokenizer = load_tokenizer(manifest)
        except (ManifestError, SessionError, TokenizerError) as exc:
            raise ModelLoadError(str(exc)) from None
        self.manifest = manifest
        self.max_new_tokens = int(max_new_tokens)
        self.timeout_s = float(timeout_s)
        special = manifest.special_tokens
        self.eos = int(special["eos"])
        self.pad = self.eos if special.get("pad") is None else int(special["pad"])
        self._prefix = self._ids(manifest.prompt_prefix, literal=False)
        self._suffix = self._ids(manifest.prompt_suffix, literal=False)
        self._past_names = [n for c in manifest.caches for n in c.input_names()]
        self._outputs = ["logits", *(n for c in manifest.caches for n in c.output_names())]
        self._empty = [
            np.zeros((1, c.kv_heads, 0, c.head_dim), dtype=np.float32)
            for c in manifest.caches
            for _ in range(2 * c.layers)
        ]
        self._lock = threading.Lock()

    def _ids(self, text: str, literal: bool) -> list[int]:
        if not text:
            return []
        # The user's text is tokenized literally: typed "<|im_end|>" is characters, not the end of the turn.
        self.tokenizer.encode_special_tokens = literal
        try:
            return list(self.tokenizer.encode(text, add_special_tokens=False).ids)
        finally:
            self.tokenizer.encode_special_tokens = False

    def __call__(self, text: str) -> str | None:
        return self.answer(text)

    def answer(self, text: str) -> str | None:
        """The answer to `text` (None when the model says nothing). Raises only if the decoder fails."""
        with self._lock:
            return self._answer(text)

    def _answer(self, text: str) -> str | None:
        deadline = time.monotonic() + self.timeout_s
        prompt = self._prefix + self._ids(text, literal=True) + self._suffix
        ids = np.asarray([prompt], dtype=np.int64)
        positions = np.arange(len(prompt), dtype=np.int64)[None, :]
        mask = np.ones_like(ids)
        logits, past = self._run(ids, mask, positions, self._empty)
        tokens: list[int] = []
        cut = False
        for step in range(self.max_new_tokens):
            token = int(np.argmax(logits[0]))
            if token == self.eos:
                break
            tokens.append(token)
            if step == self.max_new_tokens - 1:
                cut = True
                break
            if time.monotonic() > deadline:
                cut = True
                break
            mask = np.ones((1, mask.shape[1] + 1), dtype=np.int64)
            position = np.asarray([[len(prompt) + step]], dtype=np.int64)
            logits, past = self._run(np.asarray([[token]], dtype=np.int64), mask, position, past)
        answer = self.tokenizer.decode(tokens, skip_special_tokens=True).strip()
        if not answer:
            return None
        return answer + (" ..." if cut else "")

    def _run(self, ids: np.ndarray, mask: np.ndarray, positions: np.ndarray, past: list[Any]):
        feed = {"input_ids": ids, "attention_mask": mask, "position_ids": positions}
        feed.update(zip(self._past_names, past, strict=True))
        outputs = self.session.run(self._outputs, feed)
        logits = np.asarray(outputs[0])
        if logits.ndim != 2 or not np.isfinite(logits).all():
            raise RuntimeError("the chat decoder returned malformed or non-finite logits")
        return logits, list(outputs[1:])
