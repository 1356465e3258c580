"""The node logic with the real runtime (`load_commander` on an export directory), the cloud hook over loopback
HTTP, and the node's config checks."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from dog_node_harness import command, make_node, records
from runtime_fakes import EOS_ID, SUFFIX, bigram_decoder, tiny_tokenizer, write_export_dir
from scripted_commander import make_commander
from shadow_dog.cloud import http_cloud_hook
from shadow_dog.config import ConfigError, NodeConfig
from shadow_dog.logic import load_commander
from shadow_edge.runtime.grammar import action_vocabulary

# -- the real runtime, the cloud hook, config -------------------------------------------------------------------------------


def test_load_commander_runs_a_real_export_dir(tmp_path):
    tokenizer = tiny_tokenizer()
    ids = action_vocabulary(tokenizer, EOS_ID)
    script = [*tokenizer.encode("turn deg=45", add_special_tokens=False).ids, EOS_ID]
    start = tokenizer.encode(SUFFIX, add_special_tokens=False).ids[-1]
    vocab = tokenizer.get_vocab_size(with_added_tokens=True)
    model_dir = write_export_dir(
        tmp_path / "model", tokenizer, ids, lambda p: bigram_decoder(p, vocab, ids, script, start_id=start)
    )
    commander, error = load_commander(NodeConfig(model_dir=str(model_dir), provider="cpu", threads=1))
    assert error is None
    node, out, clock, _ = make_node(commander=commander)
    command(node, "turn left 45 degrees")
    assert records(out)[0]["program"] == "turn deg=45" and out.of("twist")[0] == (0.0, 0.0, 0.8)
    node.tick()
    assert out.of("diagnostics")[-1][0].values["provider"] == "CPUExecutionProvider"
    missing, error = load_commander(NodeConfig(model_dir=str(tmp_path / "nothing")))
    assert missing is None and "not a directory" in error


@pytest.fixture()
def cloud_server():
    answers = {"what is two plus two": {"answer": "four"}, "do a trick": {"program": "sit"}}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server API)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            data = json.dumps(answers.get(body["text"], {"nothing": 1})).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_remote_route_goes_to_the_cloud_hook(cloud_server):
    hook = http_cloud_hook(cloud_server, timeout_s=2.0)
    commander, _ = make_commander({"what is two plus two": "remote", "do a trick": "remote"}, cloud=hook)
    node, out, clock, _ = make_node(commander=commander)
    command(node, "what is two plus two")
    assert records(out)[-1]["remote_answer"] == "four" and out.of("twist") == []
    command(node, "do a trick")  # the cloud's program goes through safety, then runs
    assert records(out)[-1]["executed"] and records(out)[-1]["remote_answer"] == "sit"
    with pytest.raises(ValueError):
        http_cloud_hook("file:///etc/passwd")


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="unknown parameter"):
        NodeConfig.from_dict({"control_perod_s": 0.1})
    with pytest.raises(ConfigError, match="control_period_s"):
        NodeConfig.from_dict({"control_period_s": "fast"})
    with pytest.raises(ConfigError, match="cruise_vx"):
        NodeConfig.from_dict({"cruise_vx": 2.0})
    with pytest.raises(ConfigError, match="heartbeat_timeout_s"):
        NodeConfig.from_dict({"heartbeat_timeout_s": 0.01})
    config = NodeConfig.from_dict({"threads": "2", "go2_sport_output": "true", "stop_phrases": "stop, halt"})
    assert config.threads == 2 and config.go2_sport_output and config.stop_phrases == ("stop", "halt")
    assert config.resolve("~/program") == "/shadow_dog/program" and config.resolve("cmd_vel") == "/cmd_vel"
