#!/usr/bin/env bash
# Speed targets of issue 4, measured side by side in one run: the bundled robot-dog model exported --int8 (detached)
# against peft's detached shadow in PyTorch and against optimum's ONNX export of it (FP32, and quantized by optimum's
# ORTQuantizer as an extra baseline), with a 1,000-command stream for memory growth. Writes build/bench-robot-dog.json and build/bench-robot-dog.png and prints the report.
#
#   bash scripts/bench_robot_dog.sh [extra shadow-bench options, e.g. --commands 400]
#
# Exports the model first if build/robot-dog is not there. Runs under `nice` (shared machines); on a quiet machine
# set NICE=0.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

NICE="${NICE:-10}"
MODEL_DIR="${MODEL_DIR:-build/robot-dog}"

if [ ! -f "$MODEL_DIR/manifest.json" ]; then
    echo "bench_robot_dog: $MODEL_DIR missing; exporting it (shadow-export --int8)" >&2
    nice -n "$NICE" shadow-export --int8 -o "$MODEL_DIR"
fi
nice -n "$NICE" shadow-bench "$MODEL_DIR" --against torch,optimum,optimum-int8 --stream 1000 --json "$@"
