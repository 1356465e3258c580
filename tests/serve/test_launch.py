"""serve/launch.py: a shadow-serve child process for scripts, up and healthy, or a clear error, and stopped after."""

from __future__ import annotations

import httpx
import pytest
from serve_support import tiny_export, token_file
from shadow_edge.serve.launch import ServeStartError, serve_process


def test_the_server_answers_and_is_stopped_afterwards(tmp_path):
    model_dir = tiny_export(tmp_path / "model")
    path, token = token_file(tmp_path)
    with serve_process(model_dir, path, ["--threads", "1"], startup_timeout_s=120) as server:
        assert server.url.startswith("http://127.0.0.1:")
        reply = httpx.post(f"{server.url}/v1/command", json={"text": "sit"},
                           headers={"Authorization": f"Bearer {token}"}, timeout=30)  # fmt: skip
        assert reply.status_code == 200 and reply.json()["text"] == "sit"
        process = server.process
    assert process.poll() is not None


def test_a_model_that_cannot_run_is_a_start_error_with_the_servers_reason(tmp_path):
    path, _ = token_file(tmp_path)
    with (
        pytest.raises(ServeStartError, match="cannot run the model"),
        serve_process(tmp_path / "nothing", path),
    ):
        pass
