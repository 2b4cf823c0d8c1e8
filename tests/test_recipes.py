"""Every shipped recipe validates and renders, and Axolotl's own validation accepts the result."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml

from medtune.models import catalog as models
from medtune.core.paths import cache_dir
from medtune.recipe.loader import load
from medtune.launch.plan import estimate_memory, largest_estimate
from medtune.launch.render import render

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "recipes").glob("**/*.yaml"))
SNAPSHOTS = REPO / "tests" / "snapshots"
SNAPSHOT_RECIPES = ["smollm2-135m-lora", "smollm2-135m-qlora", "llama3b-qlora", "llama3b-galore", "llama3b-full-zero3"]


def test_recipes_are_found_recursively():
    names = {p.stem for p in RECIPES}
    required = {"llama3b-qlora", "smollm2-135m-lora", "smollm2-135m-qlora", "smollm2-135m-full", "llama3b-full-zero3"}
    required |= {f"llama{s}-{m}" for s in ("1b", "3b") for m in ("lora", "qlora", "full")}
    required |= {"llama3b-galore", "mistral7b-lora", "mistral7b-qlora"}
    assert required <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(REPO / "recipes")))
def test_recipe_validates_and_renders(path: Path):
    first_line = path.read_text().splitlines()[0]
    assert first_line == f"# python launch.py recipes/{path.relative_to(REPO / 'recipes')}", "a recipe opens with its command"
    recipe, _ = load(path)
    rendered = render(recipe)  # raises if Axolotl's validation rejects the config
    cfg = rendered.axolotl
    if recipe.data.format == "chat":  # plain-text formats (recipes/studies/) render their own type: tests/test_formats.py
        assert cfg["datasets"][0]["type"] == "chat_template"
    if recipe.launch.device == "cpu":
        assert cfg["bf16"] is False and cfg["fp16"] is False
        if recipe.method.name in ("lora", "qlora"):
            assert not any(cfg[k] for k in ("lora_mlp_kernel", "lora_qkv_kernel", "lora_o_kernel"))
    else:
        # sdpa needs no package beyond torch (flash-attn is not installed by default); Axolotl keeps packed rows apart
        assert cfg["bf16"] is True and cfg["attn_implementation"] == "sdpa"
        assert "axolotl.integrations.liger.LigerPlugin" in cfg["plugins"]
    if recipe.launch.deepspeed != "none":
        ds = json.loads(rendered.files["deepspeed.json"])
        assert ds["zero_optimization"]["stage"] == int(recipe.launch.deepspeed[-1])
        assert yaml.safe_load(rendered.files["accelerate.yaml"])["distributed_type"] == "DEEPSPEED"


# ---------------------------------------------------------------- precision, Liger and memory on GPU

MASTER_WEIGHTS = "medtune.launch.mixed_precision.Fp32MasterWeights"


@pytest.mark.parametrize("name, method, master", [
    ("llama1b-lora", "lora", False),     # frozen bf16 base; PEFT keeps the adapters in fp32
    ("llama1b-qlora", "qlora", False),   # NF4 base computing in bf16; fp32 adapters
    ("llama1b-full", "full", True),      # fp32 weights and AdamW moments, bf16 compute
    ("llama3b-galore", "galore", True),  # fp32 weights and projected moments, bf16 compute
])
def test_gpu_methods_render_their_precision(name: str, method: str, master: bool):
    recipe, _ = load(REPO / "recipes" / f"{name}.yaml")
    rendered = render(recipe)
    cfg = rendered.axolotl
    assert recipe.method.name == method
    # bf16 loads the weights in bf16 and turns on the trainer's autocast; the plugin upcasts full-weight training.
    assert (cfg["bf16"], cfg["fp16"]) == (True, False)
    assert (MASTER_WEIGHTS in cfg["plugins"]) is master
    assert yaml.safe_load(rendered.files["accelerate.yaml"])["mixed_precision"] == "bf16"
    assert cfg.get("load_in_4bit", False) is (method == "qlora")
    assert ("adapter" in cfg) is (method in ("lora", "qlora"))
    fp16 = render(load(REPO / "recipes" / f"{name}.yaml", ["training.precision=fp16"])[0]).axolotl
    assert (fp16["bf16"], fp16["fp16"]) == (False, True) and (MASTER_WEIGHTS in fp16["plugins"]) is master
    fp32 = render(load(REPO / "recipes" / f"{name}.yaml", ["training.precision=fp32"])[0]).axolotl
    assert (fp32["bf16"], fp32["fp16"]) == (False, False) and MASTER_WEIGHTS not in fp32["plugins"]


@pytest.mark.parametrize("stage", ["zero1", "zero2", "zero3"])
def test_deepspeed_keeps_its_own_fp32_master_weights(stage: str):
    """Under DeepSpeed the model stays bf16: its optimizer holds the fp32 master copy and moments itself."""
    recipe, _ = load(REPO / "recipes/llama3b-full-zero3.yaml", [f"launch.deepspeed={stage}"])
    rendered = render(recipe)
    assert rendered.axolotl["bf16"] is True and MASTER_WEIGHTS not in rendered.axolotl["plugins"]
    assert json.loads(rendered.files["deepspeed.json"])["bf16"] == {"enabled": "auto"}  # filled from bf16: true


def test_zero3_runs_liger_without_the_fused_cross_entropy():
    """Liger's fused loss reads the lm_head weight that ZeRO-3 shards: ZeRO-3 gets Liger's plain cross-entropy."""
    zero3 = render(load(REPO / "recipes/llama3b-full-zero3.yaml")[0]).axolotl
    assert "axolotl.integrations.liger.LigerPlugin" in zero3["plugins"]
    assert zero3["liger_fused_linear_cross_entropy"] is False and zero3["liger_cross_entropy"] is True
    assert zero3["liger_rms_norm"] is True and zero3["liger_glu_activation"] is True
    zero2 = render(load(REPO / "recipes/llama3b-full-zero3.yaml", ["launch.deepspeed=zero2"])[0]).axolotl
    assert zero2["liger_fused_linear_cross_entropy"] is True and "liger_cross_entropy" not in zero2


GPU_SIZES_GB = (16, 24, 40, 48, 80)  # the card sizes a description names


@pytest.mark.parametrize("path", [p for p in RECIPES if "device: cpu" not in p.read_text()], ids=lambda p: p.stem)
def test_gpu_recipe_description_names_the_memory_it_fits(path: Path):
    """The second line (README's recipe table) names the smallest card size that holds the planner's estimate with
    pre-flight's 5% margin, so a description moves when the estimate does."""
    recipe, _ = load(path)
    assert recipe.launch.device == "cuda"
    named = re.findall(r"\b(\d+) GB\b", path.read_text().splitlines()[1])
    assert len(named) == 1, f"{path.name}: its description names no GPU memory (e.g. 'one 24 GB+ GPU')"
    need = largest_estimate(recipe, models.lookup(recipe.model))[1].total_gib  # the training stage needing the most
    fits = [size for size in GPU_SIZES_GB if need <= 0.95 * size]
    assert fits and int(named[0]) == fits[0], f"{path.name}: estimate {need:.1f} GiB per GPU fits {fits[:1]} GB cards"


def test_headline_recipe_fits_a_24_gb_card():
    recipe, _ = load(REPO / "recipes/llama3b-qlora.yaml")
    assert estimate_memory(recipe, models.lookup(recipe.model)).total_gib < 0.95 * 24


def _normalized(text: str) -> str:
    return text.replace(str(cache_dir()), "<MEDTUNE_CACHE>")


@pytest.mark.parametrize("name", SNAPSHOT_RECIPES)
def test_rendered_config_matches_snapshot(name: str):
    """Pins the rendered files; refresh with UPDATE_SNAPSHOTS=1 after an intended template change."""
    recipe, _ = load(REPO / "recipes" / f"{name}.yaml")
    rendered = render(recipe)
    for file_name, text in rendered.files.items():
        snap = SNAPSHOTS / name / file_name
        if os.environ.get("UPDATE_SNAPSHOTS"):
            snap.parent.mkdir(parents=True, exist_ok=True)
            snap.write_text(_normalized(text))
        assert snap.is_file(), f"no snapshot {snap}; run with UPDATE_SNAPSHOTS=1"
        assert _normalized(text) == snap.read_text(), f"{name}/{file_name} changed"


def test_overrides_are_validated_like_the_file(tmp_path):
    from medtune.core.errors import RecipeError

    recipe, _ = load(REPO / "recipes/smollm2-135m-lora.yaml", ["training.learning_rate=1e-5", "method.rank=8"])
    assert recipe.training.learning_rate == 1e-5 and recipe.method.rank == 8
    with pytest.raises(RecipeError) as err:
        load(REPO / "recipes/smollm2-135m-lora.yaml", ["training.lr=1e-5"])
    assert "training.lr: unknown key" in err.value.render()


def test_axolotl_overrides_land_last():
    recipe, _ = load(REPO / "recipes/smollm2-135m-lora.yaml", ["axolotl.lora_dropout=0.2", "axolotl.max_grad_norm=0.5"])
    cfg = render(recipe).axolotl
    assert cfg["lora_dropout"] == 0.2 and cfg["max_grad_norm"] == 0.5


def test_rendered_files_parse(tmp_path):
    recipe, _ = load(REPO / "recipes/llama3b-full-zero3.yaml")
    written = render(recipe).write(tmp_path)
    assert sorted(p.name for p in written) == ["accelerate.yaml", "axolotl.yaml", "deepspeed.json"]
    acc = yaml.safe_load((tmp_path / "accelerate.yaml").read_text())
    # Under DeepSpeed the precision lives in deepspeed.json; accelerate rejects it in both files.
    assert acc["num_processes"] == 4 and "mixed_precision" not in acc


def test_catalog_models_resolve_without_network():
    for key, facts in models.catalog().items():
        resolved = models.resolve(key)
        assert resolved == facts.hub_id or Path(resolved).parent == cache_dir() / "models"


def test_frozen_imports_freeze_a_training_process_only(monkeypatch):
    """Rendering a recipe runs Axolotl's own config check in this process, which registers the rendered plugins;
    FrozenImports must leave this process's garbage collectable and freeze only when training loads its data."""
    import gc

    from medtune.launch import axolotl_plugin

    rendered = render(load(REPO / "recipes" / "smollm2-135m-lora.yaml")[0])  # with Axolotl's check
    assert rendered.axolotl["plugins"][0] == "medtune.launch.axolotl_plugin.FrozenImports"
    assert gc.get_freeze_count() == 0
    plugin = axolotl_plugin.FrozenImports()
    plugin.register({})
    assert gc.get_freeze_count() == 0 and not axolotl_plugin.FrozenImports._frozen
    # Where training starts: everything alive is frozen once, and Axolotl still loads the data (None).
    monkeypatch.setattr(axolotl_plugin.FrozenImports, "_frozen", False)
    try:
        assert plugin.load_datasets({}, preprocess=False) is None
        frozen = gc.get_freeze_count()
        assert frozen > 100_000  # this process's imports: torch, transformers, Axolotl
        # A second call freezes nothing: these 10,000 new objects would join the frozen ones. (The count itself may
        # fall: a frozen object freed by its last reference leaves it.)
        fresh = [[] for _ in range(10_000)]
        plugin.load_datasets({}, preprocess=False)
        assert gc.get_freeze_count() < frozen + len(fresh)
    finally:
        gc.unfreeze()
