"""What every recogniser engine is: audio in (16 kHz mono float32, speech only), a hypothesis out."""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from shadow_edge.runtime.digest import file_sha256


class EngineError(RuntimeError):
    """An engine that cannot be set up: its library or model is missing, or the model files are not the ones
    expected."""


@dataclass(frozen=True)
class Hypothesis:
    """An engine's answer: `text` ("" when it understood nothing it trusts) and why, with its own scores."""

    text: str
    status: str = "ok"  # ok | not understood (no complete grammar sentence, or Whisper's no-speech rule)
    no_speech_prob: float | None = None
    avg_logprob: float | None = None
    window_s: float | None = None  # Whisper: the encoder's window
    alternatives: tuple[str, ...] = ()  # the engine's next-best texts, best first (Whisper's other beams)


class Engine(Protocol):
    name: str

    def decode(self, audio: np.ndarray) -> Hypothesis: ...

    def describe(self) -> str: ...


def import_optional(module: str, extra: str = "audio") -> Any:
    """`module`, imported by name (so the runtime imports without it), or `EngineError` saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise EngineError(f"{module} is not installed ({exc}): pip install 'shadow-edge[{extra}]'") from None


def package_dir(package: str) -> Path:
    """The folder of an installed package, found without importing it (a package's __init__ may pull torch)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EngineError(f"the package {package} is not installed: pip install 'shadow-edge[audio]'")
    return Path(next(iter(spec.submodule_search_locations)))


def check_sha256(files: dict[Path, str]) -> None:
    """`EngineError` unless every file exists with its expected SHA-256 (a damaged or replaced model)."""
    for path, expected in files.items():
        if not path.is_file():
            raise EngineError(f"model file {path} is missing")
        digest = file_sha256(path)
        if digest != expected:
            raise EngineError(f"model file {path} has SHA-256 {digest}, expected {expected}")
