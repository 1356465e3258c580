"""The speech front end (shadow_edge.runtime.asr): WAV reading and its refusals, energy VAD, the command grammar,
and recognition of real synthesized speech (espeak-ng + sox) with pocketsphinx."""

from __future__ import annotations

import shutil
import subprocess
import wave

import numpy as np
import pytest
from shadow_edge.runtime import asr
from shadow_edge.runtime.asr import AudioError, StreamingVad, grammar_matcher, read_wav, speech_bounds

RATE = 16000


def write_wav(path, samples, rate=RATE, channels=1, width=2):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples).astype({1: np.uint8, 2: np.int16, 4: np.int32}[width]).tobytes())
    return path


def tone(seconds, rate=RATE, level=0.3, freq=440.0):
    t = np.arange(int(seconds * rate)) / rate
    return (level * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def silence(seconds, rate=RATE):
    return np.zeros(int(seconds * rate), dtype=np.int16)


# -- reading WAV files ------------------------------------------------------------------------------------------------------


def test_read_wav_converts_rate_and_channels(tmp_path):
    stereo = np.stack([tone(0.5, 44100), tone(0.5, 44100)], axis=1).reshape(-1)
    samples = read_wav(write_wav(tmp_path / "s.wav", stereo, rate=44100, channels=2))
    assert samples.dtype == np.int16 and abs(len(samples) - RATE // 2) <= 1
    assert 0.25 * 32767 < np.abs(samples).max() <= 0.31 * 32767
    eight_bit = read_wav(write_wav(tmp_path / "u8.wav", (tone(0.2) // 256 + 128), width=1))
    assert len(eight_bit) == int(0.2 * RATE) and np.abs(eight_bit).max() > 5000


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p, "no such file"),
        (lambda p: (p.write_text("not audio"), p)[1], "not a readable PCM WAV"),
        (lambda p: write_wav(p, np.zeros(0, dtype=np.int16)), "no audio samples"),
        (lambda p: write_wav(p, silence(31.0, 8000), rate=8000), "at most 30 s"),
    ],
    ids=["missing", "text", "empty", "too-long"],
)
def test_bad_wavs_are_refused_with_a_reason(tmp_path, make, message):
    path = make(tmp_path / "bad.wav")
    with pytest.raises(AudioError, match=message):
        read_wav(path)


@pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed")
def test_float_wav_is_refused(tmp_path):
    src = write_wav(tmp_path / "pcm.wav", tone(0.2))
    out = tmp_path / "float.wav"
    subprocess.run(["sox", str(src), "-e", "floating-point", "-b", "32", str(out)], check=True)
    with pytest.raises(AudioError, match="integer PCM"):
        read_wav(out)


# -- voice activity ---------------------------------------------------------------------------------------------------------


def test_speech_bounds_find_the_loud_part():
    samples = np.concatenate([silence(1.0), tone(0.5), silence(1.0)])
    start, end = speech_bounds(samples)
    assert abs(start - int(0.8 * RATE)) <= 480 and abs(end - int(1.7 * RATE)) <= 480
    assert speech_bounds(silence(1.0)) is None
    noise = (np.random.default_rng(0).normal(0, 100, RATE)).astype(np.int16)  # about -50 dBFS
    assert speech_bounds(noise) is None


def test_streaming_vad_cuts_utterances_and_ignores_clicks():
    vad = StreamingVad(silence_s=0.3)
    stream = np.concatenate(
        [silence(0.5), tone(0.6), silence(0.6), tone(0.03), silence(0.6), tone(0.4), silence(0.5)]
    )
    utterances = []
    for i in range(0, len(stream), 480):
        utterances += vad.feed(stream[i : i + 480])
    assert len(utterances) == 2  # the 30 ms click is not an utterance
    assert 0.6 <= len(utterances[0]) / RATE <= 0.6 + 0.3 + 0.25
    assert not vad.in_speech


# -- the grammar ---------------------------------------------------------------------------------------------------------------


def test_grammar_sentences():
    matcher = grammar_matcher()
    for good in [
        "walk forward two metres",
        "turn left",
        "turn right by ninety degrees",
        "sit down and then turn around",
        "bark three times",
        "front flip",
        "wiggle hips",
        "stop",
        "go back one and a half meters",
    ]:
        assert matcher.fullmatch(good + " "), good
    for bad in ["turn eleven", "halt and do", "what is the capital of france", ""]:
        assert not matcher.fullmatch(bad + " " if bad else ""), bad
    text = asr.build_grammar(extra_phrases=["Fetch the ball!", "zzqx now"], known_word=lambda w: w != "zzqx")
    assert "fetch the ball" in text and "zzqx" not in text
    with pytest.raises(ValueError, match="missing from the pronunciation dictionary"):
        asr.build_grammar(known_word=lambda w: w != "metres")


# -- recognition of real speech -------------------------------------------------------------------------------------------------

needs_speech_tools = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="espeak-ng and sox make the test speech",
)


def speak(tmp_path, text, voice="en-us", speed=150):
    raw = tmp_path / "raw.wav"
    out = tmp_path / (text.replace(" ", "_") + ".wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out)], check=True)
    return out


@needs_speech_tools
def test_transcribe_wav_recognises_commands(tmp_path):
    pytest.importorskip("pocketsphinx")
    for text in ["walk forward two metres", "turn left", "sit down", "stop", "bark twice"]:
        assert asr.transcribe_wav(speak(tmp_path, text)) == text
    assert asr.transcribe_wav(write_wav(tmp_path / "quiet.wav", silence(1.0))) == ""


@needs_speech_tools
def test_out_of_grammar_speech_is_not_forced_into_a_command(tmp_path):
    pytest.importorskip("pocketsphinx")
    recognizer = asr.default_recognizer()
    transcript = recognizer.transcribe(read_wav(speak(tmp_path, "what is the capital of France")))
    assert transcript.engine == "free" and transcript.text  # free-text fallback, never a made-up command


def test_transcribe_wav_errors_name_the_front_end(tmp_path):
    with pytest.raises(AudioError, match="^speech front end: .*no such file"):
        asr.transcribe_wav(tmp_path / "a.wav")
