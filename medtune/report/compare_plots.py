"""Bar charts for `launch.py compare`: one PNG per column, one bar per row, 95% intervals as error bars."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..core.paths import safe_name
from ..core.plots import pyplot, save

if TYPE_CHECKING:
    from .compare import Comparison


def plot_columns(comparison: "Comparison", out: Path) -> list[Path]:
    written = []
    for column in comparison.columns:
        rows = [r for r in comparison.rows if column in r.values]
        means = [r.values[column]["mean"] for r in rows]
        cis = [r.values[column].get("ci") for r in rows]
        errors = [[m - ci[0] if ci else 0 for m, ci in zip(means, cis)],
                  [ci[1] - m if ci else 0 for m, ci in zip(means, cis)]]
        fig, ax = pyplot().subplots(figsize=(max(4.0, 0.9 * len(rows) + 2), 3.6))
        colors = ["#9e9e9e" if r.kind == "base" else "#1f77b4" for r in rows]  # base grey, tuned blue
        ax.bar(range(len(rows)), means, yerr=errors, capsize=3, color=colors)
        ax.set_xticks(range(len(rows)), [r.label for r in rows], rotation=30, ha="right", fontsize=8)
        ax.set_title(column + (" (95% intervals)" if any(cis) else ""))
        ax.grid(axis="y", alpha=0.3)
        written.append(save(fig, out / f"plot_{safe_name(column)}.png", dpi=110))
    return written
