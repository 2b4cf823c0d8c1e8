"""Multi-stage recipes: strict stage keys, each preference method rendered to Axolotl's own keys and accepted by its
schema, one pipeline stage per training stage (resume skips a finished one), memory of the largest stage, and one
end-to-end CPU run of the SmolLM2 KnowTuning recipe: SFT, then DPO from the SFT weights, then base vs tuned."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from medtune.core.errors import RecipeError
from medtune.core.rundir import RunDir
from medtune.launch.train import Interrupted, TrainResult
from medtune.launch.plan import estimate_memory, largest_estimate
from medtune.launch.render import render
from medtune.models import catalog as models
from medtune.recipe.loader import load

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "demo" / "medquad_demo.csv"
PAIRS = [("What is influenza?", "Influenza is a contagious viral infection.", "Influenza is a bacterium."),
         ("What causes a cold?", "Colds are caused by viruses.", "Cold weather causes colds.")]


def write_prefs(folder: Path) -> Path:
    path = folder / "prefs.jsonl"
    path.write_text("".join(json.dumps({"q": q, "good": c, "bad": r}) + "\n" for q, c, r in PAIRS))
    return path


def write_recipe(folder: Path, stages: str, *, method: str = "{name: lora, rank: 8, alpha: 16}", device: str = "cpu",
                 extra: str = "") -> Path:
    write_prefs(folder)
    path = folder / "r.yaml"
    path.write_text(f"""name: staged
model: {"smollm2-135m-instruct" if device == "cpu" else "llama-3.2-1b-instruct"}
method: {method}
data:
  train: [{{source: medquad, path: {DEMO}, limit: 12}}]
  split: {{val: 0, test: 0.25}}
  system_prompt: "Be careful."
training: {{max_steps: 2, micro_batch_size: 2, sequence_len: 256}}
launch: {{device: {device}}}
{extra}stages:
{stages}""")
    return path


def stage(name: str, method: str, training: str = "{learning_rate: 1e-5, epochs: 1}") -> str:
    return (f"  - name: {name}\n    method: {method}\n"
            f"    data: {{preference: {{path: prefs.jsonl, columns: {{prompt: q, chosen: good, rejected: bad}}}}}}\n"
            f"    training: {training}\n")


ALL_METHODS = (stage("dpo", "{name: dpo, beta: 0.2, sft_weight: 0.2}") + stage("orpo", "{name: orpo, beta: 0.05}")
               + stage("kto", "{name: kto, desirable_weight: 1.5}") + stage("simpo", "{name: simpo, gamma: 0.7, sft_weight: 0.1}"))


# ---------------------------------------------------------------- validation


def problems(path: Path, *overrides: str) -> dict[str, str]:
    with pytest.raises(RecipeError) as err:
        load(path, overrides)
    return {p.path: p.render() for p in err.value.problems}


def test_stage_keys_are_strict_with_the_usual_message(tmp_path: Path):
    path = write_recipe(tmp_path, stage("dpo", "{name: dpo, gamma: 0.5}") + stage("two", "{name: dpp}")
                        + stage("three", "{name: kto}", "{learning_rat: 1e-5}")
                        + "  - {name: Bad Name, method: {name: kto}, data: {preference: {generated: knowtuning}}}\n"
                        + "  - {name: kt, method: {name: kto}, data: {preference: {generated: knowtuning}}}\n"
                        + stage("sim", "{name: simpo}", "{warmup_ratio: 0.1}"))
    found = problems(path)  # every problem at once, each by its key path
    assert "not an option of method dpo" in found["stages[0].method.gamma"]
    assert "Did you mean 'dpo'" in found["stages[1].method.name"]
    assert "unknown key" in found["stages[2].training.learning_rat"]
    assert "Did you mean 'learning_rate'" in found["stages[2].training.learning_rat"]
    assert "stages[3].name" in found
    assert "no `knowtuning:` section" in found["stages[4].data.preference.generated"]
    assert "refuses a warm-up ratio" in found["stages[5].training.warmup_ratio"]


def test_a_stage_needs_exactly_one_data_source_and_a_unique_name(tmp_path: Path):
    dup = stage("dpo", "{name: dpo}") + stage("dpo", "{name: orpo}")
    assert any("share a name" in text for text in problems(write_recipe(tmp_path, dup)).values())
    both = "  - {name: x, method: {name: dpo}, data: {preference: {path: prefs.jsonl, generated: knowtuning}}}\n"
    assert any("exactly one of path" in text for text in problems(write_recipe(tmp_path, both)).values())


# ---------------------------------------------------------------- rendering


def test_each_preference_method_renders_to_axolotls_keys_and_passes_its_schema(tmp_path: Path):
    recipe, _ = load(write_recipe(tmp_path, ALL_METHODS, extra="axolotl: {dataloader_num_workers: 0}\n"))
    rendered = render(recipe)  # Axolotl's validate_config runs on every stage's config; a rejection raises
    by_name = {s.name: s for s in rendered.stages}
    assert list(by_name) == ["dpo", "orpo", "kto", "simpo"]
    assert set(rendered.files) >= {"axolotl.yaml", "axolotl-dpo.yaml", "axolotl-orpo.yaml", "axolotl-kto.yaml", "axolotl-simpo.yaml"}
    dpo, orpo, kto, simpo = (by_name[n].axolotl for n in ("dpo", "orpo", "kto", "simpo"))
    assert (dpo["rl"], dpo["rl_beta"], dpo["dpo_loss_type"], dpo["dpo_loss_weights"]) == ("dpo", 0.2, ["sigmoid", "sft"], [1.0, 0.2])
    assert dpo["datasets"] == [{"path": "data/preference-dpo.jsonl", "ds_type": "json", "split": "train",
                                "type": "chat_template.default", "field_messages": "messages",
                                "field_chosen": "chosen", "field_rejected": "rejected"}]
    assert (orpo["rl"], orpo["orpo_alpha"], orpo["datasets"][0]["type"]) == ("orpo", 0.05, "chat_template.argilla")
    assert (kto["rl"], kto["kto_desirable_weight"], kto["kto_undesirable_weight"], kto["remove_unused_columns"]) == ("kto", 1.5, 1.0, False)
    assert kto["datasets"][0]["type"] == {"field_prompt": "prompt", "field_completion": "completion", "field_label": "label"}
    assert (simpo["rl"], simpo["simpo_gamma"], simpo["cpo_alpha"], simpo["rl_beta"]) == ("simpo", 0.7, 0.1, 2.0)
    assert "warmup_ratio" not in simpo and simpo["warmup_steps"] == 0
    # Each stage starts from the one before: an adapter merged into its base, a fresh adapter of the same shape on top.
    assert [(s.previous_output, s.start) for s in rendered.stages] == [
        ("train", "train-dpo/start"), ("train-dpo", "train-orpo/start"), ("train-orpo", "train-kto/start"),
        ("train-kto", "train-simpo/start")]
    for s in rendered.stages:
        cfg = s.axolotl
        assert (cfg["base_model"], cfg["output_dir"], cfg["adapter"], cfg["lora_r"]) == (s.start, s.output_dir, "lora", 8)
        assert cfg["sample_packing"] is False and "test_datasets" not in cfg and "eval_steps" not in cfg
        assert (cfg["learning_rate"], cfg["num_epochs"], cfg.get("max_steps")) == (1e-5, 1.0, None)
        assert cfg["dataloader_num_workers"] == 0  # the recipe's axolotl: block applies to every stage
        assert yaml.safe_load(rendered.files[s.config_file]) == cfg
    assert rendered.axolotl["max_steps"] == 2 and rendered.axolotl["datasets"][0]["path"] == "data/train.jsonl"


def test_a_stage_after_a_full_fine_tune_trains_full_weights_from_the_first_stages_output(tmp_path: Path):
    recipe, _ = load(write_recipe(tmp_path, stage("dpo", "{name: dpo}"), method="{name: full}"))
    (dpo,) = render(recipe).stages
    assert (dpo.merge, dpo.start, dpo.axolotl["base_model"]) == (False, "train", "train")
    assert "adapter" not in dpo.axolotl


# ---------------------------------------------------------------- memory, plan, rehearsal


def test_memory_counts_pairs_twice_and_a_full_weights_reference_model(tmp_path: Path):
    recipe, _ = load(write_recipe(tmp_path, stage("dpo", "{name: dpo}", "{micro_batch_size: 2}")
                                  + stage("kto", "{name: kto}", "{micro_batch_size: 2}"), device="cuda"))
    facts = models.lookup(recipe.model)
    first, dpo, kto = (estimate_memory(recipe, facts, s) for s in (None, *recipe.stages))
    assert dpo.activations_gib > kto.activations_gib  # chosen + rejected in one batch; KTO's single answers once
    assert dpo.weights_gib == first.weights_gib  # an adapter's reference is the same model, adapter disabled
    assert largest_estimate(recipe, facts) == (0, dpo)
    full, _ = load(write_recipe(tmp_path, stage("dpo", "{name: dpo}"), method="{name: full}", device="cuda"))
    plain, ref = estimate_memory(full, facts), estimate_memory(full, facts, full.stages[0])
    assert ref.weights_gib - plain.weights_gib == pytest.approx(facts.params_b * 1e9 * 2 / 1024**3)  # bf16 reference


def test_dry_run_shows_every_stage(tmp_path: Path, capsys):
    from medtune.cli import main

    assert main(["run", str(write_recipe(tmp_path, ALL_METHODS)), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.index("train:dpo") < out.index("train:orpo") < out.index("train:kto") < out.index("train:simpo")
    for name in ("dpo", "orpo", "kto", "simpo"):
        assert f"stage {name}" in out and f"axolotl-{name}.yaml" in out and f"memory / device ({name})" in out


def test_rehearsal_shrinks_every_stage(tmp_path: Path):
    from medtune.launch.rehearse import MAX_STEPS, plan_rehearsal

    recipe, _ = load(write_recipe(tmp_path, stage("dpo", "{name: dpo}", "{epochs: 2, micro_batch_size: 8}"), device="cuda"))
    plan = plan_rehearsal(recipe)
    (rehearsed,) = plan.recipe.stages
    assert (rehearsed.training.max_steps, rehearsed.training.micro_batch_size) == (MAX_STEPS, 1)
    swaps = {swap.key: swap for swap in plan.swaps}
    assert swaps["stages[0].training.max_steps"].config["axolotl-dpo.yaml:max_steps"] == [None, MAX_STEPS]
    assert render(plan.recipe).stages[0].axolotl["max_steps"] == MAX_STEPS


# ---------------------------------------------------------------- one pipeline stage per training stage


def test_resume_skips_a_finished_training_stage_and_runs_the_next(tmp_path: Path, monkeypatch):
    from medtune.launch import stages as stage_module
    from medtune.run import pipeline

    calls: list[str] = []

    def fake_training(run_dir, recipe, num_processes, env_extra=None, module="", config=RunDir.AXOLOTL,
                      output_dir=None, label="train"):
        calls.append(config)
        if config == "axolotl-dpo.yaml" and calls.count(config) == 1:
            raise Interrupted("stopped")  # the first attempt at stage 2 dies after stage 1 finished
        out = output_dir or Path(run_dir) / "train"
        out.mkdir(parents=True, exist_ok=True)
        (out / "adapter_config.json").write_text("{}")
        (out / "adapter_model.safetensors").write_bytes(config.encode())
        return TrainResult(0, [{"loss": 1.0}])

    monkeypatch.setattr(pipeline, "run_training", fake_training)
    monkeypatch.setattr(stage_module, "prepare_start", lambda run, recipe, stage, recipe_dir: {"start": stage.start})
    path = write_recipe(tmp_path, stage("dpo", "{name: dpo}"))
    recipe, _ = load(path)
    options = pipeline.RunOptions(stages=("train",), runs_dir=tmp_path / "runs", argv=("test",))
    assert pipeline.run_one(options, recipe, path, []) == 130
    run = RunDir.latest(tmp_path / "runs", "staged")
    stages = run.manifest_data()["stages"]
    assert (stages["train"]["status"], stages["train:dpo"]["status"]) == ("done", "interrupted")

    assert pipeline.run_one(options, recipe, path, [], run=run) == 0
    assert calls == ["axolotl.yaml", "axolotl-dpo.yaml", "axolotl-dpo.yaml"]  # stage 1 was not trained again
    stages = run.manifest_data()["stages"]
    assert stages["train:dpo"]["status"] == "done" and stages["train:dpo"]["config"] == "axolotl-dpo.yaml"
    assert run.trained_weights() == (run.stage_train("dpo"), "adapter")  # what eval scores: the last stage
    calls.clear()
    assert pipeline.run_one(options, recipe, path, [], run=run) == 0 and calls == []  # both done: both skipped


def test_the_tuned_model_of_a_staged_run_is_the_last_adapter_on_its_merged_start(tmp_path: Path, smollm2_dir: Path):
    from medtune.models.loader import run_refs

    run = RunDir(tmp_path / "run")
    for folder in (run.train, run.stage_train("dpo"), run.stage_start("dpo")):
        folder.mkdir(parents=True)
    run.resolved.write_text(yaml.safe_dump({"model": "smollm2-135m-instruct", "method": {"name": "lora"},
                                            "stages": [{"name": "dpo"}]}))
    (run.stage_train("dpo") / "adapter_config.json").write_text("{}")
    base, tuned = run_refs(run)
    assert base.full is None and base.adapter is None
    assert (tuned.full, tuned.adapter) == (str(run.stage_start("dpo").resolve()), str(run.stage_train("dpo").resolve()))


# ---------------------------------------------------------------- end to end on CPU


def _lora_delta(adapter: Path, module: str, scale: float):
    from safetensors.torch import load_file

    weights = load_file(str(adapter / "adapter_model.safetensors"))
    a = next(v for k, v in weights.items() if module in k and "lora_A" in k)
    b = next(v for k, v in weights.items() if module in k and "lora_B" in k)
    return scale * (b @ a)


@pytest.mark.slow
def test_knowtuning_recipe_trains_sft_then_dpo_from_the_sft_weights_and_evaluates(tmp_path: Path, smollm2_dir: Path):
    """The shipped SmolLM2 KnowTuning recipe, tiny: 12 rows, 2 steps per stage, 2 held-out questions."""
    from safetensors.torch import load_file

    raw = yaml.safe_load((REPO / "recipes" / "smollm2-135m-knowtuning.yaml").read_text())
    raw["data"]["train"][0].update(path=str(DEMO), limit=12)
    raw["data"]["split"] = {"val": 0, "test": 0.25, "seed": 3}
    raw["knowtuning"]["max_facts"] = 4
    raw["training"].update(max_steps=2, micro_batch_size=2, gradient_accumulation_steps=1, sequence_len=256, save_steps=2,
                           learning_rate=1e-3)
    raw["method"]["dropout"] = 0.0
    raw["stages"][0]["training"].update(max_steps=2, micro_batch_size=2, gradient_accumulation_steps=1, learning_rate=1e-3)
    raw["stages"][0]["data"]["preference"]["limit"] = 8
    raw["eval"] = {"metrics": ["rouge"], "limit": 2, "max_new_tokens": 8, "batch_size": 2}
    path = tmp_path / "kt.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    # A cache of its own, so the facts are scored here and not found from an earlier run; the converted model shared.
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "models").symlink_to(smollm2_dir.parent)
    done = subprocess.run([sys.executable, "launch.py", str(path), "--runs-dir", str(tmp_path / "runs")], cwd=REPO,
                          capture_output=True, text=True, timeout=1500,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                               "MEDTUNE_CACHE": str(cache)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = RunDir.latest(tmp_path / "runs", raw["name"])
    manifest = run.manifest_data()
    assert [manifest["stages"][s]["status"] for s in ("preprocess", "train", "train:dpo", "eval", "report")] == ["done"] * 5

    # What KnowTuning generated is in the run directory and well-formed.
    facts = [json.loads(line) for line in (run.knowtuning / "facts.jsonl").read_text().splitlines()]
    assert facts and all(f["facts"] and all(x["text"] for x in f["facts"]) for f in facts)
    assert any(x["hardest"] for f in facts for x in f["facts"])
    prefs = [json.loads(line) for line in (run.knowtuning / "preferences.jsonl").read_text().splitlines()]
    assert {p["kind"] for p in prefs} == {"deletion", "revision", "shuffle"}
    assert all(p["chosen"].strip() and p["rejected"].strip() and p["chosen"] != p["rejected"] for p in prefs)
    trained = [json.loads(line) for line in run.preference_data("dpo").read_text().splitlines()]
    assert len(trained) == 8 and all(r["messages"][-1]["role"] == "user" for r in trained)
    kt_counts = manifest["stages"]["preprocess"]["knowtuning"]
    assert kt_counts["cache"] == "miss" and kt_counts["facts_scored"] > 0
    entries = list((cache / "knowtuning").iterdir())  # the next run of these rows and options reuses it
    assert len(entries) == 1 and (entries[0] / "preferences.jsonl").read_bytes() == (run.knowtuning / "preferences.jsonl").read_bytes()
    train_rows = run.split("train").read_text().splitlines()
    assert len(train_rows) == manifest["stages"]["preprocess"]["counts"]["train"] + kt_counts["augmented_pairs"] > 0

    # The DPO stage started from the SFT stage: its base is the SFT adapter merged into SmolLM2, weight for weight.
    dpo_cfg = yaml.safe_load(run.stage_config("dpo").read_text())
    assert dpo_cfg["base_model"] == "train-dpo/start" and json.loads((run.stage_start("dpo") / "merged_from.json").read_text())["adapter"] == "train"
    base_w = load_file(str(smollm2_dir / "model.safetensors"))
    start_w = load_file(str(run.stage_start("dpo") / "model.safetensors"))
    key = "model.layers.0.self_attn.q_proj.weight"
    delta = _lora_delta(run.train, "layers.0.self_attn.q_proj", raw["method"]["alpha"] / raw["method"]["rank"])
    assert delta.abs().max() > 0  # stage 1 moved its adapter
    assert (start_w[key] - (base_w[key] + delta)).abs().max() < 1e-5
    assert not list(run.stage_train("dpo").glob("model*.safetensors"))  # Axolotl's copy of start/ is dropped
    assert _lora_delta(run.stage_train("dpo"), "layers.0.self_attn.q_proj", 1.0).abs().max() > 0  # DPO trained

    # Eval compared the base model with the last stage's model.
    metrics = json.loads(run.metrics.read_text())
    assert {"base", "tuned"} <= set(metrics["models"])
    generations = [json.loads(line) for line in run.generations.read_text().splitlines()]
    assert {g["model"] for g in generations} == {"base", "tuned"}

    # The report shows both stages' losses, each its own curve: DPO's loss is not an SFT loss.
    report = (run.report / "report.md").read_text()
    dpo_losses = [h["loss"] for h in run.training_history("dpo") if "loss" in h]  # its checkpoint's trainer log
    assert len(dpo_losses) == 2 and (run.stage_train("dpo") / "checkpoint-2" / "trainer_state.json").is_file()
    assert f"Stage dpo: {len(dpo_losses)} logged steps, loss {dpo_losses[0]:.4f} -> {dpo_losses[-1]:.4f}." in report
    assert "Training (stage 1):" in report and (run.report / "loss_curve_dpo.png").is_file()
    assert json.loads((run.report / "metrics.json").read_text())["training"]["stages"]["dpo"]["last_loss"] == dpo_losses[-1]
