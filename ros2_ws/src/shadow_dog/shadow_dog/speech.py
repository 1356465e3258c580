"""Speech into the node: WAV files (given, or dropped into `wav_dir`) and the microphone, through
`shadow_edge.speech` (engine `asr_engine`, Silero VAD with `vad_threshold` and `vad_silence_s` of hangover).

Recognition runs on its own threads, so the control loop and the stop topic never wait for it; the microphone keeps
listening while the dog moves, and a spoken "stop" is decided early (speech_end -> halt without the rest of the
hangover or the model). Each utterance is timed: the speech end (microphone: the end of the last speech frame; a
file: when it was handed over, the audio having ended before), recognition time, and the node records text ->
program -> first motion from there. Audio that cannot be used (unreadable, silent, clipped, no speech, nothing the
recogniser trusts) is refused with its reason on ~/program; it never reaches the model. Misheard words next to
command words are corrected to the command vocabulary (`shadow_edge.speech.correct`) before the model reads the
text; the raw transcript is logged next to the corrected one. A microphone that is
missing or disappears mid-stream is an audio diagnostics error; nothing moves because of it.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from pathlib import Path

from .config import NodeConfig
from .logic import DogNodeLogic
from .outputs import DIAG_ERROR, DIAG_OK, DIAG_WARN

log = logging.getLogger(__name__)

MAX_PENDING_WAVS = 8


def _log_correction(transcript) -> None:
    """What was heard stays on record when the command-vocabulary correction changed it."""
    if getattr(transcript, "corrections", ()):
        log.info("heard %r, corrected to %r", transcript.heard, transcript.text)


class SpeechFrontEnd:
    def __init__(self, logic: DogNodeLogic, config: NodeConfig) -> None:
        self.logic = logic
        self.config = config
        self._files: queue.Queue[str | None] = queue.Queue(maxsize=MAX_PENDING_WAVS)
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._transcribe = None
        self._recognizer = None
        self._capture = None

    def start(self) -> None:
        try:
            from shadow_edge.speech import make_recognizer, read_wav

            self._recognizer = make_recognizer(
                self.config.asr_engine, vad_threshold=self.config.vad_threshold
            )
        except Exception as exc:  # ImportError, EngineError (no faster-whisper, model missing or damaged)
            self._transcribe = None
            self.logic.set_audio_status(DIAG_WARN, f"no speech recogniser ({exc}): text topic only")
        else:
            recognizer = self._recognizer
            self._transcribe = lambda path: recognizer.transcribe(read_wav(path))
            self.logic.set_audio_status(
                DIAG_OK,
                f"no audio capture configured: text topic and WAV input only ({recognizer.describe()})",
            )
        self._threads.append(
            threading.Thread(target=self._recognise_files, name="shadow_dog-wav", daemon=True)
        )
        if self.config.wav_dir:
            self._threads.append(
                threading.Thread(target=self._watch_dir, name="shadow_dog-wavdir", daemon=True)
            )
        if self.config.audio_capture:
            self._start_capture()
        for thread in self._threads:
            thread.start()

    def _start_capture(self) -> None:
        try:
            from shadow_edge.speech.capture import MicrophoneCapture
        except ImportError as exc:
            self.logic.set_audio_status(
                DIAG_ERROR, f"audio capture unavailable ({exc}): text topic and WAV only"
            )
            return
        if self._recognizer is None:
            return  # the recogniser's status says why
        try:
            self._capture = MicrophoneCapture(
                self._recognizer,
                device=None if self.config.audio_device < 0 else self.config.audio_device,
                rate=self.config.audio_rate,
                chunk=self.config.audio_chunk,
                hangover_s=self.config.vad_silence_s,
                early_accept=lambda text: self.logic.stop_phrases.match(text) is not None,
            )
            self._capture.start(self._on_utterance, self._on_capture_error)
        except Exception as exc:  # no pyaudio, no device, device busy
            self._capture = None
            self.logic.set_audio_status(DIAG_WARN, f"no audio capture ({exc}): text topic and WAV input only")
            log.warning("audio capture unavailable: %s", exc)
            return
        self.logic.set_audio_status(DIAG_OK, f"listening: {self._capture.describe()}")

    def _on_utterance(self, transcript, speech_end_at: float) -> None:
        if not transcript.text:
            self.logic.refuse_input("microphone", f"audio refused: {transcript.status}", "speech")
            return
        _log_correction(transcript)
        self.logic.submit_speech(
            transcript.text,
            speech_end_at=speech_end_at,
            asr_ms=transcript.total_ms,
            source="speech",
            alternatives=transcript.alternatives,
        )

    def _on_capture_error(self, message: str) -> None:
        self.logic.set_audio_status(DIAG_ERROR, f"{message}: text topic and WAV input only")

    def submit_wav(self, path: str) -> None:
        """Queue a WAV file for recognition (refused when the queue is full or there is no recogniser)."""
        if self._transcribe is None:
            self.logic.refuse_input(
                path, "no speech recogniser installed (pip install 'shadow-edge[audio]')", "wav"
            )
            return
        try:
            self._files.put_nowait(path)
        except queue.Full:
            self.logic.refuse_input(path, "too many WAV files waiting for recognition", "wav")

    def stop(self) -> None:
        self._stopping.set()
        if self._capture is not None:
            self._capture.stop()
        with contextlib.suppress(queue.Full):
            self._files.put_nowait(None)
        for thread in self._threads:
            thread.join(timeout=2.0)

    def _recognise_files(self) -> None:
        while not self._stopping.is_set():
            try:
                path = self._files.get(timeout=0.2)
            except queue.Empty:
                continue
            if path is None:
                return
            self._recognise(path)

    def _recognise(self, path: str) -> None:
        speech_end = self.logic.clock()
        start = time.perf_counter()
        try:
            transcript = self._transcribe(path)  # type: ignore[misc]
        except Exception as exc:  # AudioError with a reason, or anything the recogniser raised
            self.logic.refuse_input(path, f"audio refused: {exc}", "wav")
            return
        if not transcript.text:  # no speech, or nothing the recogniser trusts: never the model
            self.logic.refuse_input(path, f"audio refused: {transcript.status}", "wav")
            return
        _log_correction(transcript)
        self.logic.submit_speech(
            transcript.text,
            speech_end_at=speech_end,
            asr_ms=(time.perf_counter() - start) * 1000.0,
            source="wav",
            alternatives=transcript.alternatives,
        )

    def _watch_dir(self) -> None:
        directory = Path(self.config.wav_dir)
        seen = set(directory.glob("*.wav")) if directory.is_dir() else set()
        while not self._stopping.wait(0.2):
            if not directory.is_dir():
                continue
            current = set(directory.glob("*.wav"))
            for path in sorted(current - seen):
                self.submit_wav(str(path))
            seen = current
