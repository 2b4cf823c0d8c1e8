#!/usr/bin/env bash
# The GPU acceptance run in one command on a lent GPU machine (README, "Performance"): installs the wheels that
# bench/gpu_wheels.sh put in .whl/ (carried along with the call), then runs bench/gpu_acceptance.py, whose JSON and
# per-stage logs go to $OUT (what the machine sends back) when it is set, else to bench/results/. Arguments are
# passed on (e.g. --methods qlora). Exit status: the script's (0 all checks passed, 1 some failed, 2 no GPU),
# or 3 when the wheels do not install.
#   run(command="bash bench/gpu_acceptance.sh", carry=[".whl"], timeout_s=600)
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -d .whl ]; then
  "${PYTHON:-python3}" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/medtune-site \
    .whl/*.whl || exit 3
  export PYTHONPATH=/tmp/medtune-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
if [ -n "${OUT:-}" ]; then
  exec "${PYTHON:-python3}" bench/gpu_acceptance.py --out "$OUT/gpu_acceptance.json" --logs "$OUT/logs" "$@"
fi
exec "${PYTHON:-python3}" bench/gpu_acceptance.py "$@"
