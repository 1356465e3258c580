"""scripts/load_serve.py runs end to end on a tiny export: both servers, every level, the soak, the JSON report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from serve_support import tiny_export

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "load_serve.py"


@pytest.mark.slow
def test_load_script_reports_every_level_and_the_soak(tmp_path):
    model_dir = tiny_export(tmp_path / "model")
    out = tmp_path / "report.json"
    args = [sys.executable, str(SCRIPT), str(model_dir), "--clients", "1", "3", "--seconds", "0.5"]
    args += ["--rounds", "1", "--soak-seconds", "3", "--threads", "1", "--out", str(out)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert [level["clients"] for level in report["levels"]] == [1, 3]
    for level in report["levels"]:
        for name in ("batched", "one_at_a_time"):
            assert level[name]["answers"] > 0 and level[name]["errors"] == 0
            assert level[name]["p50_ms"] <= level[name]["p99_ms"]
    assert report["soak"]["answers"] > 0 and report["errors"] == 0 and report["memory_grew"] is False
    assert report["targets"]["clients"] == 3


def test_load_script_refuses_a_directory_without_a_manifest(tmp_path):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "manifest.json" in result.stderr
