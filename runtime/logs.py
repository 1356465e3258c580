"""The one logging set-up of every shadow-edge command (shadow-export, shadow-run, shadow-bench, shadow-dog).

Logs go to stderr, so that stdout carries only results (`--json`). A line reads `PROG: message`; warnings and errors
say so (`PROG: warning: message`); `-v/--verbose` shows debug messages and which logger spoke. Long-running commands
(the node) add timestamps. Libraries only ever call `logging.getLogger(__name__)`; this is for `main` functions.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable


class _CommandFormatter(logging.Formatter):
    def __init__(self, prog: str, verbose: bool, timestamps: bool) -> None:
        where = " [%(name)s]" if verbose else ""
        stamp = "%(asctime)s " if timestamps else ""
        super().__init__(f"{stamp}{prog}{where}: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        text = super().formatMessage(record)
        if record.levelno >= logging.WARNING:
            head, sep, message = text.partition(": ")
            text = f"{head}{sep}{record.levelname.lower()}: {message}"
        return text


def setup_logging(
    verbose: bool = False,
    *,
    prog: str,
    quiet: bool = False,
    timestamps: bool = False,
    silence: Iterable[str] = (),
) -> None:
    """Configure the root logger for a command: INFO (WARNING when `quiet`), DEBUG with `verbose`.

    `silence`: loggers of chatty libraries that only get to say errors; "root" stands for libraries that log
    through the root logger itself (`logging.info(...)`, as onnxruntime's quantizer does): their records are
    dropped below ERROR while every named logger keeps `level`. Like `logging.basicConfig`, this does nothing to a
    root logger that already has handlers (a host application's, or a test's capture).
    """
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_CommandFormatter(prog, verbose, timestamps))
        root.addHandler(handler)
        root.setLevel(level)
    for name in silence:
        if name == "root":
            for handler in root.handlers:
                handler.addFilter(_drop_root_chatter)
        else:
            logging.getLogger(name).setLevel(logging.ERROR)


def _drop_root_chatter(record: logging.LogRecord) -> bool:
    return record.name != "root" or record.levelno >= logging.ERROR
