"""`launch.py RECIPE`: the stages in order (preprocess, train, eval, report) inside one run directory.

Each stage reads only what earlier stages wrote into the run directory and records the hash of its
inputs in manifest.json; a stage already done with the same inputs is skipped, so `--resume` picks
up where a crash or Ctrl-C left off.
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from datetime import datetime
from pathlib import Path

import yaml
from rich.table import Table

from . import models, preflight
from .console import console
from .errors import MedtuneError
from .manifest import RunManifest, sha256_file, sha256_text
from .preprocess.hashing import fingerprint_files
from .plan import estimate_memory
from .recipe import Recipe
from .recipe_check import load
from .render import Rendered, render
from .train import Interrupted, run_training, train_command, trainer_history

STAGES = ("preprocess", "train", "eval", "report")


# ---------------------------------------------------------------- planning


def print_plan(recipe: Recipe, rendered: Rendered, stages: list[str], train_module: str) -> None:
    facts = models.lookup(recipe.model)
    table = Table(title=f"Plan for {recipe.name}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", overflow="fold")
    t = recipe.training
    table.add_row("model", f"{recipe.model} -> {models.resolve(recipe.model)}")
    table.add_row("method", recipe.method.name)
    table.add_row("training", f"{t.max_steps} steps" if t.max_steps else f"{t.epochs:g} epochs")
    table.add_row("device", f"{recipe.launch.device} x {rendered.num_processes} process(es), deepspeed {recipe.launch.deepspeed}")
    table.add_row("settings", f"{t.precision}, attention {t.attention}, packing {t.sample_packing}, liger {t.liger}")
    table.add_row("stages", " -> ".join(s for s in STAGES if s in stages))
    table.add_row("train command", "(in the run directory) " + shlex.join(train_command(recipe, rendered.num_processes, train_module)))
    table.add_row("files", ", ".join(rendered.files))
    if facts is not None:
        est = estimate_memory(recipe, facts)
        table.add_row(
            "memory / device",
            f"~{est.total_gib:.1f} GiB (weights {est.weights_gib:.1f}, grads {est.gradients_gib:.1f}, "
            f"optimizer {est.optimizer_gib:.1f}, activations {est.activations_gib:.1f}, overhead {est.overhead_gib:.1f}); "
            f"{est.trainable_params / 1e6:.1f} M trainable parameters",
        )
    else:
        table.add_row("memory / device", "unknown for a model outside the catalog")
    console.print(table)


# ---------------------------------------------------------------- run directory


def new_run_dir(runs_dir: Path, name: str) -> Path:
    base = runs_dir / name
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir, n = base / stamp, 1
    while run_dir.exists():
        n += 1
        run_dir = base / f"{stamp}-{n}"
    run_dir.mkdir(parents=True)
    return run_dir


def find_resume_dir(resume: str, runs_dir: Path, recipe_path: str | None, rehearse: bool = False) -> Path:
    if resume != "latest":
        run_dir = Path(resume)
        if not (run_dir / "manifest.json").is_file():
            raise MedtuneError(f"--resume {resume}: not a run directory (no manifest.json there)")
        return run_dir
    if recipe_path is None:
        raise MedtuneError("--resume latest needs the RECIPE too, to know which runs/<name>/ to look in")
    name = yaml.safe_load(Path(recipe_path).read_text()).get("name")
    if rehearse:  # rehearsals keep their own folder (medtune/rehearse.py names them so)
        name = f"{name}-rehearsal"
    candidates = sorted(p.parent for p in (runs_dir / str(name)).glob("*/manifest.json"))
    if not candidates:
        raise MedtuneError(f"--resume latest: no earlier run of '{name}' under {runs_dir / str(name)}")
    return candidates[-1]


# ---------------------------------------------------------------- stages


def _stage_preprocess(run_dir: Path, recipe: Recipe, recipe_dir: Path) -> dict:
    from .preprocess.pipeline import prepare

    model_path = models.ensure_local(recipe.model)
    manifest = prepare(recipe.data, run_dir / "data", tokenizer=model_path, sequence_len=recipe.training.sequence_len,
                       base_dir=recipe_dir)
    counts = manifest["counts"]
    console.print(f"  data: {counts['train']} train / {counts['val']} val / {counts['test']} test rows "
                  f"(cache {manifest.get('cache', 'miss')})")
    if counts["train"] == 0:
        raise MedtuneError("preprocess left no training rows; see data/manifest.json for what was dropped and why")
    if counts["val"] == 0 and recipe.data.split.val > 0:
        # The rendered config validates on data/val.jsonl, and Axolotl stops on an empty file.
        raise MedtuneError(f"preprocess left no validation rows (data.split.val is {recipe.data.split.val:g}; "
                           f"held-out rows longer than training.sequence_len: {manifest['too_long_by_split'].get('val', 0)}): "
                           "raise data.split.val, or set it to 0 to train without a validation pass")
    return {"counts": counts}


def _stage_train(run_dir: Path, recipe: Recipe, rendered: Rendered, module: str) -> dict:
    result = run_training(run_dir, recipe, rendered.num_processes, module=module)
    history = trainer_history(run_dir / "train") or result.history
    losses = [h["loss"] for h in history if "loss" in h]
    summary = {"steps_logged": len(losses), "first_loss": losses[0] if losses else None,
               "last_loss": losses[-1] if losses else None}
    (run_dir / "train" / "history.json").write_text(json.dumps(result.history or history, indent=1))
    return summary


def _stage_eval(run_dir: Path, recipe: Recipe) -> dict:
    from .evaluate.run import evaluate_run
    from .methods import METHODS

    tuned_kind = METHODS[recipe.method.name].output
    metrics = evaluate_run(run_dir, recipe.eval, base_model=models.ensure_local(recipe.model), tuned=str(run_dir / "train"),
                           tuned_kind=tuned_kind, system_prompt=recipe.data.system_prompt,
                           disclaimer_text=recipe.data.disclaimer.text if recipe.data.disclaimer.enabled else None)
    return {"models": sorted(metrics.get("models", {}))}


def _stage_report(run_dir: Path, recipe: Recipe) -> dict:
    from .report import build_report

    paths = build_report(run_dir)
    return {"files": [str(p.relative_to(run_dir)) for p in paths]}


def _dir_hash(folder: Path, pattern: str) -> str:
    files = sorted(p for p in folder.glob(pattern) if p.is_file()) if folder.is_dir() else []
    return fingerprint_files(files, folder)


def _inputs(stage: str, run_dir: Path, recipe: Recipe, rendered: Rendered) -> str:
    """Hash of what a stage reads; equal hashes mean the stage's output is still valid."""
    if stage == "preprocess":
        return sha256_text(json.dumps([recipe.data.model_dump(mode="json"), recipe.model, recipe.training.sequence_len]))
    if stage == "train":
        return sha256_text(json.dumps([rendered.files, _dir_hash(run_dir / "data", "*.jsonl")]))
    if stage == "eval":
        return sha256_text(json.dumps([recipe.eval.model_dump(mode="json"), _dir_hash(run_dir / "data", "test.jsonl"),
                                       _dir_hash(run_dir / "train", "*.safetensors")]))
    return _dir_hash(run_dir / "eval", "*.json")


# ---------------------------------------------------------------- the command


def run_recipe(args: argparse.Namespace) -> int:
    if args.resume:
        run_dir = find_resume_dir(args.resume, args.runs_dir, args.recipe, getattr(args, "rehearse", False))
        old = RunManifest(run_dir)
        recipe_path = Path(old.data.get("recipe_source") or run_dir / "recipe.yaml")
        overrides = old.data.get("overrides", []) + list(args.set)
        recipe, _ = load(run_dir / "recipe.yaml", overrides)
    else:
        run_dir = None
        recipe_path = Path(args.recipe)
        overrides = list(args.set)
        recipe, _ = load(recipe_path, overrides)
        if recipe.sweep is not None:  # every point becomes a run of its own through run_one
            from .sweep_run import run_sweep

            return run_sweep(args, recipe_path, recipe)
    return run_one(args, recipe, recipe_path, overrides, run_dir)


def run_one(args: argparse.Namespace, recipe: Recipe, recipe_path: Path, overrides: list[str],
            run_dir: Path | None = None) -> int:
    """Run the selected stages of one validated recipe in run_dir: a new one when None or empty, else a resume."""
    recipe_dir = recipe_path.resolve().parent
    rehearse = getattr(args, "rehearse", False)
    if rehearse:
        from .rehearse import rehearsal_recipe

        recipe = rehearsal_recipe(recipe)
    rendered = render(recipe)
    default_stages = ["preprocess", "train"] if rehearse else list(STAGES)
    selected = args.stages.split(",") if args.stages else default_stages
    unknown = [s for s in selected if s not in STAGES]
    if unknown:
        raise MedtuneError(f"--stages: unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    # A rehearsal trains through a small shim that adapts Axolotl to CPU processes (medtune/rehearse.py).
    train_module = "medtune.rehearse_child" if rehearse else "axolotl.cli.train"
    if args.dry_run:
        print_plan(recipe, rendered, selected, train_module)
        return 0
    preflight.check(recipe)

    if run_dir is None:
        run_dir = new_run_dir(args.runs_dir, recipe.name)
    if not (run_dir / "recipe.yaml").exists():
        shutil.copyfile(recipe_path, run_dir / "recipe.yaml")
    (run_dir / "recipe.resolved.yaml").write_text(yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False))
    rendered.write(run_dir)
    manifest = RunManifest(run_dir)
    manifest.data.update({"recipe_source": str(recipe_path.resolve()), "overrides": overrides})
    manifest.start(recipe.name, sha256_file(run_dir / "recipe.yaml"), recipe.training.seed, sys.argv)
    console.print(f"[bold]run directory:[/bold] {run_dir}")

    try:
        for stage in STAGES:
            if stage not in selected:
                continue
            input_hash = _inputs(stage, run_dir, recipe, rendered)
            if manifest.stage_done(stage, input_hash):
                console.print(f"[dim]{stage}: inputs unchanged since it finished; skipped[/dim]")
                continue
            console.rule(f"[bold]{stage}")
            command = train_command(recipe, rendered.num_processes, train_module) if stage == "train" else None
            started = manifest.begin(stage, input_hash, command)
            if stage == "preprocess":
                extra = _stage_preprocess(run_dir, recipe, recipe_dir)
            elif stage == "train":
                extra = _stage_train(run_dir, recipe, rendered, train_module)
            elif stage == "eval":
                extra = _stage_eval(run_dir, recipe)
            else:
                extra = _stage_report(run_dir, recipe)
            manifest.finish(stage, started, **extra)
    except (Interrupted, KeyboardInterrupt):
        manifest.set_status("interrupted")
        console.print(f"[yellow]interrupted; continue with: python launch.py --resume {run_dir}[/yellow]")
        return 130
    except MedtuneError as exc:
        manifest.set_status("failed", error=str(exc)[:2000])
        raise
    except Exception as exc:
        manifest.set_status("failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    manifest.set_status("done")
    console.print(f"[green]done[/green]: {run_dir}")
    return 0
