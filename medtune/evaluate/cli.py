"""`launch.py eval RUN_DIR` (a finished run's base and tuned model) or `launch.py eval --model M --suite S` (any model)."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..core.rundir import RunDir
from .errors import EvalInputError

SUITE_CHOICES = ("pubmedqa", "medqa", "medmcqa", "mmlu_medical")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", nargs="?", type=Path, metavar="RUN_DIR",
                   help="a run directory: evaluates its base model and its trained model (train/) as its recipe's eval: says")
    p.add_argument("--model", metavar="M", help="evaluate this model instead (catalog key, Hub id or folder; needs --suite)")
    p.add_argument("--adapter", metavar="A", help="with --model: a PEFT adapter folder; base and adapter are both scored")
    p.add_argument("--suite", action="append", default=[], metavar="S",
                   help=f"benchmark suite, repeatable or comma-separated: {', '.join(SUITE_CHOICES)}")
    p.add_argument("--limit", type=int, metavar="N", help="score N questions per suite (per MMLU subject; a seeded sample keeping the answers' mix) and N held-out questions")
    p.add_argument("--suite-data", metavar="DIR", help="folder with the suites' publisher files (default: the recipe's, else each suite's pinned Hub copy)")
    p.add_argument("--system-prompt", metavar="TEXT", help="with --model: system turn before each suite question")
    p.add_argument("--batch-size", type=int, metavar="N", help="questions generated/scored together")
    p.add_argument("--out", type=Path, metavar="DIR", help="with --model: where eval/ is written (default runs/eval/<model>-<time>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs, CI)")


def _suites(values: list[str]) -> list[str]:
    suites = [s.strip() for value in values for s in value.split(",") if s.strip()]
    unknown = [s for s in suites if s not in SUITE_CHOICES]
    if unknown:
        raise EvalInputError(f"--suite: unknown suite(s) {unknown}; available: {', '.join(SUITE_CHOICES)}")
    return list(dict.fromkeys(suites))


def _spec(section: dict, source: str):
    from pydantic import ValidationError

    from ..core.schema import validation_problems
    from .spec import EvalSpec

    try:
        return EvalSpec.model_validate(section)
    except ValidationError as exc:
        problems = [f"  - {problem.render()}" for problem in validation_problems(exc, EvalSpec, at=("eval",))]
        raise EvalInputError(f"{source}: the eval section is not valid:\n" + "\n".join(problems)) from None


def _overrides(args: argparse.Namespace, suites: list[str]) -> dict:
    changes = {}
    if suites:
        changes["suites"] = suites
    if args.limit is not None:
        if args.limit <= 0:
            raise EvalInputError(f"--limit must be a positive number of questions, got {args.limit}")
        changes.update(limit=args.limit, suite_limit=args.limit)
    if args.suite_data:
        changes["suite_data"] = args.suite_data
    if args.batch_size is not None:
        if args.batch_size <= 0:
            raise EvalInputError(f"--batch-size must be positive, got {args.batch_size}")
        changes["batch_size"] = args.batch_size
    return changes


def _run_dir_job(args: argparse.Namespace, suites: list[str]) -> dict:
    from ..models.loader import run_refs  # imports torch: not for every command's parser

    run = RunDir.open(args.run_dir, "eval RUN_DIR")
    recipe = run.resolved_recipe()
    spec = _spec({**(recipe.get("eval") or {}), **_overrides(args, suites)}, str(run.resolved))
    base, tuned = run_refs(run)
    data = recipe.get("data") or {}
    disclaimer = data.get("disclaimer") or {}
    return dict(run_dir=run.path, spec=spec, base=base, tuned=tuned, system_prompt=data.get("system_prompt"),
                disclaimer_text=disclaimer.get("text") if disclaimer.get("enabled") else None)


def _model_job(args: argparse.Namespace, suites: list[str]) -> dict:
    if not suites:
        raise EvalInputError("eval --model needs at least one --suite (held-out questions come with a RUN_DIR)")
    from ..models.loader import adapter_ref, base_ref

    spec = _spec({"metrics": [], **_overrides(args, suites)}, "command line")
    base = base_ref(args.model)
    tuned = adapter_ref(base, args.adapter) if args.adapter else None
    name = Path(args.model).name or "model"
    out = args.out or Path("runs") / "eval" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    return dict(run_dir=out, spec=spec, base=base, tuned=tuned, system_prompt=args.system_prompt, disclaimer_text=None)


def _print_summary(metrics: dict, run_dir: Path) -> None:
    from rich.table import Table

    from ..core.console import console
    from ..core.fmt import number

    if metrics["models"]:
        names = sorted({name for values in metrics["models"].values() for name in values})
        table = Table(title="held-out questions")
        for column in ["model", *names]:
            table.add_column(column)
        for label, values in metrics["models"].items():
            table.add_row(label, *[number(values[n]["mean"]) if n in values else "-" for n in names])
        console.print(table)
    if metrics["suites"]:
        table = Table(title="benchmark suites (accuracy)")
        for column in ("suite", "model", "log-likelihood", "generated", "invalid", "majority baseline", "questions"):
            table.add_column(column)
        for suite, per_model in metrics["suites"].items():
            for label, entry in per_model.items():
                table.add_row(suite, label, number(entry["acc"]), number(entry.get("gen_acc")),
                              str(entry.get("gen_invalid", "-")), number(entry["baseline"]), entry.get("sample") or str(entry["n"]))
        console.print(table)
    console.print(f"written: {run_dir / 'eval' / 'metrics.json'}, per-item scores {run_dir / metrics['per_item']}")


def run(args: argparse.Namespace) -> int:
    suites = _suites(args.suite)
    if (args.run_dir is None) == (args.model is None):
        raise EvalInputError("give either RUN_DIR or --model M (with --suite S), not both and not neither")
    if args.run_dir is not None and (args.adapter or args.out or args.system_prompt):
        raise EvalInputError("--adapter, --out and --system-prompt go with --model; a RUN_DIR names its own")
    job = _run_dir_job(args, suites) if args.run_dir is not None else _model_job(args, suites)

    from .run import evaluate_run  # heavy imports only once the input is known to be good

    metrics = evaluate_run(show_progress=not args.no_progress, **job)
    _print_summary(metrics, job["run_dir"])
    return 0
