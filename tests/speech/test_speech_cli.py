"""`shadow-run --wav` and the "wav" lines of `--jsonl`: what was heard, the vad/asr/model timings, and refusals
(missing, silent) that never reach the model."""

from __future__ import annotations

import json

import pytest
from runtime_fakes import scripted_export
from shadow_edge.runtime.cli import main
from speech_wavs import needs_speech_tools, silence, speak, write_wav

pytest.importorskip("faster_whisper")
pytestmark = needs_speech_tools


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return scripted_export(tmp_path_factory.mktemp("model"), "sit")


def test_jsonl_wav_lines(model_dir, tmp_path, capsys):
    speak(tmp_path, "sit down")
    write_wav(tmp_path / "quiet.wav", silence(1.0))
    lines = [
        {"wav": "sit_down__en-us__150.wav", "id": 1},
        {"wav": "missing.wav"},
        {"wav": "quiet.wav"},
        {"text": "sit"},
    ]
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("".join(json.dumps(line) + "\n" for line in lines))
    code = main([str(model_dir), "--jsonl", str(jsonl), "--json", "--threads", "1"])
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0 and len(out) == 4
    spoken = out[0]
    assert spoken["heard"].lower().rstrip(".") == "sit down" and spoken["input"] == {
        "wav": lines[0]["wav"],
        "id": 1,
    }
    assert set(spoken["timings_ms"]) == {"vad", "asr", "model"} and spoken["timings_ms"]["asr"] > 0
    assert "no such file" in out[1]["error"] and "silent audio" in out[2]["error"]
    assert "heard" not in out[3] and out[3]["program"]


def test_wav_refusals_exit_2_without_the_model(tmp_path, capsys):
    quiet = write_wav(tmp_path / "quiet.wav", silence(1.0))
    code = main([str(tmp_path / "no-model"), "--wav", str(quiet)])  # refused before the model is loaded
    err = capsys.readouterr().err
    assert code == 2 and "silent audio" in err and "Traceback" not in err


def test_wav_plain_output_says_what_was_heard(model_dir, tmp_path, capsys):
    code = main([str(model_dir), "--wav", str(speak(tmp_path, "sit down")), "--threads", "1"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0 and out[0].lower().startswith("heard: 'sit down") and "asr" in out[0] and len(out) == 2


def test_jsonl_keeps_the_raw_transcript_next_to_the_corrected_one(model_dir, tmp_path, capsys, monkeypatch):
    import shadow_edge.speech as speech
    from test_correct import ScriptedEngine

    made = []

    def scripted(engine, correct=True, **options):
        made.append(correct)
        return speech.Recognizer(ScriptedEngine("sit dawn"), correct=correct)

    monkeypatch.setattr(speech, "make_recognizer", scripted)
    speak(tmp_path, "sit down")
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text(json.dumps({"wav": "sit_down__en-us__150.wav"}) + "\n")
    for flags, corrected in (([], "sit down"), (["--no-asr-correction"], "sit dawn")):
        assert main([str(model_dir), "--jsonl", str(jsonl), "--json", "--threads", "1", *flags]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["heard"] == "sit dawn" and out["corrected"] == corrected == out["text"]
        assert out["corrections"] == ([["dawn", "down"]] if not flags else [])
    assert made == [True, False]


def test_heard_commands_pass_the_speech_gate_and_typed_ones_the_text_gate(tmp_path, capsys):
    from shadow_edge.runtime.routing import ConfidenceGate, write_gate

    strict = scripted_export(tmp_path / "model", "sit")
    write_gate(strict, ConfidenceGate("min_prob", 0.0), {})
    write_gate(strict, ConfidenceGate("min_margin", 1e9), {}, spoken=True)
    speak(tmp_path, "sit down")
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text(
        json.dumps({"wav": "sit_down__en-us__150.wav"}) + "\n" + json.dumps({"text": "sit down"}) + "\n"
    )
    assert main([str(strict), "--jsonl", str(jsonl), "--json", "--threads", "1"]) == 0
    heard, typed = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert (heard["program"], heard["route"], heard["accepted"]) == ("sit", "remote", False)
    assert "speech" in heard["reason"]
    assert (typed["route"], typed["accepted"]) == ("robot", True)
