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
STAGE_LOSS_SUFFIX = "_train_loss"
"""A later training stage's last loss is the comparison column `<stage>_train_loss` (e.g. dpo_train_loss)."""
# A point never sets these: its run name is derived from the point, and a point is never itself a sweep.
RESERVED_KEYS = ("name", "sweep")


class LrSearch(Strict):
    values: list[float]
    """Peak learning rates each point trains with before the comparison, e.g. [1e-4, 2e-4, 4e-4]."""
    metric: Literal["val_loss"] = "val_loss"
    """What picks a point's rate: the lowest last validation loss (the data.split.val rows). The held-out test
    questions never take part: search runs stop after training."""

    @field_validator("values")
    @classmethod
    def _rates(cls, values: list[float]) -> list[float]:
        if not values:
            raise ValueError("no learning rates to try")
        if any(v <= 0 for v in values) or len(set(values)) != len(values):
            raise ValueError(f"learning rates must be positive and distinct, got {values}")
        return values


class SweepSpec(Strict):
    grid: dict[str, list[Any]] = {}
    """Recipe keys (dotted, as for --set) and the values to try; every combination becomes its own run,
    e.g. {training.learning_rate: [1e-4, 3e-4], method.rank: [8, 16]}."""
    points: dict[str, dict[str, Any]] = {}
    """Named runs, each a mapping of recipe keys to values, for settings that only make sense together
    (a method and its own options); every point runs with every grid combination."""
    metric: str | None = None
    """Comparison column that names the best point: a metric of the tuned model (e.g. rougeL), <suite>.acc,
    train_loss / eval_loss (the last training / validation loss), or <stage>_train_loss (a later stage's last loss,
    e.g. dpo_train_loss); unset: no best point is named."""
    mode: Literal["auto", "max", "min"] = "auto"
    """Whether the best point has the highest (max) or lowest (min) metric; auto: min for losses and
    perplexity, max otherwise."""
    seeds: list[int] = []
    """Training seeds (training.seed) to repeat every point with, e.g. [1, 2, 3]: each (point, seed) is its own
    run, `<point>_seed-<n>`; the comparison adds each point's across-seed mean and spread, paired tests between
    points on the same questions, and names the best point by its across-seed mean."""

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

    lr_search: LrSearch | None = None
    """Give each point a small learning-rate search first: one run per rate (the first seed only, preprocess
    and train), the rate with the lowest validation loss kept for the point's runs; the comparison names it."""

    @field_validator("seeds")
    @classmethod
    def _seeds_distinct(cls, seeds: list[int]) -> list[int]:
        repeated = sorted({s for s in seeds if seeds.count(s) > 1})
        if repeated:
            raise ValueError(f"seed(s) {', '.join(map(str, repeated))} listed twice; each seed is one run per point")
        return seeds

    @model_validator(mode="after")
    def _check_keys(self) -> "SweepSpec":
        if not self.grid and not self.points and not self.seeds:
            raise ValueError("a sweep needs grid or points (or both), or seeds to repeat the recipe over")
        keys = [*self.grid, *(k for overrides in self.points.values() for k in overrides)]
        settings = [*self.grid.items(), *(kv for overrides in self.points.values() for kv in overrides.items())]
        if self.seeds and any(k == "training.seed" or (k == "training" and isinstance(v, dict) and "seed" in v)
                              for k, v in settings):
            raise ValueError("training.seed is set by sweep.seeds; remove it from grid and points")
        if self.lr_search and any(k == "training.learning_rate" or (k == "training" and isinstance(v, dict) and "learning_rate" in v)
                                  for k, v in settings):
            raise ValueError("training.learning_rate is chosen by sweep.lr_search; remove it from grid and points")
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


def stage_loss_column(stage: str) -> str:
    """The comparison column of a later training stage's last loss; train_loss stays the first stage's."""
    return stage + STAGE_LOSS_SUFFIX


def is_training_metric(metric: str) -> bool:
    """Whether a sweep metric comes from training (no eval stage needed)."""
    return metric in TRAINING_METRICS or metric.endswith(STAGE_LOSS_SUFFIX)


@dataclass(frozen=True)
class Point:
    label: str
    """Names the point's run: `<recipe name>.<label>`, e.g. `lora` or `learning_rate-1e-4_rank-8`."""
    overrides: dict[str, Any]
    """Dotted recipe key -> value."""
    group: str | None = None
    """With sweep.seeds: the label shared by one point's runs over the seeds (the point without its seed)."""
    seed: int | None = None
    """With sweep.seeds: this run's training seed."""

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
            overrides = {**fixed, **dict(zip(keys, combo))}
            if not sweep.seeds:
                points.append(Point(unique, overrides))
                continue
            group = unique if name or keys else "recipe"  # seeds alone repeat the recipe as it is
            points += [Point(f"{group}_seed-{seed}", {**overrides, "training.seed": seed}, group, seed) for seed in sweep.seeds]
    return points


def point_key(point: Point) -> str:
    """The point a run belongs to: its seeds' shared label, else its own."""
    return point.group or point.label


def search_points(sweep: SweepSpec) -> list[Point]:
    """The learning-rate search's runs: each point, at its first seed, once per rate, labelled `<point>_lr-<rate>`."""
    firsts: dict[str, Point] = {}
    for point in expand(sweep):
        firsts.setdefault(point_key(point), point)
    return [Point(_sanitize(f"{key}_lr-{_text(rate)}"), {**point.overrides, "training.learning_rate": rate}, key, point.seed)
            for key, point in firsts.items() for rate in sweep.lr_search.values]


def with_rate(point: Point, rate: float) -> Point:
    return Point(point.label, {**point.overrides, "training.learning_rate": rate}, point.group, point.seed)


def point_overrides(recipe_name: str, point: Point, base: list[str]) -> list[str]:
    """What one point's run loads: the command line's --set, then the point, its run name, and no sweep."""
    return [*base, *point.set_args(), f"name={json.dumps(f'{recipe_name}.{point.label}')}", "sweep=null"]
