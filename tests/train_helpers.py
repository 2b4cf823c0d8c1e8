"""What the training tests share: a tiny recipe on the demo rows, `launch.py` as a user runs it, and readers of the
run directory it leaves (tests/test_train.py, tests/test_train_interrupt.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from medtune.core.paths import DATA_DIR

REPO = Path(__file__).resolve().parents[1]
DEMO_CSV = DATA_DIR / "medquad_demo.csv"

# One thread in every training process (launch passes OMP_NUM_THREADS on as accelerate's thread count): sums
# in one order on any machine, and on a 2-core machine shared with other jobs one thread is also the faster.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def write_recipe(folder: Path, name: str, method: str, lr: float, steps: int = 8, extra_method: str = "",
                 save_steps: int = 2) -> Path:
    """12 training rows of the demo CSV, one packed 256-token sequence per step (a step costs ~3 s on one core)."""
    path = folder / f"{name}.yaml"
    path.write_text(f"""# python launch.py {path}
name: {name}
model: smollm2-135m-instruct
method:
  name: {method}
{extra_method}data:
  train:
    - source: medquad
      path: {DEMO_CSV}
      limit: 14
  split: {{val: 0.1, test: 0.1, seed: 3}}
training:
  max_steps: {steps}
  learning_rate: {lr}
  warmup_ratio: 0.0
  lr_scheduler: constant
  micro_batch_size: 1
  sequence_len: 256
  save_steps: {save_steps}
  save_total_limit: 10
  seed: 42
launch:
  device: cpu
""")
    return path


def launch(*args: str, timeout: int = 1800, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "launch.py", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env=None if env is None else {**os.environ, **env})


def only_run_dir(runs: Path) -> Path:
    dirs = [p.parent for p in runs.glob("*/*/manifest.json")]
    assert len(dirs) == 1, dirs
    return dirs[0]


def losses(run_dir: Path) -> list[float]:
    state = sorted(run_dir.glob("train/checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[1]))[-1]
    return [h["loss"] for h in json.loads(state.read_text())["log_history"] if "loss" in h]


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"launcher ended early with {proc.returncode}"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(1)


def train_until_checkpoint(recipe: Path, runs: Path, **popen) -> tuple[subprocess.Popen, Path]:
    """`launch.py RECIPE --stages preprocess,train` started in the background, returned with its run directory once
    training has saved checkpoint-2 (and is still running)."""
    proc = subprocess.Popen([sys.executable, "launch.py", str(recipe), "--stages", "preprocess,train", "--runs-dir", str(runs)],
                            cwd=REPO, **popen)
    run_dir = None
    try:
        named = runs / recipe.stem
        wait_for(named, proc, 120)
        run_dir = next(named.iterdir())
        wait_for(run_dir / "train" / "checkpoint-2" / "trainer_state.json", proc)
    except BaseException:  # a failed wait leaves no launcher or rank behind
        proc.kill()
        proc.wait()
        for rank in processes_in(run_dir) if run_dir else []:
            rank.kill()
        raise
    return proc, run_dir


def processes_in(run_dir: Path) -> list:
    """The processes working in a run directory: the training ranks launch.py started there."""
    import psutil

    return [p for p in psutil.process_iter(["cwd"]) if p.info["cwd"] == str(run_dir)]
