"""`shadow-run` per docs/spec/cli.md, on a scripted export directory."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from runtime_fakes import scripted_export
from shadow_edge.runtime.cli import main

PROGRAM = "sit; move x=1"
CONTRACT_KEYS = {"text", "program", "route", "accepted", "reason", "latency_ms"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return scripted_export(tmp_path_factory.mktemp("model"), PROGRAM)


def run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_text_json(model_dir, capsys):
    code, out, err = run(capsys, model_dir, "--text", "sit down then walk", "--json", "--threads", "1")
    assert code == 0, err
    (line,) = out.splitlines()
    result = json.loads(line)
    assert set(result) >= CONTRACT_KEYS
    assert (result["text"], result["program"], result["route"], result["accepted"]) == (
        "sit down then walk",
        PROGRAM,
        "robot",
        True,
    )
    assert result["latency_ms"] > 0 and "error" not in result


def test_text_plain(model_dir, capsys):
    code, out, _ = run(capsys, model_dir, "--text", "sit down then walk")
    assert code == 0
    assert out.startswith(PROGRAM + "\t[robot, accepted]")


def test_jsonl_bad_lines_give_error_objects_and_the_run_goes_on(model_dir, tmp_path, capsys):
    lines = [
        json.dumps({"id": "a", "text": "sit", "program": "sit"}),
        "{not json",
        json.dumps({"id": "b"}),
        "",  # blank lines are skipped
        json.dumps(["a", "list"]),
        json.dumps({"text": 5}),
        json.dumps({"text": ""}),
        json.dumps({"id": "c", "text": "walk"}),
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, out, err = run(capsys, model_dir, "--jsonl", path, "--json")
    assert code == 0, err
    results = [json.loads(line) for line in out.splitlines()]
    assert len(results) == 7  # one per non-blank input line, in order
    assert results[0]["program"] == PROGRAM and results[0]["input"] == {"id": "a", "program": "sit"}
    for i in (1, 2, 3, 4):
        assert "error" in results[i] and "program" not in results[i]
    assert "not JSON" in results[1]["error"] and 'no "text"' in results[2]["error"]
    assert results[5]["route"] == "reject" and results[5]["reason"] == "empty command"
    assert results[6]["input"] == {"id": "c"} and results[6]["accepted"]


def test_stdin_lines(model_dir, capsys, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("sit\n\nwalk\n"))
    code, out, _ = run(capsys, model_dir, "--json")
    assert code == 0
    assert [json.loads(line)["text"] for line in out.splitlines()] == ["sit", "walk"]


@pytest.mark.parametrize(
    ("args", "message", "status"),
    [
        (["--text", "sit"], "cannot run the model", 2),  # model dir missing: bad input
        (["--jsonl", "{tmp}/missing.jsonl"], "cannot read it", 2),
        (["--wav", "{tmp}/a.wav"], "speech front end", 2),  # a missing WAV: bad input
    ],
)
def test_errors_are_one_line_without_traceback(args, message, status, tmp_path, capsys, model_dir):
    target = tmp_path / "no-model" if args[0] == "--text" else model_dir
    code, out, err = run(capsys, target, *[a.format(tmp=tmp_path) for a in args])
    assert code == status and out == ""
    assert err.count("\n") == 1 and err.startswith("shadow-run: ") and message in err


@pytest.mark.parametrize(
    "args",
    [["--threads", "0"], ["--max-new-tokens", "0"], ["--min-confidence", "2"]],
)
def test_bad_options(model_dir, args, capsys):
    code, out, err = run(capsys, model_dir, "--text", "sit", *args)
    assert code == 2 and out == "" and args[0] in err


def test_bad_provider(model_dir, capsys):
    code, _, err = run(capsys, model_dir, "--text", "sit", "--provider", "quantum")
    assert code == 2 and "not available" in err


def test_corrupted_model_dir_in_a_subprocess(model_dir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    data = bytearray((broken / "decoder.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (broken / "decoder.onnx").write_bytes(bytes(data))
    result = subprocess.run(
        [sys.executable, "-m", "shadow_edge.runtime.cli", str(broken), "--text", "sit", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "sha256" in result.stderr
