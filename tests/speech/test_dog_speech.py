"""Speech into the node (shadow_dog.speech): a spoken WAV becomes ~/heard text, then a program with its latency
record; audio the recogniser cannot read is refused and reported, never executed."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
from scripted_commander import make_commander
from shadow_dog.config import NodeConfig
from shadow_dog.logic import DogNodeLogic
from shadow_dog.outputs import MemoryOutputs
from shadow_dog.speech import SpeechFrontEnd

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="espeak-ng and sox make the test speech",
)


def wait_for(predicate, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_spoken_wav_drives_the_node(tmp_path):
    pytest.importorskip("pocketsphinx")
    raw, wav = tmp_path / "raw.wav", tmp_path / "cmd.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(raw), "walk two metres"], check=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(wav)], check=True)
    (tmp_path / "junk.wav").write_bytes(b"RIFF....WAVEjunk")
    commander, _ = make_commander()
    out = MemoryOutputs(time.monotonic)
    logic = DogNodeLogic(out, commander, NodeConfig())
    speech = SpeechFrontEnd(logic, logic.config)
    speech.start()
    try:
        speech.submit_wav(str(wav))
        speech.submit_wav(str(tmp_path / "junk.wav"))
        assert wait_for(lambda: out.of("heard") and len(out.of("program")) >= 1)
        assert out.of("heard") == ["walk two metres"]
        assert wait_for(lambda: any("audio refused" in r["reason"] for r in out.of("program")))
        while logic.process_next():
            pass
    finally:
        speech.stop()
    record = next(r for r in out.of("program") if r["text"] == "walk two metres")
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
