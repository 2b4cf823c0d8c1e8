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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import yaml
from rich.table import Table

from ..core.console import console
from ..core.errors import MedtuneError
from ..core.hashing import fingerprint_files, sha256_file, sha256_text
from ..core.rundir import RunDir, loss_summary
from ..launch import preflight
from ..launch.plan import estimate_memory
from ..launch.render import Rendered, RenderedStage, render
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

    def recorded(self) -> dict:
        """What a run's manifest (a sweep's sweep.json) keeps, so `--resume` continues the same command."""
        return {"stages": list(self.stages) if self.stages is not None else None, "rehearse": self.rehearse}

    def continuing(self, recorded: dict) -> "RunOptions":
        """The options of a resumed run or sweep: the stages and rehearsal its last command asked for, where this
        command does not say (`--stages` given now wins; a rehearsal stays one)."""
        stages = self.stages
        if stages is None and recorded.get("stages") is not None:
            stages = tuple(recorded["stages"])
        return replace(self, stages=stages, rehearse=self.rehearse or bool(recorded.get("rehearse")))


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
    knowtuning = _knowtuning(ctx, model_path)
    preference = _preference_data(ctx, model_path, knowtuning)
    return {"counts": counts, **({"knowtuning": knowtuning.counts} if knowtuning else {}),
            **({"preference_rows": preference} if preference else {})}


def _knowtuning(ctx: StageContext, model_path: str):
    """KnowTuning's augmentation (medtune/augment): data/train.jsonl becomes the original rows plus the hardest
    facts' question-answer pairs, what the first stage trains on; every generated file goes to data/knowtuning/."""
    spec = ctx.recipe.knowtuning
    if spec is None:
        return None
    from ..augment.cache import knowtuning_data

    train = ctx.run.split("train")
    rows = [json.loads(line) for line in train.read_text(encoding="utf-8").splitlines() if line.strip()]
    built, status = knowtuning_data(rows, spec, model_path=model_path, out_dir=ctx.run.knowtuning,
                                    system_prompt=ctx.recipe.data.system_prompt)
    built.counts["cache"] = status
    train.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in built.sft_rows), encoding="utf-8")
    pairs = built.counts.get("pairs", {})
    console.print(f"  knowtuning: {len(rows)} rows + {len(built.sft_rows) - len(rows)} hardest-fact pairs to train on, "
                  f"{len(built.preference_rows)} preference pairs ({', '.join(f'{k} {v}' for k, v in pairs.items())}); "
                  f"files in {ctx.run.knowtuning.relative_to(ctx.run.path)}/ (cache {status})")
    return built


def _preference_data(ctx: StageContext, model_path: str, knowtuning) -> dict[str, int]:
    """data/preference-<stage>.jsonl for each later stage: from its file (checked row by row at load already), or
    the pairs KnowTuning generated (checked by the same rules here)."""
    from ..preprocess.preference import check_canonical, read_preference_file, write_stage_data

    recipe, written = ctx.recipe, {}
    for stage in recipe.stages:
        pref = stage.data.preference
        if pref.generated == "knowtuning":
            rows = knowtuning.preference_rows
            check_canonical(rows, str(ctx.run.knowtuning.relative_to(ctx.run.path)))
            rows, origin = rows[: pref.limit] if pref.limit else rows, "KnowTuning"
        else:
            rows, origin = read_preference_file(pref, ctx.recipe_dir, recipe.data.system_prompt), pref.path
        written[stage.name] = write_stage_data(ctx.run.preference_data(stage.name), rows, stage.method.name, model_path)
        console.print(f"  {stage.name}: {written[stage.name]} {stage.method.name} rows from {origin}")
    return written


def _preprocess_inputs(ctx: StageContext) -> str:
    recipe = ctx.recipe
    parts = [recipe.data.model_dump(mode="json"), recipe.model, recipe.training.sequence_len]
    if recipe.stages or recipe.knowtuning:  # a single-stage run's hash stays what it was
        parts.append([[stage.method.name, stage.data.model_dump(mode="json"), _preference_file_hash(ctx, stage)]
                      for stage in recipe.stages])
        parts.append(recipe.knowtuning.model_dump(mode="json") if recipe.knowtuning else None)
    return sha256_text(json.dumps(parts))


def _preference_file_hash(ctx: StageContext, stage) -> str | None:
    from ..preprocess.registry import resolve_path

    pref = stage.data.preference
    return sha256_file(resolve_path(pref.path, ctx.recipe_dir)) if pref.path else None


def _train(ctx: StageContext) -> dict:
    result = run_training(ctx.run.path, ctx.recipe, ctx.rendered.num_processes, module=ctx.train_module,
                          label="train" if not ctx.rendered.stages else "train (stage 1)")
    history = ctx.run.training_history() or result.history
    ctx.run.history.write_text(json.dumps(result.history or history, indent=1))
    return loss_summary(history)


def _first_stage_files(ctx: StageContext) -> dict[str, str]:
    later = {stage.config_file for stage in ctx.rendered.stages}
    return {name: text for name, text in ctx.rendered.files.items() if name not in later}


def _train_inputs(ctx: StageContext) -> str:
    data = [p for p in sorted(ctx.run.data.glob("*.jsonl")) if not p.name.startswith("preference-")]
    return sha256_text(json.dumps([_first_stage_files(ctx), fingerprint_files(data, ctx.run.data)]))


def _train_command(ctx: StageContext) -> list[str]:
    return train_command(ctx.recipe, ctx.rendered.num_processes, ctx.train_module)


def _later_stage(index: int, name: str) -> Stage:
    """The pipeline stage `train:<name>` that trains the recipe's stages[index] (see launch/stages.py)."""

    def rendered(ctx: StageContext) -> RenderedStage:
        return ctx.rendered.stages[index]

    def inputs(ctx: StageContext) -> str:
        stage = rendered(ctx)
        files = {name: ctx.rendered.files[name] for name in (stage.config_file, RunDir.ACCELERATE, RunDir.DEEPSPEED)
                 if name in ctx.rendered.files}
        previous = ctx.run.path / stage.previous_output
        return sha256_text(json.dumps([files, _dir_hash(ctx.run.data, RunDir.PREFERENCE.format(stage.name)),
                                       _dir_hash(previous, "*.safetensors"), _dir_hash(previous, "adapter_config.json")]))

    def run(ctx: StageContext) -> dict:
        from ..launch.stages import drop_base_copy, prepare_start

        stage = rendered(ctx)
        start = prepare_start(ctx.run, ctx.recipe, stage, ctx.recipe_dir)
        output = ctx.run.stage_train(stage.name)
        result = run_training(ctx.run.path, ctx.recipe, ctx.rendered.num_processes, module=ctx.train_module,
                              config=stage.config_file, output_dir=output, label=f"train {stage.name}")
        (output / RunDir.HISTORY).write_text(json.dumps(result.history, indent=1))
        dropped = drop_base_copy(output) if stage.merge else []
        return {"method": stage.method, "config": stage.config_file, "output": stage.output_dir, **start,
                **({"dropped_base_copy": dropped} if dropped else {}), **loss_summary(result.history)}

    def command(ctx: StageContext) -> list[str]:
        return train_command(ctx.recipe, ctx.rendered.num_processes, ctx.train_module, rendered(ctx).config_file)

    return Stage(f"train:{name}", inputs, run, command=command)


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
                                   _dir_hash(ctx.run.final_train(), "*.safetensors")]))


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


def pipeline_stages(recipe: Recipe) -> list[Stage]:
    """The recipe's stages in order: a multi-stage recipe trains each of its `stages:` after `train`, as
    `train:<name>`, each recorded in the manifest on its own (resume skips those already done)."""
    stages = []
    for stage in STAGES:
        stages.append(stage)
        if stage.name == "train":
            stages += [_later_stage(i, spec.name) for i, spec in enumerate(recipe.stages)]
    return stages


def _selects(stage: str, selected: list[str]) -> bool:
    """`--stages train` selects every training stage."""
    return stage.split(":", 1)[0] in selected


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
    names = [n for n in (stage.name for stage in pipeline_stages(recipe)) if _selects(n, stages)]
    table.add_row("stages", " -> ".join(names))
    table.add_row("train command", "(in the run directory) " + shlex.join(train_command(recipe, rendered.num_processes, train_module)))
    if recipe.knowtuning is not None:
        kt = recipe.knowtuning
        generator = kt.generator if isinstance(kt.generator, str) else f"{kt.generator.kind} {kt.generator.model}"
        table.add_row("knowtuning", f"generator {generator}; the hardest {kt.hard_share:g} of up to {kt.max_facts} facts per "
                      f"answer become extra pairs for stage 1; negatives {', '.join(kt.negatives)}; files in data/knowtuning/")
    for spec, stage in zip(recipe.stages, rendered.stages):
        st = recipe.stage_training(spec)
        options = ", ".join(f"{k} {v:g}" for k, v in spec.method.model_dump().items() if k != "name" and v is not None)
        start = f"{stage.previous_output}/ merged into its base" if stage.merge else f"{stage.previous_output}/"
        table.add_row(f"stage {spec.name}",
                      f"{spec.method.name} ({options}) on {stage.data_file}, from {start}; "
                      f"{f'{st.max_steps} steps' if st.max_steps else f'{st.epochs:g} epochs'}, lr {st.learning_rate:g}; "
                      f"{stage.config_file} -> {stage.output_dir}/")
    table.add_row("files", ", ".join(rendered.files))
    if facts is not None:
        for spec in [None, *recipe.stages]:
            est = estimate_memory(recipe, facts, spec)
            table.add_row(
                "memory / device" + (f" ({spec.name})" if spec else " (train)" if recipe.stages else ""),
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
    manifest.data.update({"recipe_source": str(recipe_path.resolve()), "overrides": overrides,
                          "options": options.recorded()})
    if rehearsal is not None:
        manifest.data["rehearsal"] = rehearsal.manifest_entry()  # what the run swapped, so it says what it did not prove
    manifest.start(recipe.name, sha256_file(run.recipe), recipe.training.seed, list(options.argv))
    console.print(f"[bold]run directory:[/bold] {run}")

    ctx = StageContext(run, recipe, rendered, recipe_dir, train_module)
    try:
        for stage in pipeline_stages(recipe):
            if not _selects(stage.name, selected):
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
