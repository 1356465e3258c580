"""Text answers from a chat export (serve/answers.py) and through shadow-serve --chat-model, on a tiny full-vocabulary
decoder that answers with a scripted sentence."""

from __future__ import annotations

import httpx
import pytest
from runtime_fakes import scripted_export, tiny_tokenizer
from serve_support import cli_server, tiny_export, token_file
from shadow_edge.runtime.commander import ModelLoadError
from shadow_edge.runtime.manifest import MODES

pytestmark = pytest.mark.skipif("chat" not in MODES, reason="this runtime does not load chat exports yet")

TOKENIZER = tiny_tokenizer()
ANSWER = "sit down and stand up"


def chat_export(directory, answer=ANSWER):
    return scripted_export(directory, answer, action_head=False, noise=0.0, mode="chat")


def test_greedy_answer_until_end_of_turn(tmp_path):
    from shadow_edge.serve.answers import ChatAnswerer

    answerer = ChatAnswerer(chat_export(tmp_path / "chat"), threads=1)
    assert answerer("what can you do?") == ANSWER


def test_answers_are_bounded_in_tokens(tmp_path):
    from shadow_edge.serve.answers import ChatAnswerer

    answerer = ChatAnswerer(chat_export(tmp_path / "chat"), threads=1, max_new_tokens=2)
    short = answerer("what can you do?")
    assert short.endswith(" ...") and len(TOKENIZER.encode(short[:-4]).ids) <= 2
    with pytest.raises(ValueError):
        ChatAnswerer(chat_export(tmp_path / "chat2"), timeout_s=0)


def test_a_robot_export_is_not_a_chat_model(tmp_path):
    from shadow_edge.serve.answers import ChatAnswerer

    with pytest.raises(ModelLoadError, match="chat export"):
        ChatAnswerer(tiny_export(tmp_path / "robot"))


def test_served_answers_for_remote_commands(tmp_path):
    robot = tiny_export(tmp_path / "robot", program="remote")
    chat = chat_export(tmp_path / "chat")
    path, token = token_file(tmp_path)
    args = [robot, "--token-file", path, "--threads", "1", "--chat-model", chat, "--answer-max-tokens", "16"]
    with cli_server(args) as (url, _):
        reply = httpx.post(
            f"{url}/v1/command",
            json={"text": "what can you do?"},
            headers={"Authorization": f"Bearer {token}"},
        )
        body = reply.json()
        assert (body["route"], body["answer"]) == ("remote", ANSWER)
        assert httpx.get(f"{url}/healthz").json()["answers"] is True
