"""The preprocess stage's console summary: rows per split, drops per reason, leakage, cache and problems."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from rich.table import Table

from .records import DROP_REASONS, SPLITS

_SHOWN_PROBLEMS = 10


def _row_counts(title: str, label: str, keys: Iterable[str], counts: dict) -> Table:
    table = Table(title=title, show_header=True)
    table.add_column(label)
    table.add_column("rows", justify="right")
    for key in keys:
        table.add_row(key, f"{counts[key]:,}")
    return table


def print_summary(manifest: dict, out_dir: Path) -> None:
    from ..core.console import console

    console.print(f"wrote {out_dir}/train.jsonl, val.jsonl, test.jsonl and manifest.json", markup=False, soft_wrap=True)
    console.print(_row_counts("Rows per split", "split", SPLITS, manifest["counts"]))
    console.print(_row_counts("Dropped rows", "reason", DROP_REASONS, manifest["dropped"]))

    leak = manifest["leakage"]
    console.print(
        f"leakage check: {'passed' if leak['passed'] else 'FAILED'} (shared questions train/val {leak['train_val']}, "
        f"train/test {leak['train_test']}, val/test {leak['val_test']}); dedup exact {manifest['dedup']['exact']:,}, "
        f"normalized {manifest['dedup']['normalized']:,}; cache {manifest['cache']}",
        markup=False, soft_wrap=True,
    )
    problems = manifest.get("problems") or []
    if problems:
        console.print(f"malformed rows (first {min(len(problems), _SHOWN_PROBLEMS)} of those listed in manifest.json):", style="yellow")
        for line in problems[:_SHOWN_PROBLEMS]:
            console.print(f"  {line}", markup=False, soft_wrap=True)
