"""Speech front end: WAV files or a microphone -> voice-activity detection -> offline recogniser -> text.

`transcribe_wav(path) -> str` is what `shadow-run --wav` and the ROS node call. The recogniser is pocketsphinx (the
`audio` extra; its wheel ships an English acoustic model) behind the small `Recognizer` interface:

- a JSGF grammar built from the action vocabulary of `actions.json` (every command name as words, e.g. "front
  flip", "wiggle hips") and English phrasings of those commands (directions, distances, angles, counts, "and
  then"), plus any extra phrases given (e.g. the training texts the model knows). Decoding against it is fast
  (~0.1 s for a short command on this CPU) and exact on in-grammar speech;
- a free-text fallback: the wheel's general English language model, used when the grammar finds no hypothesis
  (`mode="auto"`, the default), or always (`mode="free"`).

Known limit, measured on espeak-ng speech: pocketsphinx's scores do not separate out-of-grammar speech ("what is
the capital of France") from commands, so in grammar mode such speech is mapped onto the closest command phrase.
The model and the safety layer still decide what runs; use `mode="free"` where open questions are expected.

Voice-activity detection is energy based (dBFS per 30 ms frame): a WAV file is trimmed to its speech (no speech:
""), and the microphone stream is cut into utterances at `silence_s` of quiet. Bad input raises `AudioError` with
the reason (not a WAV file, compressed or float encoding, empty, too long); nothing is guessed.

pocketsphinx and pyaudio are optional (`pip install 'shadow-edge[audio]'`) and imported only when used, by name
through importlib so that the runtime itself imports on a device without them.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import threading
import time
import wave
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .actions import ActionSpec, load_spec

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
FRAME_MS = 30
DEFAULT_THRESHOLD_DB = -35.0
DEFAULT_SILENCE_S = 0.5
MAX_SECONDS = 30.0
PAD_MS = 200
MODES = ("auto", "grammar", "free")


class AudioError(ValueError):
    """Audio that cannot be recognised; the message says why (file, encoding, device)."""


# -- reading and voice activity ------------------------------------------------------------------------------------------


def read_wav(path: str | os.PathLike[str], max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """A WAV file as 16 kHz mono int16 samples (integer PCM of 8, 16, 24 or 32 bits, any rate, any channels)."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, rate, frames = (
                wav.getnchannels(),
                wav.getsampwidth(),
                wav.getframerate(),
                wav.getnframes(),
            )
            if rate <= 0 or channels <= 0:
                raise AudioError(f"{path}: invalid header (rate {rate}, channels {channels})")
            if frames / rate > max_seconds:
                raise AudioError(
                    f"{path}: {frames / rate:.1f} s of audio; at most {max_seconds:g} s per command"
                )
            raw = wav.readframes(frames)
    except wave.Error as exc:
        # `wave` reads integer PCM only: float or compressed WAVs fail here with "unknown format"
        raise AudioError(
            f"{path}: not a readable PCM WAV file ({exc}); expected integer PCM, e.g. 16-bit"
        ) from None
    except EOFError:
        raise AudioError(f"{path}: truncated WAV file") from None
    if width not in (1, 2, 3, 4):
        raise AudioError(f"{path}: {8 * width}-bit samples are not supported")
    usable = len(raw) - len(raw) % (width * channels)
    if usable == 0:
        raise AudioError(f"{path}: no audio samples")
    samples = _to_float(raw[:usable], width).reshape(-1, channels).mean(axis=1)
    samples = _resample(samples, rate, SAMPLE_RATE)
    return np.clip(np.round(samples * 32767.0), -32768, 32767).astype(np.int16)


def _to_float(raw: bytes, width: int) -> np.ndarray:
    if width == 1:  # 8-bit WAV is unsigned
        return (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
    if width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        value = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        value = np.where(value >= 1 << 23, value - (1 << 24), value)
        return value.astype(np.float64) / float(1 << 23)
    dtype = {2: np.int16, 4: np.int32}[width]
    return np.frombuffer(raw, dtype=dtype).astype(np.float64) / float(np.iinfo(dtype).max + 1)


def _resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target or len(samples) == 0:
        return samples
    n = max(1, round(len(samples) * target / rate))
    return np.interp(np.arange(n) * (rate / target), np.arange(len(samples)), samples)


def frame_levels_db(samples: np.ndarray, rate: int = SAMPLE_RATE, frame_ms: int = FRAME_MS) -> np.ndarray:
    """RMS level of each frame in dBFS (full-scale sine ~ -3 dB, digital silence -120 dB)."""
    size = max(1, rate * frame_ms // 1000)
    n = len(samples) // size
    if n == 0:
        return np.zeros(0)
    frames = samples[: n * size].astype(np.float64).reshape(n, size) / 32768.0
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    return 20.0 * np.log10(np.maximum(rms, 1e-6))


def speech_bounds(
    samples: np.ndarray,
    rate: int = SAMPLE_RATE,
    threshold_db: float = DEFAULT_THRESHOLD_DB,
    pad_ms: int = PAD_MS,
) -> tuple[int, int] | None:
    """(start, end) sample indices of the speech in `samples`, padded; None when no frame is above the threshold."""
    levels = frame_levels_db(samples, rate)
    loud = np.flatnonzero(levels > threshold_db)
    if len(loud) == 0:
        return None
    size = rate * FRAME_MS // 1000
    pad = rate * pad_ms // 1000
    return max(0, int(loud[0]) * size - pad), min(len(samples), (int(loud[-1]) + 1) * size + pad)


class StreamingVad:
    """Cuts a stream of int16 chunks into utterances: speech starts at a loud frame, ends after `silence_s` quiet."""

    def __init__(
        self,
        rate: int = SAMPLE_RATE,
        threshold_db: float = DEFAULT_THRESHOLD_DB,
        silence_s: float = DEFAULT_SILENCE_S,
        min_speech_s: float = 0.15,
        max_utterance_s: float = 10.0,
    ) -> None:
        self.rate = rate
        self.threshold_db = threshold_db
        self.frame = rate * FRAME_MS // 1000
        self.silence_frames = max(1, round(silence_s * 1000 / FRAME_MS))
        self.min_frames = max(1, round(min_speech_s * 1000 / FRAME_MS))
        self.max_frames = max(1, round(max_utterance_s * 1000 / FRAME_MS))
        self.pre_frames = max(1, PAD_MS // FRAME_MS)
        self._pending = np.zeros(0, dtype=np.int16)
        self._recent: list[np.ndarray] = []  # quiet frames before speech (padding)
        self._speech: list[np.ndarray] = []
        self._loud = 0
        self._quiet = 0

    @property
    def in_speech(self) -> bool:
        return bool(self._speech)

    def feed(self, chunk: np.ndarray) -> list[np.ndarray]:
        """Add samples; returns the utterances that ended within them."""
        self._pending = np.concatenate([self._pending, np.asarray(chunk, dtype=np.int16)])
        done = []
        while len(self._pending) >= self.frame:
            frame, self._pending = self._pending[: self.frame], self._pending[self.frame :]
            level = frame_levels_db(frame, self.rate)[0]
            loud = level > self.threshold_db
            if not self._speech:
                if loud:
                    self._speech = [*self._recent, frame]
                    self._recent = []
                    self._loud, self._quiet = 1, 0
                else:
                    self._recent = [*self._recent, frame][-self.pre_frames :]
                continue
            self._speech.append(frame)
            self._loud += int(loud)
            self._quiet = 0 if loud else self._quiet + 1
            if self._quiet >= self.silence_frames or len(self._speech) >= self.max_frames:
                if self._loud >= self.min_frames:
                    done.append(np.concatenate(self._speech))
                self._speech, self._loud, self._quiet = [], 0, 0
        return done


# -- the grammar ------------------------------------------------------------------------------------------------------------

_UNITS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
# Numbers the action language uses: distances up to 5 m (halves), angles up to 360 degrees in usual steps. A smaller
# number grammar decodes measurably more accurately than every number up to 999.
_NUM = (
    "<unit> | ten | twelve | fifteen | (twenty | thirty | forty | fifty | sixty | seventy | eighty | ninety) [five]"
    " | [one | a] hundred [and] (twenty | thirty | fifty | eighty) | two hundred [and] seventy"
    " | three hundred [and] sixty | zero | half"
)
_TOKEN = re.compile(r"<[a-z_]+>|[()\[\]|]|[^\s()\[\]|<>]+")


def _grammar_rules(spec: ActionSpec, extras: Sequence[str]) -> dict[str, str]:
    names = [n.replace("_", " ") for n in spec.commands]
    rules = {
        "unit": " | ".join(_UNITS),
        "num": _NUM,
        "number": "<num> [point five | and a half]",
        "dir": "forward | forwards | ahead | back | backward | backwards | left | right | to the (left | right)"
        " | sideways",
        "dist": "<number> (metre | metres | meter | meters) | a (bit | little) | half a (metre | meter)",
        "move": "(walk | go | move | step | run) [<dir>] [<dist>] [<dir>]",
        "turn": "(turn | rotate | spin) [around | left | right] [by] [<number> degrees] [left | right | around]",
        "posture": "sit [down] | stand [up] | get up | lie down | recover | stand back up",
        "trick": "say hello | wave [your paw] | do a (front flip | flip | dance | trick) | dance [once | twice]"
        " | [front] jump [forward] | [front] pounce | wiggle [your] hips | make a heart",
        "bark": "bark [once | twice | <number> times] | speak",
        "stop": "stop [moving | now] | halt | freeze",
        "name": " | ".join(names),
    }
    alternatives = ["<move>", "<turn>", "<posture>", "<trick>", "<bark>", "<stop>", "<name>"]
    if extras:
        rules["extra"] = " | ".join(extras)
        alternatives.append("<extra>")
    rules["cmd"] = " | ".join(alternatives)
    rules["utterance"] = (
        "[please] <cmd> [please] [(and | then | and then) <cmd> [please]] [(and | then | and then) <cmd>]"
    )
    return rules


def _clean_phrase(phrase: str) -> list[str]:
    return "".join(c if c.isalpha() or c in " '" else " " for c in phrase.lower()).split()


def build_grammar(
    spec: ActionSpec | None = None,
    extra_phrases: Iterable[str] = (),
    known_word: Callable[[str], bool] | None = None,
) -> str:
    """The JSGF grammar of spoken commands: the action names of `spec` as words, their usual English phrasings,
    and `extra_phrases` (phrases with a word the dictionary does not know are left out, with a log line)."""
    spec = spec or load_spec()
    known = known_word or (lambda word: True)
    extras = set()
    for phrase in extra_phrases:
        words = _clean_phrase(phrase)
        if words and all(known(w) for w in words):
            extras.add(" ".join(words))
        elif words:
            log.debug("grammar: left out %r (a word is not in the dictionary)", phrase)
    rules = _grammar_rules(spec, sorted(extras))
    words_used = {t for body in rules.values() for t in _TOKEN.findall(body) if t[0] not in "<()[]|"}
    unknown = sorted(w for w in words_used if not known(w))
    if unknown:
        raise ValueError(f"grammar words missing from the pronunciation dictionary: {', '.join(unknown)}")
    lines = ["#JSGF V1.0;", "grammar robot_dog;", f"public <utterance> = {rules.pop('utterance')};"]
    lines += [f"<{name}> = {body};" for name, body in rules.items()]
    return "\n".join(lines) + "\n"


def grammar_matcher(spec: ActionSpec | None = None, extra_phrases: Iterable[str] = ()) -> re.Pattern[str]:
    """A regular expression that accepts exactly the complete sentences of the grammar (words joined by spaces).

    pocketsphinx returns the best *partial* path when no complete sentence fits the audio ("turn eleven");
    such a hypothesis is not trusted."""
    extras = sorted({" ".join(w) for w in (_clean_phrase(p) for p in extra_phrases) if w})
    rules = _grammar_rules(spec or load_spec(), extras)

    def expand(body: str) -> str:
        out = []
        for token in _TOKEN.findall(body):
            if token.startswith("<"):
                out.append("(?:" + expand(rules[token[1:-1]]) + ")")
            elif token == "(" or token == "[":
                out.append("(?:")
            elif token == ")":
                out.append(")")
            elif token == "]":
                out.append(")?")
            elif token == "|":
                out.append("|")
            else:
                out.append(re.escape(token) + " ")
        return "".join(out)

    return re.compile(expand(rules["utterance"]))


# -- the recogniser ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Transcript:
    text: str
    engine: str  # grammar | free | none (no speech)
    decode_ms: float


def _pocketsphinx():
    try:
        return importlib.import_module("pocketsphinx")
    except ImportError:
        raise AudioError("speech recognition needs pocketsphinx: pip install 'shadow-edge[audio]'") from None


class Recognizer:
    """pocketsphinx with the command grammar and the free-text fallback (module docstring); thread-safe."""

    def __init__(
        self,
        mode: str = "auto",
        extra_phrases: Sequence[str] = (),
        threshold_db: float = DEFAULT_THRESHOLD_DB,
        spec: ActionSpec | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        ps = _pocketsphinx()
        self.mode = mode
        self.threshold_db = threshold_db
        self._lock = threading.Lock()
        self._free = ps.Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")
        self._grammar = None
        if mode != "free":
            self._grammar = ps.Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")
            lookup = self._grammar.lookup_word
            jsgf = build_grammar(spec, extra_phrases, known_word=lambda w: lookup(w) is not None)
            self._grammar.add_jsgf_string("robot_dog", jsgf)
            self._grammar.activate_search("robot_dog")
            self._complete = grammar_matcher(spec, extra_phrases)

    def describe(self) -> str:
        return f"pocketsphinx ({self.mode}: command grammar, free-text fallback)"

    def transcribe(self, samples: np.ndarray) -> Transcript:
        """16 kHz mono int16 samples to text; "" (engine "none") when there is no speech in them."""
        start = time.perf_counter()
        samples = np.asarray(samples, dtype=np.int16)
        bounds = speech_bounds(samples, SAMPLE_RATE, self.threshold_db)
        if bounds is None:
            return Transcript("", "none", (time.perf_counter() - start) * 1000.0)
        raw = samples[bounds[0] : bounds[1]].tobytes()
        with self._lock:
            text, engine = "", "none"
            if self._grammar is not None:
                text, engine = _decode(self._grammar, raw), "grammar"
                if text and not self._complete.fullmatch(text + " "):
                    log.debug("grammar hypothesis %r is not a complete command: free-text fallback", text)
                    text = ""
            if not text and self.mode != "grammar":
                text, engine = _decode(self._free, raw), "free"
        return Transcript(text, engine if text else "none", (time.perf_counter() - start) * 1000.0)


def _decode(decoder, raw: bytes) -> str:
    decoder.start_utt()
    decoder.process_raw(raw, full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    return " ".join(hyp.hypstr.split()) if hyp is not None else ""


@lru_cache(maxsize=1)
def default_recognizer() -> Recognizer:
    mode = os.environ.get("SHADOW_ASR_MODE", "auto")
    return Recognizer(mode=mode)


def transcribe_wav(path: str | os.PathLike[str]) -> str:
    """The text spoken in a WAV file ("" when it holds no speech); `AudioError` for a file that cannot be read."""
    try:
        samples = read_wav(path)
        return default_recognizer().transcribe(samples).text
    except AudioError as exc:
        raise AudioError(f"speech front end: {exc}") from None


# -- microphone -----------------------------------------------------------------------------------------------------------


class MicrophoneCapture:
    """pyaudio capture -> `StreamingVad` -> `Recognizer`; calls `on_text(text, speech_end_at, asr_ms)` per utterance
    (`speech_end_at` on `time.monotonic()`). Raises `AudioError` when pyaudio or an input device is missing."""

    def __init__(
        self,
        device: int | None = None,
        rate: int = SAMPLE_RATE,
        chunk: int = 480,
        threshold_db: float = DEFAULT_THRESHOLD_DB,
        silence_s: float = DEFAULT_SILENCE_S,
        recognizer: Recognizer | None = None,
    ) -> None:
        try:
            self._pyaudio = importlib.import_module("pyaudio")
        except ImportError:
            raise AudioError("microphone capture needs pyaudio: pip install 'shadow-edge[audio]'") from None
        self.device, self.rate, self.chunk = device, rate, chunk
        self.vad = StreamingVad(rate, threshold_db, silence_s)
        self.recognizer = recognizer or default_recognizer()
        self._audio = self._pyaudio.PyAudio()
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
        self._stream = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def describe(self) -> str:
        return f"{self.device_name} at {self.rate} Hz, chunk {self.chunk}, {self.recognizer.describe()}"

    def start(self, on_text: Callable[[str, float, float], None]) -> None:
        self._stream = self._audio.open(
            format=self._pyaudio.paInt16,
            channels=1,
            rate=self.rate,
            input=True,
            input_device_index=self.device,
            frames_per_buffer=self.chunk,
        )
        self._thread = threading.Thread(target=self._run, args=(on_text,), name="asr-capture", daemon=True)
        self._thread.start()

    def _run(self, on_text: Callable[[str, float, float], None]) -> None:
        while not self._stopping.is_set():
            try:
                data = self._stream.read(self.chunk, exception_on_overflow=False)
            except OSError as exc:
                log.error("audio capture failed: %s", exc)
                return
            samples = np.frombuffer(data, dtype=np.int16)
            for utterance in self.vad.feed(samples):
                speech_end = time.monotonic()
                start = time.perf_counter()
                audio = _resample(utterance.astype(np.float64), self.rate, SAMPLE_RATE)
                transcript = self.recognizer.transcribe(np.round(audio).astype(np.int16))
                on_text(transcript.text, speech_end, (time.perf_counter() - start) * 1000.0)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self._stream is not None:
            self._stream.stop_stream()
            self._stream.close()
        self._audio.terminate()


__all__ = [
    "AudioError",
    "MicrophoneCapture",
    "Recognizer",
    "StreamingVad",
    "Transcript",
    "build_grammar",
    "default_recognizer",
    "frame_levels_db",
    "read_wav",
    "speech_bounds",
    "transcribe_wav",
]
