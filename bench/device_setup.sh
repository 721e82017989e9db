# Sourced by bench/run_on_device.sh and bench/diagnose.sh on the device host: installs the carried wheelhouse
# (.whl, from ../shared/gpu/make-wheelhouse.sh with trl 1.14.2 swapped in) once per machine, then sets the
# offline environment every run needs.
if [ ! -f /tmp/site/.installed ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  touch /tmp/site/.installed
fi
export PYTHONPATH=$PWD:/tmp/site HF_HUB_OFFLINE=1 UNSLOTH_DISABLE_STATISTICS=1 PYTHONUNBUFFERED=1
