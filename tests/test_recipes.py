"""Every shipped recipe validates and renders, and Axolotl's own validation accepts the result."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from medtune.models import catalog as models
from medtune.core.paths import cache_dir
from medtune.recipe.loader import load
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
    assert cfg["datasets"][0]["type"] == "chat_template"
    if recipe.launch.device == "cpu":
        assert cfg["bf16"] is False and cfg["fp16"] is False
        if recipe.method.name in ("lora", "qlora"):
            assert not any(cfg[k] for k in ("lora_mlp_kernel", "lora_qkv_kernel", "lora_o_kernel"))
    else:
        assert cfg["bf16"] is True and cfg["attn_implementation"] == "flash_attention_2"
        assert "axolotl.integrations.liger.LigerPlugin" in cfg["plugins"]
    if recipe.launch.deepspeed != "none":
        ds = json.loads(rendered.files["deepspeed.json"])
        assert ds["zero_optimization"]["stage"] == int(recipe.launch.deepspeed[-1])
        assert yaml.safe_load(rendered.files["accelerate.yaml"])["distributed_type"] == "DEEPSPEED"


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
