#!/usr/bin/env bash
# Wheels that bench/bench_gpu.py needs on a lent GPU machine and its image lacks (the image has torch,
# transformers, peft, accelerate; nothing can be fetched there). Downloads them here, at the versions
# constraints.txt pins, into .whl/ (git-ignored), for Python 3.12 on x86-64 Linux. Then, on the GPU
# machine, with .whl carried along:
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
#     && PYTHONPATH=/tmp/site python3 bench/bench_gpu.py
set -euo pipefail
cd "$(dirname "$0")/.."
pins=()
for name in pydantic pydantic_core annotated-types typing-inspection bitsandbytes liger_kernel; do
  pin=$(grep -i "^${name}==" constraints.txt) || { echo "no pin for $name in constraints.txt" >&2; exit 2; }
  pins+=("$pin")
done
rm -rf .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl "${pins[@]}"
du -sh .whl
