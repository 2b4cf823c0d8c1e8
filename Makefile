# medtune: `make demo` runs the CPU demo recipe end to end; `make test` runs the test suite.
# Both create .venv and install the pinned dependencies and medtune itself first (once; again when a pin
# or pyproject.toml changes).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# Nothing phones home (telemetry off for every library that has it).
export AXOLOTL_DO_NOT_TRACK := 1
export DO_NOT_TRACK := 1
export WANDB_MODE := disabled
export DEEPEVAL_TELEMETRY_OPT_OUT := YES
# The demo, the tests and the benchmarks need no Hugging Face Hub: they run offline. A user's own
# `python launch.py RECIPE` is not made offline here (README: For GPU users).
demo test bench: export HF_HUB_OFFLINE := 1

.PHONY: setup setup-gpu demo test bench keys clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-nodeps.txt constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first: 2.13.0 resolves to the CPU wheel on these machines; later installs keep it.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	# medtune itself, editable: training's processes start in the run directory and import it from the venv.
	# Built by the venv's setuptools (what pyproject's [build-system] asks for; pip checks it), no download.
	$(PY) -m pip install --quiet "setuptools>=70.1"
	$(PY) -m pip install --quiet --no-deps --no-build-isolation --check-build-dependencies -e .
	touch $@

# GPU machines, after `make setup` put the CUDA build of torch in .venv (README: For GPU users): Liger, CUDA
# bitsandbytes and flash-attn. flash-attn compiles against that torch when no prebuilt wheel matches it (the CUDA
# toolkit's nvcc, tens of minutes; MAX_JOBS=4 bounds its memory).
setup-gpu: $(VENV)/.installed-gpu

$(VENV)/.installed-gpu: $(VENV)/.installed requirements-gpu.txt constraints.txt
	$(PY) -c "import sys, torch; sys.exit(None if torch.version.cuda else f'torch {torch.__version__} in $(VENV) is a CPU build: install the CUDA build of torch 2.13.0 first (README: For GPU users)')"
	$(PY) -m pip install --quiet --no-build-isolation -r requirements-gpu.txt -c constraints.txt
	touch $@

# Two test processes, one compute thread each (tests/conftest.py): most slow tests train or score on one thread, so the
# second core would idle; a file's tests stay in one process (loadfile), so its fixtures are built once, and files go
# out in the order tests/conftest.py collects them (longest first; --no-loadscope-reorder keeps xdist from putting the
# files with the most tests first). TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 2

demo: setup
	$(PY) launch.py recipes/smollm2-135m-lora.yaml

# --durations: the slowest tests' times in every log (CI's included), so a slow newcomer is seen the day it lands.
test: setup
	$(PY) -m pytest -q --durations=15 -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# The performance section's measurements (peers: medtune vs TRL vs plain Axolotl); each prints a table and writes bench/results/*.json.
bench: setup
	$(PY) bench/bench_preprocess.py --repeat 3
	$(PY) bench/bench_train.py
	$(PY) bench/bench_peers.py
	$(PY) bench/bench_eval.py
	$(PY) bench/bench_e2e.py

keys: setup
	$(PY) launch.py validate --help-keys

clean:
	rm -rf $(VENV) runs .pytest_cache build dist medtune.egg-info
