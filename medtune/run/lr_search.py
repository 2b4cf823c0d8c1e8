"""A sweep's learning-rate search (sweep.lr_search): each point trained at each rate, the rate picked by validation loss.

Search runs stop after training, so the held-out test questions play no part in the choice: the rate is picked on
the validation split alone, and the comparison that follows measures each point at its rate on the test set.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from rich.table import Table

from ..core.console import console
from ..core.rundir import RunDir
from .pipeline import RunOptions, selected_stages

SEARCH_STAGES = ("preprocess", "train")


def search_options(options: RunOptions) -> RunOptions:
    """The sweep's options for search runs: its stages up to training, never eval."""
    return dataclasses.replace(options, stages=tuple(s for s in selected_stages(options) if s in SEARCH_STAGES))


def validation_loss(run_dir: Path) -> float | None:
    """The last validation loss training logged; None when there is none (no validation rows, or training failed)."""
    values = [h["eval_loss"] for h in RunDir(run_dir).training_history() if isinstance(h.get("eval_loss"), (int, float))]
    return values[-1] if values else None


def choose(entries: list[dict]) -> dict[str, dict]:
    """Point -> {"losses": {rate: last validation loss or None}, "chosen": the rate of the lowest, or None}.

    entries are sweep.json's search runs, each with its point ("group"), rate ("overrides") and status.
    """
    found: dict[str, dict] = {}
    for entry in entries:
        rate = entry["overrides"]["training.learning_rate"]
        loss = validation_loss(Path(entry["run_dir"])) if entry["status"] == "done" else None
        found.setdefault(entry["group"], {"losses": {}})["losses"][repr(rate)] = loss
    for result in found.values():
        measured = {rate: loss for rate, loss in result["losses"].items() if loss is not None}
        result["chosen"] = float(min(measured, key=measured.get)) if measured else None
    return found


def print_choice(chosen: dict[str, dict], metric: str) -> None:
    rates = list(dict.fromkeys(rate for result in chosen.values() for rate in result["losses"]))
    table = Table(title=f"Learning-rate search: last {metric} per rate (lowest kept)")
    for column in ("point", *(f"lr {r}" for r in rates), "chosen"):
        table.add_column(column)
    for point, result in chosen.items():
        cells = [result["losses"].get(r) for r in rates]
        table.add_row(point, *("-" if c is None else f"{c:.4f}" for c in cells),
                      "none (no validation loss)" if result["chosen"] is None else repr(result["chosen"]))
    console.print(table)
