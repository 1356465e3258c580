"""The node's cloud hook (shadow_dog.cloud) against a real shadow-serve and against servers that misbehave on
loopback: every failure is a refusal with nothing moving, and the node goes on with the next command."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager, suppress

import pytest
from scripted_commander import PERIOD, make_commander
from serve_support import cli_server, tiny_export, token_file
from shadow_dog.cloud import CloudError, http_cloud_hook, read_token
from shadow_dog.config import NodeConfig
from shadow_dog.logic import DogNodeLogic, load_commander
from shadow_dog.outputs import MemoryOutputs

REMOTE_TEXT = "tell me a joke"
LOCAL_TEXT = "walk forward two metres"
EDGE_ANSWERS = {REMOTE_TEXT: "remote", LOCAL_TEXT: "move x=2"}  # what the robot's own model says
PROGRAM = "move x=1"  # what the served model answers


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cloud")
    model_dir = tiny_export(directory / "model", program=PROGRAM)
    path, token = token_file(directory)
    with cli_server([model_dir, "--token-file", path, "--threads", "1"]) as (url, _):
        yield url, token, path


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def node_with(hook):
    commander, _ = make_commander(EDGE_ANSWERS, cloud=hook)
    clock = Clock()
    outputs = MemoryOutputs(clock)
    return DogNodeLogic(outputs, commander, NodeConfig(control_period_s=PERIOD), clock=clock), outputs


def command(node, text):
    node.submit_text(text)
    while node.process_next():
        pass


def moving(outputs) -> bool:
    return any(any(abs(v) > 0 for v in twist) for twist in outputs.of("twist"))


def test_remote_commands_run_the_servers_program_through_the_nodes_safety_layer(served):
    url, token, _ = served
    node, outputs = node_with(http_cloud_hook(f"{url}/v1/command", 5.0, token))
    command(node, REMOTE_TEXT)
    record = outputs.of("program")[-1]
    assert record["remote_answer"] == PROGRAM and record["executed"] and moving(outputs)


def test_wrong_token_is_a_refusal_and_the_node_goes_on(served):
    url, _, _ = served
    node, outputs = node_with(http_cloud_hook(f"{url}/v1/command", 5.0, "not-the-token-at-all"))
    command(node, REMOTE_TEXT)
    record = outputs.of("program")[-1]
    assert not record["executed"] and "HTTP 401" in record["reason"] and not moving(outputs)
    command(node, LOCAL_TEXT)
    assert outputs.of("program")[-1]["executed"] and moving(outputs)


def test_load_commander_reads_the_token_file(served, tmp_path):
    url, _, path = served
    model_dir = tiny_export(tmp_path / "edge", program="remote")
    config = NodeConfig(
        model_dir=str(model_dir),
        provider="cpu",
        threads=1,
        cloud_url=f"{url}/v1/command",
        cloud_token_file=str(path),
    )
    commander, error = load_commander(config)
    assert error is None
    result = commander.run("anything")
    assert result.remote_answer == PROGRAM and result.accepted
    missing = NodeConfig(**{**config.__dict__, "cloud_token_file": str(tmp_path / "nothing")})
    commander, error = load_commander(missing)  # the edge model runs; remote commands are refused
    assert error is None and commander.cloud is None and not commander.run("anything").accepted


def test_read_token_refuses_bad_files(tmp_path):
    (tmp_path / "two").write_text("a b\n")
    for name in ("two", "missing"):
        with pytest.raises(CloudError):
            read_token(tmp_path / name)


# -- servers that misbehave ---------------------------------------------------------------------------------------


@contextmanager
def raw_server(behave: Callable[[socket.socket], None]):
    """A TCP server on loopback that reads one request per connection and then does `behave(conn)`."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            with conn, suppress(OSError):
                conn.settimeout(5)
                request = b""
                while b"\r\n\r\n" not in request:
                    request += conn.recv(4096)
                behave(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1/command"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def reply(status: str, body: bytes, length: int | None = None) -> Callable[[socket.socket], None]:
    def behave(conn: socket.socket) -> None:
        head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {length or len(body)}\r\n\r\n"
        conn.sendall(head.encode() + body)

    return behave


def silent(conn: socket.socket) -> None:
    time.sleep(3)


def trickle(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n")
    for _ in range(100):
        conn.sendall(b" ")
        time.sleep(0.05)


def drop(conn: socket.socket) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST


@pytest.mark.parametrize(
    ("behave", "reason"),
    [
        (silent, "did not answer"),
        (trickle, "did not answer"),
        (drop, "could not be reached"),
        (reply("500 Internal Server Error", b'{"error": "boom"}'), "HTTP 500 (boom)"),
        (reply("503 Service Unavailable", b"busy"), "HTTP 503"),
        (reply("200 OK", b"<html>not json</html>"), "not JSON"),
        (reply("200 OK", b"[1, 2]"), "not a JSON object"),
        (reply("200 OK", b'{"program": 5}'), "non-text"),
        (reply("200 OK", b'{"route": "robot"}'), "no program"),
        (reply("200 OK", b'{"route": "fly", "program": "sit"}'), "unknown route"),
        (reply("200 OK", b'{"route": "reject", "program": "", "error": "model failed"}'), "model failed"),
        (reply("200 OK", b'{"program": "sit"}', length=100), "cut off"),
        (reply("200 OK", b'{"answer": "' + b"a" * 100000 + b'"}'), "over 65536 bytes"),
    ],
)
def test_a_misbehaving_cloud_is_a_refusal_and_the_node_goes_on(behave, reason):
    with raw_server(behave) as url:
        hook = http_cloud_hook(url, timeout_s=0.5)
        with pytest.raises(CloudError, match=reason.replace("(", r"\(").replace(")", r"\)")):
            hook(REMOTE_TEXT)
        node, outputs = node_with(hook)
        command(node, REMOTE_TEXT)
        record = outputs.of("program")[-1]
        assert not record["executed"] and "remote model failed" in record["reason"] and not moving(outputs)
        command(node, LOCAL_TEXT)
        assert outputs.of("program")[-1]["executed"] and moving(outputs)


def test_nothing_listening_is_a_refusal():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with pytest.raises(CloudError, match="could not be reached"):
        http_cloud_hook(f"http://127.0.0.1:{port}/v1/command", 0.5)(REMOTE_TEXT)


def test_answers_and_plain_replies_are_understood():
    cases = [
        (b'{"route": "remote", "program": "remote", "answer": "four"}', "four"),
        (b'{"route": "remote", "program": "remote"}', None),
        (b'{"route": "reject", "program": "reject"}', "reject"),
        (b'{"answer": "four"}', "four"),
        (b'{"nothing": 1}', None),
    ]
    for body, expected in cases:
        with raw_server(reply("200 OK", body)) as url:
            assert http_cloud_hook(url, 2.0)(REMOTE_TEXT) == expected, body
    for bad in ("file:///etc/passwd", "http://", "ftp://host/x"):
        with pytest.raises(ValueError):
            http_cloud_hook(bad)
    with pytest.raises(ValueError):
        http_cloud_hook("http://127.0.0.1/x", timeout_s=0)


def test_the_request_carries_the_token_and_json():
    captured: dict[str, str] = {}
    listener = socket.create_server(("127.0.0.1", 0))

    def serve_once():
        conn, _ = listener.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            head, _, body = data.partition(b"\r\n\r\n")
            captured["head"] = head.decode()
            headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
            length = int({k.lower(): v for k, v in headers.items()}["content-length"])
            while len(body) < length:
                body += conn.recv(4096)
            captured["body"] = body.decode()
            reply("200 OK", b'{"answer": "ok"}')(conn)

    thread = threading.Thread(target=serve_once, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1/command"
    assert http_cloud_hook(url, 2.0, token="secret-token-123")(REMOTE_TEXT) == "ok"
    thread.join(5)
    listener.close()
    assert "Authorization: Bearer secret-token-123" in captured["head"]
    assert json.loads(captured["body"]) == {"text": REMOTE_TEXT}


def test_the_node_publishes_the_remote_answer_and_does_not_move():
    body = b'{"text": "tell me a joke", "route": "remote", "program": "remote", "answer": "I am a dog."}'
    with raw_server(reply("200 OK", body)) as url:
        node, outputs = node_with(http_cloud_hook(url, 2.0))
        command(node, REMOTE_TEXT)
    assert outputs.of("answer") == ["I am a dog."]
    assert not outputs.of("program")[-1]["executed"] and not moving(outputs)
    with raw_server(reply("200 OK", b'{"route": "remote", "program": "remote"}')) as url:
        node, outputs = node_with(http_cloud_hook(url, 2.0))
        command(node, REMOTE_TEXT)
    assert outputs.of("answer") == [] and outputs.of("remote")  # no answer: routed, nothing said


def test_the_observer_sees_each_exchanges_round_trip_and_the_servers_time(served):
    url, token, _ = served
    seen: list[dict] = []
    hook = http_cloud_hook(f"{url}/v1/command", 5.0, token, observe=seen.append)
    assert hook(REMOTE_TEXT) == PROGRAM
    assert seen[-1]["ok"] and seen[-1]["server_ms"] is not None
    assert seen[-1]["roundtrip_ms"] >= seen[-1]["server_ms"] >= 0
    with pytest.raises(CloudError):
        http_cloud_hook(f"{url}/v1/command", 5.0, "not-the-token-at-all", observe=seen.append)(REMOTE_TEXT)
    assert not seen[-1]["ok"] and seen[-1]["server_ms"] is None


def test_a_failing_observer_does_not_change_the_answer(served):
    url, token, _ = served

    def broken(exchange: dict) -> None:
        raise RuntimeError("observer bug")

    assert http_cloud_hook(f"{url}/v1/command", 5.0, token, observe=broken)(REMOTE_TEXT) == PROGRAM


def test_the_cloud_is_told_when_a_command_was_heard(served):
    calls = []

    def hook(text, spoken=False):
        calls.append((text, spoken))
        return PROGRAM

    node, _ = node_with(hook)
    command(node, REMOTE_TEXT)
    node.submit_speech(REMOTE_TEXT, speech_end_at=100.0, asr_ms=50.0)
    while node.process_next():
        pass
    assert calls == [(REMOTE_TEXT, False), (REMOTE_TEXT, True)]
    plain = []  # a hook without `spoken` gets the text alone, for speech too
    node, outputs = node_with(lambda text: plain.append(text) or PROGRAM)
    node.submit_speech(REMOTE_TEXT, speech_end_at=100.0, asr_ms=50.0)
    while node.process_next():
        pass
    assert plain == [REMOTE_TEXT] and outputs.of("program")[-1]["executed"]
    url, token, _ = served  # and shadow-serve takes the flag
    assert http_cloud_hook(f"{url}/v1/command", 5.0, token)(REMOTE_TEXT, spoken=True) == PROGRAM
