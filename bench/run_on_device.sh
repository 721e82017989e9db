#!/usr/bin/env bash
# The benchmark on the device host (torch 2.11+cu130, transformers 5.17, no network), one part per device call
# (a call may run 10 minutes; models stay in /tmp while the machine stays warm):
#   bash bench/run_on_device.sh RESULTS_FILE [bench/throughput.py run options]
# installs the carried wheelhouse (.whl, from ../shared/gpu/make-wheelhouse.sh with trl 1.14.2 swapped in),
# merges this part's records into a copy of RESULTS_FILE under $OUT, and leaves the runs' logs there.
set -uo pipefail
RESULTS=${1:?give the results file, e.g. bench/results/2026-11-23-h100-80gb-hbm3.json}; shift
OUT=${OUT:-/tmp/bench-out}; mkdir -p "$OUT"
if [ ! -f /tmp/site/.installed ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  touch /tmp/site/.installed
fi
export PYTHONPATH=$PWD:/tmp/site HF_HUB_OFFLINE=1 UNSLOTH_DISABLE_STATISTICS=1 PYTHONUNBUFFERED=1
[ -f "$RESULTS" ] && cp "$RESULTS" "$OUT/results.json"
python3 bench/throughput.py run --results "$OUT/results.json" "$@"; rc=$?
(cd /tmp/autotrain-unsloth-bench/runs && tar czf "$OUT/runs.tgz" --exclude='*.safetensors' --exclude='unsloth_compiled_cache' \
  --exclude='checkpoint-*' . 2>/dev/null)
exit $rc
