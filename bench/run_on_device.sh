#!/usr/bin/env bash
# The benchmark on the device host (torch 2.11+cu130, transformers 5.17, no network), one part per device call
# (a call may run 10 minutes; models stay in /tmp while the machine stays warm):
#   bash bench/run_on_device.sh RESULTS_FILE [bench/throughput.py run options]
# installs the carried wheelhouse (bench/device_setup.sh), merges this part's records into a copy of RESULTS_FILE under $OUT, and leaves the runs' logs there.
set -uo pipefail
RESULTS=${1:?give the results file, e.g. bench/results/2026-11-23-h100-80gb-hbm3.json}; shift
OUT=${OUT:-/tmp/bench-out}; mkdir -p "$OUT"
. bench/device_setup.sh
[ -f "$RESULTS" ] && cp "$RESULTS" "$OUT/results.json"
python3 bench/throughput.py run --results "$OUT/results.json" "$@"; rc=$?
(cd /tmp/autotrain-unsloth-bench/runs && tar czf "$OUT/runs.tgz" --exclude='*.safetensors' --exclude='unsloth_compiled_cache' \
  --exclude='checkpoint-*' . 2>/dev/null)
exit $rc
