# medtune: `make demo` runs the CPU demo recipe end to end; `make test` runs the test suite.
# Both create .venv and install the pinned dependencies first (once; again when a pin changes).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# Offline by design: the Hugging Face Hub is never contacted, nothing phones home.
export HF_HUB_OFFLINE := 1
export AXOLOTL_DO_NOT_TRACK := 1
export DO_NOT_TRACK := 1
export WANDB_MODE := disabled
export DEEPEVAL_TELEMETRY_OPT_OUT := YES

.PHONY: setup demo test bench keys clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-nodeps.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	# torch first: 2.13.0 resolves to the CPU wheel on these machines; later installs keep it.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	touch $@

demo: setup
	$(PY) launch.py recipes/smollm2-135m-lora.yaml

test: setup
	$(PY) -m pytest -q

# Items 1-4 of the performance section; each prints a table and writes bench/results/*.json.
bench: setup
	$(PY) bench/bench_preprocess.py --repeat 3
	$(PY) bench/bench_train.py
	$(PY) bench/bench_eval.py
	$(PY) bench/bench_e2e.py

keys: setup
	$(PY) launch.py validate --help-keys

clean:
	rm -rf $(VENV) runs .pytest_cache
