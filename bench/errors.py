"""What can go wrong in a `shadow-bench` run, by exit status, and how it is said on stderr."""

from __future__ import annotations

import sys

PROG = "shadow-bench"
EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class BenchUsageError(ValueError):
    """Bad options (exit status 2)."""


class BenchRunError(RuntimeError):
    """The run failed: a reference, a measurement, writing the report (exit status 1)."""


class BenchInputError(ValueError):
    """An input cannot be used: the model directory, the commands file, a reference's adapter (exit status 2)."""


def report_error(message: str) -> None:
    """One line on stderr, after the program's name."""
    print(f"{PROG}: {message}", file=sys.stderr)
