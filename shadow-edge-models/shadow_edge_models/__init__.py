"""Where this distribution's data files are: the bundled adapters and the tasks' data splits (README.md)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent
DEFAULT_ADAPTER = "robot-dog-shadow"


def adapter_dir(name: str = DEFAULT_ADAPTER) -> Path:
    """The directory of bundled adapter `name` (FileNotFoundError when this distribution does not carry it)."""
    path = ROOT / "adapters" / name
    if not (path / "adapter_config.json").is_file():
        raise FileNotFoundError(f"shadow-edge-models carries no adapter {name!r} ({path})")
    return path


def task_data_dir(task: str = "robot_dog") -> Path:
    """The directory of task `task`'s data splits (FileNotFoundError when this distribution does not carry them)."""
    path = ROOT / "tasks" / task / "data"
    if not path.is_dir():
        raise FileNotFoundError(f"shadow-edge-models carries no data for task {task!r} ({path})")
    return path
