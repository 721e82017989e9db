#!/usr/bin/env bash
# tests/gpu (`tests`) or the CLI commands of docs/gpu-report.md (`commands`) on a GPU machine without network
# access whose Python has CUDA torch, transformers, peft and accelerate: installs the wheels in .whl/ (the
# `[unsloth]` extra and its dependencies, downloaded elsewhere with `pip download`), and leaves logs and JSON
# under $OUT (default /tmp/gpu-out).
#   bash tests/gpu/run_offline.sh tests [test files...]    (default: all of tests/gpu)
#   bash tests/gpu/run_offline.sh commands
set -uo pipefail
PART=${1:?say which part: tests or commands}; shift
TESTS=("$@"); [ ${#TESTS[@]} -gt 0 ] || TESTS=(tests/gpu)
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=$PWD:/tmp/site HF_HUB_OFFLINE=1 UNSLOTH_DISABLE_STATISTICS=1 PYTHONUNBUFFERED=1
python3 - > "$OUT/versions.json" <<'PY'
import json, importlib.metadata as m, torch
names = ["torch", "transformers", "unsloth", "unsloth_zoo", "trl", "peft", "accelerate", "bitsandbytes", "datasets"]
print(json.dumps({"device": torch.cuda.get_device_name(0), **{n: m.version(n) for n in names}}, indent=1))
PY
cat "$OUT/versions.json"
export GPU_TEST_OUT=/tmp/gpu-projects; mkdir -p "$GPU_TEST_OUT"
if [ "$PART" = tests ]; then
  # -v: a line per test as it ends, so that a run cut short by the timeout still says which passed
  timeout 540 python3 -m pytest -p xdist -n "${WORKERS:-6}" -p no:benchmark -m gpu "${TESTS[@]}" -v -rA 2>&1 | grep -vE "it/s\]|examples/s\]" > "$OUT/pytest.log"
  tail -25 "$OUT/pytest.log"
  cd "$GPU_TEST_OUT" && find . -name plan.json -o -name run_summary.json -o -name 'cli-*.log' -o -name '*-curves.json' -o -name '*-losses.json' \
    | grep -v unsloth_compiled | tar czf "$OUT/projects.tgz" -T -
  exit 0
fi
# The issue's commands, on a tiny local Llama.
mkdir -p /tmp/cli && cd /tmp/cli && python3 - <<'PY'
from autotrain_unsloth.demo import bundled_texts, write_bundled_data
from autotrain_unsloth.tiny_models import build_tiny_model
build_tiny_model("llama", "llama", bundled_texts(), dtype="bfloat16")
write_bundled_data("data")
PY
run() { name=$1; shift; rm -rf fast-model; timeout 150 python3 -m autotrain_unsloth.cli llm --train --model ./llama --data-path data \
  --project-name fast-model --trainer sft --max-steps 20 "$@" > "$GPU_TEST_OUT/cmd-$name.log" 2>&1; echo "$name rc=$?";
  cp fast-model/plan.json "$GPU_TEST_OUT/cmd-$name.plan.json"; cp fast-model/run_summary.json "$GPU_TEST_OUT/cmd-$name.summary.json"; }
run peft-r16 --unsloth --peft --lora-r 16
run peft-int4 --unsloth --peft --lora-r 16 --quantization int4
run full --unsloth --full-finetuning
run peft-r16-16bit --unsloth --peft --lora-r 16 --quantization none
cd "$GPU_TEST_OUT" && tar czf "$OUT/commands.tgz" cmd-*
