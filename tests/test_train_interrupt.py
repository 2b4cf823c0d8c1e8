"""Training stopped and continued through the real `accelerate launch` path on CPU with the real SmolLM2: a SIGKILL
after a checkpoint resumes from it, a SIGTERM stops every process and marks the run interrupted; and one packed
epoch trains every row.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from train_helpers import DEMO_CSV, launch, only_run_dir, processes_in, train_until_checkpoint, write_recipe

pytestmark = pytest.mark.slow


def test_sigkill_after_checkpoint_then_resume_continues(tmp_path: Path):
    steps = 4  # killed at or after checkpoint-2, so at least one step is left to resume
    recipe = write_recipe(tmp_path, "t-resume", "lora", 2e-3, steps=steps)
    proc, run_dir = train_until_checkpoint(recipe, tmp_path / "runs", stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL, start_new_session=True)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher's group; training ranks run in their own
    proc.wait()
    for rank in processes_in(run_dir):  # SIGKILL cannot be cleaned up after: stop orphaned ranks like an OOM killer would
        rank.kill()
    assert not (run_dir / "train" / f"checkpoint-{steps}").exists()
    done_before = max(int(p.name.split("-")[1]) for p in (run_dir / "train").glob("checkpoint-*"))

    again = launch("--resume", str(run_dir))
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    log = (run_dir / "train" / "train.log").read_text(errors="replace")
    assert f"resume from checkpoint at train/checkpoint-{done_before}" in log
    assert "preprocess: inputs unchanged" in again.stdout
    history = json.loads((run_dir / "train" / "history.json").read_text())
    assert len([h for h in history if "loss" in h]) == steps - done_before  # only the steps after the checkpoint ran
    state = json.loads((run_dir / "train" / f"checkpoint-{steps}" / "trainer_state.json").read_text())
    assert state["global_step"] == steps
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "done"
    assert sorted(manifest["stages"]) == ["preprocess", "train"]  # the killed command's --stages, not every stage

    third = launch("--resume", str(run_dir))
    assert third.returncode == 0 and "train: inputs unchanged" in third.stdout


def test_sigterm_stops_every_process_and_marks_interrupted(tmp_path: Path):
    recipe = write_recipe(tmp_path, "t-term", "lora", 2e-3, steps=40)
    proc, run_dir = train_until_checkpoint(recipe, tmp_path / "runs", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                           text=True)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out[-2000:]
    assert "--resume" in out
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["stages"]["train"]["status"] == "interrupted"
    assert (run_dir / "train" / "checkpoint-2").is_dir()
    assert processes_in(run_dir) == []


# A GPU recipe refused on CPU before any stage: tests/test_preflight.py's headline-recipe test (exit 2, the CUDA
# line, no traceback, no run directory) runs that command.


def test_packed_epoch_trains_every_row(tmp_path: Path):
    """One epoch with packing: every answer token of the training split is trained, the last small batch included.

    11 demo rows pack into 5-7 sequences of 256 tokens (Axolotl estimates 0.9 of each filled): Axolotl's own
    sampler would train one batch of four and drop the rest. No validation split (`val: 0`), which the
    rendered config must then leave out. With NEFTune on (a LoRA option): its noise reaches Axolotl and
    training runs with it.
    """
    from medtune.launch.train import split_answer_tokens

    recipe = tmp_path / "t-epoch.yaml"
    recipe.write_text(f"""name: t-epoch
model: smollm2-135m-instruct
method: {{name: lora, neftune_noise_alpha: 5}}
data:
  train:
    - source: medquad
      path: {DEMO_CSV}
      limit: 12
  split: {{val: 0.0, test: 0.1, seed: 3}}
training:
  epochs: 1
  micro_batch_size: 4
  sequence_len: 256
launch:
  device: cpu
""")
    runs = tmp_path / "runs"
    proc = launch(str(recipe), "--stages", "preprocess,train", "--runs-dir", str(runs))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_dir = only_run_dir(runs)
    assert "neftune_noise_alpha: 5" in (run_dir / "axolotl.yaml").read_text()
    history = json.loads((run_dir / "train" / "history.json").read_text())
    steps = [h for h in history if "loss" in h]
    assert len(steps) == 2  # ceil(5-7 packed sequences / 4 per step)
    assert not any("eval_loss" in h for h in history)
    assert steps[-1]["tokens/trainable"] == split_answer_tokens(run_dir)
