#!/usr/bin/env bash
# The main job on the bundled default: export the robot-dog model to INT8 ONNX, then run a command through the
# on-device runtime. Installs what it needs first (root, Debian).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install.sh
shadow-export --int8 -o build/robot-dog
# the confidence gate for this export, chosen on the dev split (sentence frames training never saw) for <= 0.5% executed-wrong (routing.json)
python3 scripts/calibrate_routing.py build/robot-dog --limit 1000
shadow-run build/robot-dog --text "walk forward two metres, then sit down" --json
