"""The `--against` references of `shadow-bench`: which there are and what they need, the base and adapter they are
built from, and the process each runs in (`python -m shadow_edge.bench.references NAME`, so that torch is never
imported by the bench itself)."""

from __future__ import annotations

import collections
import json
import logging
import subprocess
import threading
from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from shadow_edge.bench.errors import PROG, BenchInputError, BenchRunError, BenchUsageError

REFERENCES = ("torch", "optimum", "optimum-int8")  # what --against knows (bench/references.py)
_OPTIMUM_PACKAGES = ("torch", "transformers", "peft", "optimum")
REFERENCE_PACKAGES = {"torch": ("torch", "transformers", "peft"), "optimum": _OPTIMUM_PACKAGES}
REFERENCE_PACKAGES["optimum-int8"] = _OPTIMUM_PACKAGES

log = logging.getLogger(PROG)


def parse_references(values: Sequence[str] | None) -> list[str]:
    names: list[str] = []
    for value in values or []:
        for name in (n.strip().lower() for n in value.split(",")):
            if not name:
                continue
            if name not in REFERENCES:
                raise BenchUsageError(
                    f"--against: unknown reference {name!r} (known: {', '.join(REFERENCES)})"
                )
            if name not in names:
                names.append(name)
    return names


def reference_source(
    manifest_raw: dict[str, Any], base: str | None, adapter: str | None, model_dir: Path
) -> dict:
    """Base and adapter the references are built from: the options, else the manifest's `source`."""
    source = manifest_raw.get("source") if isinstance(manifest_raw.get("source"), dict) else {}
    base = base if base is not None else source.get("base")
    adapter = adapter if adapter is not None else source.get("adapter")
    if not adapter:
        raise BenchInputError(
            f"{model_dir / 'manifest.json'} does not say which adapter the model was exported from "
            "(source.adapter); pass --adapter PATH for the references"
        )

    def located(path: str) -> str:
        p = Path(path).expanduser()
        if not p.is_absolute() and not p.exists() and (model_dir / p).exists():
            p = model_dir / p  # recorded relative to the export directory
        return str(p)

    adapter = located(adapter)
    if not (Path(adapter) / "adapter_config.json").is_file():
        raise BenchInputError(
            f"adapter {adapter}: no adapter_config.json there (not a peft adapter directory)"
        )
    if base is not None:
        base = located(base)
        if not Path(base).is_dir():
            raise BenchInputError(f"base {base}: not a directory")
    return {"base": base, "adapter": adapter}


def check_reference_packages(names: Sequence[str]) -> None:
    """Refuse early (before minutes of measuring) when a reference's packages are not installed (no import)."""
    for name in names:
        missing = [m for m in REFERENCE_PACKAGES[name] if find_spec(m) is None]
        if missing:
            raise BenchRunError(
                f"--against {name} needs {', '.join(missing)}, which is not installed here "
                "(pip install 'shadow-edge[export]'); the runtime itself does not need it"
            )


class ReferenceProcess:
    """One reference implementation in its own process (`bench_references.serve`): rounds of commands go in on its
    stdin, measurements come back on its stdout, its log is relayed as it comes."""

    def __init__(self, name: str, command: Sequence[str]) -> None:
        self.name = name
        self.tail: collections.deque[str] = collections.deque(maxlen=20)
        self.process = subprocess.Popen(
            list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self._relay = threading.Thread(target=self._relay_log, daemon=True)
        self._relay.start()

    def _relay_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            if line.strip():
                self.tail.append(line.rstrip())
                log.info("%s", line.rstrip())

    def _failed(self, why: str) -> BenchRunError:
        return BenchRunError(f"the {self.name} reference failed: {why}")

    def _reply(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:  # it exited: its last words say why
            code = self.process.wait()
            self._relay.join(timeout=5)
            last = self.tail[-1] if self.tail else f"exit status {code}"
            raise self._failed(last.removeprefix(f"{PROG} [{self.name}]: "))
        try:
            reply = json.loads(line)
        except json.JSONDecodeError:
            raise self._failed(f"unreadable reply {line[:80]!r}") from None
        if "error" in reply:
            raise self._failed(str(reply["error"]))
        return reply

    def ready(self) -> dict[str, Any]:
        """Wait until the model is built; its details (implementation, versions, load time, ...)."""
        return dict(self._reply().get("details", {}))

    def measure(self, texts: Sequence[str], warmup: int = 0) -> dict[str, Any]:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps({"texts": list(texts), "warmup": warmup}) + "\n")
            self.process.stdin.flush()
        except OSError:  # it died
            pass
        return self._reply()

    def close(self) -> None:
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
            self.process.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
