"""Shared test setup: offline, no telemetry, and the real SmolLM2 converted once into medtune's cache."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from medtune.core.env import private_env

# Before any ML library is imported; the training processes inherit both.
os.environ["HF_HUB_OFFLINE"] = "1"
private_env()

# Under `pytest -n N` (make test: one worker per core), one compute thread per process, inherited by every
# command a test starts (launch passes it on as accelerate's thread count): two workers each running
# two-thread torch on two cores wait on each other at every op (measured 3-7x slower here). A value the
# developer set wins; a lone pytest process keeps torch's default.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")

# DeepSpeed (imported by Axolotl) binds a logging handler to sys.stdout the first time it is imported.
# Imported here, that is pytest's session-long stream; first imported inside a test using capsys, it
# would keep that test's stream, closed afterwards, and a later DeepSpeed log line would crash the run.
import deepspeed.utils.logging  # noqa: E402,F401
# Importing axolotl.cli reconfigures logging (dictConfig), which closes every handler already registered;
# absl's handler (from rouge-score) then closes the stream it holds, pytest's capture file, and the run
# loses its stdout/stderr. Configured here, before any test imports absl, nothing is there to close.
import axolotl.cli  # noqa: E402,F401

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    from medtune.models.catalog import ensure_local

    return Path(ensure_local("smollm2-135m-instruct"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the shared data folder {SHARED_DATA} is not here")
    return SHARED_DATA


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for in-process model work: on a 2-core machine shared with other jobs, two
    threads wait on each other at every op (measured 3-7x slower here); the answers are the same."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# `make test` hands whole files to its two workers (--dist loadfile, --no-loadscope-reorder), in the order
# collected. The longest files go first, so the short ones fill in at the end instead of one worker running a
# 3-minute file alone while the other idles. Minutes from `make test` at 4fb2f01 (2026-11-30, 2 AVX-512 cores; it
# prints the slowest tests); a stale order only costs balance, never a result.
LONGEST_FIRST = (
    "test_train.py",              # 2.9 min: LoRA, full and GaLore training
    "test_train_interrupt.py",    # 2.3 min: SIGKILL + resume, SIGTERM, a packed epoch
    "test_rehearse_pipeline.py",  # 3.0 min: the headline recipe's whole rehearsal
    "test_rehearse.py",           # 3.0 min: ZeRO-2 and ZeRO-3 rehearsals on two processes
    "test_sweep.py",              # 1.1 min: a real two-point sweep
    "test_eval_suites.py",        # 0.8 min: the suites against lm-eval's simple_evaluate
    "test_bench_gpu.py",          # 1.3 min: the GPU acceptance script's --tiny run
    "test_stages.py",             # 1.4 min: the KnowTuning recipe, SFT then DPO
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file keeps its own order
