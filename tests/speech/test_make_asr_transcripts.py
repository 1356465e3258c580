"""scripts/make_asr_transcripts.py: commands of a split spoken by espeak-ng and heard by the shipped recogniser."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from shadow_edge.tasks.robot_dog.splits import load_split

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_asr_transcripts.py"


def _script():
    spec = importlib.util.spec_from_file_location("make_asr_transcripts", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_jobs_speak_only_the_split_in_english_half_of_them_noisy(tmp_path):
    jobs = _script().jobs("dev", 40, seed=0, cache=tmp_path)
    dev = {r["text"] for r in load_split("dev") if r["lang"] == "en"}
    assert len(jobs) == 40 and all(row["text"] in dev for row, *_ in jobs)
    assert sum(snr is not None for _, _, _, snr, _, _ in jobs) == 20
    synth = _script().synthesizer
    for source in ("espeak-ng", "flite"):  # each synthesiser is heard both clean and noisy
        snrs = [snr for _, voice, _, snr, _, _ in jobs if synth(voice) == source]
        assert len(snrs) == 20 and sum(snr is not None for snr in snrs) == 10
    assert jobs == _script().jobs("dev", 40, seed=0, cache=tmp_path)  # deterministic


def test_only_train_transcripts_go_into_the_data_folder():
    done = subprocess.run([sys.executable, str(SCRIPT), "--split", "test"], capture_output=True, text=True)
    assert done.returncode == 2 and "--out is required" in done.stderr


@pytest.mark.skipif(
    shutil.which("espeak-ng") is None
    or shutil.which("flite") is None
    or importlib.util.find_spec("faster_whisper") is None,
    reason="espeak-ng and flite speak and faster-whisper hears",
)
def test_dev_commands_are_spoken_and_heard(tmp_path):
    out = tmp_path / "dev_asr.jsonl"
    args = ["--split", "dev", "--limit", "3", "--workers", "1", "--min-similarity", "0", "--out", str(out)]
    subprocess.run([sys.executable, str(SCRIPT), *args, "--cache", str(tmp_path / "wav")], check=True)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    by_text = {r["text"]: r for r in load_split("dev")}
    assert 1 <= len(rows) <= 3
    for row in rows:
        assert by_text[row["said"]]["program"] == row["program"]
        assert row["text"] and 0 <= row["similarity"] <= 100


@pytest.mark.parametrize(
    ("said", "heard", "kept"),
    [
        ("walk forward two metres", "walk forward 2 meters.", True),
        ("Come over here 0.3 meters", "come up here near 1.3 meters.", False),
        ("bark 3 times then turn 90 degrees", "turn 90 degrees, bark three times", True),
        ("go to the left two slowly", "go to the left too slowly.", False),
        ("sit down", "sit down", True),
    ],
)
def test_a_transcript_is_kept_only_with_the_numbers_said(said, heard, kept):
    assert _script().numbers_kept({"said": said, "text": heard}) is kept


@pytest.mark.parametrize("name", ["train_asr.jsonl", "train_asr_voices.jsonl"])
def test_the_committed_train_transcripts_keep_their_numbers(name):
    from shadow_edge.tasks.robot_dog.training_data import asr_transcripts

    script = _script()
    assert all(script.numbers_kept(row) for row in asr_transcripts(name=name))


def test_the_committed_dev_speech_is_every_english_dev_command_once():
    from shadow_edge.tasks.robot_dog.splits import DATA_DIR

    rows = [json.loads(line) for line in (DATA_DIR / "speech" / "dev_asr.jsonl").read_text().splitlines()]
    dev = {r["text"]: r["program"] for r in load_split("dev") if r["lang"] == "en"}
    assert sorted(r["said"] for r in rows) == sorted(dev)
    assert all(dev[r["said"]] == r["program"] for r in rows)
    for source in ("espeak-ng", "flite"):  # the gate is calibrated on both synthesisers, clean and noisy
        assert {r["snr_db"] for r in rows if r["source"] == source} == {None, 20.0}
