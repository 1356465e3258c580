"""The Python API the README documents: `Commander` from the runtime, `export` and `ExportOptions` from the exporter."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_documents_the_entry_points():
    text = README.read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    assert "from shadow_edge.runtime import Commander" in section
    assert "from shadow_edge.export import ExportOptions, export" in section


def test_runtime_entry_point(tmp_path):
    from shadow_edge.runtime import Commander, CommandResult, ModelLoadError

    assert {"program", "route", "accepted", "plan"} <= {f.name for f in dataclasses.fields(CommandResult)}
    assert callable(CommandResult.to_json) and callable(Commander.run)
    with pytest.raises(ModelLoadError):
        Commander(tmp_path / "not-an-export")


def test_export_entry_point():
    pytest.importorskip("torch", reason="the export extra is not installed")
    from shadow_edge.export import ExportOptions, export

    options = ExportOptions(precision="int8", out_dir="build/robot-dog-int8")
    assert (options.precision, options.out_dir) == ("int8", "build/robot-dog-int8")
    assert callable(export)
