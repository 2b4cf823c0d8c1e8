"""Seeds in a sweep: each (point, seed) its own run, the comparison's across-seed mean and spread, paired tests
between points on the same questions, and the best point by its mean over seeds (runs faked, eval JSON written)."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from medtune.cli import main
from medtune.evaluate.stats import holm, paired_test
from medtune.recipe.loader import load
from medtune.recipe.sweep import SweepSpec, expand
from test_sweep import write_recipe

SEEDS = [1, 2, 3]
QUESTIONS = 8
SWEEP = """  points:
    r4: {method.rank: 4}
    r8: {method.rank: 8}
  seeds: [1, 2, 3]
  metric: rougeL
"""


def base_score(q: int) -> float:
    return 0.2 + 0.01 * q


def tuned_score(group: str, seed: int, q: int) -> float:
    """r8 beats the base model by 0.3 on every question; r4 scatters around it (+-0.02), so it is no better."""
    lift = 0.3 if group == "r8" else 0.02 * (-1) ** q
    return base_score(q) + lift + 0.01 * seed


def run_mean(group: str, seed: int) -> float:
    return statistics.fmean(tuned_score(group, seed, q) for q in range(QUESTIONS))


# ---------------------------------------------------------------- expansion


def test_seeds_repeat_every_point_as_its_own_run():
    points = expand(SweepSpec(points={"lora": {"method": {"name": "lora"}}}, grid={"method.rank": [4, 8]}, seeds=[7, 9]))
    assert [p.label for p in points] == ["lora_rank-4_seed-7", "lora_rank-4_seed-9", "lora_rank-8_seed-7", "lora_rank-8_seed-9"]
    assert [(p.group, p.seed) for p in points[:2]] == [("lora_rank-4", 7), ("lora_rank-4", 9)]
    assert points[3].overrides == {"method": {"name": "lora"}, "method.rank": 8, "training.seed": 9}
    alone = expand(SweepSpec(seeds=[1, 2]))  # seeds alone: the recipe as it is, once per seed
    assert [(p.label, p.group, p.overrides) for p in alone] == [("recipe_seed-1", "recipe", {"training.seed": 1}),
                                                                ("recipe_seed-2", "recipe", {"training.seed": 2})]
    assert [p.group for p in expand(SweepSpec(grid={"method.rank": [4]}))] == [None]  # no seeds: as before


@pytest.mark.parametrize("spec, message", [
    ({"seeds": [1, 2, 1]}, "seed\\(s\\) 1 listed twice"),
    ({"seeds": [1], "grid": {"training.seed": [3]}}, "training.seed is set by sweep.seeds"),
    ({"seeds": [1], "points": {"a": {"training": {"seed": 3}}}}, "training.seed is set by sweep.seeds"),
    ({"seeds": []}, "needs grid or points \\(or both\\), or seeds"),
])
def test_seeds_are_checked(spec, message):
    with pytest.raises(ValidationError, match=message):
        SweepSpec.model_validate(spec)


def test_each_seeded_point_loads_with_its_seed(tmp_path: Path):
    from medtune.recipe.sweep import point_overrides

    path = write_recipe(tmp_path, SWEEP)
    recipe, _ = load(path)
    point = expand(recipe.sweep)[4]
    point_recipe, _ = load(path, point_overrides(recipe.name, point, []))
    assert point_recipe.name == "sw.r8_seed-2" and point_recipe.training.seed == 2 and point_recipe.method.rank == 8
    # The seed reaches the trainer: Axolotl's config (data order, dropout, new LoRA weights via SeededInit).
    from medtune.launch.render import render

    assert render(point_recipe, check=False).axolotl["seed"] == 2


# ---------------------------------------------------------------- statistics


def test_paired_test_and_holm_adjustment():
    better = paired_test([0.5, 0.6, 0.7, 0.8, 0.9, 1.0], [0.1, 0.31, 0.22, 0.43, 0.54, 0.65], samples=200, seed=0)
    assert better["mean"] == pytest.approx(0.375) and better["n"] == 6
    assert better["p"] == pytest.approx(2 / 64)  # all six differences positive: exact two-sided p = 2 / 2^6
    assert better["ci"][0] > 0
    assert paired_test([0.3, 0.4], [0.3, 0.4])["p"] == 1.0  # no difference at all
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])


# ---------------------------------------------------------------- a seeded sweep (runs faked)


def fake_run_one(options, recipe, recipe_path, overrides, run):
    """What a finished run leaves for the comparison: test set, resolved recipe, history, eval metrics and per-item rows."""
    group, seed = recipe.name.split(".", 1)[1].rsplit("_seed-", 1)
    seed = int(seed)
    assert recipe.training.seed == seed and f"training.seed={seed}" in overrides
    run_dir = run.path
    (run_dir / "data").mkdir()
    (run_dir / "data" / "test.jsonl").write_text("".join(json.dumps({"id": f"q{q}"}) + "\n" for q in range(QUESTIONS)))
    (run_dir / "recipe.resolved.yaml").write_text(yaml.safe_dump(recipe.model_dump(mode="json")))
    (run_dir / "train").mkdir()
    (run_dir / "train" / "history.json").write_text(json.dumps([{"loss": 3.0}, {"loss": 2.0 - 0.1 * seed}]))
    rows = [{"set": "test", "model": model, "id": f"q{q}", "qtype": "symptoms", "question": f"question {q}",
             "reference": "ref", "output": "answer", "rougeL": base_score(q) if model == "base" else tuned_score(group, seed, q)}
            for model in ("base", "tuned") for q in range(QUESTIONS)]
    (run_dir / "eval").mkdir()
    (run_dir / "eval" / "per_item.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    metrics = {"models": {model: {"rougeL": {"mean": statistics.fmean(r["rougeL"] for r in rows if r["model"] == model),
                                             "ci": None, "n": QUESTIONS}} for model in ("base", "tuned")},
               "config": {"eval": {"bootstrap_samples": 200, "seed": 0}}}
    (run_dir / "eval" / "metrics.json").write_text(json.dumps(metrics))
    return 0


def test_seeded_sweep_reports_mean_spread_and_paired_tests(tmp_path: Path, monkeypatch, capsys):
    import medtune.run.sweep

    monkeypatch.setattr(medtune.run.sweep, "run_one", fake_run_one)
    path = write_recipe(tmp_path, SWEEP, eval_section="eval: {limit: 8, max_new_tokens: 8, metrics: [rouge]}")
    runs = tmp_path / "runs"
    assert main([str(path), "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out

    sweep_dir = next(runs.glob("sw/*/sweep.json")).parent
    summary = json.loads((sweep_dir / "sweep.json").read_text())
    assert [(p["label"], p["group"], p["seed"]) for p in summary["points"]] == [
        (f"{g}_seed-{s}", g, s) for g in ("r4", "r8") for s in SEEDS]

    seeds = pd.read_csv(sweep_dir / "across_seeds.csv").set_index("point")
    for group in ("r4", "r8"):
        per_seed = [run_mean(group, s) for s in SEEDS]
        assert seeds.loc[group, "seeds"] == 3
        assert seeds.loc[group, "rougeL"] == pytest.approx(statistics.fmean(per_seed))
        assert seeds.loc[group, "rougeL_sd"] == pytest.approx(0.01)  # the seeds move every answer by 0.01 each
        assert (seeds.loc[group, "rougeL_min"], seeds.loc[group, "rougeL_max"]) == pytest.approx((min(per_seed), max(per_seed)))
        assert seeds.loc[group, "train_loss"] == pytest.approx(statistics.fmean(2.0 - 0.1 * s for s in SEEDS))

    tests = pd.read_csv(sweep_dir / "paired_tests.csv")
    found = {(a, b): t for (a, b), t in zip(zip(tests["a"], tests["b"]), tests.to_dict("records"))}
    base = "base smollm2-135m-instruct"
    assert set(found) == {("r4", "r8"), ("r4", base), ("r8", base)}
    r4_r8, r8_base, r4_base = found[("r4", "r8")], found[("r8", base)], found[("r4", base)]
    assert r4_r8["mean"] == pytest.approx(statistics.fmean(0.02 * (-1) ** q - 0.3 for q in range(QUESTIONS)))
    assert r8_base["mean"] == pytest.approx(0.32) and r8_base["n"] == QUESTIONS  # 0.3 lift + the seeds' mean 0.02
    assert r4_r8["significant"] and r8_base["significant"] and not r4_base["significant"]
    assert r4_r8["p"] == pytest.approx(2 / 2 ** QUESTIONS) and r4_r8["p_holm"] >= r4_r8["p"]

    assert summary["best"]["label"] == "r8" and summary["best"]["seeds"] == 3
    assert summary["best"]["value"] == pytest.approx(statistics.fmean(run_mean("r8", s) for s in SEEDS))
    assert summary["best"]["sd"] == pytest.approx(0.01) and len(summary["best"]["run_dirs"]) == 3
    assert summary["fairness"]["metric"] == "rougeL"
    assert "best point: r8" in out and "Across seeds" in out and "Paired tests on rougeL" in out

    markdown = (sweep_dir / "comparison.md").read_text()
    assert "## Across seeds" in markdown and "## Paired tests on rougeL" in markdown
    assert "| r8 | 3 |" in markdown and " ± 0.0100" in markdown


# ---------------------------------------------------------------- learning-rate search (runs faked)

LR_SWEEP = """  points:
    r4: {method.rank: 4}
    r8: {method.rank: 8}
    r16: {method.rank: 16}
  seeds: [5, 6]
  lr_search: {values: [1e-4, 2e-4, 4e-4]}
  metric: rougeL
"""
BEST_RATE = {"r4": 2e-4, "r8": 4e-4}  # r16's training never logs a validation loss: no rate can be picked


def test_lr_search_is_validated():
    with pytest.raises(ValidationError, match="learning_rate is chosen by sweep.lr_search"):
        SweepSpec.model_validate({"grid": {"training.learning_rate": [1e-4]}, "lr_search": {"values": [1e-4]}})
    with pytest.raises(ValidationError, match="positive and distinct"):
        SweepSpec.model_validate({"seeds": [1], "lr_search": {"values": [1e-4, 1e-4]}})
    with pytest.raises(ValidationError, match="Input should be 'val_loss'"):
        SweepSpec.model_validate({"seeds": [1], "lr_search": {"values": [1e-4], "metric": "rougeL"}})


def test_lr_search_needs_validation_rows(tmp_path: Path):
    from medtune.core.errors import RecipeError

    path = write_recipe(tmp_path, LR_SWEEP)
    with pytest.raises(RecipeError, match="sweep.lr_search: picks each point's rate by validation loss"):
        load(path, ["data.split.val=0"])


def fake_search_or_point(options, recipe, recipe_path, overrides, run):
    """Search runs (`<point>_lr-<rate>`) train only and log a validation loss lowest at the point's best rate;
    the points' runs must come at that rate and are evaluated as above."""
    label = recipe.name.split(".", 1)[1]
    rate = recipe.training.learning_rate
    if "_lr-" in label:
        assert options.stages == ("preprocess", "train")  # the test questions play no part in the choice
        group = label.split("_lr-")[0]
        assert recipe.training.seed == 5  # the first seed
        (run.path / "train").mkdir()
        history = [{"loss": 2.0}] + ([] if group == "r16" else [{"eval_loss": 1.0 + abs(rate - BEST_RATE[group]) * 1e3}])
        (run.path / "train" / "history.json").write_text(json.dumps(history))
        return 0
    group = label.split("_seed-")[0]
    assert rate == BEST_RATE[group] and options.stages is None
    return fake_run_one(options, recipe, recipe_path, overrides, run)


def test_lr_search_picks_each_points_rate_on_validation_loss(tmp_path: Path, monkeypatch, capsys):
    import medtune.run.sweep

    monkeypatch.setattr(medtune.run.sweep, "run_one", fake_search_or_point)
    path = write_recipe(tmp_path, LR_SWEEP, eval_section="eval: {limit: 8, max_new_tokens: 8, metrics: [rouge]}")
    runs = tmp_path / "runs"
    assert main([str(path), "--runs-dir", str(runs)]) == 1  # r16 could not be searched
    captured = capsys.readouterr()
    assert "r16 (no validation loss at any rate)" in captured.err
    assert "Learning-rate search" in captured.out

    sweep_dir = next(runs.glob("sw/*/sweep.json")).parent
    summary = json.loads((sweep_dir / "sweep.json").read_text())
    assert [e["label"] for e in summary["lr_search_runs"]] == [
        f"{g}_lr-{r}" for g in ("r4", "r8", "r16") for r in ("0.0001", "0.0002", "0.0004")]
    assert {g: r["chosen"] for g, r in summary["lr_search"].items()} == {"r4": 2e-4, "r8": 4e-4, "r16": None}
    assert summary["lr_search"]["r4"]["losses"] == pytest.approx({"0.0001": 1.1, "0.0002": 1.0, "0.0004": 1.2})
    assert [(p["label"], p["overrides"]["training.learning_rate"]) for p in summary["points"]] == [
        ("r4_seed-5", 2e-4), ("r4_seed-6", 2e-4), ("r8_seed-5", 4e-4), ("r8_seed-6", 4e-4)]

    table = pd.read_csv(sweep_dir / "comparison.csv")
    tuned = table[table["kind"] == "tuned"]
    assert dict(zip(tuned["row"], tuned["learning_rate"])) == {"r4_seed-5": 2e-4, "r4_seed-6": 2e-4, "r8_seed-5": 4e-4,
                                                               "r8_seed-6": 4e-4}
    seeds = pd.read_csv(sweep_dir / "across_seeds.csv").set_index("point")
    assert seeds.loc["r4", "learning_rate"] == 2e-4 and seeds.loc["r8", "learning_rate"] == 4e-4
    markdown = (sweep_dir / "comparison.md").read_text()
    assert "| r8 | 2 | 0.0004 |" in markdown  # the across-seed table names the rate each point ended with
    assert summary["best"]["label"] == "r8"


def test_per_question_scores_cover_held_out_scores_and_suite_correctness(tmp_path: Path):
    from medtune.report.fairness import group_of, question_scores

    rows = [{"set": "test", "model": "tuned", "id": "q1", "rougeL": 0.5, "judge_factuality": 1.0},
            {"set": "test", "model": "tuned", "id": "q2", "rougeL": 0.25, "judge_factuality": None},
            {"set": "test", "model": "base", "id": "q1", "rougeL": 0.1},
            {"set": "suite", "suite": "pubmedqa", "model": "tuned", "task": "pubmedqa", "id": "7",
             "loglik_correct": True, "generation_correct": False}]
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "per_item.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert question_scores(tmp_path, "tuned", "rougeL") == {"q1": 0.5, "q2": 0.25}
    assert question_scores(tmp_path, "tuned", "judge_factuality") == {"q1": 1.0}  # an unparsable verdict is no score
    assert question_scores(tmp_path, "tuned", "pubmedqa.acc") == {"pubmedqa/7": 1.0}
    assert question_scores(tmp_path, "tuned", "pubmedqa.gen_acc") == {"pubmedqa/7": 0.0}
    assert question_scores(tmp_path, "tuned", "train_loss") == {}
    assert group_of("lora_rank-8_seed-12") == "lora_rank-8" and group_of("lora (20260101-000000)") == "lora (20260101-000000)"
