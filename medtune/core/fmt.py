"""Numbers as medtune's tables show them: a value, a value with its 95% interval, a paired difference, Markdown tables."""
from __future__ import annotations

import math
from typing import Sequence


def number(value: float | None) -> str:
    """Four decimals; one from 100 up (BLEU, perplexity), where four would be noise; "-" for no value or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}"


def with_ci(value: float | None, ci: Sequence[float] | None) -> str:
    """A mean with its interval, "0.3190 [0.2960, 0.3410]"; the mean alone where there is no interval."""
    return number(value) + (f" [{number(ci[0])}, {number(ci[1])}]" if ci else "")


def signed_with_ci(value: float | None, ci: Sequence[float] | None = None) -> str:
    """A difference (tuned minus base) with its sign always shown, "+0.0120 [-0.0040, +0.0290]"."""
    if value is None or math.isnan(value):
        return "-"
    return f"{value:+.4f}" + (f" [{ci[0]:+.4f}, {ci[1]:+.4f}]" if ci else "")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub Markdown table; a "|" inside a cell is escaped so that the cell stays in its column."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(header), "|" + " --- |" * len(header), *(line(row) for row in rows)])
