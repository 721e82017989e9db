# Sourced by bench/run_offline.sh and bench/diagnose.sh on a GPU machine without network access whose Python
# already has CUDA torch, transformers, peft and accelerate: installs the wheels in .whl/ (downloaded elsewhere
# with `pip download` for this repository's `[unsloth]` extra and its dependencies) once per machine into
# /tmp/site, then sets the offline environment every run needs.
if [ ! -f /tmp/site/.installed ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  touch /tmp/site/.installed
fi
export PYTHONPATH=$PWD:/tmp/site HF_HUB_OFFLINE=1 UNSLOTH_DISABLE_STATISTICS=1 PYTHONUNBUFFERED=1
