"""Sweeps: expansion into points, points validated like --set, failed points recorded, the best one named."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from medtune.cli import main
from medtune.core.errors import MedtuneError, RecipeError
from medtune.recipe.loader import load
from medtune.launch.render import render
from medtune.recipe.sweep import SweepSpec, expand

REPO = Path(__file__).resolve().parents[1]
DEMO_CSV = REPO / "data" / "demo" / "medquad_demo.csv"
MATRIX = REPO / "recipes" / "matrix" / "smollm2-135m-methods.yaml"


def write_recipe(folder: Path, sweep: str, name: str = "sw", eval_section: str = "eval: {limit: 2, max_new_tokens: 8, metrics: [rouge]}") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(f"""# python launch.py {path}
name: {name}
model: smollm2-135m-instruct
method: {{name: lora}}
data:
  train:
    - source: medquad
      path: {DEMO_CSV}
      limit: 12
  split: {{val: 0.1, test: 0.2, seed: 3}}
  system_prompt: "You are a careful medical assistant."
training:
  max_steps: 2
  warmup_ratio: 0.0
  micro_batch_size: 1
  sequence_len: 256
launch: {{device: cpu}}
{eval_section}
sweep:
{sweep}""")
    return path


GRID = """  grid:
    training.learning_rate: [1e-4, 3e-3]
    method.rank: [4, 8]
  metric: train_loss
"""


# ---------------------------------------------------------------- expansion and validation


def test_grid_expands_to_every_combination_with_readable_labels():
    points = expand(SweepSpec(grid={"training.learning_rate": ["1e-4", 3e-4], "method.rank": [8, 16]}))
    assert [p.label for p in points] == ["learning_rate-1e-4_rank-8", "learning_rate-1e-4_rank-16",
                                         "learning_rate-0.0003_rank-8", "learning_rate-0.0003_rank-16"]
    assert points[1].overrides == {"training.learning_rate": "1e-4", "method.rank": 16}
    assert points[1].set_args() == ['training.learning_rate="1e-4"', "method.rank=16"]


def test_points_cross_the_grid_and_shared_key_names_stay_distinct():
    sweep = SweepSpec(points={"lora": {"method": {"name": "lora"}}, "full": {"method": {"name": "full"}}},
                      grid={"training.seed": [1, 2], "data.split.seed": [3]})
    labels = [p.label for p in expand(sweep)]
    assert labels == ["lora_training.seed-1_data.split.seed-3", "lora_training.seed-2_data.split.seed-3",
                      "full_training.seed-1_data.split.seed-3", "full_training.seed-2_data.split.seed-3"]
    assert expand(sweep)[2].overrides == {"method": {"name": "full"}, "training.seed": 1, "data.split.seed": 3}


def test_labels_that_sanitize_alike_stay_unique():
    points = expand(SweepSpec(grid={"method.target_modules": [["q_proj", "v_proj"], ["q_proj v_proj"]]}))
    assert [p.label for p in points] == ["target_modules-q_proj-v_proj", "target_modules-q_proj-v_proj-2"]


@pytest.mark.parametrize("spec, message", [
    ({}, "needs grid or points"),
    ({"grid": {"method.rank": []}}, "no values to try"),
    ({"points": {"a b": {}}}, "point name"),
    ({"grid": {"name": ["x"]}}, "cannot set name"),
    ({"grid": {"method.rank": [4]}, "points": {"a": {"method.rank": 8}}}, "both grid and points"),
])
def test_sweep_section_is_strict(spec, message):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        SweepSpec.model_validate(spec)


def test_every_point_is_validated_like_set_with_its_label(tmp_path: Path):
    path = write_recipe(tmp_path, """  points:
    full: {method: {name: full, rank: 8}}
    fine: {method: {name: qlora}}
    typo: {training.lerning_rate: 1e-4}
  metric: rouge1
""")
    with pytest.raises(RecipeError) as err:
        load(path)
    text = err.value.render()
    assert "sweep point full: method.rank: not an option of method full" in text
    assert "sweep point typo: training.lerning_rate: unknown key" in text and "Did you mean 'learning_rate'" in text
    assert "fine" not in text and len(err.value.problems) == 2


def test_the_metric_must_be_something_the_recipe_measures(tmp_path: Path):
    path = write_recipe(tmp_path, GRID.replace("train_loss", "rogue1"))
    with pytest.raises(RecipeError, match="sweep.metric: not something this recipe measures"):
        load(path)
    recipe, _ = load(write_recipe(tmp_path, GRID.replace("train_loss", "rouge1")))
    assert recipe.sweep.metric == "rouge1" and not recipe.sweep.best_is_min()
    assert SweepSpec(grid={"a": [1]}, metric="eval_loss").best_is_min()
    assert not SweepSpec(grid={"a": [1]}, metric="eval_loss", mode="max").best_is_min()


def test_a_later_stage_loss_can_name_the_best_point():
    """The matrix's knowtuning and dpo points train a DPO stage: its last loss (compare's dpo_train_loss column) may
    pick the best point, lowest first, without the eval stage; a stage no point trains is refused, naming the ones
    there are."""
    from medtune.recipe.sweep import is_training_metric

    recipe, _ = load(MATRIX, ["sweep.metric=dpo_train_loss"])
    assert recipe.sweep.best_is_min() and is_training_metric("dpo_train_loss") and not is_training_metric("rougeL")
    with pytest.raises(RecipeError) as err:
        load(MATRIX, ["sweep.metric=kto_train_loss"])
    problem = next(p for p in err.value.problems if p.path == "sweep.metric")
    assert "dpo_train_loss" in problem.allowed and "train_loss" in problem.allowed


def test_a_point_names_its_run_and_is_not_itself_a_sweep(tmp_path: Path):
    from medtune.recipe.sweep import point_overrides

    path = write_recipe(tmp_path, GRID)
    recipe, _ = load(path)
    point = expand(recipe.sweep)[3]
    point_recipe, _ = load(path, point_overrides(recipe.name, point, ["training.seed=7"]))
    assert point_recipe.name == "sw.learning_rate-3e-3_rank-8" and point_recipe.sweep is None
    assert point_recipe.training.learning_rate == 3e-3 and point_recipe.method.rank == 8 and point_recipe.training.seed == 7


def test_matrix_recipe_points_render_and_share_their_data():
    recipe, _ = load(MATRIX)
    from medtune.recipe.sweep import point_overrides

    loaded = {}
    for point in expand(recipe.sweep):
        point_recipe, _ = load(MATRIX, point_overrides(recipe.name, point, []))
        render(point_recipe)  # Axolotl's own validation, per point
        assert point_recipe.data == recipe.data and point_recipe.training.sequence_len == recipe.training.sequence_len
        loaded[point.label] = point_recipe
    methods = {label: [r.method.name, *(stage.method.name for stage in r.stages)] for label, r in loaded.items()}
    assert methods == {"lora": ["lora"], "qlora": ["qlora"], "full": ["full"], "galore": ["galore"],
                       "knowtuning": ["lora", "dpo"], "dpo": ["lora", "dpo"]}
    for label in ("knowtuning", "dpo"):  # their first stage is the lora point's training
        assert loaded[label].method == loaded["lora"].method and loaded[label].training == loaded["lora"].training
    # SFT + DPO is KnowTuning without its augmentation, on the same preference stage.
    assert loaded["knowtuning"].knowtuning.augment and not loaded["dpo"].knowtuning.augment
    assert loaded["knowtuning"].stages == loaded["dpo"].stages
    assert recipe.eval.baseline  # the base model's row comes from every run's baseline evaluation


def test_dry_run_lists_points_and_writes_nothing(tmp_path: Path, capsys):
    path = write_recipe(tmp_path, GRID)
    assert main([str(path), "--dry-run", "--runs-dir", str(tmp_path / "runs")]) == 0
    assert "4 points" in capsys.readouterr().out
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("metric, stages, message", [
    ("rouge1", "preprocess,train", "leaves out"),
    ("train_loss", "preprocess,trian", "unknown stage(s) trian"),
])
def test_stages_are_checked_before_any_point_runs(tmp_path: Path, capsys, metric, stages, message):
    path = write_recipe(tmp_path, GRID.replace("train_loss", metric))
    assert main([str(path), "--stages", stages, "--runs-dir", str(tmp_path / "runs")]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "runs").exists()


# ---------------------------------------------------------------- running (points faked)


def test_a_failed_point_is_recorded_and_the_sweep_goes_on(tmp_path: Path, monkeypatch, capsys):
    import medtune.run.sweep

    losses = {"learning_rate-1e-4_rank-4": 2.0, "learning_rate-1e-4_rank-8": 1.9, "learning_rate-3e-3_rank-8": 1.4}

    def fake_run_one(options, recipe, recipe_path, overrides, run):
        run_dir = run.path
        label = recipe.name.split(".", 1)[1]
        if label == "learning_rate-3e-3_rank-4":
            raise MedtuneError("training exited with code 1")
        (run_dir / "data").mkdir()
        (run_dir / "data" / "test.jsonl").write_text("{}\n")
        (run_dir / "recipe.resolved.yaml").write_text(yaml.safe_dump(recipe.model_dump(mode="json")))
        (run_dir / "train").mkdir()
        (run_dir / "train" / "history.json").write_text(json.dumps([{"loss": 3.0}, {"loss": losses[label]}]))
        return 0

    monkeypatch.setattr(medtune.run.sweep, "run_one", fake_run_one)
    path = write_recipe(tmp_path, GRID)
    runs = tmp_path / "runs"
    assert main([str(path), "--stages", "preprocess,train", "--runs-dir", str(runs)]) == 1
    captured = capsys.readouterr()
    assert "1 of 4 sweep points failed: learning_rate-3e-3_rank-4" in captured.err

    summary = json.loads(next(runs.glob("sw/*/sweep.json")).read_text())
    status = {p["label"]: p["status"] for p in summary["points"]}
    assert status == {**{k: "done" for k in losses}, "learning_rate-3e-3_rank-4": "failed"}
    assert summary["status"] == "failed points"
    assert "exited with code 1" in next(p["error"] for p in summary["points"] if p["status"] == "failed")
    assert summary["best"]["label"] == "learning_rate-3e-3_rank-8" and summary["best"]["value"] == 1.4
    assert summary["best"]["mode"] == "min"
    assert "best point: learning_rate-3e-3_rank-8" in captured.out
    table = pd.read_csv(next(runs.glob("sw/*/comparison.csv")))
    assert dict(zip(table["row"], table["train_loss"])) == losses


def test_later_points_reuse_the_base_answers_only_where_fingerprints_match(tmp_path: Path):
    from medtune.evaluate.store import GenerationStore
    from medtune.run.sweep import share_base_generations

    done = tmp_path / "point1"
    GenerationStore(done / "eval" / "generations.jsonl").append([
        {"model": "base", "set": "test", "id": "q1", "fingerprint": "f1", "output": "base answer"},
        {"model": "base", "set": "suite:pubmedqa", "id": "p1", "fingerprint": "f2", "output": "yes"},
        {"model": "tuned", "set": "test", "id": "q1", "fingerprint": "f3", "output": "tuned answer"},
    ])
    new = tmp_path / "point2"
    assert share_base_generations([done, tmp_path / "failed-point-without-eval"], new) == 2
    store = GenerationStore(new / "eval" / "generations.jsonl")
    assert store.get("base", "test", "q1", "f1")["output"] == "base answer"
    assert store.get("base", "suite:pubmedqa", "p1", "f2")["output"] == "yes"
    assert store.get("base", "test", "q1", "another prompt or setting") is None  # generated afresh by the eval stage
    assert store.records("tuned", "test") == {}  # each point's tuned model is its own


# ---------------------------------------------------------------- running (real SmolLM2)


def _eval_stage_exists() -> bool:
    import importlib.util

    return importlib.util.find_spec("medtune.evaluate.run") is not None


# Two points, not the 2x2 grid: each point is a whole training and evaluation (about a minute each here), and the
# crossing of grid keys is test_grid_expands_to_every_combination_with_readable_labels' point. Both keys are still
# set on every real point, and the two learning rates end far apart, so the best point is a clear one.
REAL_GRID = """  grid:
    training.learning_rate: [1e-4, 3e-3]
    method.rank: [4]
  metric: train_loss
"""


@pytest.mark.slow
def test_real_sweep_on_smollm2(tmp_path: Path):
    with_eval = _eval_stage_exists()
    stages = "preprocess,train,eval" if with_eval else "preprocess,train"
    path = write_recipe(tmp_path, REAL_GRID)
    runs = tmp_path / "runs"
    proc = subprocess.run([sys.executable, "launch.py", str(path), "--stages", stages, "--runs-dir", str(runs)], cwd=REPO,
                          capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]

    summary = json.loads(next(runs.glob("sw/*/sweep.json")).read_text())
    assert summary["status"] == "done" and len(summary["points"]) == 2
    final_loss = {}
    for point in summary["points"]:
        run_dir = Path(point["run_dir"])
        assert run_dir.parent.name == f"sw.{point['label']}"
        assert (run_dir / "train" / "adapter_model.safetensors").is_file()
        resolved = yaml.safe_load((run_dir / "recipe.resolved.yaml").read_text())
        assert resolved["sweep"] is None and resolved["method"]["rank"] == point["overrides"]["method.rank"]
        manifest = json.loads((run_dir / "manifest.json").read_text())
        assert manifest["status"] == "done" and "sweep=null" in manifest["overrides"]
        # The exact losses are in the last checkpoint's trainer state (train/history.json holds the rounded log lines).
        state = max(run_dir.glob("train/checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[1]))
        final_loss[point["label"]] = [h["loss"] for h in json.loads(state.read_text())["log_history"] if "loss" in h][-1]
    best = min(final_loss, key=final_loss.get)
    assert summary["best"]["label"] == best and summary["best"]["value"] == pytest.approx(final_loss[best])
    assert f"best point: {best}" in proc.stdout

    table = pd.read_csv(next(runs.glob("sw/*/comparison.csv")))
    tuned = table[table["kind"] == "tuned"]
    assert dict(zip(tuned["row"], tuned["train_loss"])) == pytest.approx(final_loss)
    assert (table["kind"] == "base").sum() == (1 if with_eval else 0)  # one shared base row when eval ran
    if with_eval:
        # The base model answered once: later points reused its stored answers instead of generating again.
        assert "answers from earlier points reused" in proc.stdout
        for point in summary["points"]:
            lines = (Path(point["run_dir"]) / "eval" / "generations.jsonl").read_text().splitlines()
            base_ids = [json.loads(line)["id"] for line in lines if json.loads(line)["model"] == "base"]
            assert len(base_ids) == len(set(base_ids)) == 2
        base = table[table["kind"] == "base"].iloc[0]
        assert base["runs"] == "; ".join(p["label"] for p in summary["points"])
        for point in summary["points"]:
            metrics = json.loads((Path(point["run_dir"]) / "eval" / "metrics.json").read_text())
            row = tuned[tuned["row"] == point["label"]].iloc[0]
            assert row["rouge1"] == pytest.approx(metrics["models"]["tuned"]["rouge1"]["mean"])
            assert base["rouge1"] == pytest.approx(metrics["models"]["base"]["rouge1"]["mean"])
