"""The command line: one argparse parser, one registry of commands; the stages do the work.

`python launch.py RECIPE [...]` is the `run` command; every other first word names a command.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .core.env import private_env
from .core.errors import MedtuneError

if TYPE_CHECKING:
    from .run.pipeline import RunOptions

# Set before any ML library is imported: medical work must not phone home.
private_env()


@dataclass(frozen=True)
class Command:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# ---------------------------------------------------------------- validate


def _add_validate(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipes", nargs="*", metavar="RECIPE", help="recipe files to check")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key")
    p.add_argument("--help-keys", action="store_true", help="list every recipe key with its meaning")
    p.add_argument("--markdown", action="store_true", help="with --help-keys: print the README's Markdown table")


def _run_validate(args: argparse.Namespace) -> int:
    from .core.console import console, err_console
    from .recipe.keys_doc import print_keys

    if args.help_keys:
        print_keys(markdown=args.markdown)
        return 0
    if not args.recipes:
        raise MedtuneError("validate needs at least one RECIPE (or --help-keys)")
    from .recipe.loader import load
    from .launch.render import render
    from .core.errors import RecipeError

    failed = 0
    for path in args.recipes:
        try:
            recipe, _ = load(path, args.set)
            render(recipe)
        except RecipeError as exc:
            failed += 1
            err_console.print(exc.render(), style="red", markup=False, soft_wrap=True)
            continue
        console.print(f"[green]ok[/green] {path}: {recipe.model} x {recipe.method.name}", highlight=False)
    return 2 if failed else 0


# ---------------------------------------------------------------- render


def _add_render(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", metavar="RECIPE")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for axolotl.yaml (+ deepspeed.json, accelerate.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key")


def _run_render(args: argparse.Namespace) -> int:
    from .core.console import console
    from .recipe.loader import load
    from .launch.render import render

    recipe, _ = load(args.recipe, args.set)
    for path in render(recipe).write(args.out):
        console.print(f"wrote {path}", highlight=False)
    return 0


# ---------------------------------------------------------------- run


def _add_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", metavar="RECIPE", nargs="?", help="the experiment's YAML file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key (validated like the file)")
    p.add_argument("--dry-run", action="store_true", help="validate, render and print the plan; run nothing")
    p.add_argument("--stages", metavar="LIST", help="comma-separated subset of preprocess,train,eval,report")
    p.add_argument("--resume", metavar="RUN_DIR|latest", help="continue a run: skip finished stages, resume training from its newest checkpoint "
                        "(with the --stages and --rehearse the run was started with, unless given again)")
    p.add_argument("--rehearse", action="store_true",
                   help="rehearse a GPU recipe on CPU before paying for GPUs: every stage (or --stages) with SmolLM2, "
                        "3 training steps (2 processes over gloo for multi-GPU/DeepSpeed), a small eval; what was "
                        "swapped for CPU is printed and kept in manifest.json")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where run directories go (default: runs/)")


def _run_options(args: argparse.Namespace) -> "RunOptions":
    from .run.pipeline import RunOptions

    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip()) if args.stages else None
    return RunOptions(stages=stages, dry_run=args.dry_run, rehearse=args.rehearse, runs_dir=args.runs_dir)


def _run_run(args: argparse.Namespace) -> int:
    """One run, a resumed run, or a sweep of runs: the CLI decides, the run layer does the work."""
    from .recipe.loader import load
    from .run.pipeline import find_resume_dir, run_one

    if not args.recipe and not args.resume:
        raise MedtuneError("run needs a RECIPE (or --resume RUN_DIR)")
    options = _run_options(args)
    if args.resume:
        from .run.sweep import find_sweep, resume_sweep

        sweep_dir = find_sweep(args.resume, args.runs_dir, args.recipe)
        if sweep_dir is not None:  # a sweep's folder, or `RECIPE --resume latest` of a sweep recipe
            return resume_sweep(options, sweep_dir, list(args.set))
        run = find_resume_dir(args.resume, args.runs_dir, args.recipe, args.rehearse)
        old = run.manifest_data()
        # The interrupted command continues: its --stages and --rehearse (runs from before they were recorded: a
        # rehearsal is known by its manifest entry).
        options = options.continuing(old.get("options") or {"rehearse": "rehearsal" in old})
        # The recipe's relative paths start where the original recipe file was, not in the run directory.
        recipe_path = Path(old.get("recipe_source") or run.recipe)
        overrides = old.get("overrides", []) + list(args.set)
        recipe, _ = load(run.recipe, overrides, base_dir=run.recipe_dir())
        return run_one(options, recipe, recipe_path, overrides, run)
    recipe_path = Path(args.recipe)
    recipe, _ = load(recipe_path, args.set)
    if recipe.sweep is not None:  # every point becomes a run of its own through run_one
        from .run.sweep import run_sweep

        return run_sweep(options, recipe_path, recipe, list(args.set))
    return run_one(options, recipe, recipe_path, list(args.set))


def _add_report(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory whose eval stage has finished")


def _run_report(args: argparse.Namespace) -> int:
    from .report.run_report import build_report

    build_report(args.run_dir)
    return 0


# ---------------------------------------------------------------- compare, chat, export


def _add_compare(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="run directories evaluated on the same test set")
    p.add_argument("--out", type=Path, metavar="DIR", help="where the CSV/XLSX/Markdown/PNG files go (default: runs/compare-<timestamp>/)")


def _run_compare(args: argparse.Namespace) -> int:
    from .report.compare import compare_runs, default_out

    compare_runs(args.run_dirs, args.out or default_out())
    return 0


def _add_chat(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory whose train stage has finished")
    p.add_argument("--cli", action="store_true", help="chat in the terminal (reads one question per line from a pipe)")
    p.add_argument("--max-new-tokens", type=int, default=256, help="longest answer in tokens (default: 256)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 answers greedily (the default); higher samples")
    p.add_argument("--port", type=int, default=7860, help="port of the web page on 127.0.0.1 (default: 7860)")


def _run_chat(args: argparse.Namespace) -> int:
    from .tools.chat import run_chat

    return run_chat(args)


def _add_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory whose train stage has finished")
    p.add_argument("--out", type=Path, metavar="DIR", help="folder for the merged model (default: RUN_DIR/export/)")


def _run_export(args: argparse.Namespace) -> int:
    from .tools.export import export_run

    export_run(args.run_dir, args.out)
    return 0


def _lazy(module: str, attr: str) -> Callable:
    """Import a command's module only when that command runs (ML imports take seconds)."""

    def call(*a):
        import importlib

        return getattr(importlib.import_module(module, __package__), attr)(*a)

    return call


COMMANDS: dict[str, Command] = {
    "run": Command("run a recipe: validate, render, preprocess, train, evaluate, report (the default command)", _add_run, _run_run),
    "validate": Command("check recipes without running anything", _add_validate, _run_validate),
    "render": Command("write the Axolotl/DeepSpeed/accelerate configs for a recipe", _add_render, _run_render),
    "eval": Command(
        "evaluate a run's base and tuned models, or any model on benchmark suites",
        _lazy(".evaluate.cli", "add_arguments"),
        _lazy(".evaluate.cli", "run"),
    ),
    "report": Command("write a run's report (console tables, report.md, CSV/XLSX, plots) from its eval results", _add_report, _run_report),
    "preprocess": Command(
        "turn a medical QA source into chat-template JSONL with splits and a manifest",
        _lazy(".preprocess.cli", "add_arguments"),
        _lazy(".preprocess.cli", "run"),
    ),
    "compare": Command("compare runs in one table (base and tuned, every metric with its interval): console, CSV, XLSX, Markdown, plots",
                       _add_compare, _run_compare),
    "chat": Command("chat with a run's tuned model: a local web page, or the terminal with --cli", _add_chat, _run_chat),
    "export": Command("merge a run's LoRA adapter into full weights and save them with the tokenizer", _add_export, _run_export),
}


def build_parser(selected: str | None = None, prog: str = "medtune") -> argparse.ArgumentParser:
    """The one parser. Only the selected command's arguments are built: some live in modules whose
    import pulls in ML libraries, and `launch.py --help` should not wait for them."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="medtune: fine-tune small LLMs on medical QA from one YAML recipe.",
        epilog=f"`{prog} RECIPE` is short for `{prog} run RECIPE`.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in COMMANDS.items():
        command_parser = sub.add_parser(name, help=command.help, description=command.help)
        if name == selected:
            command.add_arguments(command_parser)
    return parser


def main(argv: list[str] | None = None, prog: str = "medtune") -> int:
    """The `medtune` console command; launch.py passes prog="python launch.py" so help shows what was typed."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in COMMANDS and argv[0] not in ("-h", "--help"):
        argv = ["run", *argv]  # the default command: `launch.py RECIPE ...` or `launch.py --resume RUN_DIR`
    parser = build_parser(argv[0] if argv else None, prog)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return COMMANDS[args.command].run(args)
    except MedtuneError as exc:
        from .core.console import err_console

        err_console.print(str(exc), style="red", markup=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        from .core.console import err_console

        err_console.print("interrupted", style="yellow")
        return 130
