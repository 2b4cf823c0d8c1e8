"""`launch.py RECIPE --rehearse`: what the rehearsal swaps, and a multi-GPU recipe's distributed path on 2 CPU processes.

The fast tests fail when Axolotl, accelerate or DeepSpeed change under medtune/launch/rehearse_child.py: the
gaps it fills must still be there (else the patch is dead weight) and its patches must still fill them; and
they check that every shipped GPU recipe rehearses with each swap named. The slow tests rehearse DeepSpeed
ZeRO-2 and ZeRO-3 recipes' training through the real CLI (`--stages preprocess,train`); the whole pipeline
of the headline recipe is tests/test_rehearse_pipeline.py.
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

from hub_cache import hub_cache, suite_rows, write_suite_hub  # noqa: F401  (hub_cache is a fixture)
from medquad_hub import write_medquad_hub
from medtune.core.errors import RecipeError
from medtune.core.paths import DATA_DIR
from medtune.launch import rehearse_child
from medtune.launch.rehearse import MODEL, plan_rehearsal
from medtune.launch.render import render
from medtune.models import catalog as models
from medtune.recipe.loader import load

REPO = Path(__file__).resolve().parents[1]
DEMO_DATA = DATA_DIR / "medquad_demo.csv"
GPU_RECIPES = sorted(p for p in (REPO / "recipes").rglob("*.yaml") if load(p)[0].launch.device == "cuda")

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


def _flat(prefix: str, value, out: dict) -> dict:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flat(f"{prefix}{key}" if prefix.endswith(":") else f"{prefix}.{key}", item, out)
    else:
        out[prefix] = value
    return out


def _rendered(recipe) -> dict:
    files = render(recipe, check=False).files
    flat = {}
    for name, text in files.items():
        _flat(f"{name}:", json.loads(text) if name.endswith(".json") else yaml.safe_load(text), flat)
    return flat


def test_rehearsal_recipe_of_the_zero3_recipe():
    recipe, _ = load(REPO / "recipes" / "llama3b-full-zero3.yaml")
    rehearsal = plan_rehearsal(recipe).recipe
    assert rehearsal.name == "llama3b-full-zero3-rehearsal"
    assert rehearsal.model == "smollm2-135m-instruct" and rehearsal.method.name == "full"
    launch = rehearsal.launch
    assert (launch.device, launch.gpus, launch.num_machines, launch.deepspeed) == ("cpu", 2, 1, "zero3")
    t = rehearsal.training
    assert (t.max_steps, t.micro_batch_size, t.gradient_accumulation_steps, t.sequence_len, t.save_steps) == (3, 1, 1, 1024, 3)
    # Swapped only where CPU cannot: checkpointing and the (CPU-capable) fused AdamW stay as the recipe has them.
    assert (t.precision, t.attention, t.liger, t.gradient_checkpointing, t.optimizer) == ("fp32", "sdpa", False, True, "adamw_torch_fused")
    # The recipe's own Hub source, a few rows of it.
    assert [(s.source, s.path, s.limit) for s in rehearsal.data.train] == [("medquad", None, 96)]
    assert (rehearsal.eval.limit, rehearsal.eval.suite_limit, rehearsal.eval.max_new_tokens) == (4, 4, 64)
    assert rehearsal.eval.suites == recipe.eval.suites and rehearsal.eval.suite_data is None
    assert recipe.model == "llama-3.2-3b-instruct" and recipe.launch.gpus == 4, "the loaded recipe is not changed"

    rendered = render(rehearsal)
    acc = yaml.safe_load(rendered.files["accelerate.yaml"])
    assert (acc["distributed_type"], acc["num_processes"], acc["num_machines"], acc["use_cpu"]) == ("DEEPSPEED", 2, 1, True)
    assert "mixed_precision" not in acc
    assert json.loads(rendered.files["deepspeed.json"])["zero_optimization"]["stage"] == 3
    assert rendered.axolotl["bf16"] is False and rendered.axolotl["max_steps"] == 3


@pytest.mark.parametrize("path", GPU_RECIPES, ids=lambda p: p.stem)
def test_every_gpu_recipe_rehearses_on_cpu_with_each_difference_named(path):
    recipe, _ = load(path)
    plan = plan_rehearsal(recipe)
    rehearsal = plan.recipe
    render(rehearsal)  # Axolotl's own check accepts what will train
    assert (rehearsal.model, rehearsal.launch.device, rehearsal.training.max_steps) == (MODEL, "cpu", 3)
    assert rehearsal.training.precision == "fp32" and rehearsal.training.liger is False
    assert rehearsal.training.attention != "flash_attention_2"
    assert rehearsal.method == recipe.method and rehearsal.eval.suites == recipe.eval.suites
    assert all(src.path == orig.path for src, orig in zip(rehearsal.data.train, recipe.data.train))

    swaps = {swap.key: swap for swap in plan.swaps}
    assert len(swaps) == len(plan.swaps), "one swap per key"
    # Every swap is a real difference, and the swaps' config changes, replayed in order, turn the real run's
    # rendered files into the rehearsal's: no difference goes unnamed (a key two swaps touch is named by both).
    assert all(swap.real != swap.rehearsal and swap.why for swap in plan.swaps)
    real, rehearsed = _rendered(recipe), _rendered(rehearsal)
    replayed = dict(real)
    for swap in plan.swaps:
        for key, (before, after) in swap.config.items():
            assert replayed.get(key) == before, (swap.key, key)
            replayed[key] = after
    assert {k: v for k, v in replayed.items() if v is not None} == {k: v for k, v in rehearsed.items() if v is not None}
    assert any(real.get(key) != value for key, value in rehearsed.items())
    assert {"model", "launch.device", "training.precision", "training.liger", "eval.limit"} <= set(swaps)
    assert swaps["model"].config["axolotl.yaml:base_model"] == [models.resolve(recipe.model), models.resolve(MODEL)]
    assert swaps["training.precision"].config["axolotl.yaml:bf16"] == [True, False]
    assert ("quantization (bitsandbytes)" in swaps) == (recipe.method.name == "qlora")
    assert ("process group" in swaps) == (rehearsal.launch.gpus == 2)
    entry = json.loads(json.dumps(plan.manifest_entry()))  # what manifest.json keeps
    assert entry["recipe"] == recipe.name and [s["key"] for s in entry["swaps"]] == [s.key for s in plan.swaps]


def test_one_process_recipes_rehearse_in_one_process_and_deepspeed_in_two():
    one, _ = load(REPO / "recipes" / "llama3b-lora.yaml")
    text = render(plan_rehearsal(one).recipe).files["accelerate.yaml"]
    acc = yaml.safe_load(text)  # YAML reads `NO` as false
    assert "distributed_type: NO" in text and (acc["num_processes"], acc["use_cpu"]) == (1, True)
    two, _ = load(REPO / "recipes" / "llama3b-lora.yaml", ["launch.gpus=2"])
    acc = yaml.safe_load(render(plan_rehearsal(two).recipe).files["accelerate.yaml"])
    # MULTI_CPU would start one process; MULTI_GPU + use_cpu starts two on CPU.
    assert (acc["distributed_type"], acc["num_processes"], acc["use_cpu"]) == ("MULTI_GPU", 2, True)
    one_gpu_zero2, _ = load(REPO / "recipes" / "llama3b-lora.yaml", ["launch.deepspeed=zero2"])
    plan = plan_rehearsal(one_gpu_zero2)
    assert plan.recipe.launch.gpus == 2 and {s.key: (s.real, s.rehearsal) for s in plan.swaps}["launch.gpus"] == (1, 2)


def test_local_sources_are_kept_and_limited(tmp_path):
    path = tmp_path / "local.yaml"
    path.write_text(f"""name: local
model: llama-3.2-1b-instruct
data:
  train:
    - source: medquad
      path: {DEMO_DATA}
      limit: 5000
    - source: medquad
      limit: 20
  eval:
    - source: pubmedqa
launch: {{gpus: 2}}
""")
    rehearsal = plan_rehearsal(load(path)[0]).recipe
    assert [(s.path, s.limit) for s in rehearsal.data.train] == [(str(DEMO_DATA), 96), (None, 20)]
    assert [(s.source, s.path, s.limit) for s in rehearsal.data.eval] == [("pubmedqa", None, 96)]


def test_a_rehearsal_passes_preflight_with_the_hub_data_cached_and_names_it_when_not(hub_cache, tmp_path):
    from medtune.launch import preflight
    from medtune.run.pipeline import STAGE_NAMES

    rehearsal = plan_rehearsal(load(REPO / "recipes" / "llama3b-qlora.yaml")[0]).recipe
    with pytest.raises(preflight.PreflightError) as err:
        preflight.check(rehearsal, STAGE_NAMES, runs_dir=tmp_path)
    found = str(err.value)
    assert "keivalya/MedQuad-MedicalQnADataset" in found and "eval.suites" in found, found
    write_medquad_hub(hub_cache)
    write_suite_hub(hub_cache, suite_rows())
    preflight.check(rehearsal, STAGE_NAMES, runs_dir=tmp_path)  # the CPU recipe has nothing left to fail on


def test_dry_run_of_a_rehearsal_lists_every_stage_and_the_swaps(capsys):
    from medtune.cli import main

    assert main(["recipes/llama3b-qlora.yaml", "--rehearse", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "rehearsal of llama3b-qlora on CPU" in out and "preprocess -> train -> eval -> report" in out
    for key in ("model", "launch.device", "training.precision", "training.liger", "eval.suite_limit",
                "quantization (bitsandbytes)"):
        assert f"{key}:" in out, key


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


# What the ZeRO tests prove (two ranks over gloo, sharded states, the gathered save) does not depend on how long a
# packed sequence is; at the recipes' 1024 tokens each of the 3 steps costs four times as much.
SHORT = ["--set", "training.sequence_len=256"]


def rehearse(recipe: Path, runs: Path, env: dict[str, str] | None = None) -> Path:
    """Run `launch.py RECIPE --rehearse --stages preprocess,train` as a user would (256-token sequences); the one
    run directory it made."""
    done = subprocess.run([sys.executable, "launch.py", str(recipe), "--rehearse", "--stages", "preprocess,train", *SHORT,
                           "--runs-dir", str(runs)], cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
                          capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [run_dir] = [p.parent for p in runs.glob("*/*/manifest.json")]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "done" and "medtune.launch.rehearse_child" in manifest["stages"]["train"]["command"]
    assert sorted(manifest["stages"]) == ["preprocess", "train"]
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
    hub = write_medquad_hub(tmp_path / "hf" / "hub").parents[2]  # the recipe reads MedQuAD from the Hub
    run_dir = rehearse(REPO / "recipes" / "llama3b-full-zero3.yaml", tmp_path / "runs",
                       {"HF_HUB_CACHE": str(hub), "HF_DATASETS_CACHE": str(tmp_path / "hf" / "datasets")})
    [source] = json.loads((run_dir / "data" / "manifest.json").read_text())["sources"]
    assert source["hub_id"] == "keivalya/MedQuad-MedicalQnADataset" and source["read"] == 120
    checkpoint = check_two_ranks_trained(run_dir, "DEEPSPEED")
    # ZeRO-3 shards the weights too; the saved model is gathered whole (stage3_gather_16bit_weights_on_model_save).
    shards = sorted(p.name for p in (checkpoint / "global_step3").glob("zero_pp_rank_*_model_states.pt"))
    assert shards == ["zero_pp_rank_0_mp_rank_00_model_states.pt", "zero_pp_rank_1_mp_rank_00_model_states.pt"]
    from safetensors import safe_open

    with safe_open(str(run_dir / "train" / "model.safetensors"), "pt") as weights:
        assert sum(math.prod(weights.get_slice(k).get_shape()) for k in weights.keys()) == 134_515_008  # SmolLM2-135M
