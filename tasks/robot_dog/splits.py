"""The packaged robot-dog splits (`data/*.jsonl`, written by `generator`) and their reader; no dependencies beyond the
standard library, so device-side code (calibration sets) can read them."""

from __future__ import annotations

import json
from pathlib import Path


def _data_dir() -> Path:
    """The splits: beside this module in a clone (or an editable install), else in the installed shadow-edge-models
    distribution (the shadow-edge wheel carries no training data). Not found: the clone's path, which
    `load_split` then names."""
    here = Path(__file__).with_name("data")
    if here.is_dir():
        return here
    try:
        from shadow_edge_models import task_data_dir

        return task_data_dir("robot_dog")
    except (ImportError, FileNotFoundError):
        return here


DATA_DIR = _data_dir()
SPLITS = ("train", "validation", "dev", "test")
LANGS = ("en", "zh")


def load_split(name: str, data_dir: str | Path | None = None) -> list[dict]:
    """Read one packaged split ("train", "validation", "dev" or "test")."""
    if name not in SPLITS:
        raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
    path = Path(data_dir) if data_dir is not None else DATA_DIR
    with (path / f"{name}.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
