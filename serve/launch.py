"""A `shadow-serve` process on loopback for scripts and tests: started on a free port, waited for, stopped.

    with serve_process(model_dir, token_file, ["--max-batch", "16"]) as server:
        ...  # server.url, server.process (subprocess.Popen)

The server prints `listening on URL` once its socket is bound and the model is loaded; `/healthz` must then answer
200 before the context is entered. On leaving (also on errors) the process gets SIGTERM, then SIGKILL after 15 s.
Its stderr is read on by a thread (kept in `server.log_tail`), so a chatty server never blocks on a full pipe.
"""

from __future__ import annotations

import collections
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"


class ServeStartError(RuntimeError):
    """The server exited or did not become healthy in time; the message carries the end of its log."""


@dataclass
class ServeProcess:
    url: str
    process: subprocess.Popen
    log_tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=50))


@contextmanager
def serve_process(
    model_dir: str | Path,
    token_file: str | Path,
    args: Sequence[str] = (),
    host: str = LOOPBACK,
    startup_timeout_s: float = 300.0,
) -> Iterator[ServeProcess]:
    """`shadow-serve MODEL_DIR --token-file FILE --host HOST --port 0 ARGS...` as a child process (see the module
    docstring); raises `ServeStartError` when it does not come up within `startup_timeout_s`."""
    command = [sys.executable, "-m", "shadow_edge.serve.cli", str(model_dir), "--host", host, "--port", "0"]
    command += ["--token-file", str(token_file), *args]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    tail: collections.deque = collections.deque(maxlen=50)
    found: dict[str, str] = {}
    listening = threading.Event()

    def read_log() -> None:
        for line in process.stderr:
            tail.append(line.rstrip())
            if not found and "listening on " in line:
                found["url"] = line.rsplit("listening on ", 1)[1].strip()
                listening.set()
        listening.set()  # the process closed its stderr: it has exited

    threading.Thread(target=read_log, name="shadow-serve-log", daemon=True).start()
    try:
        deadline = time.monotonic() + startup_timeout_s
        if not listening.wait(startup_timeout_s) or "url" not in found:
            raise ServeStartError(f"shadow-serve did not start ({_state(process)}): {' | '.join(tail)}")
        _wait_healthy(found["url"], process, tail, deadline)
        yield ServeProcess(found["url"], process, tail)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _state(process: subprocess.Popen) -> str:
    code = process.poll()
    return "still running" if code is None else f"exit status {code}"


def _wait_healthy(url: str, process: subprocess.Popen, tail: collections.deque, deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServeStartError(f"shadow-serve exited with {process.returncode}: {' | '.join(tail)}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=30) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise ServeStartError(f"shadow-serve did not answer /healthz in time: {' | '.join(tail)}")
