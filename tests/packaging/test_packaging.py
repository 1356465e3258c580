"""The repository and its wheels stand alone.

The `shadow-edge` wheel carries every subpackage and the action spec, but no adapter and no training data; the
`shadow-edge-models` wheel carries the bundled adapter and the task's splits. Installed into a fresh environment
(run from a temporary directory, so that nothing comes from the source tree), the default adapter, the data and the
spec resolve inside that environment. Both wheels are built from a clean copy of the working tree (what git tracks
or would track), because setuptools reuses a stale `build/lib` of earlier builds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "training_record.json", "README.md")
SPLITS = ("train", "validation", "dev", "test")


def _source_files() -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: cannot tell the project's files from build output")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and os.path.lexists(ROOT / name)]


def _copy_tree(names: list[str], target: Path) -> None:
    for name in names:
        source, copy = ROOT / name, target / name
        copy.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            copy.symlink_to(os.readlink(source))  # relative links stay links, as in a clone
        elif source.is_file():
            shutil.copy2(source, copy)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    """{"shadow-edge": wheel, "shadow-edge-models": wheel}, built without build isolation from a clean copy."""
    tmp = tmp_path_factory.mktemp("wheels")
    source, out = tmp / "src", tmp / "dist"
    _copy_tree(_source_files(), source)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", out,
         source, source / "shadow-edge-models"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (runtime,) = out.glob("shadow_edge-*.whl")
    (models,) = out.glob("shadow_edge_models-*.whl")
    return {"shadow-edge": runtime, "shadow-edge-models": models}


def _names(wheel: Path) -> set[str]:
    return set(zipfile.ZipFile(wheel).namelist())


def test_wheel_contains_packages_and_spec_but_no_adapter_or_data(wheels):
    names = _names(wheels["shadow-edge"])
    for required in (
        "shadow_edge/__init__.py",
        "shadow_edge/runtime/actions.py",
        "shadow_edge/runtime/actions.json",
        "shadow_edge/runtime/stats.py",
        "shadow_edge/bench/cli.py",
        "shadow_edge/bench/references.py",
        "shadow_edge/export/bundled.py",
        "shadow_edge/export/base_model.py",
        "shadow_edge/tasks/robot_dog/generator.py",
        "shadow_dog/main.py",
    ):
        assert required in names, f"{required} missing from the wheel"
    assert not any(n.startswith(("tests/", "scripts/", "adapters/", "docs/")) for n in names)
    assert not any(n.endswith((".jsonl", ".safetensors")) for n in names), (
        "training data or weights in the wheel"
    )
    moved = ("shadow_edge/runtime/bench", "shadow_edge/runtime/weight_traffic", "shadow_edge/export/bench_")
    assert not any(n.startswith(moved) for n in names), "a stale build/lib got into the wheel"


def test_models_wheel_carries_the_adapter_and_the_splits(wheels):
    names = _names(wheels["shadow-edge-models"])
    for name in ADAPTER_FILES:
        assert f"shadow_edge_models/adapters/robot-dog-shadow/{name}" in names
    for split in SPLITS:
        assert f"shadow_edge_models/tasks/robot_dog/data/{split}.jsonl" in names
    assert not any(n.endswith(".png") or "eval_" in n for n in names), "evaluation reports belong to the repo"
    weights = zipfile.ZipFile(wheels["shadow-edge-models"]).getinfo(
        "shadow_edge_models/adapters/robot-dog-shadow/adapter_model.safetensors"
    )
    assert (
        weights.file_size
        == (ROOT / "adapters" / "robot-dog-shadow" / "adapter_model.safetensors").stat().st_size
    )


@pytest.fixture(scope="module")
def installed(wheels, tmp_path_factory) -> Path:
    """A fresh venv (seeing the system's site-packages for numpy, torch, ...) with both wheels installed in it."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    created = subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", venv],
        capture_output=True,
        text=True,
    )
    if created.returncode != 0:
        pytest.skip(f"cannot create a venv here: {created.stderr.strip()}")
    python = venv / "bin" / "python"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", *wheels.values()],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return venv


PROBE = """
import json, shadow_edge, shadow_dog.main
from shadow_edge.export.bundled import default_adapter_dir
from shadow_edge.runtime.actions import SPEC_PATH, load_spec
from shadow_edge.tasks.robot_dog.splits import DATA_DIR, load_split
print(json.dumps({"package": shadow_edge.__file__, "node": shadow_dog.main.__file__,
                  "adapter": str(default_adapter_dir()), "data": str(DATA_DIR), "spec": str(SPEC_PATH),
                  "spec_version": load_spec().version, "test_split": len(load_split("test"))}))
"""


def test_installed_wheel_finds_adapter_data_and_spec(installed, tmp_path):
    site = installed.resolve()
    result = subprocess.run(
        [installed / "bin" / "python", "-c", PROBE], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    for key in ("package", "node", "adapter", "data", "spec"):
        assert Path(found[key]).resolve().is_relative_to(site), (
            f"{key} comes from {found[key]}, not the install"
        )
    adapter = Path(found["adapter"])
    assert all((adapter / name).is_file() for name in ADAPTER_FILES)
    assert found["test_split"] > 0 and found["spec_version"]
    spec = json.loads(Path(found["spec"]).read_text(encoding="utf-8"))
    assert spec == json.loads((ROOT / "docs" / "spec" / "actions.json").read_text(encoding="utf-8"))


def test_installed_commands_answer_help(installed, tmp_path):
    for command in ("shadow-export", "shadow-run", "shadow-bench", "shadow-dog"):
        result = subprocess.run(
            [installed / "bin" / command, "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0 and result.stdout.startswith(f"usage: {command}"), result.stderr


@pytest.mark.slow
def test_installed_shadow_export_int8(installed, tmp_path):
    """The default export from the installed wheels: bundled adapter and splits from shadow-edge-models.

    What is tested is the install, not the model: the accuracy bar is lifted (the model's own accuracy is the
    exporter's and the adapter's tests) and 64 test commands are evaluated instead of 400."""
    pytest.importorskip("torch")
    out = tmp_path / "robot-dog-int8"
    command = [installed / "bin" / "shadow-export", "--int8", "-o", out, "--json",
               "--eval-limit", "64", "--max-accuracy-loss", "100"]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["precision"].startswith("int8")
    adapter = Path(manifest["source"]["adapter"])
    assert adapter.resolve().is_relative_to(installed.resolve()) and "shadow_edge_models" in adapter.parts
