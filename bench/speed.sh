#!/usr/bin/env bash
# Full fine-tuning speed (docs/speed.md) on a GPU machine without network access, one or more parts per call:
#   bash bench/speed.sh RESULTS_FILE full           # both parts below
#   bash bench/speed.sh RESULTS_FILE full-dense     # 8B full, accumulation 4: ours-auto and unsloth-script on dense rows
#   bash bench/speed.sh RESULTS_FILE full-instruct  # the same ours-auto on instruction-length rows (>= 0.95x dense?)
#   bash bench/speed.sh RESULTS_FILE qlora          # 8B QLoRA ours-auto, dense rows (no regression against 12,653)
#   bash bench/speed.sh RESULTS_FILE families       # where an 8B full step's GPU time goes, by kernel family
#   bash bench/speed.sh RESULTS_FILE attention-off  # full-dense and full-instruct's ours-auto with
#                                                   # --no-auto-packed-attention (sdpa under the mask), to $OUT/attention-off.json:
#                                                   # the side-by-side for the plan's varlen attention on full fine-tuning
# STEPS (default 24: 10 warm-up, the rest measured) and MODELS_DIR (see bench/bigmodel.sh) as the caller sets them.
# Each run may take 320 s: a fresh machine's first run compiles Unsloth's modules and torchao's optimizer (it
# measured 66 s for its first 3 steps), and an 8B instruct run took 200 s after that.
set -uo pipefail
RESULTS=${1:?give the results file}; shift; [ $# -gt 0 ] || { echo "say which parts: full, full-dense, full-instruct, qlora, families, attention-off"; exit 2; }
OUT=${OUT:-/tmp/bench-out}; mkdir -p "$OUT"
. bench/offline_setup.sh
[ -f "$RESULTS" ] && cp "$RESULTS" "$OUT/results.json"
run() { python3 bench/throughput.py run --results "$OUT/results.json" --models llama-3.1-8b --steps "${STEPS:-24}" \
  --invocation "${INVOCATION:-speed}" --run-timeout 320 ${MODELS_DIR:+--models-dir "$MODELS_DIR"} "$@" 2>&1 | grep -E "tokens/s|FAILED|built"; }
for PART in "$@"; do
  case $PART in
    full|full-dense) run --methods full --paths ours-auto,unsloth-script --gradient-accumulation 4 ;;&
    full|full-instruct) run --methods full --paths ours-auto --gradient-accumulation 4 --workload instruct ;;&
    qlora) run --methods qlora --paths ours-auto ;;
    families) OUT=$OUT bash bench/diagnose.sh families ;;
    attention-off)  # a later --results wins: these runs go to their own file
      for workload in dense instruct; do
        run --results "$OUT/attention-off.json" --methods full --paths ours-auto --gradient-accumulation 4 \
          --workload $workload --ours-auto-args=--no-auto-packed-attention
      done ;;
    full|full-dense|full-instruct) ;;
    *) echo "unknown part $PART: full, full-dense, full-instruct, qlora, families or attention-off"; exit 2 ;;
  esac
done
python3 bench/throughput.py report "$OUT/results.json" | head -30
