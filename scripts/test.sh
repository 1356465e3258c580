#!/usr/bin/env bash
# The project's test command: install what is needed, lint, then the default (fast) test suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install.sh
ruff check .
ruff format --check .
python3 -m pytest -q  # pyproject's addopts leave out the `slow` tests: see scripts/test_slow.sh
