"""`launch.py compare RUN_DIR...`: one table across runs (base and tuned rows, every metric with its interval).

Runs compare only when they were evaluated on the same held-out questions (the sha256 of data/test.jsonl);
a base model evaluated the same way in several runs is one row, not one per run. Runs of one point over several
seeds also get their across-seed mean and spread, and every pair of points a paired test (report/fairness.py).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from rich.table import Table

from ..core.console import console
from ..core.errors import MedtuneError
from ..core.fmt import markdown_table, number, with_ci
from ..core.rundir import RunDir
from ..core.hashing import sha256_file, sha256_text
from ..recipe.sweep import stage_loss_column
from . import fairness as fair
from .error_analysis import qtype_means
from .run_report import per_item_rows

TRAINING_COLUMNS = ("train_loss", "eval_loss")
SUITE_FIELDS = ("acc", "gen_acc")


@dataclass
class RunInfo:
    run_dir: Path
    label: str
    model: str
    method: str
    test_sha: str
    base_key: str
    """Equal for runs whose base-model evaluation is the same measurement (model, test set, eval settings)."""
    metrics: dict | None
    training: dict[str, float]
    eval_settings: str
    """The recipe's eval section: equal test files scored with other settings (eval.limit, ...) deserve a note."""
    learning_rate: float | None = None
    """The peak learning rate the run trained with (a sweep's learning-rate search picks it per point)."""


@dataclass
class Row:
    label: str
    kind: str
    """base or tuned."""
    model: str
    method: str
    runs: list[str]
    values: dict[str, dict] = field(default_factory=dict)
    """Column -> {"mean": x, "ci": [lo, hi] or None}."""
    learning_rate: float | None = None


@dataclass
class Comparison:
    runs: list[RunInfo]
    columns: list[str]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    fairness: fair.Fairness | None = None
    """Across-seed means and spreads, and paired tests between the runs' points (report/fairness.py)."""
    show_rates: bool = False
    """Name each tuned row's learning rate in the printed and Markdown tables (the files always hold it): set
    when the runs' rates differ or a learning-rate search chose them."""


# ---------------------------------------------------------------- reading runs


def test_set_hash(run_dir: Path) -> str:
    run = RunDir(run_dir)
    test = run.split("test")
    if test.is_file():
        return sha256_file(test)
    manifest = run.data_manifest
    if manifest.is_file():
        sha = json.loads(manifest.read_text()).get("outputs", {}).get(test.name, {}).get("sha256")
        if sha:
            return sha
    raise MedtuneError(f"{run_dir}: no data/test.jsonl (nor its hash in data/manifest.json); the run has not finished preprocess")


def _last(history: list[dict], key: str) -> float | None:
    values = [h[key] for h in history if isinstance(h.get(key), (int, float))]
    return values[-1] if values else None


def read_run(run_dir: Path, label: str | None = None) -> RunInfo:
    run = RunDir.open(run_dir, "compare")
    recipe = run.resolved_recipe()
    metrics = json.loads(run.metrics.read_text()) if run.metrics.is_file() else None
    history = run.training_history()
    training = {k: v for k, v in (("train_loss", _last(history, "loss")), ("eval_loss", _last(history, "eval_loss"))) if v is not None}
    for stage in run.stage_names():  # a later stage's loss is its own method's (DPO's is not an SFT loss): its own column
        if (last := _last(run.training_history(stage), "loss")) is not None:
            training[stage_loss_column(stage)] = last
    test_sha = test_set_hash(run_dir)
    data = recipe.get("data") or {}
    eval_settings = json.dumps(recipe.get("eval"), sort_keys=True)
    base_key = sha256_text(json.dumps([recipe.get("model"), test_sha, eval_settings, data.get("system_prompt")]))
    rate = (recipe.get("training") or {}).get("learning_rate")
    return RunInfo(run_dir, label or str(recipe.get("name") or run_dir.name), str(recipe.get("model")),
                   str((recipe.get("method") or {}).get("name", "?")), test_sha, base_key, metrics, training, eval_settings,
                   float(rate) if isinstance(rate, (int, float)) else None)


def _entry(value) -> dict | None:
    """A metric value as {"mean", "ci"}: metrics.json holds plain numbers or {"mean": x, "ci": [lo, hi]}."""
    if isinstance(value, dict) and isinstance(value.get("mean"), (int, float)):
        return {"mean": float(value["mean"]), "ci": value.get("ci")}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"mean": float(value), "ci": None}
    return None


def _values(metrics: dict | None, model: str) -> dict[str, dict]:
    if not metrics:
        return {}
    found = {name: e for name, v in (metrics.get("models", {}).get(model) or {}).items() if (e := _entry(v))}
    for suite, per_model in (metrics.get("suites") or {}).items():
        for name in SUITE_FIELDS:
            if e := _entry((per_model.get(model) or {}).get(name)):
                found[f"{suite}.{name}"] = e
    return found


# ---------------------------------------------------------------- the table


def _check_same_test_set(runs: list[RunInfo]) -> None:
    groups: dict[str, list[RunInfo]] = {}
    for run in runs:
        groups.setdefault(run.test_sha, []).append(run)
    if len(groups) < 2:
        return
    lines = ["cannot compare: these runs were evaluated on different test sets (their data/test.jsonl differ):"]
    for sha, members in groups.items():
        lines.append(f"  test set {sha[:12]}: " + ", ".join(str(r.run_dir) for r in members))
    lines.append("Compare runs whose recipes share the data section (sources, split, seed, system prompt) and sequence_len.")
    raise MedtuneError("\n".join(lines))


def build(runs: list[RunInfo]) -> Comparison:
    _check_same_test_set(runs)
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.label] = counts.get(run.label, 0) + 1
    for run in runs:  # two runs of one recipe: tell them apart by their timestamp folder
        if counts[run.label] > 1:
            run.label = f"{run.label} ({run.run_dir.name})"
    bases: dict[str, Row] = {}
    tuned = []
    for run in runs:
        base_values = _values(run.metrics, "base")
        if base_values:
            row = bases.get(run.base_key)
            if row is None:
                bases[run.base_key] = Row(f"base {run.model}", "base", run.model, "-", [run.label], base_values)
            else:
                row.runs.append(run.label)
        tuned.append(Row(run.label, "tuned", run.model, run.method, [run.label], {**_values(run.metrics, "tuned"), **{
            k: {"mean": v, "ci": None} for k, v in run.training.items()}}, run.learning_rate))
    base_rows = list(bases.values())
    labels = [r.label for r in base_rows]
    for row in base_rows:  # one model evaluated with different settings: name the runs it belongs to
        if labels.count(row.label) > 1:
            row.label += f" [{', '.join(row.runs)}]"
    rows = base_rows + tuned
    found = {c for row in rows for c in row.values}
    training = [c for c in TRAINING_COLUMNS if c in found]
    training += sorted({c for run in runs for c in run.training} - set(training))
    columns = sorted(c for c in found if "." not in c and c not in training)
    columns += sorted(c for c in found if "." in c) + training
    notes = []
    if len({r.eval_settings for r in runs if r.metrics}) > 1:
        notes.append("the runs' eval settings differ (e.g. eval.limit, max_new_tokens): same test file, "
                     "but not necessarily the same questions or generation length")
    return Comparison(runs, columns, rows, notes, show_rates=len({r.learning_rate for r in tuned}) > 1)


def cell(row: Row, column: str) -> str:
    entry = row.values.get(column)
    if entry is None:
        return "-"
    return with_ci(entry["mean"], entry.get("ci"))


def rate_text(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:g}"


def text_rows(comparison: Comparison) -> tuple[list[str], list[list[str]]]:
    rates = ["learning_rate"] if comparison.show_rates else []
    header = ["row", "kind", "method", *rates, *comparison.columns]
    return header, [[r.label, r.kind, r.method, *([rate_text(r.learning_rate)] if rates else []),
                     *(cell(r, c) for c in comparison.columns)] for r in comparison.rows]


def number_rows(comparison: Comparison) -> tuple[list[str], list[list]]:
    """One numeric column per mean and per interval bound (for CSV/XLSX and further analysis)."""
    header = ["row", "kind", "model", "method", "runs", "learning_rate"]
    for column in comparison.columns:
        header += [column, f"{column}_lo", f"{column}_hi"]
    rows = []
    for row in comparison.rows:
        cells = [row.label, row.kind, row.model, row.method, "; ".join(row.runs), row.learning_rate]
        for column in comparison.columns:
            entry = row.values.get(column) or {}
            ci = entry.get("ci") or [None, None]
            cells += [entry.get("mean"), ci[0], ci[1]]
        rows.append(cells)
    return header, rows


def best_row(comparison: Comparison, metric: str, minimize: bool) -> Row | None:
    scored = [r for r in comparison.rows if r.kind == "tuned" and metric in r.values]
    if not scored:
        return None
    pick = min if minimize else max
    return pick(scored, key=lambda r: r.values[metric]["mean"])


# ---------------------------------------------------------------- output


def print_table(comparison: Comparison, title: str = "Comparison") -> None:
    """Metrics as rows and models as columns: a terminal fits five models far better than twelve metrics.

    Each cell is the mean over its interval; the files (CSV, XLSX, Markdown) keep one row per model.
    """
    table = Table(title=title, show_lines=True)
    table.add_column("metric", no_wrap=True)
    for row in comparison.rows:
        if row.kind == "base":
            name = row.label.replace("base ", "base\n", 1)
        else:
            name = row.label if row.method in row.label else f"{row.label}\n({row.method})"
            if comparison.show_rates:
                name += f"\nlr {rate_text(row.learning_rate)}"
        table.add_column(name, justify="right", overflow="fold", style="dim" if row.kind == "base" else None)
    for column in comparison.columns:
        table.add_row(column, *(cell(row, column).replace(" [", "\n[", 1) for row in comparison.rows))
    console.print(table)
    missing = [r.label for r in comparison.runs if r.metrics is None]
    if missing:
        console.print(f"[yellow]no eval/metrics.json (training figures only): {', '.join(missing)}[/yellow]")
    for note in comparison.notes:
        console.print(f"[yellow]note: {note}[/yellow]")
    if comparison.fairness:
        fair.print_tables(comparison.fairness, comparison.columns, comparison.show_rates)


def qtype_rows(comparison: Comparison) -> tuple[list[str], list[list]]:
    """Each row's mean of the paired tests' score per question type (`qtype`); empty unless the runs hold two or more types."""
    metric = comparison.fairness.metric if comparison.fairness else None
    if metric is None:
        return [], []
    runs = {r.label: r for r in comparison.runs}
    means = {row.label: qtype_means(per_item_rows(runs[row.runs[0]].run_dir), row.kind, metric) for row in comparison.rows}
    qtypes = sorted({q for found in means.values() for q in found})
    if len(qtypes) < 2:
        return [], []
    header = ["row", "kind", *(f"{metric} {q}" for q in qtypes)]
    return header, [[row.label, row.kind, *(means[row.label].get(q, (None, 0))[0] for q in qtypes)] for row in comparison.rows]


def _markdown(comparison: Comparison) -> str:
    header, rows = text_rows(comparison)
    lines = ["# Comparison", "", f"Test set sha256: `{comparison.runs[0].test_sha}`", "", markdown_table(header, rows)]
    lines += ["", "Values are means with 95% intervals in brackets where the evaluation gave them."]
    lines += [f"Note: {note}." for note in comparison.notes] + [""]
    if comparison.fairness:
        lines += fair.markdown_lines(comparison.fairness, comparison.columns, comparison.show_rates)
    header, rows = qtype_rows(comparison)
    if rows:
        lines += ["", "## By question type", "", f"Mean {comparison.fairness.metric} per question type (comparison_by_qtype.csv).",
                  "", markdown_table(header, [[*r[:2], *(number(v) for v in r[2:])] for r in rows])]
    lines += ["", "Runs:", ""]
    lines += [f"- {r.label}: `{r.run_dir}`" for r in comparison.runs]
    return "\n".join(lines) + "\n"


def write(comparison: Comparison, out: Path) -> list[Path]:
    import pandas as pd

    from .compare_plots import plot_columns

    out.mkdir(parents=True, exist_ok=True)
    header, rows = number_rows(comparison)
    frame = pd.DataFrame(rows, columns=header)
    frame.to_csv(out / "comparison.csv", index=False)
    frame.to_excel(out / "comparison.xlsx", index=False, sheet_name="comparison")
    (out / "comparison.md").write_text(_markdown(comparison))
    (out / "comparison.json").write_text(json.dumps({
        "runs": [{"label": r.label, "run_dir": str(r.run_dir), "model": r.model, "method": r.method, "test_sha256": r.test_sha}
                 for r in comparison.runs],
        "columns": comparison.columns,
        "rows": [{"label": r.label, "kind": r.kind, "model": r.model, "method": r.method, "runs": r.runs,
                  "learning_rate": r.learning_rate, "values": r.values}
                 for r in comparison.rows],
        **({"fairness": fair.to_json(comparison.fairness)} if comparison.fairness else {}),
    }, indent=2))
    written = [out / name for name in ("comparison.csv", "comparison.xlsx", "comparison.md", "comparison.json")]
    found = comparison.fairness
    if found and found.seed_rows:
        header, rows = fair.seed_numbers(found, comparison.columns)
        pd.DataFrame(rows, columns=header).to_csv(out / "across_seeds.csv", index=False)
        written.append(out / "across_seeds.csv")
    if found and found.tests:
        pd.DataFrame(fair.to_json(found)["paired_tests"]).to_csv(out / "paired_tests.csv", index=False)
        written.append(out / "paired_tests.csv")
    header, rows = qtype_rows(comparison)
    if rows:
        pd.DataFrame(rows, columns=header).to_csv(out / "comparison_by_qtype.csv", index=False)
        written.append(out / "comparison_by_qtype.csv")
    return written + plot_columns(comparison, out)


def compare_runs(run_dirs: list[Path], out: Path, labels: dict[Path, str] | None = None, title: str = "Comparison",
                 groups: dict[Path, str] | None = None, metric: str | None = None, show_rates: bool = False) -> Comparison:
    """Read, check, print and write the comparison of run_dirs into out; returns it with the files written.

    groups: each run's point (a sweep's seeds of one point share it); default: the label without `_seed-<n>`.
    metric: the per-question score of the paired tests between points; default: the first ranking score found.
    show_rates: name each row's learning rate even when all are equal (a learning-rate search chose them).
    """
    for run_dir in run_dirs:
        if not run_dir.is_dir():
            raise MedtuneError(f"{run_dir}: no such run directory")
    comparison = build([read_run(d, (labels or {}).get(d)) for d in run_dirs])
    comparison.show_rates = comparison.show_rates or show_rates
    by_label = {r.label: (groups or {}).get(r.run_dir) or fair.group_of(r.label) for r in comparison.runs}
    comparison.fairness = fair.analyse(comparison, by_label, metric)
    print_table(comparison, title)
    comparison.files = write(comparison, out)
    tables = [p.name for p in comparison.files if p.suffix != ".png"]
    console.print(f"comparison written to {out}/ ({', '.join(tables)}, {len(comparison.files) - len(tables)} plot(s))")
    return comparison


def default_out(runs_dir: Path = Path("runs")) -> Path:
    return runs_dir / f"compare-{datetime.now().strftime('%Y%m%d-%H%M%S')}"

