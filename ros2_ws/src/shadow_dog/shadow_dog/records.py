"""The node's ~/program records: one JSON object per command (executed, refused or a stop phrase), with the
latencies along the way (speech recognition, model, node, total)."""

from __future__ import annotations

from typing import Any

from .command_queue import PendingCommand

RECORD_TEXT_CHARS = 1000  # the longest command text a ~/program record repeats


def shown_text(text: Any) -> str:
    """The command as a record shows it: the text, or a short repr of whatever came instead of text."""
    return text if isinstance(text, str) else repr(text)[:200]


def command_record(pending: PendingCommand, base: dict[str, Any]) -> dict[str, Any]:
    """The record of a decoded command: the Commander's result (`base`) with the command's id and latencies."""
    record = {"id": pending.seq, "source": pending.source, **base}
    record["latencies_ms"] = {
        "asr": None if pending.asr_ms is None else round(pending.asr_ms, 3),
        "model": base.get("latency_ms"),
        "node": None,
        "total": None,
    }
    return record


def stop_record(
    seq: int, text: Any, source: str, rest: str, asr_ms: float | None, total_ms: float
) -> dict[str, Any]:
    """The record of a stop phrase, which halts at once without the model (`rest`: what follows it, if any)."""
    return {
        "id": seq,
        "source": source,
        "text": shown_text(text),
        "program": "stop",
        "route": "robot",
        "accepted": True,
        "executed": True,
        "reason": "stop phrase: halted at once without the model"
        + (f"; the rest ({rest!r}) goes to the model" if rest else ""),
        "latency_ms": 0.0,
        "latencies_ms": {
            "asr": None if asr_ms is None else round(asr_ms, 3),
            "model": 0.0,
            "node": 0.0,
            "total": round(total_ms, 3),
        },
    }


def refusal_record(seq: int, text: Any, source: str, reason: str) -> dict[str, Any]:
    """The record of a command that was not executed and never reached (or came back from) the model."""
    return {
        "id": seq,
        "source": source,
        "text": shown_text(text),
        "program": "",
        "route": "reject",
        "accepted": False,
        "executed": False,
        "reason": reason,
        "latency_ms": 0.0,
        "latencies_ms": {"asr": None, "model": None, "node": None, "total": None},
    }


def shortened(record: dict[str, Any]) -> dict[str, Any]:
    """The record with a flood of text cut to `RECORD_TEXT_CHARS` (and its length said), not echoed back whole."""
    text = record.get("text")
    if isinstance(text, str) and len(text) > RECORD_TEXT_CHARS:
        return {**record, "text": text[:RECORD_TEXT_CHARS] + "...", "text_chars": len(text)}
    return record
