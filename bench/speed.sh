#!/usr/bin/env bash
# Full fine-tuning speed (docs/benchmarks.md), one part per invocation, on a GPU machine without network access:
#   bash bench/speed.sh RESULTS_FILE full      # 8B full, accumulation 4: ours-auto and unsloth-script on dense rows,
#                                              # ours-auto on instruction-length rows (the >= 0.95x dense question)
#   bash bench/speed.sh RESULTS_FILE qlora     # 8B QLoRA ours-auto, dense rows (no regression against 12,653)
#   bash bench/speed.sh RESULTS_FILE families  # where an 8B full step's GPU time goes, by kernel family, both workloads
# STEPS (default 24: 10 warm-up, the rest measured) and MODELS_DIR (see bench/bigmodel.sh) as the caller sets them.
set -uo pipefail
RESULTS=${1:?give the results file}; PART=${2:?say which part: full, qlora or families}
OUT=${OUT:-/tmp/bench-out}; mkdir -p "$OUT"
. bench/offline_setup.sh
[ -f "$RESULTS" ] && cp "$RESULTS" "$OUT/results.json"
run() { python3 bench/throughput.py run --results "$OUT/results.json" --models llama-3.1-8b --steps "${STEPS:-24}" \
  --invocation "speed-$PART" --run-timeout 200 ${MODELS_DIR:+--models-dir "$MODELS_DIR"} "$@" 2>&1 | grep -E "tokens/s|FAILED|built"; }
case $PART in
  full)
    run --methods full --paths ours-auto,unsloth-script --gradient-accumulation 4
    run --methods full --paths ours-auto --gradient-accumulation 4 --workload instruct ;;
  qlora)
    run --methods qlora --paths ours-auto ;;
  families)
    OUT=$OUT bash bench/diagnose.sh families ;;
  *) echo "unknown part $PART: full, qlora or families"; exit 2 ;;
esac
python3 bench/throughput.py report "$OUT/results.json" | head -30
