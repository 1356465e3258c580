"""Speech into the node (shadow_dog.speech): a spoken WAV becomes ~/heard text, then a program with its latency
record; audio the recogniser cannot read is refused and reported, never executed."""

from __future__ import annotations

import io
import shutil
import subprocess
import time
import wave

import pytest
from scripted_commander import ANSWERS, make_commander
from shadow_dog.config import NodeConfig
from shadow_dog.logic import DogNodeLogic
from shadow_dog.outputs import MemoryOutputs
from shadow_dog.speech import SpeechFrontEnd
from shadow_edge.runtime.normalize import normalize_numbers

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="espeak-ng and sox make the test speech",
)


def _silent_wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(bytes(32000))
    return buffer.getvalue()


def wait_for(predicate, timeout=120.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_spoken_wav_drives_the_node(tmp_path):
    pytest.importorskip("faster_whisper")
    raw, wav = tmp_path / "raw.wav", tmp_path / "cmd.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(raw), "walk two metres"], check=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(wav)], check=True)
    (tmp_path / "junk.wav").write_bytes(b"RIFF....WAVEjunk")
    (tmp_path / "quiet.wav").write_bytes(_silent_wav())
    # Whisper writes a sentence: the scripted model knows the command in those spellings too
    # (the commander writes number words as digits before the model reads them)
    spellings = ["walk two metres", "Walk two metres.", "walk two metres.", "Walk two metres"]
    spellings += [normalize_numbers(t).text for t in spellings]
    commander, _ = make_commander({**ANSWERS, **dict.fromkeys(spellings, "move x=2")})
    out = MemoryOutputs(time.monotonic)
    logic = DogNodeLogic(out, commander, NodeConfig())
    speech = SpeechFrontEnd(logic, logic.config)
    speech.start()
    try:
        speech.submit_wav(str(wav))
        speech.submit_wav(str(tmp_path / "junk.wav"))
        speech.submit_wav(str(tmp_path / "quiet.wav"))
        assert wait_for(lambda: out.of("heard") and len(out.of("program")) >= 1)
        assert [h.lower().rstrip(".") for h in out.of("heard")] == ["walk two metres"]
        assert wait_for(lambda: sum("audio refused" in r["reason"] for r in out.of("program")) == 2)
        while logic.process_next():
            pass
    finally:
        speech.stop()
    record = next(r for r in out.of("program") if r["text"].lower().startswith("walk two metres"))
    refused = [r["reason"] for r in out.of("program") if "audio refused" in r["reason"]]
    assert any("not a readable PCM WAV" in r for r in refused) and any("silent audio" in r for r in refused)
    assert record["source"] == "wav"
    assert record["program"] == "move x=2" and record["executed"]
    lat = record["latencies_ms"]
    assert lat["asr"] > 0 and lat["total"] >= lat["asr"] and lat["node"] == 0.0
    assert out.of("twist")[0] == (0.5, 0.0, 0.0)


def test_audio_capture_without_a_device_says_so():
    out = MemoryOutputs(time.monotonic)
    logic = DogNodeLogic(out, None, NodeConfig(audio_capture=True))
    speech = SpeechFrontEnd(logic, logic.config)
    speech.start()
    try:
        level, message = logic.audio_status
        try:
            import pyaudio  # noqa: F401
        except ImportError:
            assert level != 0 and "pyaudio" in message and "text topic and WAV" in message
        else:  # pyaudio present: either a device was opened or the status names why not
            assert message
    finally:
        speech.stop()
    logic.tick()
    audio = out.of("diagnostics")[-1][2]
    assert audio.name == "shadow_dog: audio" and audio.message == logic.audio_status[1]
