"""The on-device runtime must import on a machine without torch: check both what it imports and what it loads."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

RUNTIME_DIR = Path(__file__).resolve().parents[2] / "runtime"
FORBIDDEN_MODULES = ("torch", "transformers", "peft", "optimum", "shadow_edge.export")
# The runtime never imports the bench, which sits on top of it; shadow-bench itself still imports no torch.
RUNTIME_FORBIDDEN = (*FORBIDDEN_MODULES, "shadow_edge.bench")
# text_to_num and cn2an: spoken numbers to digits (runtime/normalize.py), both light and torch-free.
ALLOWED_THIRD_PARTY = {"numpy", "onnxruntime", "tokenizers", "text_to_num", "cn2an"}

_PROBE = """
import json, sys
import shadow_edge.runtime
import shadow_edge.runtime.cli
{more}
forbidden = {forbidden!r}
print(json.dumps(sorted(m for m in sys.modules if any(m == f or m.startswith(f + ".") for f in forbidden))))
"""


def test_import_does_not_load_torch():
    code = _PROBE.format(forbidden=RUNTIME_FORBIDDEN, more="")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == [], f"importing shadow_edge.runtime loaded {loaded}"


def test_bench_cli_does_not_load_torch():
    code = _PROBE.format(
        forbidden=FORBIDDEN_MODULES, more="import shadow_edge.bench.cli, shadow_edge.bench.measure"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == [], f"importing shadow-bench loaded {loaded}"


def _runtime_sources() -> list[Path]:
    return sorted(p for p in RUNTIME_DIR.rglob("*.py") if "__pycache__" not in p.parts)


def _absolute_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def test_runtime_has_sources():
    names = {p.name for p in _runtime_sources()}
    assert {"__init__.py", "actions.py", "scoring.py", "cli.py", "stats.py"} <= names


@pytest.mark.parametrize("path", _runtime_sources(), ids=lambda p: str(p.relative_to(RUNTIME_DIR)))
def test_runtime_imports_only_allowed_modules(path):
    bad = []
    for lineno, module in _absolute_imports(path):
        top = module.split(".")[0]
        if top == "__future__" or top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY:
            continue
        bad.append(f"{path.name}:{lineno}: import {module}")
    assert not bad, (
        "the runtime may import only the standard library, numpy, onnxruntime, tokenizers and its own "
        "modules (relative imports):\n" + "\n".join(bad)
    )
