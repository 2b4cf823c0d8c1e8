"""`launch.py RECIPE`: the stages in order (validate, render, preprocess, train, evaluate, report)."""
from __future__ import annotations

import argparse
import shlex

from rich.table import Table

from . import models
from .console import console
from .plan import estimate_memory
from .recipe import Recipe
from .recipe_check import load
from .render import Rendered, render

STAGES = ("preprocess", "train", "eval", "report")


def train_command(rendered: Rendered) -> list[str]:
    """The command training runs, from inside the run directory."""
    return ["accelerate", "launch", "--config_file", "accelerate.yaml", "-m", "axolotl.cli.train", "axolotl.yaml"]


def print_plan(recipe: Recipe, rendered: Rendered) -> None:
    facts = models.lookup(recipe.model)
    table = Table(title=f"Plan for {recipe.name}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", overflow="fold")
    table.add_row("model", f"{recipe.model} -> {models.resolve(recipe.model)}")
    table.add_row("method", recipe.method.name)
    t = recipe.training
    table.add_row("training", f"{t.max_steps} steps" if t.max_steps else f"{t.epochs:g} epochs")
    table.add_row("device", f"{recipe.launch.device} x {rendered.num_processes} process(es), deepspeed {recipe.launch.deepspeed}")
    table.add_row("settings", f"{t.precision}, attention {t.attention}, packing {t.sample_packing}, liger {t.liger}")
    table.add_row("stages", " -> ".join(STAGES))
    table.add_row("train command", shlex.join(train_command(rendered)))
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


def run_recipe(args: argparse.Namespace) -> int:
    recipe, _raw = load(args.recipe, args.set)
    rendered = render(recipe)
    if args.dry_run:
        print_plan(recipe, rendered)
        return 0
    raise NotImplementedError("training stages land with the train issue")
