"""sha256 digests of files, read in blocks so that a large ONNX file is never held in memory twice."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

BLOCK = 1 << 20


def _update_from_file(digest, path: Path, chunk: int) -> None:
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)


def file_sha256(path: Path | str, chunk: int = BLOCK) -> str:
    """Hex sha256 of one file's bytes."""
    digest = hashlib.sha256()
    _update_from_file(digest, Path(path), chunk)
    return digest.hexdigest()


def files_sha256(paths: Iterable[Path | str], root: Path | str | None = None, chunk: int = BLOCK) -> str:
    """Hex sha256 over several files, each file's name (relative to `root` if given) followed by its bytes.

    The names are part of the digest so that renaming a file changes it; with `root` the digest does not depend
    on where the tree lies on disk.
    """
    digest = hashlib.sha256()
    for path in map(Path, paths):
        name = path.relative_to(root) if root is not None else Path(path.name)
        digest.update(name.as_posix().encode())
        _update_from_file(digest, path, chunk)
    return digest.hexdigest()
