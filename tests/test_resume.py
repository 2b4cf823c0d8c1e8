"""`--resume` of runs of the shipped CPU recipes, from another working directory: their relative data paths
(../data/demo/...) start at the original recipe's folder, not at the run directory or the working directory.

Preprocess only (no training): it is the stage that reads the recipe's paths, and a changed option makes it
read them again on resume.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from medtune.cli import main

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "recipes" / "smollm2-135m-lora.yaml"
MATRIX = REPO / "recipes" / "matrix" / "smollm2-135m-methods.yaml"


def data_file(recipe: Path) -> Path:
    """The file the recipe's first training source names, resolved as the recipe file's folder sees it."""
    relative = yaml.safe_load(recipe.read_text())["data"]["train"][0]["path"]
    assert not Path(relative).is_absolute()  # the point of these tests: a path relative to the recipe
    return (recipe.parent / relative).resolve()


def source_read(run_dir: Path) -> dict:
    return json.loads((run_dir / "data" / "manifest.json").read_text())["sources"][0]


def test_resume_a_demo_run_from_another_working_directory(tmp_path, monkeypatch, capsys):
    runs = tmp_path / "runs"
    monkeypatch.chdir(REPO)
    assert main([str(DEMO.relative_to(REPO)), "--stages", "preprocess", "--runs-dir", str(runs)]) == 0
    (run_dir,) = (runs / "smollm2-135m-lora").iterdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["recipe_source"] == str(DEMO)  # recorded absolute, though given relative
    assert source_read(run_dir)["path"] == str(data_file(DEMO))

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    # RUN_DIR relative to the new working directory; nothing changed, so preprocess is skipped.
    assert main(["--resume", os.path.relpath(run_dir), "--stages", "preprocess"]) == 0
    assert "preprocess: inputs unchanged since it finished; skipped" in capsys.readouterr().out
    # RECIPE --resume latest with a relative recipe and --runs-dir; a new split seed makes preprocess read the data again.
    assert main([os.path.relpath(DEMO), "--resume", "latest", "--runs-dir", os.path.relpath(runs),
                 "--stages", "preprocess", "--set", "data.split.seed=7"]) == 0
    out = capsys.readouterr().out
    assert "skipped" not in out and "data: " in out  # preprocess ran again and counted its rows
    assert list((runs / "smollm2-135m-lora").iterdir()) == [run_dir]  # resumed in place, no new run
    read = source_read(run_dir)
    assert read["path"] == str(data_file(DEMO)) and read["read"] > 0
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["overrides"] == ["data.split.seed=7"] and manifest["status"] == "done"
    assert json.loads((run_dir / "data" / "manifest.json").read_text())["options"]["split"]["seed"] == 7


def test_resume_continues_the_interrupted_command_its_stages_and_its_rehearsal(tmp_path, monkeypatch, capsys):
    """`--resume RUN_DIR`, as the interrupted message prints it, continues the command that was interrupted: a
    `--stages preprocess` run does not go on to train, and a rehearsal stays a rehearsal (on CPU, with SmolLM2),
    not the GPU recipe its run directory holds."""
    from medquad_hub import write_medquad_hub

    from hub_cache import use_hub_cache

    write_medquad_hub(use_hub_cache(monkeypatch, tmp_path / "hf"))
    runs = tmp_path / "runs"
    monkeypatch.chdir(REPO)
    assert main(["recipes/llama3b-qlora.yaml", "--rehearse", "--stages", "preprocess", "--runs-dir", str(runs)]) == 0
    (run_dir,) = (runs / "llama3b-qlora-rehearsal").iterdir()
    assert json.loads((run_dir / "manifest.json").read_text())["options"] == {"stages": ["preprocess"], "rehearse": True}
    capsys.readouterr()

    assert main(["--resume", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "rehearsal of llama3b-qlora on CPU" in out
    assert "preprocess: inputs unchanged since it finished; skipped" in out and "train" not in out.split("skipped", 1)[1]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert sorted(manifest["stages"]) == ["preprocess"] and manifest["status"] == "done"

    # --stages given again wins (a dry run: the plan, still the rehearsal's).
    assert main(["--resume", str(run_dir), "--stages", "preprocess,train", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "preprocess -> train" in out and "rehearsal of llama3b-qlora on CPU" in out


def test_resume_the_methods_sweep_from_another_working_directory(tmp_path, monkeypatch, capsys):
    """`RECIPE --resume latest` of a sweep recipe continues the sweep: each point in the run directory it had."""
    runs = tmp_path / "runs"
    monkeypatch.chdir(REPO)
    # train_loss: the recipe's rougeL needs the eval stage, which this cheap sweep leaves out. Two of its points:
    # the knowtuning point's preprocess would score every fact with the model (minutes), which resuming does not need.
    two = "sweep.points={lora: {method: {name: lora}}, full: {method: {name: full}}}"
    assert main([str(MATRIX.relative_to(REPO)), "--stages", "preprocess", "--set", "sweep.metric=train_loss",
                 "--set", two, "--runs-dir", str(runs)]) == 0
    (sweep_dir,) = (runs / "smollm2-135m-methods").iterdir()
    points = {e["label"]: Path(e["run_dir"]) for e in json.loads((sweep_dir / "sweep.json").read_text())["points"]}
    assert sorted(points) == ["full", "lora"]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main([os.path.relpath(MATRIX), "--resume", "latest", "--runs-dir", os.path.relpath(runs),
                 "--stages", "preprocess", "--set", "data.split.seed=7"]) == 0
    out = capsys.readouterr().out
    assert f"sweep directory: {os.path.relpath(sweep_dir)} (resumed)" in out.replace("\n", "")
    summary = json.loads((sweep_dir / "sweep.json").read_text())
    assert summary["status"] == "done" and summary["overrides"] == ["sweep.metric=train_loss", two, "data.split.seed=7"]
    assert {e["label"]: Path(e["run_dir"]) for e in summary["points"]} == points  # the same run directories
    for label, run_dir in points.items():
        assert len(list(run_dir.parent.iterdir())) == 1, label
        read = source_read(run_dir)
        assert read["path"] == str(data_file(MATRIX)) and read["read"] > 0
        assert json.loads((run_dir / "data" / "manifest.json").read_text())["options"]["split"]["seed"] == 7


def test_an_interrupted_sweep_resumes_its_points_in_place_and_starts_the_rest(tmp_path, monkeypatch, capsys):
    """Points faked (no stage runs): the second point is interrupted; the resumed sweep hands each point that has
    a run directory back to it, starts the points never started, and finishes. The recipe's data path is
    relative to its own folder, and the resume runs from another working directory."""
    import medtune.run.sweep

    (tmp_path / "recipes").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "rows.csv").write_bytes(data_file(DEMO).read_bytes())
    recipe = tmp_path / "recipes" / "sw.yaml"
    recipe.write_text("""name: sw
model: smollm2-135m-instruct
data:
  train: [{source: medquad, path: ../data/rows.csv}]
launch: {device: cpu}
sweep:
  grid: {method.rank: [4, 8, 16]}
  metric: train_loss
""")
    calls = []
    interrupt = {"rank-8"}

    def fake_run_one(options, point_recipe, recipe_path, overrides, run):
        label = point_recipe.name.split(".", 1)[1]
        calls.append((label, run.path, Path(recipe_path)))
        assert options.stages == ("preprocess", "train"), options  # on resume too, though not given again
        if label in interrupt:
            return 130
        (run.path / "recipe.resolved.yaml").write_text(yaml.safe_dump(point_recipe.model_dump(mode="json")))
        (run.path / "data").mkdir(exist_ok=True)
        (run.path / "data" / "test.jsonl").write_text("{}\n")
        (run.path / "train").mkdir(exist_ok=True)
        (run.path / "train" / "history.json").write_text(json.dumps([{"loss": 2.0}, {"loss": 1.0}]))
        return 0

    monkeypatch.setattr(medtune.run.sweep, "run_one", fake_run_one)
    monkeypatch.chdir(tmp_path / "recipes")
    runs = tmp_path / "runs"
    assert main(["sw.yaml", "--stages", "preprocess,train", "--runs-dir", str(runs)]) == 130
    (sweep_dir,) = (runs / "sw").iterdir()
    first = {label: path for label, path, _ in calls}
    assert list(first) == ["rank-4", "rank-8"]  # the third never started
    assert f"--resume {sweep_dir}" in capsys.readouterr().out.replace("\n", "")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    calls.clear()
    interrupt.clear()
    assert main(["--resume", str(sweep_dir)]) == 0  # the interrupted command's --stages continue
    again = {label: path for label, path, _ in calls}
    assert list(again) == ["rank-4", "rank-8", "rank-16"]
    assert again["rank-4"] == first["rank-4"] and again["rank-8"] == first["rank-8"]
    assert {source for _, _, source in calls} == {recipe.resolve()}  # relative paths still start beside the recipe
    summary = json.loads((sweep_dir / "sweep.json").read_text())
    assert summary["status"] == "done" and [p["status"] for p in summary["points"]] == ["done"] * 3
