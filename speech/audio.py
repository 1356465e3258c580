"""Audio in: WAV files read, converted and checked before any recogniser sees them.

What the recognisers get is always 16 kHz mono float32 in [-1, 1]. What a file may be, and what happens otherwise:

- integer PCM of 8, 16, 24 or 32 bits, any number of channels, any rate from 8 to 192 kHz: converted (channels
  averaged, other rates resampled with soxr's high-quality filter, or linear interpolation when soxr is missing);
- float or compressed WAVs, other files, truncated files, empty files: refused (`AudioError`, with the reason);
- longer than `MAX_SECONDS` (a command is a few seconds; a long file is a wrong file): refused before decoding;
- clipped (more than `CLIPPED_FRACTION` of the samples at full scale: the words are distorted) or silent (peak
  below `SILENT_DBFS`): refused with that reason. Whether there is speech at all is the VAD's job (`vad.py`).
"""

from __future__ import annotations

import importlib
import os
import wave
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
MAX_SECONDS = 30.0
MIN_RATE, MAX_RATE = 8000, 192000
CLIPPED_FRACTION = 0.01  # of the samples at (or within 0.1% of) full scale
SILENT_DBFS = -60.0  # peak level under which a file holds nothing a microphone picked up


class AudioError(ValueError):
    """Audio that cannot be recognised; the message says why (file, encoding, level, device)."""


class NoSpeechError(AudioError):
    """Readable audio with no speech in it (silence, noise, or nothing the recogniser could make out)."""


def read_wav(path: str | os.PathLike[str], max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """A WAV file as 16 kHz mono float32 samples in [-1, 1], checked (module docstring); `AudioError` otherwise."""
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
            if not MIN_RATE <= rate <= MAX_RATE:
                raise AudioError(f"{path}: sample rate {rate} Hz is outside {MIN_RATE}..{MAX_RATE} Hz")
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
    samples = pcm_to_float(raw[:usable], width).reshape(-1, channels).mean(axis=1)
    samples = resample(samples, rate, SAMPLE_RATE)
    try:
        check_level(samples)
    except AudioError as exc:
        raise type(exc)(f"{path}: {exc}") from None
    return samples


def pcm_to_float(raw: bytes, width: int) -> np.ndarray:
    """Little-endian integer PCM bytes (8-bit unsigned, 16/24/32-bit signed) as float32 in [-1, 1)."""
    if width == 1:  # 8-bit WAV is unsigned
        return ((np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    if width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        value = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        value = np.where(value >= 1 << 23, value - (1 << 24), value)
        return (value / float(1 << 23)).astype(np.float32)
    dtype = {2: np.int16, 4: np.int32}[width]
    return (np.frombuffer(raw, dtype=dtype).astype(np.float64) / float(np.iinfo(dtype).max + 1)).astype(
        np.float32
    )


def as_float(samples: np.ndarray) -> np.ndarray:
    """int16 samples (a capture buffer) or floats, as float32 in [-1, 1]."""
    samples = np.asarray(samples)
    if samples.dtype == np.int16:
        return samples.astype(np.float32) / 32768.0
    return samples.astype(np.float32, copy=False)


def resample(samples: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """`samples` at `rate` Hz as float32 at `target` Hz (soxr HQ; linear interpolation without soxr)."""
    samples = np.asarray(samples, dtype=np.float32)
    if rate == target or len(samples) == 0:
        return samples
    try:
        soxr = importlib.import_module("soxr")
    except ImportError:
        n = max(1, round(len(samples) * target / rate))
        return np.interp(np.arange(n) * (rate / target), np.arange(len(samples)), samples).astype(np.float32)
    return soxr.resample(samples, rate, target, quality="HQ").astype(np.float32)


def level_dbfs(samples: np.ndarray) -> float:
    """Peak level in dBFS (full scale 0 dB; digital silence -inf)."""
    peak = float(np.max(np.abs(samples))) if len(samples) else 0.0
    return 20.0 * np.log10(peak) if peak > 0 else float("-inf")


def check_level(samples: np.ndarray) -> None:
    """Refuse silent and clipped audio (`NoSpeechError`, `AudioError`)."""
    peak_db = level_dbfs(samples)
    if peak_db < SILENT_DBFS:
        raise NoSpeechError(f"silent audio (peak {peak_db:.0f} dBFS, below {SILENT_DBFS:g} dBFS)")
    clipped = float(np.mean(np.abs(samples) >= 0.999))
    if clipped > CLIPPED_FRACTION:
        raise AudioError(
            f"clipped audio ({100 * clipped:.1f}% of the samples at full scale): lower the input gain"
        )


__all__ = [
    "MAX_SECONDS",
    "SAMPLE_RATE",
    "AudioError",
    "NoSpeechError",
    "as_float",
    "check_level",
    "level_dbfs",
    "pcm_to_float",
    "read_wav",
    "resample",
]
