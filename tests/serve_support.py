"""Helpers for the shadow-serve tests: a tiny export directory, token files, and real servers on loopback (the
`shadow-serve` command in a subprocess, or an app under uvicorn in a thread)."""

from __future__ import annotations

import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from runtime_fakes import scripted_export
from shadow_edge.serve.launch import serve_process

PROGRAM = "sit; move x=1"


def tiny_export(directory: Path, program: str = PROGRAM) -> Path:
    """An export directory whose decoder answers every command with `program` (real onnxruntime session)."""
    return scripted_export(directory, program)


def token_file(directory: Path) -> tuple[Path, str]:
    token = secrets.token_urlsafe(24)
    path = directory / "token"
    path.write_text(token + "\n", encoding="ascii")
    path.chmod(0o600)
    return path, token


@contextmanager
def cli_server(args: Sequence[str], timeout_s: float = 60.0) -> Iterator[tuple[str, subprocess.Popen]]:
    """`shadow-serve MODEL_DIR --token-file FILE [ARGS...]` on a free loopback port, through the project's own
    launcher (`shadow_edge.serve.launch`); yields (base URL, process) once it answers /healthz."""
    model_dir, *rest = map(str, args)
    i = rest.index("--token-file")
    token_path = rest[i + 1]
    del rest[i : i + 2]
    with serve_process(model_dir, token_path, rest, startup_timeout_s=timeout_s) as server:
        yield server.url, server.process


@contextmanager
def app_server(app) -> Iterator[str]:
    """An ASGI app under uvicorn in a thread on a free loopback port; yields its base URL."""
    import uvicorn

    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, time.monotonic() + 30)
        yield url
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def _wait_ready(url: str, deadline: float) -> None:
    import httpx

    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not become ready")
