"""Run every point of a recipe's sweep as its own run, then compare the runs and name the best point.

With sweep.seeds each (point, seed) is a run and the best point is the best mean over its seeds; with
sweep.lr_search each point first trains at each rate (run/lr_search.py) and then runs at the rate it picked.

A failed point is recorded and the sweep goes on; the sweep's own folder (runs/<name>/<timestamp>/)
holds sweep.json (points, their run directories, status, best), a copy of the recipe, and the comparison.
`--resume` of a sweep resumes each point that has a run directory (its finished stages are skipped, an
interrupted training continues from its checkpoint) and runs the points not started yet.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from rich.table import Table

from ..core.console import console, err_console
from ..core.errors import MedtuneError, Problem, RecipeError
from ..core.rundir import RunDir, now, write_json_atomic
from ..recipe.schema import Recipe
from ..recipe.sweep import (TRAINING_METRICS, Point, expand, is_training_metric, point_key, point_overrides, search_points,
                            with_rate)
from .lr_search import choose, print_choice, search_options
from .pipeline import RunOptions, run_one, selected_stages


def _prepare(recipe_path: Path, recipe: Recipe, points: list[Point], base: list[str], options: RunOptions,
             base_dir: Path | None = None) -> list[tuple[Point, Recipe, list[str]]]:
    """Load, render and pre-flight every point before any of them runs: a bad point fails now, not hours in."""
    from ..launch import preflight
    from ..recipe.loader import load
    from ..launch.render import render

    prepared, problems = [], []
    for point in points:
        overrides = point_overrides(recipe.name, point, base)
        try:
            point_recipe, _ = load(recipe_path, overrides, base_dir=base_dir)
            render(point_recipe)
        except RecipeError as exc:
            problems += [Problem(f"sweep point {point.label}: {p.path}", p.message, p.given, p.allowed, p.suggestion)
                         for p in exc.problems]
            continue
        prepared.append((point, point_recipe, overrides))
    if problems:
        raise RecipeError(str(recipe_path), problems)
    if not options.dry_run:  # as for one run: a dry run plans on any machine
        preflight.check_points(recipe.name, [(point.label, point_recipe) for point, point_recipe, _ in prepared],
                               selected_stages(options), runs_dir=options.runs_dir)
    return prepared


def _check_stages(recipe: Recipe, options: RunOptions) -> None:
    """Before any point's run directory exists: the stages are known, and they measure the sweep's metric."""
    stages = selected_stages(options)
    if recipe.sweep.lr_search and "train" not in stages:
        raise MedtuneError("sweep.lr_search trains each point at each rate; --stages must include train")
    metric = recipe.sweep.metric
    if metric and not is_training_metric(metric) and "eval" not in stages:
        shown = ",".join(options.stages) if options.stages is not None else "(rehearsal)"
        raise MedtuneError(f"sweep.metric {metric!r} comes from the eval stage, which --stages {shown} leaves out; "
                           f"run eval too, or pick the best by {', '.join(TRAINING_METRICS)} or a later stage's "
                           "<stage>_train_loss")


def _print_points(recipe: Recipe, prepared: list) -> None:
    if recipe.sweep.lr_search:  # the points themselves are prepared once the search has picked their rates
        title = f"Sweep {recipe.name}, learning-rate search first: {len(prepared)} runs, each as {recipe.name}.<label>"
    else:
        title = f"Sweep {recipe.name}: {len(prepared)} points, each run as {recipe.name}.<point>"
    table = Table(title=title)
    table.add_column("point", overflow="fold")
    table.add_column("overrides", overflow="fold")
    for point, _, _ in prepared:
        table.add_row(point.label, ", ".join(f"{k}={json.dumps(v)}" for k, v in point.overrides.items()))
    console.print(table)
    if recipe.sweep.lr_search:
        after = [p.label for p in expand(recipe.sweep)]
        console.print(f"then {len(after)} runs, each at the rate its point's search picks: {', '.join(after)}")


def share_base_generations(done_runs: list[Path], run_dir: Path) -> int:
    """Copy the base model's held-out generations of finished points into a new point's eval store.

    Every point evaluates the same base model; its answers are reused only where the eval stage would
    make them again: a stored line counts only when its fingerprint (base weights, prompt tokens,
    max_new_tokens) matches, so a point with another test set or eval setting generates afresh.
    Returns how many lines were copied.
    """
    from ..evaluate.store import GenerationStore

    lines = {}
    for done in done_runs:
        source = RunDir(done).generations
        if source.is_file():
            for key, record in GenerationStore(source).records_of_model("base").items():
                lines.setdefault(key, record)
    if lines:
        target = RunDir(run_dir).generations
        target.parent.mkdir(parents=True, exist_ok=True)
        GenerationStore(target).append(list(lines.values()))
    return len(lines)


def _run_points(options: RunOptions, recipe_path: Path, prepared: list, summary: dict, summary_path: Path,
                key: str = "points") -> bool:
    """Run each point (resumed: in the run directory it had) and record it in summary[key]; returns False when the
    user interrupted the sweep."""
    entries = summary.setdefault(key, [])
    earlier = {e["label"]: e for e in entries}
    for i, (point, point_recipe, overrides) in enumerate(prepared, 1):
        console.rule(f"[bold]sweep point {i}/{len(prepared)}: {point.label}")
        entry = earlier.get(point.label)
        if entry is None:
            run = RunDir.create(options.runs_dir, point_recipe.name)
            done = [Path(e["run_dir"]) for e in entries if e["status"] == "done"]
            shared = share_base_generations(done, run.path) if "eval" in selected_stages(options) else 0
            if shared:
                console.print(f"[dim]base model: {shared} answers from earlier points reused where prompts and settings match[/dim]")
            entry = {"label": point.label, "overrides": point.overrides, "run_dir": str(run), "started": now(),
                     **({"group": point.group, "seed": point.seed} if point.group else {})}
            entries.append(entry)
        else:  # run before: its run directory skips the stages done and picks up where it stopped
            run = RunDir(entry["run_dir"])
            entry.pop("error", None)
            entry["resumed"] = now()
        entry["status"] = "running"
        write_json_atomic(summary_path, summary)
        started = time.monotonic()
        try:
            code = run_one(options, point_recipe, recipe_path, overrides, run)
            entry["status"] = "done" if code == 0 else "interrupted"
        except KeyboardInterrupt:
            entry["status"] = "interrupted"
        except MedtuneError as exc:
            entry.update(status="failed", error=str(exc)[:2000])
            err_console.print(f"sweep point {point.label} failed: {exc}", style="red", markup=False)
        except Exception as exc:  # one crashed point must not lose the rest of the sweep; the traceback is shown
            entry.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
            err_console.print_exception(max_frames=8)
        entry["seconds"] = round(time.monotonic() - started, 1)
        write_json_atomic(summary_path, summary)
        if entry["status"] == "interrupted":
            return False
    return True


def _finish(recipe: Recipe, summary: dict, sweep_dir: Path) -> None:
    """Compare the finished points in sweep_dir and record the best one by the sweep's metric."""
    from ..report.compare import best_row, compare_runs
    from ..report.fairness import best_point, to_json

    done = [e for e in summary["points"] if e["status"] == "done"]
    if not done:
        return
    labels = {Path(e["run_dir"]): e["label"] for e in done}
    groups = {Path(e["run_dir"]): e["group"] for e in done if e.get("group")}
    metric = recipe.sweep.metric
    comparison = compare_runs(list(labels), sweep_dir, labels, title=f"Sweep {recipe.name}", groups=groups, metric=metric,
                              show_rates=recipe.sweep.lr_search is not None)
    summary["comparison"] = [str(p) for p in comparison.files]
    if comparison.fairness:
        summary["fairness"] = to_json(comparison.fairness)
    if metric is None:
        return
    minimize = recipe.sweep.best_is_min()
    mode = "lowest" if minimize else "highest"
    if groups:  # seeds: a point is as good as its mean over them, not its luckiest seed
        point = best_point(comparison.fairness, metric, minimize) if comparison.fairness else None
        if point is None:
            console.print(f"[yellow]no finished point has {metric!r}; columns measured: {', '.join(comparison.columns)}[/yellow]")
            return
        value = point.values[metric]
        run_dirs = [e["run_dir"] for e in done if e.get("group") == point.group]
        summary["best"] = {"label": point.group, "metric": metric, "mode": "min" if minimize else "max", "value": value["mean"],
                           "sd": value["sd"], "seeds": value["n"], "run_dirs": run_dirs}
        spread = f" ± {value['sd']:.4f}" if value["sd"] is not None else ""
        console.print(f"[bold green]best point: {point.group}[/bold green] ({metric} = {value['mean']:.4f}{spread} over "
                      f"{value['n']} seed(s), {mode} mean)")
        return
    best = best_row(comparison, metric, minimize)
    if best is None:
        console.print(f"[yellow]no finished point has {metric!r}; columns measured: {', '.join(comparison.columns)}[/yellow]")
        return
    entry = next(e for e in done if e["label"] == best.label)
    summary["best"] = {"label": best.label, "metric": metric, "mode": "min" if minimize else "max",
                       "value": best.values[metric]["mean"], "run_dir": entry["run_dir"]}
    console.print(f"[bold green]best point: {best.label}[/bold green] ({metric} = {best.values[metric]['mean']:.4f}, "
                  f"{mode}) -> {entry['run_dir']}")


SWEEP_FILE = "sweep.json"
SWEEP_RECIPE = "recipe.yaml"


def run_sweep(options: RunOptions, recipe_path: Path, recipe: Recipe, overrides: list[str]) -> int:
    """Every point of the recipe's sweep as its own run (base: the command line's --set), then the comparison."""
    _check_stages(recipe, options)
    prepared = _prepare(recipe_path, recipe, _first_points(recipe), overrides, options)
    _print_points(recipe, prepared)
    if options.dry_run:
        return 0
    sweep_dir = RunDir.create(options.runs_dir, recipe.name).path
    shutil.copyfile(recipe_path, sweep_dir / SWEEP_RECIPE)
    summary = {"recipe": recipe.name, "recipe_source": str(recipe_path.resolve()), "overrides": list(overrides),
               "options": options.recorded(), "metric": recipe.sweep.metric, "created": now(), "status": "running",
               "points": []}
    console.print(f"[bold]sweep directory:[/bold] {sweep_dir}")
    return _sweep(options, recipe_path, recipe, prepared, summary, sweep_dir, recipe_path, None)


def find_sweep(resume: str, runs_dir: Path, recipe_path: str | Path | None) -> Path | None:
    """The sweep folder `--resume` names (a folder holding sweep.json, or `RECIPE --resume latest` of a sweep
    recipe: its newest one under runs_dir); None when the resume is of a single run."""
    if resume != "latest":
        return Path(resume) if (Path(resume) / SWEEP_FILE).is_file() else None
    if recipe_path is None:
        return None
    from ..recipe.loader import read_yaml

    raw = read_yaml(Path(recipe_path))
    if not raw.get("sweep"):
        return None
    folder = Path(runs_dir) / str(raw.get("name"))
    found = sorted(p.parent for p in folder.glob(f"*/{SWEEP_FILE}"))
    if not found:
        raise MedtuneError(f"--resume latest: no earlier sweep of '{raw.get('name')}' under {folder}")
    return found[-1]


def resume_sweep(options: RunOptions, sweep_dir: Path, extra: list[str]) -> int:
    """Continue a sweep from its folder: the recipe copy there, read with the original file's folder as the base
    of its relative paths (so it works from any working directory), and the points' own run directories."""
    from ..recipe.loader import load

    summary = json.loads((sweep_dir / SWEEP_FILE).read_text())
    options = options.continuing(summary.get("options", {}))  # the interrupted command's --stages, --rehearse
    summary["options"] = options.recorded()
    recipe_path = Path(summary["recipe_source"])
    copy = sweep_dir / SWEEP_RECIPE
    source = copy if copy.is_file() else recipe_path  # sweeps made before the copy was kept
    summary["overrides"] = overrides = list(summary.get("overrides", [])) + list(extra)
    recipe, _ = load(source, overrides, base_dir=recipe_path.parent)
    _check_stages(recipe, options)
    prepared = _prepare(source, recipe, _first_points(recipe), overrides, options, base_dir=recipe_path.parent)
    _print_points(recipe, prepared)
    if options.dry_run:
        return 0
    summary["status"] = "running"
    console.print(f"[bold]sweep directory:[/bold] {sweep_dir} (resumed)")
    return _sweep(options, recipe_path, recipe, prepared, summary, sweep_dir, source, recipe_path.parent)


def _first_points(recipe: Recipe) -> list[Point]:
    """What runs first: the learning-rate search's runs when there is one (the points follow at their rates)."""
    return search_points(recipe.sweep) if recipe.sweep.lr_search else expand(recipe.sweep)


def _search_rates(options: RunOptions, recipe_path: Path, recipe: Recipe, prepared: list, summary: dict,
                  summary_path: Path, source: Path, base_dir: Path | None) -> list | None:
    """Run the learning-rate search, record each point's rate, and prepare the points at their rates (None: interrupted)."""
    if not _run_points(search_options(options), recipe_path, prepared, summary, summary_path, key="lr_search_runs"):
        return None
    chosen = summary["lr_search"] = choose(summary["lr_search_runs"])
    print_choice(chosen, recipe.sweep.lr_search.metric)
    points = [with_rate(p, chosen[point_key(p)]["chosen"]) for p in expand(recipe.sweep)
              if (chosen.get(point_key(p)) or {}).get("chosen") is not None]
    return _prepare(source, recipe, points, summary["overrides"], options, base_dir=base_dir)


def _sweep(options: RunOptions, recipe_path: Path, recipe: Recipe, prepared: list, summary: dict, sweep_dir: Path,
           source: Path, base_dir: Path | None) -> int:
    """Run the prepared points (after the learning-rate search, when the sweep has one), compare and record them.

    source and base_dir: where the points' recipe is read from and its relative paths start (a resumed sweep's copy).
    """
    summary_path = sweep_dir / SWEEP_FILE
    write_json_atomic(summary_path, summary)
    if recipe.sweep.lr_search:
        searched = _search_rates(options, recipe_path, recipe, prepared, summary, summary_path, source, base_dir)
        completed, prepared = searched is not None, searched or []
    else:
        completed = True
    completed = completed and _run_points(options, recipe_path, prepared, summary, summary_path)
    try:
        _finish(recipe, summary, sweep_dir)
    finally:
        failed = [e["label"] for e in summary["points"] if e["status"] == "failed"]
        failed += [f"{point} (no validation loss at any rate)" for point, result in summary.get("lr_search", {}).items()
                   if result["chosen"] is None]
        summary["status"] = "interrupted" if not completed else ("failed points" if failed else "done")
        summary["updated"] = now()
        write_json_atomic(summary_path, summary)
    if not completed:
        console.print(f"[yellow]sweep interrupted; finished points are in {summary_path}; continue with: "
                      f"python launch.py --resume {sweep_dir}[/yellow]")
        return 130
    if failed:
        err_console.print(f"{len(failed)} of {len(expand(recipe.sweep))} sweep points failed: {', '.join(failed)} (see {summary_path})",
                          style="red", markup=False)
        return 1
    console.print(f"[green]sweep done[/green]: {summary_path}")
    return 0
