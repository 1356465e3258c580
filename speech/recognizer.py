"""The recogniser: the engine table, `Recognizer.transcribe(audio) -> Transcript`, `transcribe_wav`.

    recognizer = make_recognizer("whisper", beam_size=1)     # engine options by name, see ENGINES
    transcript = recognizer.transcribe(samples)               # 16 kHz mono (int16 or float), or pass rate=
    transcript.text, transcript.status, transcript.vad_ms, transcript.asr_ms

`transcribe` checks the audio (too long, silent, clipped: `AudioError`), trims it to its speech with the Silero VAD
(none: text "" with status "no speech"), then decodes the speech with the engine (nothing it trusts: text "" with
status "not understood"). Text "" never reaches the model: callers refuse it with the status as the reason.
Misheard words next to command words are then corrected to the command vocabulary (`correct.py`; `correct=False`
turns it off): `text` is the corrected transcript, `heard` the engine's own, `corrections` what changed.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from .audio import (
    MAX_SECONDS,
    SAMPLE_RATE,
    AudioError,
    NoSpeechError,
    as_float,
    check_level,
    read_wav,
    resample,
)
from .engine import Engine, EngineError, Hypothesis

log = logging.getLogger(__name__)

# name -> (module, class); the module is imported only when the engine is made
ENGINES: dict[str, tuple[str, str]] = {
    "whisper": ("shadow_edge.speech.whisper", "WhisperEngine"),
    "pocketsphinx-grammar": ("shadow_edge.speech.sphinx", "GrammarEngine"),
}
DEFAULT_ENGINE = "whisper"
ENGINE_ENV = "SHADOW_ASR_ENGINE"


@dataclass(frozen=True)
class Transcript:
    """What was heard: `text` ("" unless `status` is "ok"; corrected to the command vocabulary), `heard` (the
    engine's own transcript, before correction), `corrections` ((heard word, new word) pairs) and where the time
    went."""

    text: str
    status: str  # ok | no speech | not understood
    engine: str
    audio_s: float  # the audio given
    speech_s: float  # the part the VAD kept and the engine decoded
    vad_ms: float
    asr_ms: float
    no_speech_prob: float | None = None
    avg_logprob: float | None = None
    window_s: float | None = None
    heard: str = ""
    corrections: tuple[tuple[str, str], ...] = ()
    alternatives: tuple[str, ...] = ()  # the engine's next-best texts, corrected like `text`, best first

    @property
    def total_ms(self) -> float:
        return self.vad_ms + self.asr_ms

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("vad_ms", "asr_ms", "audio_s", "speech_s"):
            out[key] = round(out[key], 3)
        return out


def make_engine(name: str = DEFAULT_ENGINE, **options: Any) -> Engine:
    """The engine called `name` (see ENGINES) made with `options`; `EngineError` for an unknown name or one that
    cannot be set up, `ValueError` (from the engine) for bad options."""
    if name not in ENGINES:
        raise EngineError(f"unknown speech engine {name!r} (known: {', '.join(ENGINES)})")
    module, cls = ENGINES[name]
    try:
        engine_class = getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        raise EngineError(f"speech engine {name!r} is not available: {exc}") from None
    try:
        return engine_class(**options)
    except TypeError as exc:  # an option this engine does not have
        raise EngineError(f"speech engine {name!r}: {exc}") from None


class Recognizer:
    """An engine behind the audio checks and the VAD (module docstring). Thread-safe where its engine is."""

    def __init__(
        self,
        engine: str | Engine = DEFAULT_ENGINE,
        vad_threshold: float = 0.5,
        max_seconds: float = MAX_SECONDS,
        correct: bool = True,
        correction_threshold: float | None = None,
        **engine_options: Any,
    ) -> None:
        from .correct import DEFAULT_THRESHOLD, VocabularyCorrector
        from .vad import SileroVad

        self.engine = make_engine(engine, **engine_options) if isinstance(engine, str) else engine
        self.vad = SileroVad(vad_threshold)
        self.max_seconds = max_seconds
        self.corrector = (
            VocabularyCorrector(threshold=correction_threshold or DEFAULT_THRESHOLD) if correct else None
        )

    def describe(self) -> str:
        correction = f"; {self.corrector.describe()}" if self.corrector is not None else ""
        return f"{self.engine.describe()}; Silero VAD (threshold {self.vad.threshold:g}){correction}"

    def transcribe(self, audio: np.ndarray, rate: int = SAMPLE_RATE, trim: bool = True) -> Transcript:
        """Text of the speech in `audio` (mono; int16 or float in [-1, 1]; resampled from `rate`). With
        `trim=False` the audio is taken as one utterance already cut by a VAD (the microphone path)."""
        samples = as_float(audio)
        if samples.ndim != 1:
            raise AudioError(f"expected mono audio (one dimension), got shape {samples.shape}")
        if rate != SAMPLE_RATE:
            samples = resample(samples, rate, SAMPLE_RATE)
        audio_s = len(samples) / SAMPLE_RATE
        if audio_s > self.max_seconds:
            raise AudioError(f"{audio_s:.1f} s of audio; at most {self.max_seconds:g} s per command")
        try:
            check_level(samples)
        except NoSpeechError:
            return Transcript("", "no speech", self.engine.name, audio_s, 0.0, 0.0, 0.0)
        start = time.perf_counter()
        bounds = self.vad.speech_bounds(samples) if trim else (0, len(samples))
        vad_ms = (time.perf_counter() - start) * 1000.0 if trim else 0.0
        if bounds is None:
            return Transcript("", "no speech", self.engine.name, audio_s, 0.0, vad_ms, 0.0)
        speech = samples[bounds[0] : bounds[1]]
        start = time.perf_counter()
        hyp = self.engine.decode(speech)
        asr_ms = (time.perf_counter() - start) * 1000.0
        heard = hyp.text if hyp.status == "ok" else ""
        corrected = self.corrector.correct(heard) if self.corrector is not None and heard else None
        if corrected is not None and corrected.changes:
            log.info("heard %r, corrected to %r", heard, corrected.text)
        return Transcript(
            corrected.text if corrected is not None else heard,
            hyp.status,
            self.engine.name,
            audio_s,
            len(speech) / SAMPLE_RATE,
            vad_ms,
            asr_ms,
            hyp.no_speech_prob,
            hyp.avg_logprob,
            hyp.window_s,
            heard,
            corrected.changes if corrected is not None else (),
            self._alternatives(hyp, corrected.text if corrected is not None else heard),
        )

    def _alternatives(self, hyp: Hypothesis, text: str) -> tuple[str, ...]:
        if hyp.status != "ok" or not text:
            return ()
        fixed = (
            self.corrector.correct(t).text if self.corrector is not None else t for t in hyp.alternatives
        )
        return tuple(dict.fromkeys(t for t in fixed if t and t != text))


def make_recognizer(engine: str = DEFAULT_ENGINE, **options: Any) -> Recognizer:
    return Recognizer(engine, **options)


@lru_cache(maxsize=4)
def default_recognizer(engine: str | None = None) -> Recognizer:
    """One shared recogniser per engine name (`$SHADOW_ASR_ENGINE`, else whisper), made on first use."""
    return Recognizer(engine or os.environ.get(ENGINE_ENV, DEFAULT_ENGINE))


def transcribe_wav(path: str | os.PathLike[str], recognizer: Recognizer | None = None) -> Transcript:
    """The transcript of a WAV file; `AudioError` for a file that cannot be used (its reason), `EngineError` when
    the recogniser cannot be set up."""
    samples = read_wav(path)
    return (recognizer or default_recognizer()).transcribe(samples)


__all__ = [
    "DEFAULT_ENGINE",
    "ENGINES",
    "EngineError",
    "Recognizer",
    "Transcript",
    "default_recognizer",
    "make_engine",
    "make_recognizer",
    "transcribe_wav",
]
