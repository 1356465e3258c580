"""Write an export directory all at once: build it under a staging name, then swap it in.

`shadow-export -o OUT_DIR` must never leave a half-written OUT_DIR behind, and must not destroy what a user put
there: the export is built in `OUT_DIR.partial-<pid>` next to it and renamed into place only after it passed
validation. An existing OUT_DIR is replaced only when it is itself a shadow-export output (it has manifest.json,
or is a `--mode both` directory of them) or empty; anything else is refused before any work starts.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from shadow_edge.runtime.manifest import MANIFEST_FILE


class OutputDirError(RuntimeError):
    """OUT_DIR cannot be written (it holds someone's files, or is a file)."""


def _is_export(directory: Path) -> bool:
    if (directory / MANIFEST_FILE).is_file():
        return True
    subdirs = [p for p in directory.iterdir() if p.is_dir()]
    return bool(subdirs) and all((p / MANIFEST_FILE).is_file() for p in subdirs)


def check_replaceable(out_dir: Path) -> None:
    """Raise unless `out_dir` is absent, empty, or an earlier export that may be replaced."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise OutputDirError(f"{out_dir}: exists and is not a directory; choose another -o")
    if any(out_dir.iterdir()) and not _is_export(out_dir):
        raise OutputDirError(
            f"{out_dir}: exists and is not a shadow-export output (no manifest.json); refusing to replace it. "
            "Choose another -o or move it away"
        )


class StagedDir:
    """`with StagedDir(out) as stage:` write into `stage`; `commit()` swaps it into `out`; otherwise it is removed."""

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir).absolute()
        self.stage = self.out_dir.with_name(f"{self.out_dir.name}.partial-{os.getpid()}")
        self.committed = False

    def __enter__(self) -> Path:
        check_replaceable(self.out_dir)
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        if self.stage.exists():
            shutil.rmtree(self.stage)
        self.stage.mkdir()
        return self.stage

    def commit(self) -> Path:
        check_replaceable(self.out_dir)  # again: someone may have written there while we worked
        old = self.out_dir.with_name(f"{self.out_dir.name}.old-{os.getpid()}")
        if self.out_dir.exists():
            self.out_dir.rename(old)
        self.stage.rename(self.out_dir)
        if old.exists():
            shutil.rmtree(old)
        self.committed = True
        return self.out_dir

    def __exit__(self, *exc: object) -> None:
        if not self.committed and self.stage.exists():
            shutil.rmtree(self.stage, ignore_errors=True)
