"""Voice activity: Silero VAD (its ONNX model from the `silero-vad` wheel) on onnxruntime, without torch.

`SileroVad.probabilities` gives one speech probability per 32 ms frame (512 samples at 16 kHz; the model carries
its recurrent state and 64 samples of context from frame to frame). Speech starts at a frame at or above
`threshold` and ends once the probability stays below `threshold - 0.15` (Silero's own hysteresis) for the
hangover. `speech_bounds` trims a file to its speech; `Segmenter` cuts a stream into utterances.

The wheel is installed with `--no-deps` (its dependencies are torch and torchaudio); only its data file is used,
found without importing the package (its __init__ imports torch) and checked against `SILERO_SHA256`.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE, as_float
from .engine import check_sha256, import_optional, package_dir

FRAME = 512  # samples per Silero frame at 16 kHz (32 ms)
FRAME_S = FRAME / SAMPLE_RATE
CONTEXT = 64
SILERO_FILE = "data/silero_vad.onnx"
SILERO_SHA256 = "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"
DEFAULT_THRESHOLD = 0.5
DEFAULT_HANGOVER_S = 0.3
DEFAULT_PAD_S = 0.2
DEFAULT_MIN_SPEECH_S = 0.15
DEFAULT_MAX_UTTERANCE_S = 15.0


class SileroVad:
    """Silero VAD on onnxruntime; one instance per stream (it keeps state), `reset()` between streams."""

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, model_path: str | Path | None = None) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"VAD threshold must be in (0, 1), got {threshold}")
        ort = import_optional("onnxruntime", "runtime")
        if model_path is None:
            model_path = package_dir("silero_vad") / SILERO_FILE
            check_sha256({Path(model_path): SILERO_SHA256})
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self.threshold = threshold
        self.neg_threshold = max(0.01, threshold - 0.15)
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros((1, CONTEXT), dtype=np.float32)

    def frame_probability(self, frame: np.ndarray) -> float:
        """Speech probability of the next 512-sample frame of the stream."""
        x = np.concatenate([self._context, np.asarray(frame, dtype=np.float32).reshape(1, FRAME)], axis=1)
        with self._lock:
            out, self._state = self._session.run(None, {"input": x, "state": self._state, "sr": self._sr})
        self._context = x[:, -CONTEXT:]
        return float(out[0][0])

    def probabilities(self, samples: np.ndarray) -> np.ndarray:
        """One probability per whole frame of `samples` (16 kHz), from a fresh state."""
        samples = as_float(samples)
        self.reset()
        n = len(samples) // FRAME
        return np.array([self.frame_probability(samples[i * FRAME : (i + 1) * FRAME]) for i in range(n)])

    def speech_bounds(
        self,
        samples: np.ndarray,
        pad_s: float = DEFAULT_PAD_S,
        min_speech_s: float = DEFAULT_MIN_SPEECH_S,
    ) -> tuple[int, int] | None:
        """(start, end) sample indices from the first to the last speech frame, padded; None with less than
        `min_speech_s` of speech in all."""
        probs = self.probabilities(samples)
        speech = np.flatnonzero(probs >= self.threshold)
        if len(speech) * FRAME_S < min_speech_s:
            return None
        end = int(speech[-1]) + 1
        while end < len(probs) and probs[end] >= self.neg_threshold:  # the hysteresis tail
            end += 1
        pad = int(pad_s * SAMPLE_RATE)
        return max(0, int(speech[0]) * FRAME - pad), min(len(samples), end * FRAME + pad)


@dataclass(frozen=True)
class Segment:
    """A piece of a stream: `kind` "end" (an utterance, the hangover passed) or "pause" (speech paused for
    `early_s`: the utterance so far, for an early decision). Times are seconds from the stream's start."""

    kind: str
    samples: np.ndarray
    speech_end_s: float
    emitted_s: float


class Segmenter:
    """Cuts a 16 kHz stream into utterances with a `SileroVad`: `feed(chunk)` returns the segments that completed.

    An utterance starts at a speech frame (with `pad_s` before it), ends after `hangover_s` below the lower
    threshold (or at `max_utterance_s`), and is dropped with under `min_speech_s` of speech frames (clicks). With
    `early_s`, a "pause" segment is also given when speech has paused that long; `commit()` then says the
    utterance was taken as it was, and the rest of it is not given again."""

    def __init__(
        self,
        vad: SileroVad,
        hangover_s: float = DEFAULT_HANGOVER_S,
        pad_s: float = DEFAULT_PAD_S,
        min_speech_s: float = DEFAULT_MIN_SPEECH_S,
        max_utterance_s: float = DEFAULT_MAX_UTTERANCE_S,
        early_s: float | None = None,
    ) -> None:
        if hangover_s <= 0 or max_utterance_s <= 0 or pad_s < 0:
            raise ValueError("hangover_s and max_utterance_s must be > 0, pad_s >= 0")
        if early_s is not None and not 0 < early_s < hangover_s:
            raise ValueError(f"early_s must be in (0, hangover_s={hangover_s}), got {early_s}")
        self.vad = vad
        self.hangover = max(1, round(hangover_s / FRAME_S))
        self.early = None if early_s is None else max(1, round(early_s / FRAME_S))
        self.min_speech = max(1, round(min_speech_s / FRAME_S))
        self.max_frames = max(1, round(max_utterance_s / FRAME_S))
        self.pad = round(pad_s / FRAME_S)
        self._pending = np.zeros(0, dtype=np.float32)
        self._before: collections.deque[np.ndarray] = collections.deque(maxlen=max(1, self.pad))
        self._frames: list[np.ndarray] = []
        self._speech = self._quiet = self._last_speech = 0
        self._committed = False
        self.position = 0  # frames fed so far
        vad.reset()

    @property
    def in_speech(self) -> bool:
        return bool(self._frames)

    def commit(self) -> None:
        self._committed = True

    def feed(self, chunk: np.ndarray) -> list[Segment]:
        self._pending = np.concatenate([self._pending, as_float(chunk)])
        out: list[Segment] = []
        while len(self._pending) >= FRAME:
            frame, self._pending = self._pending[:FRAME], self._pending[FRAME:]
            self.position += 1
            p = self.vad.frame_probability(frame)
            if not self._frames:
                if p >= self.vad.threshold:
                    self._frames = [*self._before, frame]
                    self._before.clear()
                    self._speech, self._quiet, self._last_speech = 1, 0, len(self._frames)
                    self._committed = False
                else:
                    self._before.append(frame)
                continue
            self._frames.append(frame)
            if p >= self.vad.neg_threshold:
                self._speech += int(p >= self.vad.threshold)
                self._quiet, self._last_speech = 0, len(self._frames)
            else:
                self._quiet += 1
                if self._quiet == self.early and not self._committed and self._speech >= self.min_speech:
                    out.append(self._segment("pause", self._last_speech + self.pad))
            if self._quiet >= self.hangover or len(self._frames) >= self.max_frames:
                if self._speech >= self.min_speech and not self._committed:
                    out.append(self._segment("end", self._last_speech + self.pad))
                self._frames, self._speech, self._quiet = [], 0, 0
        return out

    def _segment(self, kind: str, upto: int) -> Segment:
        samples = np.concatenate(self._frames[:upto])
        # the stream position of the end of the last speech frame
        speech_end = (self.position - (len(self._frames) - self._last_speech)) * FRAME_S
        return Segment(kind, samples, speech_end, self.position * FRAME_S)


def same_speech(paused: Segment, ended: Segment) -> bool:
    """`ended` is the utterance that `paused` was cut from, with no speech after the pause: it starts with exactly
    `paused`'s samples and its speech ends where theirs did (it may carry more trailing quiet, up to `pad_s`)."""
    n = len(paused.samples)
    return (
        paused.speech_end_s == ended.speech_end_s
        and len(ended.samples) >= n
        and np.array_equal(paused.samples, ended.samples[:n])
    )


__all__ = ["FRAME", "Segment", "Segmenter", "SileroVad", "same_speech"]
