"""Speech test audio made at test time: espeak-ng + sox WAVs (cached per session by the callers' fixtures),
synthetic tones, silence and noise, and a WAV writer for every sample format."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

RATE = 16000

needs_speech_tools = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="espeak-ng and sox make the test speech",
)


def write_wav(path, samples, rate=RATE, channels=1, width=2) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples).astype({1: np.uint8, 2: np.int16, 4: np.int32}[width]).tobytes())
    return Path(path)


def tone(seconds, rate=RATE, level=0.3, freq=440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (level * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def silence(seconds, rate=RATE) -> np.ndarray:
    return np.zeros(int(seconds * rate), dtype=np.int16)


def noise(seconds, level=0.05, rate=RATE, seed=0) -> np.ndarray:
    return (np.random.default_rng(seed).normal(0, level * 32767, int(seconds * rate))).astype(np.int16)


def speak(directory: Path, text: str, voice: str = "en-us", speed: int = 150, pad_s: float = 0.3) -> Path:
    """`text` spoken by espeak-ng as 16 kHz mono 16-bit, with `pad_s` of silence around it (cached by name)."""
    out = Path(directory) / f"{'_'.join(text.split())}__{voice}__{speed}.wav"
    if out.is_file():
        return out
    raw = out.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True)
    subprocess.run(
        [
            "sox",
            "-D",
            "-R",
            str(raw),
            "-r",
            str(RATE),
            "-c",
            "1",
            "-b",
            "16",
            str(out),
            "pad",
            str(pad_s),
            str(pad_s),
        ],
        check=True,
    )
    raw.unlink()
    return out


def read_int16(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
