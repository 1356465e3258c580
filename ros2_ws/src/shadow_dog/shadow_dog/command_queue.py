"""Commands waiting for the model, bounded, and the stop phrases that skip the model entirely.

The model takes tens of milliseconds per command, so commands can arrive faster than they are decoded. Only the
newest matter for motion (each accepted program pre-empts the one running), so the queue keeps at most `capacity`
commands and drops the oldest when a new one arrives. Every command carries the stop *epoch* it arrived in: a stop
starts a new epoch and clears the queue, and a program decoded for an older epoch is never executed -- a command
that was being decoded when "stop" was heard must not start the robot again afterwards.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


@dataclass(frozen=True)
class PendingCommand:
    seq: int
    text: Any  # as received; the Commander sanitises and refuses what is not text
    source: str  # text | speech | wav
    received_at: float  # when the text arrived (the logic's clock)
    epoch: int
    speech_end_at: float | None = None  # speech: when the utterance ended
    asr_ms: float | None = None  # speech: recognition time
    alternatives: tuple[str, ...] = ()  # speech: the recogniser's next-best transcripts


class CommandQueue:
    """A bounded FIFO; `push` returns the commands it dropped to stay bounded (oldest first)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._items: deque[PendingCommand] = deque()
        self._cond = threading.Condition()
        self.dropped_total = 0

    def push(self, command: PendingCommand) -> list[PendingCommand]:
        with self._cond:
            dropped = []
            while len(self._items) >= self.capacity:
                dropped.append(self._items.popleft())
            self._items.append(command)
            self.dropped_total += len(dropped)
            self._cond.notify()
            return dropped

    def pop(self, timeout: float | None = 0.0) -> PendingCommand | None:
        """The oldest command; waits up to `timeout` seconds (None: forever, 0: not at all)."""
        with self._cond:
            if not self._items and timeout != 0.0:
                self._cond.wait_for(lambda: bool(self._items), timeout=timeout)
            return self._items.popleft() if self._items else None

    def clear(self) -> list[PendingCommand]:
        with self._cond:
            cleared = list(self._items)
            self._items.clear()
            return cleared

    def wake(self) -> None:
        """Wake a waiting `pop` (shutdown)."""
        with self._cond:
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_WORD.findall(text))


def _is_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


class StopPhrases:
    """Decides whether an utterance asks the robot to stop, before and without the model.

    A match is the whole utterance, or its first words followed by more ("stop, then sit" halts at once and the
    rest still goes to the model). Chinese phrases match at the start of the text ("停下来然后坐下"). Punctuation
    and case are ignored. Returns the rest of the utterance after the phrase ("" when nothing is left).
    """

    def __init__(self, phrases: Iterable[str]) -> None:
        self.phrases = sorted({_normalise(p) for p in phrases if _normalise(p)}, key=len, reverse=True)

    def match(self, text: Any) -> str | None:
        if isinstance(text, bytes | bytearray):
            text = bytes(text).decode("utf-8", errors="replace")
        if not isinstance(text, str):
            return None
        normal = _normalise(text)
        for phrase in self.phrases:
            if _is_cjk(phrase):
                compact = normal.replace(" ", "")
                if compact.startswith(phrase.replace(" ", "")):
                    return compact[len(phrase.replace(" ", "")) :]
            elif normal == phrase or normal.startswith(phrase + " "):
                return normal[len(phrase) :].strip()
        return None
