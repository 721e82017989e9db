#!/usr/bin/env bash
# The biggest model one GPU fully fine-tunes (docs/benchmarks.md): on a GPU machine without network access,
#   bash bench/bigmodel.sh RESULTS_FILE [SIZES]      # SIZES: comma-separated, default llama-14b
# 1. a model too large for the GPU (llama-32b: config.json and tokenizer only) must be refused before any weight
#    is read, in seconds, with the numbers (refusal-llama-32b.txt under $OUT);
# 2. each size in SIZES fully fine-tuned through `aitraining llm --train --unsloth --full-finetuning` with AutoTrain's
#    gradient accumulation (4) and no other memory flag: the plan chooses (ours-auto), against Unsloth's script
#    with its optimizer-state offload on (unsloth-script, UNSLOTH_OFFLOAD_OPTIMIZER_STATE=1).
# MODELS_DIR puts the random-init models on another disk (a RAM disk where the project's disk cannot hold a 24B model
# and its fine-tuned copy: the plan refuses a run whose final weights do not fit), e.g. as root:
#   mkdir -p /mnt/models && mount -t tmpfs -o size=60g tmpfs /mnt/models && export MODELS_DIR=/mnt/models
set -uo pipefail
RESULTS=${1:?give the results file}; SIZES=${2:-llama-14b}
OUT=${OUT:-/tmp/bench-out}; mkdir -p "$OUT"
. bench/offline_setup.sh
work=/tmp/autotrain-unsloth-bench; mkdir -p "$work/refuse"
python3 -c "import sys; sys.path.insert(0, 'bench'); import workload; workload.write_config_only('llama-32b', '$work/models/llama-32b')"
python3 bench/workload.py data --rows 8 --out "$work/refuse/data" >/dev/null
started=$(date +%s.%N)
(cd "$work/refuse" && python3 -m autotrain_unsloth.cli llm --train --model "$work/models/llama-32b" --data-path data \
  --project-name p32 --trainer sft --unsloth --full-finetuning --batch-size 2 --block-size 2048 --optimizer adamw_8bit \
  --mixed-precision bf16) >"$OUT/refusal-llama-32b.txt" 2>&1
code=$?; echo "exit $code after $(python3 -c "print(round($(date +%s.%N) - $started, 1))") s" >>"$OUT/refusal-llama-32b.txt"
tail -3 "$OUT/refusal-llama-32b.txt"
[ "$code" -ne 0 ] || { echo "llama-32b was not refused"; exit 1; }
[ -f "$RESULTS" ] && cp "$RESULTS" "$OUT/results.json"
python3 bench/throughput.py run --results "$OUT/results.json" --models "$SIZES" --methods full \
  --paths "${PATHS:-ours-auto,unsloth-script}" --gradient-accumulation 4 --steps "${STEPS:-16}" --script-state-offload \
  --run-timeout 540 --invocation bigmodel ${MODELS_DIR:+--models-dir "$MODELS_DIR"}
