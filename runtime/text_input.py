"""A command's text before the model: `sanitize` refuses what is not a command (not text, empty, too long, binary)
and cleans the rest; `model_input` is what the model reads (spoken numbers as digits, as in training).

    cleaned, removed = sanitize("sit\x00 down")     # ("sit down", 1)
    model_text, removed = model_input("walk two metres")   # ("walk 2 metres", 0)
"""

from __future__ import annotations

import unicodedata
from typing import Any

from .normalize import normalize_numbers

DEFAULT_MAX_CHARS = 1000
BINARY_FRACTION = 0.3  # more than this share of control/replacement characters: not text
WHITESPACE_CONTROLS = frozenset("\t\n\r\x0b\x0c")


class InputRefused(ValueError):
    """The input is refused before the model runs; `reason` says why."""


def sanitize(text: Any, max_chars: int = DEFAULT_MAX_CHARS) -> tuple[str, int]:
    """The text the model gets and how many characters were removed; `InputRefused` for input that is not a
    command (not text, empty, too long, binary)."""
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", errors="replace")
    if not isinstance(text, str):
        raise InputRefused(f"not text ({type(text).__name__})")
    if len(text) > max_chars:
        raise InputRefused(f"command too long ({len(text)} characters; at most {max_chars})")
    bad = 0
    chars = []
    for ch in text:
        category = unicodedata.category(ch)
        if ch in WHITESPACE_CONTROLS:
            chars.append(" ")
        elif category in ("Cc", "Cf", "Cs", "Co", "Cn") or ch == "\ufffd":
            bad += 1
            chars.append(" ")
        else:
            chars.append(ch)
    visible = sum(1 for ch in text if not ch.isspace())
    if bad and bad > BINARY_FRACTION * max(visible, 1):
        raise InputRefused(f"not text: {bad} of {len(text)} characters are control or undecodable bytes")
    cleaned = " ".join("".join(chars).split())
    if not cleaned:
        raise InputRefused("empty command")
    return cleaned, bad


def model_input(text: Any, max_chars: int = DEFAULT_MAX_CHARS) -> tuple[str, int]:
    """What the model reads for `text`: `sanitize`d, then spoken numbers as digits ("two metres" -> "2 metres", as
    in training: the user's number reaches the program unchanged). Returns it with the count of removed characters;
    raises `InputRefused` as `sanitize` does."""
    _, model_text, removed = read_command(text, max_chars)
    return model_text, removed


def read_command(text: Any, max_chars: int) -> tuple[str, str, int]:
    """The sanitised text (what a cloud model gets), what the model reads, and the removed-character count."""
    cleaned, removed = sanitize(text, max_chars)
    return cleaned, normalize_numbers(cleaned).text, removed
