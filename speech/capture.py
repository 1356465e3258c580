"""Microphone capture: pyaudio -> ring buffer -> Silero VAD segmentation -> recogniser, one callback per utterance.

Two threads: the reader only reads the device into a bounded ring buffer (when recognition falls behind, the
oldest audio is dropped, with a log line, rather than the device overflowing), and the worker cuts utterances and
recognises them. `on_utterance(transcript, speech_end_at)` gets every utterance, also those with no text (status
says why; callers refuse those), `speech_end_at` on `time.monotonic()` at the end of the last speech frame.

Early decision: an utterance whose speech has paused `early_s` (shorter than the hangover) is recognised at once,
and when `early_accept(text)` says yes (by default: a spoken stop) it is delivered without waiting for the rest of
the hangover. A spoken "stop" while the dog moves is thereby heard ~`hangover_s - early_s` sooner; other commands
wait for the whole hangover, because "walk forward ... two metres" must not run as "walk forward".

Decoding during speech: the transcript made at that pause is kept, and when the hangover then ends with no more
speech (the utterance starts with exactly the samples decoded at the pause, and its speech ends where theirs did)
it is delivered at once instead of being recognised again. The utterance differs from what was decoded only by up
to `pad_s - early_s` of trailing quiet audio, and the recognition time is hidden in the hangover.

Every device problem is an `AudioError` at start (no pyaudio, no input device, a rate the device refuses) or a call
of `on_error(message)` from the reader when the device fails or disappears mid-stream; the capture then stops.
"""

from __future__ import annotations

import collections
import importlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .audio import SAMPLE_RATE, AudioError
from .engine import import_optional
from .recognizer import Recognizer, Transcript
from .vad import DEFAULT_HANGOVER_S, FRAME, Segment, Segmenter, same_speech

log = logging.getLogger(__name__)

RING_SECONDS = 20.0
STOP_WORDS = ("stop", "halt", "freeze")


def is_stop(text: str) -> bool:
    words = [w.strip(".,!?;:").lower() for w in text.split()]
    return bool(words) and words[0] in STOP_WORDS and len(words) <= 3


class MicrophoneCapture:
    def __init__(
        self,
        recognizer: Recognizer,
        device: int | None = None,
        rate: int = SAMPLE_RATE,
        chunk: int = 512,
        hangover_s: float = DEFAULT_HANGOVER_S,
        early_s: float | None = 0.12,
        early_accept: Callable[[str], bool] = is_stop,
        pyaudio_module: Any = None,
    ) -> None:
        self._pa_module = pyaudio_module or _pyaudio()
        self.recognizer, self.device, self.rate, self.chunk = recognizer, device, rate, chunk
        self.segmenter = Segmenter(recognizer.vad, hangover_s=hangover_s, early_s=early_s)
        self.early_accept = early_accept
        self._resampler = None
        if rate != SAMPLE_RATE:
            soxr = import_optional("soxr")
            self._resampler = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32")
        self._audio = self._pa_module.PyAudio()
        try:
            info = (
                self._audio.get_default_input_device_info()
                if device is None
                else self._audio.get_device_info_by_index(device)
            )
        except (OSError, ValueError) as exc:
            self._audio.terminate()
            raise AudioError(f"no audio input device ({exc})") from None
        if int(info.get("maxInputChannels", 0)) < 1:
            self._audio.terminate()
            raise AudioError(f"device {info.get('name')!r} has no input channels")
        self.device_name = str(info.get("name"))
        self._ring: collections.deque[tuple[np.ndarray, float]] = collections.deque(
            maxlen=max(1, int(RING_SECONDS * rate / chunk))
        )
        self._ready = threading.Condition()
        self._stopping = threading.Event()
        self._stream = None
        self._threads: list[threading.Thread] = []
        self.dropped_chunks = 0
        self._speculative: tuple[Segment, Transcript] | None = None  # decoded at the last pause
        self.reused_decodes = 0

    def describe(self) -> str:
        return f"{self.device_name} at {self.rate} Hz, chunk {self.chunk}; {self.recognizer.describe()}"

    def start(
        self,
        on_utterance: Callable[[Transcript, float], None],
        on_error: Callable[[str], None] = lambda message: log.error("%s", message),
    ) -> None:
        try:
            self._stream = self._audio.open(
                format=self._pa_module.paInt16,
                channels=1,
                rate=self.rate,
                input=True,
                input_device_index=self.device,
                frames_per_buffer=self.chunk,
            )
        except (OSError, ValueError) as exc:
            self._audio.terminate()
            raise AudioError(f"cannot open {self.device_name!r} at {self.rate} Hz ({exc})") from None
        self._threads = [
            threading.Thread(target=self._read, args=(on_error,), name="speech-read", daemon=True),
            threading.Thread(target=self._work, args=(on_utterance,), name="speech-asr", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read(self, on_error: Callable[[str], None]) -> None:
        while not self._stopping.is_set():
            try:
                data = self._stream.read(self.chunk, exception_on_overflow=False)
            except (OSError, ValueError) as exc:  # unplugged, driver gone, stream closed under us
                if not self._stopping.is_set():
                    on_error(f"audio device {self.device_name!r} failed mid-stream ({exc}); capture stopped")
                    self._stopping.set()
                break
            now = time.monotonic()
            with self._ready:
                if len(self._ring) == self._ring.maxlen:
                    self.dropped_chunks += 1
                    log.warning(
                        "speech recognition is behind: dropped %d ms of audio", 1000 * self.chunk // self.rate
                    )
                self._ring.append((np.frombuffer(data, dtype=np.int16), now))
                self._ready.notify()
        with self._ready:
            self._ready.notify()

    def _next_chunk(self) -> tuple[np.ndarray, float] | None:
        with self._ready:
            while not self._ring and not self._stopping.is_set():
                self._ready.wait(0.2)
            return self._ring.popleft() if self._ring else None

    def _work(self, on_utterance: Callable[[Transcript, float], None]) -> None:
        while True:
            item = self._next_chunk()
            if item is None:
                return
            samples, read_at = item
            audio = samples.astype(np.float32) / 32768.0
            if self._resampler is not None:
                audio = self._resampler.resample_chunk(audio)
            for segment in self.segmenter.feed(audio):
                # the chunk just fed ends at the segmenter's position, read at `read_at`
                speech_end_at = read_at - (
                    self.segmenter.position * FRAME / SAMPLE_RATE - segment.speech_end_s
                )
                self._deliver(segment, speech_end_at, on_utterance)

    def _deliver(
        self, segment: Segment, speech_end_at: float, on_utterance: Callable[[Transcript, float], None]
    ) -> None:
        speculative, self._speculative = self._speculative, None
        if segment.kind == "end" and speculative is not None and same_speech(speculative[0], segment):
            self.reused_decodes += 1  # nothing was said after the pause: its transcript is this utterance's
            on_utterance(speculative[1], speech_end_at)
            return
        try:
            transcript = self.recognizer.transcribe(segment.samples, trim=False)
        except AudioError as exc:  # e.g. a clipped utterance: reported, not recognised
            transcript = Transcript("", f"refused: {exc}", self.recognizer.engine.name, 0.0, 0.0, 0.0, 0.0)
        if segment.kind == "pause":
            if not (transcript.text and self.early_accept(transcript.text)):
                # not decided early: the utterance comes again when the hangover ends, maybe with the same samples
                self._speculative = (segment, transcript)
                return
            self.segmenter.commit()
        on_utterance(transcript, speech_end_at)

    def stop(self) -> None:
        self._stopping.set()
        with self._ready:
            self._ready.notify_all()
        for thread in self._threads:  # the reader returns after its current read (one chunk)
            thread.join(timeout=2.0)
        if self._stream is not None:
            try:
                self._stream.stop_stream()
                self._stream.close()
            except OSError as exc:  # the device is already gone
                log.debug("closing the audio stream: %s", exc)
        self._audio.terminate()


def _pyaudio() -> Any:
    try:
        return importlib.import_module("pyaudio")
    except ImportError:
        raise AudioError("microphone capture needs pyaudio: pip install 'shadow-edge[audio]'") from None


__all__ = ["MicrophoneCapture", "is_stop"]
