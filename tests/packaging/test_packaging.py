"""`pip install .` (a wheel, not the editable checkout) carries every subpackage and the data files."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_contains_packages_spec_and_data(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            tmp_path,
            ROOT,
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("shadow_edge-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "shadow_edge/__init__.py",
        "shadow_edge/runtime/actions.py",
        "shadow_edge/runtime/actions.json",
        "shadow_edge/export/base_model.py",
        "shadow_edge/tasks/robot_dog/generator.py",
        "shadow_edge/tasks/robot_dog/data/train.jsonl",
        "shadow_edge/tasks/robot_dog/data/validation.jsonl",
        "shadow_edge/tasks/robot_dog/data/test.jsonl",
    ):
        assert required in names, f"{required} missing from the wheel"
    assert not any(n.startswith(("tests/", "scripts/", "adapters/")) for n in names)
