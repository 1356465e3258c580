"""scripts/make_speech_set.py renders real speech: 16 kHz mono WAVs, a manifest that matches the split, cached."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in ("espeak-ng", "flite", "sox")),
    reason="espeak-ng, flite and sox make the test speech",
)
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_speech_set.py"


def make(out: Path, *args: str) -> list[dict]:
    subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), "--recordings-dir", str(out / "none"), *args],
        check=True,
        capture_output=True,
    )
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]


def test_speech_set(tmp_path):
    try:  # the task's split reader (splits.py; older trees: generator.py)
        from shadow_edge.tasks.robot_dog.splits import load_split
    except ImportError:
        from shadow_edge.tasks.robot_dog.generator import load_split

    entries = make(tmp_path, "--limit", "2", "--per-text", "2", "--langs", "en", "zh")
    assert len(entries) == 8  # 2 commands x 2 renderings x 2 languages
    rows = {r["id"]: r for r in load_split("test")}
    for entry in entries:
        assert rows[entry["id"]]["text"] == entry["text"] and rows[entry["id"]]["program"] == entry["program"]
        with wave.open(str(tmp_path / entry["wav"]), "rb") as wav:
            assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2)
            assert wav.getnframes() / 16000 == pytest.approx(entry["duration_s"], abs=1e-3)
            assert entry["duration_s"] > 2 * entry["pad_s"] + 0.3  # there is speech between the pads
    voices = {(e["id"], e["voice"], e["speed"]) for e in entries}
    assert len(voices) == 8  # the two renderings of a command differ
    assert {e["voice"] for e in entries if e["lang"] == "zh"} <= {"cmn", "cmn+f3"}
    # every English command is heard in both synthesisers' voices
    for command in {e["id"] for e in entries if e["lang"] == "en"}:
        assert {e["source"] for e in entries if e["id"] == command} == {"espeak-ng", "flite"}
    first = (tmp_path / entries[0]["wav"]).read_bytes()
    again = make(tmp_path / "again", "--limit", "2", "--per-text", "2", "--langs", "en", "zh")
    assert [e["wav"] for e in again] == [e["wav"] for e in entries]
    assert (tmp_path / "again" / entries[0]["wav"]).read_bytes() == first  # deterministic


def test_a_cached_wav_is_never_the_speech_of_another_text(tmp_path):
    entries = make(tmp_path, "--limit", "1", "--per-text", "1", "--langs", "en")
    digest = hashlib.sha256(entries[0]["text"].encode("utf-8")).hexdigest()[:10]
    # a regenerated split reuses ids for other texts: the text's hash in the name means a new file, never old speech
    assert entries[0]["wav"].endswith(f"__{digest}.wav")


def test_bad_arguments_are_refused(tmp_path):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--per-text", "0"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "error" in result.stderr


def test_flite_speed_stretches_the_speech(tmp_path):
    sys.path.insert(0, str(SCRIPT.parent))
    from make_speech_set import render, wav_seconds

    render(
        "-turn left-", "flite:slt", 200, tmp_path / "fast.wav", pad_s=0.0
    )  # a leading '-' is text, not an option
    render("-turn left-", "flite:slt", 100, tmp_path / "slow.wav", pad_s=0.0)
    assert wav_seconds(tmp_path / "slow.wav") > 1.5 * wav_seconds(tmp_path / "fast.wav")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fast.wav", "slow.wav"]  # no temporary file left
