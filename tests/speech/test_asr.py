"""Audio in (shadow_edge.speech.audio): WAV reading, conversion and every refusal; the command grammar and its
exact-sentence matcher; the comparison form of transcripts."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from shadow_edge.speech import grammar
from shadow_edge.speech.audio import AudioError, NoSpeechError, read_wav
from shadow_edge.speech.grammar import grammar_matcher, is_complete_command, normalize_words
from speech_wavs import RATE, noise, silence, tone, write_wav

# -- reading WAV files ------------------------------------------------------------------------------------------------------


def test_read_wav_converts_rate_and_channels(tmp_path):
    stereo = np.stack([tone(0.5, 44100), tone(0.5, 44100)], axis=1).reshape(-1)
    samples = read_wav(write_wav(tmp_path / "s.wav", stereo, rate=44100, channels=2))
    assert samples.dtype == np.float32 and abs(len(samples) - RATE // 2) <= 1
    assert 0.25 < np.abs(samples).max() <= 0.32
    eight_bit = read_wav(write_wav(tmp_path / "u8.wav", (tone(0.2) // 256 + 128), width=1))
    assert len(eight_bit) == int(0.2 * RATE) and np.abs(eight_bit).max() > 0.15
    wide = read_wav(write_wav(tmp_path / "i32.wav", tone(0.2).astype(np.int32) << 16, width=4))
    assert np.abs(wide).max() == pytest.approx(0.3, abs=0.01)
    low = read_wav(write_wav(tmp_path / "8k.wav", tone(0.5, 8000), rate=8000))
    assert abs(len(low) - RATE // 2) <= 1


@pytest.mark.parametrize(
    ("make", "message", "error"),
    [
        (lambda p: p, "no such file", AudioError),
        (lambda p: (p.write_text("not audio"), p)[1], "not a readable PCM WAV", AudioError),
        (lambda p: write_wav(p, np.zeros(0, dtype=np.int16)), "no audio samples", AudioError),
        (lambda p: write_wav(p, silence(31.0, 8000), rate=8000), "at most 30 s", AudioError),
        (lambda p: write_wav(p, silence(1.0)), "silent audio", NoSpeechError),
        (
            lambda p: write_wav(p, np.clip(tone(1.0, level=3.0).astype(np.int64), -32768, 32767)),
            "clipped",
            AudioError,
        ),
        (lambda p: write_wav(p, tone(0.5, 4000), rate=4000), "outside 8000", AudioError),
        (lambda p: (p.write_bytes(write_wav(p, tone(1.0)).read_bytes()[:30]), p)[1], "WAV", AudioError),
    ],
    ids=["missing", "text", "empty", "too-long", "silent", "clipped", "rate-too-low", "truncated"],
)
def test_bad_wavs_are_refused_with_a_reason(tmp_path, make, message, error):
    path = make(tmp_path / "bad.wav")
    with pytest.raises(error, match=message):
        read_wav(path)


def test_clipping_check_reads_the_samples_not_the_level(tmp_path):
    # loud but not clipped: accepted; a full-scale square wave is refused
    assert len(read_wav(write_wav(tmp_path / "loud.wav", tone(0.5, level=0.95)))) == RATE // 2
    square = np.where(tone(0.5) > 0, 32767, -32768).astype(np.int16)
    with pytest.raises(AudioError, match="clipped"):
        read_wav(write_wav(tmp_path / "square.wav", square))
    assert (
        np.abs(read_wav(write_wav(tmp_path / "n.wav", noise(0.5)))).max() > 0
    )  # noise is the VAD's business


@pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed")
def test_float_wav_is_refused(tmp_path):
    src = write_wav(tmp_path / "pcm.wav", tone(0.2))
    out = tmp_path / "float.wav"
    subprocess.run(["sox", str(src), "-e", "floating-point", "-b", "32", str(out)], check=True)
    with pytest.raises(AudioError, match="integer PCM"):
        read_wav(out)


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
    for bad in ["turn eleven", "halt and do", "what is the capital of france", "do a", ""]:
        assert not matcher.fullmatch(bad + " " if bad else ""), bad
    assert is_complete_command("Turn left by ninety degrees.", matcher)
    assert not is_complete_command("Do a", matcher)
    text = grammar.build_grammar(
        extra_phrases=["Fetch the ball!", "zzqx now"], known_word=lambda w: w != "zzqx"
    )
    assert "fetch the ball" in text and "zzqx" not in text
    with pytest.raises(ValueError, match="missing from the pronunciation dictionary"):
        grammar.build_grammar(known_word=lambda w: w != "metres")


def test_vocabulary_prompt_names_every_action():
    prompt = grammar.vocabulary_prompt()
    for name in ("front flip", "wiggle hips", "bark", "stand up"):
        assert name in prompt
    assert not any(ch.isdigit() for ch in prompt)  # numbers spelled out, as spoken


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Turn left by one hundred and twenty degrees.", "turn left by 120 degrees"),
        ("Walk 2 meters, then sit!", "walk two metres then sit"),
        ("step back 0.5 metres", "step back 0.5 meters"),
        ("bark twenty five times", "bark 25 times"),
    ],
)
def test_normalized_transcripts_compare_equal(a, b):
    assert normalize_words(a) == normalize_words(b)


def test_normalized_transcripts_keep_differences():
    assert normalize_words("walk two metres") != normalize_words("walk to metres")
    assert normalize_words("turn ninety degrees") != normalize_words("turn nineteen degrees")


@pytest.mark.parametrize(
    ("ended_samples", "ended_speech_end", "same"),
    [
        ([1.0, 2.0, 3.0], 0.5, True),  # the same utterance
        ([1.0, 2.0, 3.0, 0.0, 0.0], 0.5, True),  # with more trailing quiet
        ([1.0, 2.0, 3.0, 4.0], 0.6, False),  # speech went on after the pause
        ([1.0, 2.0, 9.0, 0.0], 0.5, False),  # other samples
        ([1.0, 2.0], 0.5, False),  # shorter
    ],
)
def test_an_utterance_is_the_paused_one_only_without_more_speech(ended_samples, ended_speech_end, same):
    from shadow_edge.speech.vad import Segment, same_speech

    paused = Segment("pause", np.array([1.0, 2.0, 3.0]), 0.5, 0.6)
    assert same_speech(paused, Segment("end", np.array(ended_samples), ended_speech_end, 0.9)) is same
