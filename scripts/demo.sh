#!/usr/bin/env bash
# The main job on the bundled default: export the robot-dog model to INT8 ONNX, then run a command through the
# on-device runtime. Installs what it needs first (root, Debian).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install.sh
shadow-export --int8 -o build/robot-dog
# the confidence gate for this export, chosen on the dev split (sentence frames training never saw) for <= 0.5% executed-wrong (routing.json)
python3 scripts/calibrate_routing.py build/robot-dog --limit 1000
# and its speech gate, chosen the same way on what the shipped recogniser heard of the dev split's English commands
python3 scripts/calibrate_routing.py build/robot-dog --speech tasks/robot_dog/data/speech/dev_asr.jsonl --limit 0
shadow-run build/robot-dog --text "walk forward two metres, then sit down" --json
