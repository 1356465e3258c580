#!/usr/bin/env bash
# Reproduce the bundled robot-dog adapter and the accuracy table in the README, in this order (CPU: ~2 h).
# Each step is resumable: rerun the script after an interruption and finished steps are skipped.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPORT=adapters/robot-dog-shadow/eval_commands.json
train() {  # method out steps [extra args]
    local method=$1 out=$2 steps=$3; shift 3
    [ -f "$out/adapter_model.safetensors" ] && return 0
    python3 scripts/train_robot_dog.py --method "$method" --out "$out" --steps "$steps" --resume "$@"
}
train shadow adapters/robot-dog-shadow 300 --save-dtype float16
python3 scripts/eval_commands.py --systems shadow-attached,shadow-detached --json "$REPORT" --update
train lora adapters/robot-dog-lora 150 --save-dtype float16
train dora adapters/robot-dog-dora 150 --save-dtype float16
python3 scripts/eval_commands.py --systems lora,dora,base --json "$REPORT" --update \
    --markdown adapters/robot-dog-shadow/eval_commands.md
