"""The recognisers (shadow_edge.speech): every engine of the table on espeak-ng speech made at test time, the VAD
on silence, noise and speech, the bad-audio cases through `Recognizer.transcribe`, and the microphone path with a
scripted pyaudio (utterances, an early stop, a device that is missing or disappears)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from shadow_edge.speech import ENGINES, AudioError, make_recognizer, read_wav
from shadow_edge.speech.capture import MicrophoneCapture
from shadow_edge.speech.grammar import normalize_words
from shadow_edge.speech.vad import Segmenter
from speech_wavs import RATE, needs_speech_tools, noise, read_int16, silence, speak, tone

pytest.importorskip("faster_whisper")
pytest.importorskip("pocketsphinx")
pytestmark = needs_speech_tools
COMMANDS = ["walk forward two metres", "turn left", "sit down", "stop", "bark twice"]
# how many of COMMANDS each engine must get word for word
MIN_RIGHT = {"whisper": 4, "pocketsphinx-grammar": 4}


@pytest.fixture(scope="session")
def wav_dir(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "speech-wavs"


@pytest.fixture(scope="session")
def wavs(wav_dir):
    wav_dir.mkdir(exist_ok=True)
    return {text: speak(wav_dir, text) for text in COMMANDS}


@pytest.fixture(scope="session", params=sorted(ENGINES))
def recognizer(request):
    return make_recognizer(request.param)


def test_every_engine_recognises_commands(recognizer, wavs):
    heard = {text: recognizer.transcribe(read_wav(path)) for text, path in wavs.items()}
    right = [t for t, h in heard.items() if normalize_words(h.text) == normalize_words(t)]
    assert len(right) >= MIN_RIGHT[recognizer.engine.name], {t: h.text for t, h in heard.items()}
    for h in heard.values():
        assert h.engine == recognizer.engine.name and h.vad_ms > 0 and h.asr_ms > 0
        assert 0 < h.speech_s < h.audio_s  # the VAD trimmed the padding


def test_whisper_gives_distinct_next_best_transcripts(wavs):
    five, one = make_recognizer("whisper"), make_recognizer("whisper", n_best=1)
    with_alternatives = 0
    for path in wavs.values():
        heard = five.transcribe(read_wav(path))
        assert len(heard.alternatives) <= 4 and heard.text not in heard.alternatives
        assert len(set(heard.alternatives)) == len(heard.alternatives) and all(heard.alternatives)
        with_alternatives += bool(heard.alternatives)
        assert one.transcribe(read_wav(path)).alternatives == ()
    assert with_alternatives >= 3  # a beam of 5 nearly always ends with more than one transcript


def test_no_speech_is_no_text(recognizer):
    for audio in (silence(1.0), noise(1.5, level=0.02)):
        transcript = recognizer.transcribe(audio)
        assert transcript.text == "" and transcript.status in ("no speech", "not understood")


def test_bad_audio_is_refused(recognizer):
    with pytest.raises(AudioError, match="at most"):
        recognizer.transcribe(silence(31.0))
    with pytest.raises(AudioError, match="clipped"):
        recognizer.transcribe(np.where(tone(1.0) > 0, 32767, -32768).astype(np.int16))
    with pytest.raises(AudioError, match="mono"):
        recognizer.transcribe(np.zeros((2, 16000), dtype=np.int16))


def test_other_rates_are_resampled(recognizer, wavs):
    samples = read_int16(wavs["walk forward two metres"])
    upsampled = np.repeat(samples, 3)  # 48 kHz
    heard = recognizer.transcribe(upsampled, rate=48000)
    assert normalize_words(heard.text) == ["walk", "forward", "2", "metres"]
    assert heard.audio_s == pytest.approx(len(samples) / RATE, abs=0.01)


def test_pocketsphinx_never_returns_partial_paths(wav_dir):
    engine = make_recognizer("pocketsphinx-grammar")
    transcript = engine.transcribe(read_wav(speak(wav_dir, "do a")))
    assert transcript.text == "" and transcript.status == "not understood"


# -- voice activity ---------------------------------------------------------------------------------------------------


def test_vad_finds_speech_not_silence_or_noise(recognizer, wavs):
    vad = recognizer.vad
    speech = read_wav(wavs["walk forward two metres"])
    start, end = vad.speech_bounds(speech)
    # the padding (0.3 s) and espeak-ng's own trailing silence are cut; the 1.7 s of words are kept
    assert 0 < start < int(0.3 * RATE) and start + int(1.7 * RATE) < end < len(speech) - int(0.3 * RATE)
    assert vad.speech_bounds(silence(2.0)) is None
    assert vad.speech_bounds(noise(2.0, level=0.05)) is None
    assert vad.speech_bounds(tone(1.0)) is None  # a steady tone is not speech


def test_segmenter_cuts_utterances_with_the_hangover(recognizer, wavs):
    segmenter = Segmenter(recognizer.vad, hangover_s=0.3)
    stream = np.concatenate(
        [
            silence(0.5),
            read_int16(wavs["sit down"]),
            silence(1.0),
            read_int16(wavs["turn left"]),
            silence(1.0),
        ]
    )
    segments = [s for i in range(0, len(stream), 512) for s in segmenter.feed(stream[i : i + 512])]
    assert [s.kind for s in segments] == ["end", "end"]
    for s in segments:
        assert 0.28 <= s.emitted_s - s.speech_end_s <= 0.4  # speech end + hangover
    if recognizer.engine.name == "whisper":
        assert normalize_words(recognizer.transcribe(segments[0].samples, trim=False).text) == ["sit", "down"]


# -- microphone -------------------------------------------------------------------------------------------------------


class ScriptedPyAudio:
    """A pyaudio stand-in whose one input device plays `audio` in real time, then fails or stays silent."""

    paInt16 = 8

    def __init__(self, audio=None, fail_after=None, devices=1):
        self.audio, self.fail_after, self.devices = audio, fail_after, devices

    def PyAudio(self):  # noqa: N802 (pyaudio's name)
        return self

    def get_default_input_device_info(self):
        if not self.devices:
            raise OSError("No Default Input Device Available")
        return {"name": "scripted mic", "maxInputChannels": 1}

    def open(self, rate, frames_per_buffer, **_):
        return ScriptedStream(self.audio, frames_per_buffer, rate, self.fail_after)

    def terminate(self):
        pass


class ScriptedStream:
    def __init__(self, audio, chunk, rate, fail_after):
        self.audio, self.chunk, self.rate, self.fail_after, self.pos = audio, chunk, rate, fail_after, 0

    def read(self, n, exception_on_overflow=True):
        if self.fail_after is not None and self.pos >= self.fail_after:
            raise OSError(-9999, "Unanticipated host error")
        time.sleep(n / self.rate / 4)  # 4x real time
        piece = self.audio[self.pos : self.pos + n]
        self.pos += n
        return np.pad(piece, (0, n - len(piece))).astype(np.int16).tobytes()

    def stop_stream(self):
        pass

    def close(self):
        pass


def test_microphone_utterances_and_an_early_stop(wavs):
    recognizer = make_recognizer("whisper")
    audio = np.concatenate(
        [silence(0.3), read_int16(wavs["turn left"]), silence(0.8), read_int16(wavs["stop"]), silence(1.5)]
    )
    heard, done = [], threading.Event()

    def on_utterance(transcript, speech_end_at):
        heard.append((transcript.text, speech_end_at, time.monotonic()))
        if len(heard) == 2:
            done.set()

    capture = MicrophoneCapture(
        recognizer, pyaudio_module=ScriptedPyAudio(audio), hangover_s=0.4, early_s=0.1
    )
    capture.start(on_utterance)
    try:
        assert done.wait(60), heard
    finally:
        capture.stop()
    assert normalize_words(heard[0][0]) == ["turn", "left"]
    assert normalize_words(heard[1][0])[0] == "stop"  # decided early, at the pause
    assert all(end <= got for _, end, got in heard)
    assert capture.reused_decodes == 1  # "turn left": decoded at its pause, nothing said after it


def test_missing_and_vanishing_microphones():
    recognizer = make_recognizer("pocketsphinx-grammar")
    with pytest.raises(AudioError, match="no audio input device"):
        MicrophoneCapture(recognizer, pyaudio_module=ScriptedPyAudio(devices=0))
    errors, heard = [], []
    capture = MicrophoneCapture(recognizer, pyaudio_module=ScriptedPyAudio(silence(5.0), fail_after=4096))
    capture.start(lambda t, end: heard.append(t), errors.append)
    deadline = time.monotonic() + 10
    while not errors and time.monotonic() < deadline:
        time.sleep(0.02)
    capture.stop()
    assert errors and "failed mid-stream" in errors[0] and heard == []
