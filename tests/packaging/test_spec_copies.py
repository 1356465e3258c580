"""The project carries its own copy of the contract (docs/spec/); the runtime ships actions.json from it.

docs/spec/ is what the README and the tests point at, so a clone stands alone. Where the shared contract this project
was written against is checked out beside the repository (../shared/spec), the copy must still equal it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS_SPEC = REPO / "docs" / "spec"
SHARED_SPEC = REPO.parent / "shared" / "spec"
SPEC_FILES = ("actions.md", "actions.json", "cli.md")


@pytest.mark.parametrize("name", SPEC_FILES)
def test_docs_spec_is_there(name):
    assert (DOCS_SPEC / name).stat().st_size > 0


@pytest.mark.parametrize("name", SPEC_FILES)
def test_docs_spec_equals_the_shared_contract(name):
    if not SHARED_SPEC.is_dir():
        pytest.skip(f"{SHARED_SPEC} is not checked out here")
    assert (DOCS_SPEC / name).read_bytes() == (SHARED_SPEC / name).read_bytes(), (
        f"docs/spec/{name} differs from {SHARED_SPEC / name}: copy it over"
    )


def test_runtime_ships_the_documented_actions_json():
    packaged = json.loads((REPO / "runtime" / "actions.json").read_text(encoding="utf-8"))
    assert packaged == json.loads((DOCS_SPEC / "actions.json").read_text(encoding="utf-8"))


def test_readme_points_at_the_projects_own_spec():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "docs/spec/cli.md" in readme and "docs/spec/actions.md" in readme
    assert "shared/spec" not in readme
