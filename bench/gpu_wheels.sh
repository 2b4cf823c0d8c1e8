#!/usr/bin/env bash
# Wheels that the GPU benchmarks (bench/gpu_acceptance.py, bench/bench_gpu.py) need on a lent GPU machine and its
# image lacks. The image has Python 3.12, torch 2.11 (CUDA 13.0), triton, numpy, pandas, pyarrow, tokenizers,
# safetensors, huggingface-hub, and newer transformers/accelerate/peft than medtune pins; nothing can be fetched
# there. Carried: Axolotl and the part of its dependency tree that its training path imports and the image lacks,
# plus transformers, accelerate, peft, trl, datasets, huggingface-hub, fsspec and typing_extensions at medtune's
# pins (Axolotl's code patches and calls them; the image may hold other versions). Everything at the versions
# constraints.txt pins, into .whl/ (git-ignored), for Python 3.12 on x86-64 Linux: 37 wheels, 52 MiB. What travels
# with a `run` call is limited to 64 MiB, the working tree included, so:
#   - axolotl-contribs-lgpl/-mit ship only as sdists: built into (pure-Python) wheels here;
#   - bitsandbytes is repacked without its builds for other CUDA versions, ROCm and XPU (41 -> 7 MiB): the image's
#     torch is built for CUDA 13.0, so bitsandbytes loads libbitsandbytes_cuda130.so, kept with cuda132 and CPU;
#   - wandb is repacked without wandb/bin/ (its service binaries, 19 -> 1 MiB): Axolotl imports wandb, and
#     medtune never starts a W&B run there (WANDB_MODE=disabled), which is what those binaries serve.
# Left out although Axolotl declares them: deepspeed (single-GPU runs never import it), tokenizers (the image's
# 0.23.2 is within transformers' checked range), and what no import on the training or eval path reaches
# (gradio, modal, trackio, lm_eval, s3fs/gcsfs/adlfs/ocifs, optimum, ...), found by tracing the imports of
# `bench/gpu_acceptance.py --tiny` in an environment holding only the image's packages plus these wheels.
# Then, on the GPU machine, with .whl carried along: `bash bench/gpu_acceptance.sh` (README, "Performance").
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
BUDGET_MIB=${BUDGET_MIB:-60}  # of the 64 MiB a call carries: the rest is the working tree (about 1 MiB)

WHEELS=(
  axolotl trl datasets transformers accelerate peft huggingface_hub  # the training stack, at medtune's pins
  fsspec                                                             # datasets caps it (<=2026.2.0)
  pydantic pydantic_core annotated-types typing-inspection           # Axolotl's and medtune's config schemas
  typing_extensions                                                  # pydantic needs >= 4.14.1
  bitsandbytes liger_kernel torchao kernels kernels-data             # 4-bit weights, fused kernels, optimizers
  dill multiprocess evaluate fire termcolor fastcore addict           # imported by Axolotl / datasets at start-up
  mistral_common pydantic-extra-types pycountry                      # axolotl.utils.mistral, imported at start-up
  posthog backoff distro wandb platformdirs opentelemetry-api zstandard
)
SDISTS=(axolotl-contribs-lgpl axolotl-contribs-mit)

pin() {
  grep -i "^${1}==" constraints.txt || grep -i "^${1//_/-}==" constraints.txt || grep -i "^${1//-/_}==" constraints.txt \
    || { echo "no pin for $1 in constraints.txt" >&2; exit 2; }
}
pins=(); for name in "${WHEELS[@]}"; do pins+=("$(pin "$name")"); done
source_pins=(); for name in "${SDISTS[@]}"; do source_pins+=("$(pin "$name")"); done

rm -rf .whl
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${pins[@]}"
"$PYTHON" -m pip download -q --no-deps --no-binary=:all: -d "$tmp" "${source_pins[@]}"
"$PYTHON" -m pip wheel -q --no-deps --no-build-isolation -w .whl "$tmp"/*.tar.gz

"$PYTHON" bench/repack_wheel.py .whl/bitsandbytes-*.whl \
  --drop 'bitsandbytes/libbitsandbytes_cuda1[0-2]*.so' --drop 'bitsandbytes/libbitsandbytes_rocm*.so' \
  --drop 'bitsandbytes/libbitsandbytes_xpu*.so'
"$PYTHON" bench/repack_wheel.py .whl/wandb-*.whl --drop 'wandb/bin/*'

ls -l .whl | awk 'NR > 1 {printf "  %6.2f MiB  %s\n", $5 / 1048576, $9}'
total=$(du -sm --apparent-size .whl | cut -f1)
echo "total: ${total} MiB in $(ls .whl | wc -l) wheels (budget ${BUDGET_MIB} MiB)"
[ "$total" -le "$BUDGET_MIB" ] || { echo ".whl is over budget: the call would carry more than 64 MiB" >&2; exit 1; }
