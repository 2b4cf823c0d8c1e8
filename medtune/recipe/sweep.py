"""The recipe's `sweep:` section and its expansion into points: one run per combination of overrides.

Running the points lives in medtune/run/sweep.py; this module stays import-light because the recipe
schema imports it.
"""
from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import field_validator, model_validator

from ..core.schema import Strict

LABEL = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
TRAINING_METRICS = ("train_loss", "eval_loss")
# A point never sets these: its run name is derived from the point, and a point is never itself a sweep.
RESERVED_KEYS = ("name", "sweep")


class SweepSpec(Strict):
    grid: dict[str, list[Any]] = {}
    """Recipe keys (dotted, as for --set) and the values to try; every combination becomes its own run,
    e.g. {training.learning_rate: [1e-4, 3e-4], method.rank: [8, 16]}."""
    points: dict[str, dict[str, Any]] = {}
    """Named runs, each a mapping of recipe keys to values, for settings that only make sense together
    (a method and its own options); every point runs with every grid combination."""
    metric: str | None = None
    """Comparison column that names the best point: a metric of the tuned model (e.g. rougeL), <suite>.acc,
    or train_loss / eval_loss (the last training / validation loss); unset: no best point is named."""
    mode: Literal["auto", "max", "min"] = "auto"
    """Whether the best point has the highest (max) or lowest (min) metric; auto: min for losses and
    perplexity, max otherwise."""

    @field_validator("grid")
    @classmethod
    def _values_given(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        empty = [key for key, values in grid.items() if not values]
        if empty:
            raise ValueError(f"{', '.join(empty)}: no values to try")
        return grid

    @field_validator("points")
    @classmethod
    def _labels_name_runs(cls, points: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        bad = [label for label in points if not re.match(LABEL, label)]
        if bad:
            raise ValueError(f"point name(s) {', '.join(map(repr, bad))} must be letters, digits, '.', '_' or '-' (they name runs)")
        return points

    @model_validator(mode="after")
    def _check_keys(self) -> "SweepSpec":
        if not self.grid and not self.points:
            raise ValueError("a sweep needs grid or points (or both)")
        keys = [*self.grid, *(k for overrides in self.points.values() for k in overrides)]
        reserved = sorted({k for k in keys if k.split(".")[0] in RESERVED_KEYS})
        if reserved:
            raise ValueError(f"a sweep cannot set {', '.join(reserved)} (a point's run name comes from its label, "
                             "and a point is not a sweep)")
        both = sorted({k for overrides in self.points.values() for k in overrides} & set(self.grid))
        if both:
            raise ValueError(f"{', '.join(both)} is set by both grid and points; keep each key in one of them")
        return self

    def best_is_min(self) -> bool:
        if self.mode != "auto":
            return self.mode == "min"
        return bool(self.metric) and (self.metric.endswith("loss") or self.metric.startswith("perplexity"))


@dataclass(frozen=True)
class Point:
    label: str
    """Names the point's run: `<recipe name>.<label>`, e.g. `lora` or `learning_rate-1e-4_rank-8`."""
    overrides: dict[str, Any]
    """Dotted recipe key -> value."""

    def set_args(self) -> list[str]:
        """The point as `--set` arguments; values go as JSON, which YAML reads back unchanged."""
        return [f"{key}={json.dumps(value)}" for key, value in self.overrides.items()]


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "+".join(_text(v) for v in value)
    return json.dumps(value) if isinstance(value, dict) else str(value)


def _sanitize(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-._") or "point"


def _short_names(keys: list[str]) -> dict[str, str]:
    """A grid key's last part (`rank` for `method.rank`), or the whole path where two keys share it."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last)}


def expand(sweep: SweepSpec) -> list[Point]:
    """Every point of the sweep: each named point crossed with each grid combination, in file order."""
    named = list(sweep.points.items()) or [("", {})]
    keys = list(sweep.grid)
    short = _short_names(keys)
    combos = list(itertools.product(*(sweep.grid[k] for k in keys)))
    points, seen = [], set()
    for name, fixed in named:
        for combo in combos:
            grid_label = "_".join(f"{short[k]}-{_text(v)}" for k, v in zip(keys, combo))
            label = _sanitize("_".join(part for part in (name, grid_label) if part))
            unique, n = label, 1
            while unique in seen:  # values that differ only in characters the sanitizer drops
                n += 1
                unique = f"{label}-{n}"
            seen.add(unique)
            points.append(Point(unique, {**fixed, **dict(zip(keys, combo))}))
    return points


def point_overrides(recipe_name: str, point: Point, base: list[str]) -> list[str]:
    """What one point's run loads: the command line's --set, then the point, its run name, and no sweep."""
    return [*base, *point.set_args(), f"name={json.dumps(f'{recipe_name}.{point.label}')}", "sweep=null"]
