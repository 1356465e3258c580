#!/usr/bin/env bash
# Reproduce the bundled robot-dog adapter and the accuracy table in the README, in this order (2-core CPU: ~4 h for the
# shadow, ~1 h more for the baselines). The ShadowPEFT adapter is trained in stages, as the paper pre-trains its
# detached shadow: (1) the shadow backbone alone, as a 6-layer causal LM on the frozen base's embeddings and head,
# on the train split; (1b) continued on the train split plus two more train-side draws (generator seeds 1 and 2) with
# politeness stacked on 30% of the draws, at a lower learning rate; (1c) continued on two other train-side draws (seeds
# 3 and 4) plus the train commands as Whisper heard them (train_asr.jsonl, made by make_asr_transcripts.py from
# espeak-ng renderings of train texts, twice over); (1d) continued on seeds 5 and 6, which also draw the train-only
# frames of phrases_train_only.py, plus train_asr.jsonl twice; (2) grafted into the adapter, with injection and
# update trained around the frozen shadow (started from the earlier adapter's injection and update where one exists)
# on the same data. Finished steps are skipped when the script is rerun.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPORT=adapters/robot-dog-shadow/eval_commands.json
SHADOW0=build/train/shadow-standalone-6
SHADOW1=build/train/shadow-standalone-6-broad
SHADOW2=build/train/shadow-standalone-6-asr
SHADOW=build/train/shadow-standalone-6-wide
DATA1=(--extra-seeds 1,2 --stack-politeness 0.3)
DATA2=(--extra-seeds 3,4 --asr-repeats 2 --stack-politeness 0.3)
DATA=(--extra-seeds 5,6 --asr-repeats 2 --stack-politeness 0.3)
ADAPTER=adapters/robot-dog-shadow
if [ ! -f "$SHADOW0/training_record.json" ]; then
    python3 scripts/train_shadow_standalone.py --layers 6 --minutes 60 --bf16 --out "$SHADOW0"
fi
if [ ! -f "$SHADOW1/training_record.json" ]; then
    python3 scripts/train_shadow_standalone.py --layers 6 --minutes 75 --lr 2e-4 --bf16 "${DATA1[@]}" \
        --init-state "$SHADOW0/shadow_state.safetensors" --out "$SHADOW1"
fi
[ -f tasks/robot_dog/data/train_asr.jsonl ] || python3 scripts/make_asr_transcripts.py --limit 5000 --min-similarity 65
if [ ! -f "$SHADOW2/training_record.json" ]; then
    python3 scripts/train_shadow_standalone.py --layers 6 --minutes 45 --lr 2e-4 --warmup 30 --bf16 "${DATA2[@]}" \
        --init-state "$SHADOW1/shadow_state.safetensors" --out "$SHADOW2"
fi
if [ ! -f "$SHADOW/training_record.json" ]; then  # seeds 5, 6 also draw the train-only frames
    python3 scripts/train_shadow_standalone.py --layers 6 --minutes 35 --lr 2e-4 --warmup 30 --bf16 "${DATA[@]}" \
        --init-state "$SHADOW2/shadow_state.safetensors" --out "$SHADOW"
fi
if ! grep -q '"init_shadow"' "$ADAPTER/training_record.json" 2>/dev/null; then
    init=()
    [ -f "$ADAPTER/adapter_model.safetensors" ] && init=(--init-adapter "$ADAPTER")
    python3 scripts/train_robot_dog.py --method shadow --init-shadow "$SHADOW" "${init[@]}" --freeze-shadow --bf16 \
        "${DATA[@]}" --minutes 20 --out build/train/robot-dog-shadow --save-dtype float16
    cp build/train/robot-dog-shadow/{adapter_config.json,adapter_model.safetensors,training_record.json} "$ADAPTER/"
    cp "$SHADOW/training_record.json" "$ADAPTER/shadow_pretraining_record.json"
    cp "$SHADOW/loss_curve.png" "$ADAPTER/shadow_pretraining_loss.png"
fi
python3 scripts/eval_commands.py --systems shadow-attached,shadow-detached --json "$REPORT" --update
train() {  # method out steps [extra args]
    local method=$1 out=$2 steps=$3; shift 3
    [ -f "$out/adapter_model.safetensors" ] && return 0
    python3 scripts/train_robot_dog.py --method "$method" --out "$out" --steps "$steps" --resume "$@"
}
train lora adapters/robot-dog-lora 150 --save-dtype float16
train dora adapters/robot-dog-dora 150 --save-dtype float16
python3 scripts/eval_commands.py --systems lora,dora,base --json "$REPORT" --update \
    --markdown adapters/robot-dog-shadow/eval_commands.md
