#!/usr/bin/env bash
# The benchmark on a GPU machine without network access (bench/offline_setup.sh installs the wheels in .whl/):
#   bash bench/run_offline.sh RESULTS_FILE [bench/throughput.py run options]
# merges the records into a copy of RESULTS_FILE under $OUT (default /tmp/bench-out), with the runs' logs.
set -uo pipefail
RESULTS=${1:?give the results file, e.g. bench/results/2026-11-23-h100-80gb-hbm3.json}; shift
OUT=${OUT:-/tmp/bench-out}; mkdir -p "$OUT"
. bench/offline_setup.sh
[ -f "$RESULTS" ] && cp "$RESULTS" "$OUT/results.json"
python3 bench/throughput.py run --results "$OUT/results.json" "$@"; rc=$?
(cd /tmp/autotrain-unsloth-bench/runs && tar czf "$OUT/runs.tgz" --exclude='*.safetensors' --exclude='unsloth_compiled_cache' \
  --exclude='checkpoint-*' . 2>/dev/null)
exit $rc
