"""The commands' shared logging set-up: one format, stderr only, levels by -v, and it leaves a host's logging alone."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

PROBE = """
import logging, sys
from shadow_edge.runtime.logs import setup_logging
setup_logging({verbose}, prog="shadow-x", quiet={quiet}, silence=["noisy", "root"])
log = logging.getLogger("shadow_edge.thing")
log.debug("detail"); log.info("step"); log.warning("careful")
logging.getLogger("noisy").warning("chatter")
logging.warning("root chatter")
logging.error("root trouble")
print("result")
"""


def _run(verbose: bool, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    code = PROBE.format(verbose=verbose, quiet=quiet)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_default_format_on_stderr():
    result = _run(False)
    assert result.stdout == "result\n"
    assert result.stderr.splitlines() == [
        "shadow-x: step",
        "shadow-x: warning: careful",
        "shadow-x: error: root trouble",
    ]


def test_verbose_shows_debug_and_the_logger():
    lines = _run(True).stderr.splitlines()
    assert lines[0] == "shadow-x [shadow_edge.thing]: detail"
    assert "shadow-x [shadow_edge.thing]: warning: careful" in lines
    assert not any("chatter" in line for line in lines)  # silenced library


def test_quiet_shows_warnings_only():
    assert _run(False, quiet=True).stderr.splitlines() == [
        "shadow-x: warning: careful",
        "shadow-x: error: root trouble",
    ]


def test_existing_handlers_are_kept(monkeypatch):
    from shadow_edge.runtime.logs import setup_logging

    root = logging.getLogger()
    if not root.handlers:
        pytest.skip("no host handler to keep")
    before = list(root.handlers)
    setup_logging(True, prog="shadow-x")
    assert root.handlers == before
