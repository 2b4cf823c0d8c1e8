"""`launch.py RECIPE`: the stages in order (preprocess, train, eval, report) inside one run directory.

Each stage is data: its name, a hash of the inputs it reads, and the function that does it. A stage
reads only what earlier stages wrote into the run directory and records its input hash in manifest.json;
a stage already done with the same inputs is skipped, so `--resume` picks up where a crash or Ctrl-C left off.
"""
from __future__ import annotations

import json
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml
from rich.table import Table

from ..core.console import console
from ..core.errors import MedtuneError
from ..core.hashing import fingerprint_files, sha256_file, sha256_text
from ..core.rundir import RunDir
from ..launch import preflight
from ..launch.plan import estimate_memory
from ..launch.render import Rendered, render
from ..launch.train import Interrupted, run_training, train_command
from ..models import catalog as models
from ..recipe.schema import Recipe
from .manifest import RunManifest


@dataclass(frozen=True)
class RunOptions:
    """What the command line asked of a run, typed: the layers below the CLI never see argparse."""

    stages: tuple[str, ...] | None = None
    """The stages to run, in any order; None: all of them (a rehearsal too)."""
    dry_run: bool = False
    rehearse: bool = False
    runs_dir: Path = Path("runs")
    argv: tuple[str, ...] = field(default_factory=lambda: tuple(sys.argv))
    """Recorded in the manifest: how the run was started."""


@dataclass(frozen=True)
class StageContext:
    run: RunDir
    recipe: Recipe
    rendered: Rendered
    recipe_dir: Path
    """Where the recipe's relative paths start (the recipe file's folder, also on resume)."""
    train_module: str
    """The module each training process runs: Axolotl's trainer, or the rehearsal's CPU shim."""


@dataclass(frozen=True)
class Stage:
    name: str
    inputs: Callable[[StageContext], str]
    """Hash of everything the stage reads; equal hashes mean its output is still valid."""
    run: Callable[[StageContext], dict]
    """Does the work; returns what the manifest records for the stage."""
    command: Callable[[StageContext], list[str]] | None = None
    """The external command the stage runs, recorded in the manifest."""


# ---------------------------------------------------------------- the stages


def _preprocess(ctx: StageContext) -> dict:
    from ..preprocess.pipeline import prepare

    recipe = ctx.recipe
    model_path = models.ensure_local(recipe.model)
    manifest = prepare(recipe.data, ctx.run.data, tokenizer=model_path, sequence_len=recipe.training.sequence_len,
                       base_dir=ctx.recipe_dir)
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


def _preprocess_inputs(ctx: StageContext) -> str:
    recipe = ctx.recipe
    return sha256_text(json.dumps([recipe.data.model_dump(mode="json"), recipe.model, recipe.training.sequence_len]))


def _train(ctx: StageContext) -> dict:
    result = run_training(ctx.run.path, ctx.recipe, ctx.rendered.num_processes, module=ctx.train_module)
    history = ctx.run.training_history() or result.history
    losses = [h["loss"] for h in history if "loss" in h]
    ctx.run.history.write_text(json.dumps(result.history or history, indent=1))
    return {"steps_logged": len(losses), "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None}


def _train_inputs(ctx: StageContext) -> str:
    return sha256_text(json.dumps([ctx.rendered.files, _dir_hash(ctx.run.data, "*.jsonl")]))


def _train_command(ctx: StageContext) -> list[str]:
    return train_command(ctx.recipe, ctx.rendered.num_processes, ctx.train_module)


def _eval(ctx: StageContext) -> dict:
    from ..evaluate.run import evaluate_run
    from ..models.loader import run_refs

    recipe = ctx.recipe
    base, tuned = run_refs(ctx.run)
    metrics = evaluate_run(ctx.run.path, recipe.eval, base=base, tuned=tuned, system_prompt=recipe.data.system_prompt,
                           disclaimer_text=recipe.data.disclaimer.text if recipe.data.disclaimer.enabled else None)
    return {"models": sorted(metrics.get("models", {}))}


def _eval_inputs(ctx: StageContext) -> str:
    return sha256_text(json.dumps([ctx.recipe.eval.model_dump(mode="json"), _dir_hash(ctx.run.data, "test.jsonl"),
                                   _dir_hash(ctx.run.train, "*.safetensors")]))


def _report(ctx: StageContext) -> dict:
    from ..report.run_report import build_report

    paths = build_report(ctx.run.path)
    return {"files": [str(p.relative_to(ctx.run.path)) for p in paths]}


def _report_inputs(ctx: StageContext) -> str:
    return _dir_hash(ctx.run.eval, "*.json")


def _dir_hash(folder: Path, pattern: str) -> str:
    files = sorted(p for p in folder.glob(pattern) if p.is_file()) if folder.is_dir() else []
    return fingerprint_files(files, folder)


STAGES: tuple[Stage, ...] = (
    Stage("preprocess", _preprocess_inputs, _preprocess),
    Stage("train", _train_inputs, _train, command=_train_command),
    Stage("eval", _eval_inputs, _eval),
    Stage("report", _report_inputs, _report),
)
STAGE_NAMES = tuple(stage.name for stage in STAGES)


def selected_stages(options: RunOptions) -> list[str]:
    """The stages to run, in pipeline order; an unknown name is an error naming the known ones."""
    wanted = options.stages if options.stages is not None else STAGE_NAMES
    unknown = [s for s in wanted if s not in STAGE_NAMES]
    if unknown:
        raise MedtuneError(f"--stages: unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGE_NAMES)}")
    return [name for name in STAGE_NAMES if name in wanted]


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
    table.add_row("stages", " -> ".join(stages))
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


# ---------------------------------------------------------------- resume


def find_resume_dir(resume: str, runs_dir: Path, recipe_path: str | Path | None, rehearse: bool = False) -> RunDir:
    """`--resume RUN_DIR`, or `RECIPE --resume latest`: the newest run of that recipe under runs_dir."""
    if resume != "latest":
        return RunDir.open(resume, f"--resume {resume}")
    if recipe_path is None:
        raise MedtuneError("--resume latest needs the RECIPE too, to know which runs/<name>/ to look in")
    name = (yaml.safe_load(Path(recipe_path).read_text()) or {}).get("name")
    if rehearse:  # rehearsals keep their own folder (medtune/launch/rehearse.py names them so)
        name = f"{name}-rehearsal"
    try:
        return RunDir.latest(runs_dir, str(name))
    except MedtuneError as exc:
        raise MedtuneError(f"--resume latest: {exc}") from None


# ---------------------------------------------------------------- one run


def run_one(options: RunOptions, recipe: Recipe, recipe_path: Path, overrides: list[str],
            run: RunDir | None = None) -> int:
    """Run the selected stages of one validated recipe: in a new run directory when `run` is None, else resume it."""
    recipe_dir = recipe_path.resolve().parent
    rehearsal = None
    if options.rehearse:  # the same stages on CPU, small, with every swap named (medtune/launch/rehearse.py)
        from ..launch.rehearse import plan_rehearsal

        rehearsal = plan_rehearsal(recipe)
        recipe = rehearsal.recipe
        rehearsal.print()
    rendered = render(recipe)
    selected = selected_stages(options)
    # A rehearsal trains through a small shim that adapts Axolotl to CPU processes (medtune/launch/rehearse_child.py).
    train_module = "medtune.launch.rehearse_child" if options.rehearse else "axolotl.cli.train"
    if options.dry_run:
        print_plan(recipe, rendered, selected, train_module)
        return 0
    preflight.check(recipe, selected, runs_dir=run.path if run is not None else options.runs_dir)  # the disk it writes

    run = run or RunDir.create(options.runs_dir, recipe.name)
    if not run.recipe.exists():
        shutil.copyfile(recipe_path, run.recipe)
    run.resolved.write_text(yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False))
    rendered.write(run.path)
    manifest = RunManifest(run.path)
    manifest.data.update({"recipe_source": str(recipe_path.resolve()), "overrides": overrides})
    if rehearsal is not None:
        manifest.data["rehearsal"] = rehearsal.manifest_entry()  # what the run swapped, so it says what it did not prove
    manifest.start(recipe.name, sha256_file(run.recipe), recipe.training.seed, list(options.argv))
    console.print(f"[bold]run directory:[/bold] {run}")

    ctx = StageContext(run, recipe, rendered, recipe_dir, train_module)
    try:
        for stage in STAGES:
            if stage.name not in selected:
                continue
            input_hash = stage.inputs(ctx)
            if manifest.stage_done(stage.name, input_hash):
                console.print(f"[dim]{stage.name}: inputs unchanged since it finished; skipped[/dim]")
                continue
            console.rule(f"[bold]{stage.name}")
            started = manifest.begin(stage.name, input_hash, stage.command(ctx) if stage.command else None)
            manifest.finish(stage.name, started, **stage.run(ctx))
    except (Interrupted, KeyboardInterrupt):
        manifest.set_status("interrupted")
        console.print(f"[yellow]interrupted; continue with: python launch.py --resume {run}[/yellow]")
        return 130
    except MedtuneError as exc:
        manifest.set_status("failed", error=str(exc)[:2000])
        raise
    except Exception as exc:
        manifest.set_status("failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    manifest.set_status("done")
    console.print(f"[green]done[/green]: {run}")
    return 0
