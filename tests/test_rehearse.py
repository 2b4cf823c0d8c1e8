"""`launch.py RECIPE --rehearse`: a multi-GPU recipe's distributed path on 2 CPU processes.

The fast tests fail when Axolotl, accelerate or DeepSpeed change under medtune/launch/rehearse_child.py: the
gaps it fills must still be there (else the patch is dead weight) and its patches must still fill them.
The slow test rehearses a DeepSpeed ZeRO-2 recipe through the real CLI.
"""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from medtune.launch import rehearse_child
from medtune.core.errors import RecipeError
from medtune.recipe.loader import load
from medtune.launch.rehearse import DEMO_DATA, rehearsal_recipe
from medtune.launch.render import render

REPO = Path(__file__).resolve().parents[1]

cpu_only = pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="the adaptation is for ranks without CUDA")


@pytest.fixture
def two_cpu_ranks(monkeypatch):
    """Rank 1 of 2, as torchrun would start it; the adaptation's patches are undone afterwards."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("RANK", "1")
    for owner, name in rehearse_child.patch_targets():
        monkeypatch.setattr(owner, name, getattr(owner, name))


# ---------------------------------------------------------------- the adaptation still applies


def test_adaptation_is_pinned_to_the_installed_versions():
    rehearse_child.check_pinned_versions()  # AdaptationOutdated names what changed
    assert len(rehearse_child.patch_targets()) == 4


@cpu_only
def test_axolotl_still_puts_each_rank_on_a_gpu_and_the_patch_moves_it_to_cpu(two_cpu_ranks, smollm2_dir):
    import axolotl.utils.config as utils_config
    from axolotl.utils.dict import DictDefault

    def normalized():
        cfg = DictDefault({"base_model": str(smollm2_dir), "micro_batch_size": 1, "gradient_accumulation_steps": 1})
        utils_config.normalize_config(cfg)
        return cfg

    assert normalized().device_map == {"": 1}, "Axolotl no longer forces device_map {'': LOCAL_RANK}; drop patch 2"
    rehearse_child.adapt()
    assert normalized().device_map == {"": "cpu"}


@cpu_only
def test_accelerate_still_finds_no_backend_for_cpu_ranks_and_the_patch_gives_gloo(two_cpu_ranks):
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType

    # Called unbound: the method reads only its arguments and the environment.
    found = PartialState._prepare_backend(None, cpu=False)
    assert found == (None, DistributedType.NO), "accelerate now picks a CPU backend by itself; drop patch 1"
    rehearse_child.adapt()
    assert PartialState._prepare_backend(None, cpu=False) == ("gloo", DistributedType.MULTI_CPU)
    with pytest.raises(rehearse_child.AdaptationOutdated, match="only gloo"):
        PartialState._prepare_backend(None, cpu=False, backend="nccl")


def test_gloo_still_refuses_to_gather_into_a_tracked_buffer_unless_grad_is_off(tmp_path):
    """What DeepSpeed ZeRO-1/2 does after each optimizer step, on one gloo rank."""
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        flat = torch.zeros(8, requires_grad=True) * 1  # a flat buffer autograd tracks, like ZeRO's bit16_groups_flat
        with pytest.raises(RuntimeError, match="is a view and is being modified inplace"):
            dist.all_gather_into_tensor(flat, torch.ones(8))
        with torch.no_grad():  # what patch 3 wraps around DeepSpeed's all_gather_dp_groups
            dist.all_gather_into_tensor(flat, torch.ones(8))
        assert flat.detach().tolist() == [1.0] * 8
    finally:
        dist.destroy_process_group()


# ---------------------------------------------------------------- the rehearsal recipe


def test_rehearsal_recipe_of_the_zero3_recipe():
    recipe, _ = load(REPO / "recipes" / "llama3b-full-zero3.yaml")
    rehearsal = rehearsal_recipe(recipe)
    assert rehearsal.name == "llama3b-full-zero3-rehearsal"
    assert rehearsal.model == "smollm2-135m-instruct" and rehearsal.method.name == "full"
    launch = rehearsal.launch
    assert (launch.device, launch.gpus, launch.num_machines, launch.deepspeed) == ("cpu", 2, 1, "zero3")
    t = rehearsal.training
    assert (t.max_steps, t.micro_batch_size, t.gradient_accumulation_steps, t.sequence_len, t.save_steps) == (3, 1, 1, 256, 3)
    assert (t.precision, t.attention, t.liger, t.gradient_checkpointing, t.optimizer) == ("fp32", "sdpa", False, False, "adamw_torch")
    # The recipe's Hub source is unreachable offline: the demo file stands in, 48 rows.
    assert [(s.source, s.path, s.limit) for s in rehearsal.data.train] == [("medquad", str(DEMO_DATA), 48)]
    assert recipe.model == "llama-3.2-3b-instruct" and recipe.launch.gpus == 4, "the loaded recipe is not changed"

    rendered = render(rehearsal)
    acc = yaml.safe_load(rendered.files["accelerate.yaml"])
    assert (acc["distributed_type"], acc["num_processes"], acc["num_machines"], acc["use_cpu"]) == ("DEEPSPEED", 2, 1, True)
    assert "mixed_precision" not in acc
    assert json.loads(rendered.files["deepspeed.json"])["zero_optimization"]["stage"] == 3
    assert rendered.axolotl["bf16"] is False and rendered.axolotl["max_steps"] == 3


def test_rehearsal_of_a_ddp_recipe_starts_two_processes_with_torchrun():
    recipe, _ = load(REPO / "recipes" / "llama3b-lora.yaml")
    acc = yaml.safe_load(render(rehearsal_recipe(recipe)).files["accelerate.yaml"])
    # MULTI_CPU would start one process; MULTI_GPU + use_cpu starts two on CPU.
    assert (acc["distributed_type"], acc["num_processes"], acc["use_cpu"]) == ("MULTI_GPU", 2, True)


def test_local_sources_are_kept_and_limited(tmp_path):
    path = tmp_path / "local.yaml"
    path.write_text(f"""name: local
model: llama-3.2-1b-instruct
data:
  train:
    - source: medquad
      path: {DEMO_DATA}
      limit: 5000
launch: {{gpus: 2}}
""")
    rehearsal = rehearsal_recipe(load(path)[0])
    assert [(s.path, s.limit) for s in rehearsal.data.train] == [(str(DEMO_DATA), 48)]


def test_the_normal_check_still_rejects_several_cpu_processes(tmp_path):
    path = tmp_path / "cpu2.yaml"
    path.write_text(f"""name: cpu2
model: smollm2-135m-instruct
data: {{train: [{{source: medquad, path: {DEMO_DATA}}}]}}
launch: {{device: cpu, gpus: 2, deepspeed: zero2}}
""")
    with pytest.raises(RecipeError) as err:
        load(path)
    assert "use --rehearse" in err.value.render()


# ---------------------------------------------------------------- a real rehearsal


FINISHED = re.compile(r"medtune rehearsal: rank (\d) of world size (\d+) finished \(distributed type (\w+), backend (\w+)\)")


def rehearse(recipe: Path, runs: Path) -> Path:
    """Run `launch.py RECIPE --rehearse` as a user would; the one run directory it made."""
    done = subprocess.run([sys.executable, "launch.py", str(recipe), "--rehearse", "--runs-dir", str(runs)],
                          cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [run_dir] = [p.parent for p in runs.glob("*/*/manifest.json")]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "done" and "medtune.launch.rehearse_child" in manifest["stages"]["train"]["command"]
    return run_dir


def check_two_ranks_trained(run_dir: Path, distributed_type: str) -> Path:
    """Both ranks finished one 2-process job over gloo, with one checkpoint; returns that checkpoint."""
    log = (run_dir / "train" / "train.log").read_text(errors="replace")
    finished = {(int(rank), int(world), kind, backend) for rank, world, kind, backend in FINISHED.findall(log)}  # lines may interleave
    assert finished == {(0, 2, distributed_type, "gloo"), (1, 2, distributed_type, "gloo")}, finished
    assert [p.name for p in (run_dir / "train").glob("checkpoint-*")] == ["checkpoint-3"]
    checkpoint = run_dir / "train" / "checkpoint-3"
    assert sorted(p.name for p in checkpoint.glob("rng_state_*.pth")) == ["rng_state_0.pth", "rng_state_1.pth"]
    history = json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]
    losses = [h["loss"] for h in history if "loss" in h]
    assert len(losses) == 3 and all(math.isfinite(x) and 0.5 < x < 5 for x in losses), losses
    return checkpoint


@pytest.mark.slow
def test_rehearse_zero2_trains_on_two_cpu_processes(tmp_path):
    recipe = tmp_path / "zero2.yaml"
    recipe.write_text(f"""# python launch.py {recipe} --rehearse
name: zero2
model: llama-3.2-1b-instruct
method: {{name: lora, rank: 8, alpha: 16}}
data:
  train:
    - source: medquad
      path: {DEMO_DATA}
  split: {{val: 0.05, test: 0.05, seed: 42}}
launch: {{gpus: 2, deepspeed: zero2}}
""")
    run_dir = rehearse(recipe, tmp_path / "runs")
    assert run_dir.parent.name == "zero2-rehearsal"
    checkpoint = check_two_ranks_trained(run_dir, "DEEPSPEED")
    assert (checkpoint / "adapter_model.safetensors").is_file() and (run_dir / "train" / "adapter_model.safetensors").is_file()
    # ZeRO-2 keeps one optimizer-state shard per rank.
    shards = sorted(p.name for p in (checkpoint / "global_step3").glob("zero_pp_rank_*_optim_states.pt"))
    assert shards == ["zero_pp_rank_0_mp_rank_00_optim_states.pt", "zero_pp_rank_1_mp_rank_00_optim_states.pt"]


@pytest.mark.slow
def test_rehearse_the_shipped_zero3_recipe(tmp_path):
    run_dir = rehearse(REPO / "recipes" / "llama3b-full-zero3.yaml", tmp_path / "runs")
    checkpoint = check_two_ranks_trained(run_dir, "DEEPSPEED")
    # ZeRO-3 shards the weights too; the saved model is gathered whole (stage3_gather_16bit_weights_on_model_save).
    shards = sorted(p.name for p in (checkpoint / "global_step3").glob("zero_pp_rank_*_model_states.pt"))
    assert shards == ["zero_pp_rank_0_mp_rank_00_model_states.pt", "zero_pp_rank_1_mp_rank_00_model_states.pt"]
    from safetensors import safe_open

    with safe_open(str(run_dir / "train" / "model.safetensors"), "pt") as weights:
        assert sum(math.prod(weights.get_slice(k).get_shape()) for k in weights.keys()) == 134_515_008  # SmolLM2-135M
