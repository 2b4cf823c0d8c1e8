"""The published studies as recipes: every recipe under recipes/studies/ validates, each GPU recipe's points render
and pass Axolotl's validation, no recipe names a machine's own data folder, and bench/studies.py points each CPU
twin at the publishers' files with `--set` values that validate."""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from medtune.launch.render import render
from medtune.recipe.loader import load
from medtune.recipe.sweep import expand, point_overrides

REPO = Path(__file__).resolve().parents[1]
STUDIES_DIR = REPO / "recipes" / "studies"
STUDY_RECIPES = sorted(STUDIES_DIR.glob("**/*.yaml"))
SHARED_DATA = REPO.parent / "shared" / "data"
STUDY_KEYS = ("000", "001", "002", "003", "004")


def _bench():
    spec = importlib.util.spec_from_file_location("bench_studies", REPO / "bench" / "studies.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _ids(path: Path) -> str:
    return str(path.relative_to(STUDIES_DIR))


def test_every_study_has_a_gpu_recipe_and_a_cpu_twin():
    gpu = {p.name[5:8] for p in STUDIES_DIR.glob("study*.yaml")}
    cpu = {p.name[5:8] for p in (STUDIES_DIR / "cpu").glob("study*.yaml")}
    assert gpu == cpu == set(STUDY_KEYS)


@pytest.mark.parametrize("path", STUDY_RECIPES, ids=_ids)
def test_study_recipe_validates_and_says_which_study_it_mirrors(path: Path):
    lines = path.read_text().splitlines()
    assert lines[0] == f"# python launch.py {path.relative_to(REPO)}", "a recipe opens with its command"
    key = path.name[5:8]
    assert re.search(rf"\b[Ss]tudy {key}\b", lines[1]), "the second line names the study it mirrors"
    recipe, _ = load(path)
    assert recipe.description and key in recipe.description
    assert (recipe.launch.device == "cpu") is (path.parent.name == "cpu")
    if recipe.launch.device == "cpu":
        assert recipe.model == "smollm2-135m-instruct"


@pytest.mark.parametrize("path", [p for p in STUDY_RECIPES if p.parent == STUDIES_DIR], ids=_ids)
def test_gpu_study_recipe_renders_every_point_through_axolotl_validation(path: Path):
    """render() runs Axolotl 0.19's own validate_config for the recipe's hardware; each point changes the config."""
    recipe, _ = load(path)
    points = list(expand(recipe.sweep)) if recipe.sweep else []
    rendered = [render(recipe)] + [render(load(path, point_overrides(recipe.name, p, []))[0]) for p in points]
    for cfg in (r.axolotl for r in rendered):
        assert cfg["bf16"] is True and cfg["fp16"] is False
    if points:
        assert len({str(sorted(r.axolotl.items())) for r in rendered[1:]}) == len(points), "points render apart"


def test_published_settings_reach_the_rendered_configs():
    """Spot checks of settings the write-ups state, as Axolotl will see them."""
    s001 = render(load(STUDIES_DIR / "study001-pubmedqa-qlora.yaml")[0]).axolotl
    assert (s001["lora_r"], s001["lora_alpha"], s001["lora_dropout"]) == (16, 32, 0.05)
    assert s001["lora_target_modules"] == ["q_proj", "v_proj"] and s001["load_in_4bit"] is True
    assert (s001["sequence_len"], s001["micro_batch_size"], s001["gradient_accumulation_steps"]) == (512, 4, 4)
    assert (float(s001["learning_rate"]), s001["num_epochs"], s001["warmup_steps"]) == (2e-4, 7, 100)
    s002 = render(load(STUDIES_DIR / "study002-llama3b-methods.yaml")[0]).axolotl
    assert (s002["sequence_len"], s002["micro_batch_size"], float(s002["learning_rate"])) == (256, 4, 2e-5)
    s003 = render(load(STUDIES_DIR / "study003-llama1b-lora-medquad.yaml")[0]).axolotl
    assert (s003["lora_r"], s003["lora_alpha"], s003["neftune_noise_alpha"]) == (16, 32, 5)
    assert len(s003["lora_target_modules"]) == 7
    s004 = render(load(STUDIES_DIR / "study004-llama1b-qlora-symptoms.yaml")[0]).axolotl
    assert s004["lora_target_modules"] == ["q_proj", "v_proj"] and s004["load_in_4bit"] is True
    assert (float(s004["learning_rate"]), s004["num_epochs"]) == (1e-4, 5)


@pytest.mark.parametrize("path", STUDY_RECIPES, ids=_ids)
def test_study_recipe_names_no_local_data_folder(path: Path):
    """Recipes read the Hub copies by default; a data folder comes from `--set`, never from a path of this machine."""
    text = path.read_text()
    assert "../shared" not in text and "/shared/" not in text
    recipe, _ = load(path)
    assert all(src.path is None for src in [*recipe.data.train, *recipe.data.eval])
    assert recipe.eval.suite_data is None


def test_bench_covers_every_twin_and_gpu_recipe():
    bench = _bench()
    assert sorted(s.key for s in bench.STUDIES) == sorted(bench.ORDER) == list(STUDY_KEYS)
    for study in bench.STUDIES:
        assert (REPO / study.twin).is_file() and all((REPO / r).is_file() for r in study.gpu_recipes)
        assert study.twin.startswith("recipes/studies/cpu/study" + study.key)
    listed = {r for s in bench.STUDIES for r in (s.twin, *s.gpu_recipes)}
    assert listed == {str(p.relative_to(REPO)) for p in STUDY_RECIPES}, "every study recipe is in the bench's table"


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="the publishers' files are not on this machine")
@pytest.mark.parametrize("key", STUDY_KEYS)
def test_bench_points_each_twin_at_the_publishers_files(key: str):
    bench = _bench()
    study = next(s for s in bench.STUDIES if s.key == key)
    sets = bench.data_overrides(REPO / study.twin, SHARED_DATA)
    recipe, _ = load(REPO / study.twin, sets)
    assert recipe.data.train and all(src.path and src.path.startswith(str(SHARED_DATA)) for src in recipe.data.train)
    assert (recipe.eval.suite_data == str(SHARED_DATA)) is bool(recipe.eval.suites)
    plain, _ = load(REPO / study.twin)
    # Only where the data comes from changes: the sources, their filters and sizes stay the twin's.
    assert [(s.source, s.qtypes, s.limit) for s in recipe.data.train] == [(s.source, s.qtypes, s.limit) for s in plain.data.train]


def test_docs_keep_hand_written_notes_when_rendered_again():
    bench = _bench()
    first = bench.render_docs({}, "")
    edited = first.replace("<!-- study003:notes:begin -->\n", "<!-- study003:notes:begin -->\nROUGE moved.\n", 1)
    again = bench.render_docs({}, edited)
    assert "ROUGE moved." in again and again.count("## Study ") == 5
    assert "Not run yet" in again
