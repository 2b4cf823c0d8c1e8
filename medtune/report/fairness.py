"""Fair comparison across runs: each point's mean and spread over training seeds, and paired tests between the
points (and the base model) on the same held-out questions, read at a family-wise 5% level.

A point's runs are grouped by the label the sweep gave them (`<point>_seed-<n>`); a run of its own is a group of
one. The paired test takes each question's score averaged over a group's seeds, so seed noise and question
difficulty both stay in: which questions are hard is shared by both sides of a pair and cancels.
"""
from __future__ import annotations

import itertools
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.fmt import number, signed_with_ci
from ..evaluate.stats import holm, paired_test
from .error_analysis import held_out_rows, ranking_metric
from .run_report import per_item_rows

if TYPE_CHECKING:
    from .compare import Comparison, RunInfo

SEED_LABEL = re.compile(r"^(?P<group>.+)_seed-(?P<seed>-?\d+)$")
ALPHA = 0.05
SUITE_FIELDS = {"acc": "loglik_correct", "gen_acc": "generation_correct"}
"""A suite column of the comparison and the per-question field of eval/per_item.jsonl it averages."""


@dataclass
class SeedRow:
    group: str
    runs: list[str]
    values: dict[str, dict] = field(default_factory=dict)
    """Column -> {"mean", "sd", "min", "max", "n"} over the group's runs (sd: sample standard deviation, None for one run)."""
    learning_rate: float | None = None
    """The rate the group's runs trained with (the first run's; a sweep gives all seeds of a point the same)."""


@dataclass
class PairTest:
    a: str
    b: str
    n: int
    """Questions both sides answered."""
    mean: float
    """Mean per-question difference a - b."""
    ci: list[float] | None
    p: float
    """Two-sided Wilcoxon signed-rank p-value."""
    p_holm: float = 1.0
    """p adjusted for every pair tested (Holm-Bonferroni)."""

    @property
    def significant(self) -> bool:
        return self.p_holm < ALPHA


@dataclass
class Fairness:
    metric: str | None
    """The per-question score the paired tests compare."""
    seed_rows: list[SeedRow]
    tests: list[PairTest]
    notes: list[str] = field(default_factory=list)


def group_of(label: str) -> str:
    """A run's point: its label without the `_seed-<n>` a seeded sweep adds."""
    match = SEED_LABEL.match(label)
    return match["group"] if match else label


# ---------------------------------------------------------------- across seeds


def across_seeds(comparison: "Comparison", groups: dict[str, str]) -> list[SeedRow]:
    """One row per group of tuned rows, every column's mean, spread and range over the group's runs."""
    rows: dict[str, SeedRow] = {}
    for row in comparison.rows:
        if row.kind == "tuned":
            rows.setdefault(groups[row.label], SeedRow(groups[row.label], [], learning_rate=row.learning_rate)).runs.append(row.label)
    by_label = {r.label: r for r in comparison.rows}
    for seed_row in rows.values():
        for column in comparison.columns:
            values = [by_label[label].values[column]["mean"] for label in seed_row.runs if column in by_label[label].values]
            if values:
                seed_row.values[column] = {"mean": statistics.fmean(values), "n": len(values), "min": min(values),
                                           "max": max(values), "sd": statistics.stdev(values) if len(values) > 1 else None}
    return list(rows.values())


def seed_cell(entry: dict | None) -> str:
    if entry is None:
        return "-"
    return number(entry["mean"]) + (f" ± {number(entry['sd'])}" if entry["sd"] is not None else "")


# ---------------------------------------------------------------- paired tests


def question_scores(run_dir: Path, model: str, metric: str) -> dict[str, float]:
    """Question id -> the model's score: a held-out per-item score, or a suite's correctness (`<suite>.acc`)."""
    rows = [r for r in per_item_rows(run_dir) if r.get("model") == model]
    suite, _, part = metric.partition(".")
    if part in SUITE_FIELDS:
        key = SUITE_FIELDS[part]
        return {f"{r.get('task')}/{r['id']}": float(r[key]) for r in rows
                if r.get("suite") == suite and isinstance(r.get(key), bool)}
    return {str(r["id"]): float(r[metric]) for r in held_out_rows(rows)
            if isinstance(r.get(metric), (int, float)) and not isinstance(r.get(metric), bool)}


def _averaged(per_run: list[dict[str, float]]) -> dict[str, float]:
    """Per question, the mean over runs; only questions every run scored."""
    shared = set.intersection(*(set(scores) for scores in per_run)) if per_run else set()
    return {q: statistics.fmean(scores[q] for scores in per_run) for q in shared}


def _boot(runs: list["RunInfo"]) -> dict:
    settings = next((((r.metrics or {}).get("config") or {}).get("eval") or {} for r in runs if r.metrics), {})
    return {"samples": settings.get("bootstrap_samples", 1000), "seed": settings.get("seed", 0)}


def paired_tests(comparison: "Comparison", groups: dict[str, str], metric: str) -> tuple[list[PairTest], list[str]]:
    """Every pair of groups (the shared base model too, when the runs have one) on the questions both answered."""
    notes = []
    runs = {r.label: r for r in comparison.runs}
    scores: dict[str, dict[str, float]] = {}
    for group in dict.fromkeys(groups[r.label] for r in comparison.runs):
        per_run = [question_scores(r.run_dir, "tuned", metric) for r in comparison.runs if groups[r.label] == group]
        if all(per_run):
            scores[group] = _averaged(per_run)
        else:
            notes.append(f"{group}: no per-question {metric} in eval/per_item.jsonl; left out of the paired tests")
    base_rows = [r for r in comparison.rows if r.kind == "base"]
    if len(base_rows) == 1:  # one base measurement shared by every run: it is a side of the comparison too
        base = question_scores(runs[base_rows[0].runs[0]].run_dir, "base", metric)
        if base:
            scores[base_rows[0].label] = base
    tests = []
    for a, b in itertools.combinations(scores, 2):
        shared = sorted(set(scores[a]) & set(scores[b]))
        if len(shared) < 2:
            notes.append(f"{a} vs {b}: fewer than two questions in common; not tested")
            continue
        result = paired_test([scores[a][q] for q in shared], [scores[b][q] for q in shared], **_boot(comparison.runs))
        tests.append(PairTest(a, b, len(shared), result["mean"], result["ci"], result["p"]))
    for test, adjusted in zip(tests, holm([t.p for t in tests])):
        test.p_holm = adjusted
    return tests, notes


def analyse(comparison: "Comparison", groups: dict[str, str], metric: str | None) -> Fairness:
    """Across-seed rows (when a group has several runs) and paired tests on `metric` (a per-question score; when
    it is not one, e.g. train_loss, the first of rougeL, bertscore_f1, rouge1, judge, bleu the runs have)."""
    seed_rows = across_seeds(comparison, groups)
    if all(r.runs == [r.group] for r in seed_rows):  # no run shares a point with another: nothing to aggregate
        seed_rows = []
    measured = [r for r in comparison.runs if r.metrics]
    tested = metric
    if measured and (metric is None or not question_scores(measured[0].run_dir, "tuned", metric)):
        tested = ranking_metric(held_out_rows(per_item_rows(measured[0].run_dir)))
    if tested is None or not measured:
        return Fairness(None, seed_rows, [])
    tests, notes = paired_tests(comparison, groups, tested)
    return Fairness(tested, seed_rows, tests, notes)


# ---------------------------------------------------------------- tables


def seed_table(fairness: Fairness, columns: list[str], rates: bool = False) -> tuple[list[str], list[list[str]]]:
    header = ["point", "seeds", *(["learning_rate"] if rates else []), *columns]
    return header, [[r.group, str(len(r.runs)), *([_rate(r.learning_rate)] if rates else []),
                     *(seed_cell(r.values.get(c)) for c in columns)] for r in fairness.seed_rows]


def _rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:g}"


def seed_numbers(fairness: Fairness, columns: list[str]) -> tuple[list[str], list[list]]:
    header = ["point", "seeds", "runs", "learning_rate"] + [f"{c}{s}" for c in columns for s in ("", "_sd", "_min", "_max")]
    rows = []
    for r in fairness.seed_rows:
        cells = [r.group, len(r.runs), "; ".join(r.runs), r.learning_rate]
        for c in columns:
            entry = r.values.get(c) or {}
            cells += [entry.get("mean"), entry.get("sd"), entry.get("min"), entry.get("max")]
        rows.append(cells)
    return header, rows


def pair_table(fairness: Fairness) -> tuple[list[str], list[list[str]]]:
    header = ["A", "B", "questions", f"mean {fairness.metric} A - B [95% CI]", "Wilcoxon p", "Holm p", "significant"]
    return header, [[t.a, t.b, str(t.n), signed_with_ci(t.mean, t.ci), f"{t.p:.4g}", f"{t.p_holm:.4g}",
                     "yes" if t.significant else "no"] for t in fairness.tests]


def print_tables(fairness: Fairness, columns: list[str], rates: bool = False) -> None:
    """The across-seed table (metrics as rows, points as columns, as compare prints runs) and the paired tests."""
    from rich.table import Table

    from ..core.console import console

    if fairness.seed_rows:
        header, rows = seed_table(fairness, columns, rates)
        table = Table(title="Across seeds: mean ± standard deviation", show_lines=True)
        table.add_column("metric", no_wrap=True)
        for row in rows:
            table.add_column(f"{row[0]}\n({row[1]} seeds)" + (f"\nlr {row[2]}" if rates else ""), justify="right", overflow="fold")
        first = len(header) - len(columns)
        for i, column in enumerate(columns, start=first):
            table.add_row(column, *(row[i] for row in rows))
        console.print(table)
    if fairness.tests:
        table = Table(title=f"Paired tests on {fairness.metric} (Wilcoxon signed-rank, Holm-adjusted; significant: p < {ALPHA})")
        header, rows = pair_table(fairness)
        for column in header:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    for note in fairness.notes:
        console.print(f"[yellow]note: {note}[/yellow]")


def markdown_lines(fairness: Fairness, columns: list[str], rates: bool = False) -> list[str]:
    from ..core.fmt import markdown_table

    lines = []
    if fairness.seed_rows:
        lines += ["## Across seeds", "", "Each point's mean ± sample standard deviation over its training seeds "
                  "(across_seeds.csv adds min and max).", "", markdown_table(*seed_table(fairness, columns, rates)), ""]
    if fairness.tests:
        lines += [f"## Paired tests on {fairness.metric}", "",
                  "Per question, each point's score averaged over its seeds; A - B on the questions both answered, with a "
                  "paired bootstrap interval and the Wilcoxon signed-rank p-value, Holm-adjusted over all pairs; "
                  f"significant: adjusted p < {ALPHA}.", "", markdown_table(*pair_table(fairness)), ""]
    return lines + [f"Note: {note}." for note in fairness.notes]


def to_json(fairness: Fairness) -> dict:
    return {"metric": fairness.metric, "alpha": ALPHA, "notes": fairness.notes,
            "across_seeds": [{"point": r.group, "runs": r.runs, "learning_rate": r.learning_rate, "values": r.values}
                             for r in fairness.seed_rows],
            "paired_tests": [{"a": t.a, "b": t.b, "n": t.n, "mean": t.mean, "ci": t.ci, "p": t.p, "p_holm": t.p_holm,
                              "significant": t.significant} for t in fairness.tests]}


def best_point(fairness: Fairness, metric: str, minimize: bool) -> SeedRow | None:
    scored = [r for r in fairness.seed_rows if metric in r.values]
    if not scored:
        return None
    return (min if minimize else max)(scored, key=lambda r: r.values[metric]["mean"])
