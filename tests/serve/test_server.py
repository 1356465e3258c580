"""shadow-serve against real servers on loopback: the command in a subprocess over a tiny ONNX export, and the app
under uvicorn in a thread with scripted decoders for overload, timeouts and model failures."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from runtime_fakes import EOS_ID, PREFIX, SUFFIX, ScriptedSession, tiny_tokenizer
from serve_support import PROGRAM, app_server, cli_server, tiny_export, token_file
from shadow_edge.runtime.commander import Commander
from shadow_edge.runtime.constrained import TokenConstraint
from shadow_edge.runtime.generate import Generator
from shadow_edge.runtime.grammar import ProgramGrammar, action_vocabulary
from shadow_edge.serve.app import ServeLimits, create_app
from shadow_edge.serve.auth import TokenError, bearer_ok, load_token
from shadow_edge.serve.cli import main

TOKENIZER = tiny_tokenizer()
ACTION_IDS = action_vocabulary(TOKENIZER, EOS_ID)
CONSTRAINT = TokenConstraint.for_head(ProgramGrammar(), TOKENIZER, EOS_ID, ACTION_IDS, len(ACTION_IDS))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(url, token, model_dir) of `shadow-serve` running over the tiny export."""
    directory = tmp_path_factory.mktemp("serve")
    model_dir = tiny_export(directory / "model")
    path, token = token_file(directory)
    with cli_server([model_dir, "--token-file", path, "--threads", "1", "--max-batch", "4"]) as (url, _):
        yield url, token, model_dir


def post(url, token, payload=None, *, content=None, headers=None, timeout=30.0):
    headers = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if content is None:
        content = json.dumps(payload).encode()
    return httpx.post(f"{url}/v1/command", content=content, headers=headers, timeout=timeout)


def test_command_returns_what_shadow_run_json_prints(served, capsys):
    url, token, model_dir = served
    reply = post(url, token, {"text": "sit down then walk"})
    assert reply.status_code == 200
    body = reply.json()
    from shadow_edge.runtime.cli import main as shadow_run

    assert shadow_run([str(model_dir), "--text", "sit down then walk", "--json", "--threads", "1"]) == 0
    expected = json.loads(capsys.readouterr().out)
    assert set(body) == set(expected)
    for key in ("text", "program", "route", "accepted", "reason", "confidence", "tokens"):
        assert body[key] == expected[key], key
    assert (body["program"], body["route"], body["accepted"]) == (PROGRAM, "robot", True)


def test_refusals_are_decisions_not_errors(served):
    url, token, _ = served
    body = post(url, token, {"text": "\x00\x01\x02\x03"}).json()
    assert body["route"] == "reject" and not body["accepted"] and "not text" in body["reason"]
    assert post(url, token, {"text": "   "}).json()["reason"] == "empty command"


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer wrong-token-wrong-token", "Basic dXNlcjpwYXNz", "bearer{token}x", "{token}"],
)
def test_missing_or_wrong_token_is_401(served, header):
    url, token, _ = served
    headers = {} if header is None else {"Authorization": header.format(token=token)}
    reply = post(url, None, {"text": "sit"}, headers=headers)
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"].startswith("Bearer")
    assert "program" not in reply.json() and "token" in reply.json()["error"]


@pytest.mark.parametrize(
    ("content", "headers", "status", "reason"),
    [
        (b"{not json", {}, 400, "not JSON"),
        (b"\xff\xfe", {}, 400, "not UTF-8"),
        (b"[1, 2]", {}, 422, "JSON object"),
        (b'{"txt": "sit"}', {}, 422, 'no "text"'),
        (b'{"text": 5}', {}, 422, "must be a string"),
        (b'{"text": null}', {}, 422, "must be a string"),
        (b'{"text": "sit", "spoken": "yes"}', {}, 422, '"spoken" must be true or false'),
        (json.dumps({"text": "sit " * 300}).encode(), {}, 422, "at most 1000"),
        (b'{"text": "sit"}', {"Content-Type": "text/plain"}, 415, "JSON"),
        (b"[" * 100000, {}, 413, "body over"),
        (b"[" * 10000 + b"]" * 10000, {}, 413, "body over"),
    ],
)
def test_bad_requests_get_4xx_with_a_reason(served, content, headers, status, reason):
    url, token, _ = served
    reply = post(url, token, content=content, headers=headers)
    assert reply.status_code == status
    assert reason in reply.json()["error"]


def test_oversized_chunked_body_is_413(served):
    url, token, _ = served

    def chunks():
        for _ in range(100):
            yield b" " * 1024

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    reply = httpx.post(f"{url}/v1/command", content=chunks(), headers=headers, timeout=10)
    assert reply.status_code == 413


def test_deeply_nested_json_within_the_size_limit_is_400(served):
    url, token, _ = served
    reply = post(url, token, content=b"[" * 5000 + b"]" * 5000)  # 10 kB: passes the size limit
    assert reply.status_code == 400 and "JSON" in reply.json()["error"]


def test_wrong_methods_and_paths(served):
    url, token, _ = served
    assert httpx.get(f"{url}/v1/command", timeout=5).status_code == 405
    missing = httpx.get(f"{url}/v2/anything", timeout=5)
    assert missing.status_code == 404 and "error" in missing.json()


def test_garbage_on_the_socket_does_not_hurt_the_server(served):
    url, token, _ = served
    host, port = url.removeprefix("http://").split(":")
    for junk in [b"\x00\xff" * 500, b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 70000 + b"\r\n\r\n", b"POST"]:
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            conn.sendall(junk)
            conn.shutdown(socket.SHUT_WR)
            with contextlib.suppress(OSError):
                conn.recv(1024)
    assert post(url, token, {"text": "sit"}).json()["program"] == PROGRAM


def test_concurrent_robots_all_get_their_answers(served):
    url, token, _ = served
    texts = [f"robot {i}: sit down then walk" for i in range(24)]
    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(lambda t: post(url, token, {"text": t}), texts))
    assert [r.status_code for r in replies] == [200] * len(texts)
    assert [r.json()["text"] for r in replies] == texts
    assert {r.json()["program"] for r in replies} == {PROGRAM}


def test_healthz_and_metrics(served):
    url, token, _ = served
    health = httpx.get(f"{url}/healthz", timeout=5).json()
    assert health["status"] == "ok" and health["mode"] == "detached" and health["max_batch"] == 4
    post(url, token, {"text": "sit"})
    post(url, None, {"text": "sit"})
    metrics = httpx.get(f"{url}/metrics", timeout=5)
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'shadow_serve_requests_total{endpoint="/v1/command",status="200"}' in text
    assert 'shadow_serve_errors_total{kind="auth"}' in text
    assert "shadow_serve_request_seconds_bucket" in text and "shadow_serve_batch_rows_count" in text
    assert 'shadow_serve_decisions_total{route="robot"}' in text


# -- the command line ---------------------------------------------------------------------------------------------


def test_cli_refuses_to_start_without_a_usable_token(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SHADOW_SERVE_TOKEN_FILE", raising=False)
    model_dir = tiny_export(tmp_path / "model")
    assert main([str(model_dir)]) == 2
    assert "bearer token is required" in capsys.readouterr().err
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "short").write_text("abc\n")
    for name, message in [("missing", "cannot read"), ("empty", "empty"), ("short", "at least")]:
        assert main([str(model_dir), "--token-file", str(tmp_path / name)]) == 2
        assert message in capsys.readouterr().err


def test_cli_bad_model_dir_and_arguments(tmp_path, capsys):
    path, _ = token_file(tmp_path)
    assert main([str(tmp_path / "nothing"), "--token-file", str(path), "--port", "0"]) == 2
    assert "cannot run the model" in capsys.readouterr().err
    assert main([str(tmp_path), "--token-file", str(path), "--max-batch", "0"]) == 2
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path), "--port", "many"])
    assert exit_.value.code == 2


def test_cli_port_in_use(tmp_path, capsys):
    path, _ = token_file(tmp_path)
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        assert main([str(tmp_path), "--token-file", str(path), "--port", str(port)]) == 1
    assert "cannot listen" in capsys.readouterr().err


def test_token_checks():
    assert bearer_ok("Bearer abcdefghijklmnopq", "abcdefghijklmnopq")
    assert bearer_ok("bearer  abcdefghijklmnopq ", "abcdefghijklmnopq")
    assert not bearer_ok("Bearer abcdefghijklmnopQ", "abcdefghijklmnopq")
    assert not bearer_ok("Bearer abcdefghijklmnop", "abcdefghijklmnopq")
    assert not bearer_ok("Bearer \udcff", "abcdefghijklmnopq")
    assert not bearer_ok(None, "abcdefghijklmnopq")


def test_load_token_strips_and_checks(tmp_path):
    (tmp_path / "ok").write_text("  abcdefghijklmnopq \n")
    assert load_token(tmp_path / "ok") == "abcdefghijklmnopq"
    (tmp_path / "two").write_text("abcdefghij klmnopq\n")
    (tmp_path / "bin").write_bytes(b"\xff" * 20)
    for name in ("two", "bin"):
        with pytest.raises(TokenError):
            load_token(tmp_path / name)


# -- overload, timeouts and model failures (the app under uvicorn, scripted decoders) ----------------------------


class HeldSession(ScriptedSession):
    """Blocks every decoder call after the prefix until `release` is set."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.release = threading.Event()
        self.entered = threading.Event()

    def run(self, output_names, feed):
        if self.calls >= 1:
            self.entered.set()
            self.release.wait(30)
        return super().run(output_names, feed)


def scripted_commander(session) -> Commander:
    generator = Generator(session, TOKENIZER, session.caches, CONSTRAINT, ACTION_IDS, PREFIX, SUFFIX, EOS_ID)
    return Commander.from_generator(generator)


def test_overload_is_503_and_timeouts_are_504_and_the_server_recovers():
    session = HeldSession(TOKENIZER, {"sit": "sit"}, head_token_ids=ACTION_IDS)
    app = create_app(
        scripted_commander(session), "t" * 20, ServeLimits(max_concurrent=1, request_timeout_s=0.5)
    )
    with app_server(app) as url, ThreadPoolExecutor(2) as pool:
        slow = pool.submit(post, url, "t" * 20, {"text": "sit"})
        assert session.entered.wait(10)
        busy = post(url, "t" * 20, {"text": "sit"})
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        assert slow.result(10).status_code == 504  # held past the 0.5 s limit
        session.release.set()
        reply = post(url, "t" * 20, {"text": "sit"})
        assert reply.status_code == 200 and reply.json()["program"] == "sit"
        text = httpx.get(f"{url}/metrics", timeout=5).text
        assert 'kind="overloaded"' in text and 'kind="timeout"' in text


def test_model_failure_is_a_refusal_with_an_error_and_the_server_goes_on():
    session = ScriptedSession(TOKENIZER, {"sit": "sit"}, head_token_ids=ACTION_IDS)
    app = create_app(scripted_commander(session), "t" * 20)
    with app_server(app) as url:
        session.fail_at = session.calls + 1
        body = post(url, "t" * 20, {"text": "sit"}).json()
        assert body["route"] == "reject" and not body["accepted"] and "fake decoder failure" in body["error"]
        session.fail_at = None
        assert post(url, "t" * 20, {"text": "sit"}).json()["accepted"]
        assert 'shadow_serve_errors_total{kind="model"} 1.0' in httpx.get(f"{url}/metrics", timeout=5).text


def test_answers_for_remote_commands_and_a_failing_answer_model():
    session = ScriptedSession(
        TOKENIZER, {"tell me a joke": "remote", "sit": "sit"}, head_token_ids=ACTION_IDS
    )
    answers = {"tell me a joke": "four"}

    def answer(text):
        if text not in answers:
            raise RuntimeError("secret internals")
        return answers[text]

    app = create_app(scripted_commander(session), "t" * 20, answer=answer)
    with app_server(app) as url:
        body = post(url, "t" * 20, {"text": "tell me a joke"}).json()
        assert body["route"] == "remote" and body["answer"] == "four", body
        assert "answer" not in post(url, "t" * 20, {"text": "sit"}).json()  # robot commands get none
        answers.clear()
        reply = post(url, "t" * 20, {"text": "tell me a joke"})
        assert reply.status_code == 200 and "answer" not in reply.json() and "secret" not in reply.text
        assert 'shadow_serve_errors_total{kind="answer"} 1.0' in httpx.get(f"{url}/metrics", timeout=5).text


def test_spoken_commands_are_gated_by_the_speech_gate():
    from shadow_edge.runtime.routing import ConfidenceGate

    commander = scripted_commander(ScriptedSession(TOKENIZER, {"sit": "sit"}, head_token_ids=ACTION_IDS))
    commander.speech_gate = ConfidenceGate("min_margin", 1e9)  # nothing heard is sure enough
    with app_server(create_app(commander, "t" * 20)) as url:
        typed = post(url, "t" * 20, {"text": "sit", "spoken": False}).json()
        heard = post(url, "t" * 20, {"text": "sit", "spoken": True}).json()
    assert (typed["route"], typed["accepted"]) == ("robot", True)
    assert (heard["route"], heard["accepted"]) == ("remote", False) and "speech" in heard["reason"]


def test_create_app_needs_a_token_and_sane_limits():
    session = ScriptedSession(TOKENIZER, {}, head_token_ids=ACTION_IDS)
    with pytest.raises(ValueError):
        create_app(scripted_commander(session), "")
    with pytest.raises(ValueError):
        ServeLimits(max_concurrent=0)
    with pytest.raises(ValueError):
        ServeLimits(request_timeout_s=float("nan"))
