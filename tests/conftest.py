"""Shared test setup: offline, no telemetry, and the real SmolLM2 converted once into medtune's cache."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from medtune.core.env import private_env

# Before any ML library is imported; the training processes inherit both.
os.environ["HF_HUB_OFFLINE"] = "1"
private_env()

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
