#!/usr/bin/env bash
# The slow tests: they load the real SmolLM2 base or train. Same install as scripts/test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install.sh
python3 -m pytest -q -m slow
