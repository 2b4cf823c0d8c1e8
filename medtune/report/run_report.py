"""The report stage: eval/metrics.json + training history -> console tables, report.md, CSV/XLSX, PNG plots.

It reads only what the evaluate and train stages wrote, so `launch.py report RUN_DIR` can redo it alone.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.table import Table

from ..core.console import console
from ..core.errors import MedtuneError
from ..core.fmt import markdown_table, number, signed_with_ci, with_ci
from ..core.plots import pyplot, save
from ..core.rundir import RunDir, loss_summary
from . import error_analysis

MODEL_ORDER = ("base", "tuned")


# ---------------------------------------------------------------- reading


def load_metrics(run_dir: Path) -> dict:
    path = RunDir(run_dir).metrics
    if not path.is_file():
        raise MedtuneError(f"{path} is missing: run the eval stage first (python launch.py eval {run_dir})")
    return json.loads(path.read_text())


def _scalar_metrics(model_metrics: dict) -> dict[str, dict]:
    """Metric name -> {"mean": x, "ci": [lo, hi]?} for every aggregate a model has."""
    found = {}
    for name, value in model_metrics.items():
        if isinstance(value, dict) and isinstance(value.get("mean"), (int, float)):
            found[name] = value
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            found[name] = {"mean": value}
    return found


def per_item_rows(run_dir: Path) -> list[dict]:
    path = RunDir(run_dir).per_item
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------- tables


def metric_rows(metrics: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows (base, tuned, delta) of the open-ended metrics table, as text cells."""
    models = {m: _scalar_metrics(v) for m, v in metrics.get("models", {}).items()}
    names = sorted({n for per in models.values() for n in per})
    header = ["model", *names]
    rows = []
    for model in [m for m in MODEL_ORDER if m in models] + [m for m in models if m not in MODEL_ORDER]:
        cells = [model]
        for name in names:
            entry = models[model].get(name)
            if entry is None:
                cells.append("-")
                continue
            cells.append(with_ci(entry["mean"], entry.get("ci")))
        rows.append(cells)
    if "base" in models and "tuned" in models:
        paired = metrics.get("deltas", {})  # tuned minus base per question, with its own bootstrap interval
        delta = ["tuned - base"]
        for name in names:
            b, t = models["base"].get(name), models["tuned"].get(name)
            if name in paired and paired[name].get("ci"):
                delta.append(signed_with_ci(paired[name]["mean"], paired[name]["ci"]))
            else:
                delta.append(signed_with_ci(t["mean"] - b["mean"]) if b and t else "-")
        rows.append(delta)
    return header, rows


def suite_rows(metrics: dict) -> tuple[list[str], list[list[str]]]:
    header = ["suite", "model", "accuracy (log-likelihood)", "accuracy (generated)", "majority baseline", "questions"]
    rows = []
    for suite, per_model in sorted(metrics.get("suites", {}).items()):
        for model in [m for m in MODEL_ORDER if m in per_model]:
            entry = per_model[model]
            rows.append([suite, model, with_ci(entry.get("acc"), entry.get("acc_ci")),
                         with_ci(entry.get("gen_acc"), entry.get("gen_acc_ci")), number(entry.get("baseline")),
                         entry.get("sample") or str(entry.get("n", "-"))])  # sample: how a limited run drew them
    return header, rows


def long_rows_note(metrics: dict) -> str | None:
    """A sentence on the held-out rows that answer loss/perplexity cut or skipped at eval.max_test_tokens; None if none."""
    long_rows = metrics.get("long_rows") or {}
    counts = {m: c for m, c in long_rows.items() if isinstance(c, dict) and (c.get("truncated") or c.get("skipped"))}
    if not counts:
        return None
    per_model = "; ".join(f"{m}: {c.get('truncated', 0)} cut to fit, {c.get('skipped', 0)} skipped" for m, c in counts.items())
    return (f"Loss and perplexity score at most eval.max_test_tokens = {long_rows.get('max_test_tokens')} tokens per "
            f"held-out row (prompt + reference answer); longer rows were cut, rows whose prompt alone fills it skipped "
            f"({per_model}).")


def _rich(title: str, header: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title)
    for col in header:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


# ---------------------------------------------------------------- plots


def _plot_loss(history: list[dict], path: Path, title: str | None = None) -> Path | None:
    train = [(h.get("step", i + 1), h["loss"]) for i, h in enumerate(history) if "loss" in h]
    evals = [(h.get("step"), h["eval_loss"]) for h in history if "eval_loss" in h and h.get("step") is not None]
    if not train:
        return None
    fig, ax = pyplot().subplots(figsize=(6, 3.5))
    if title:
        ax.set_title(title)
    ax.plot(*zip(*train), label="train loss")
    if evals:
        ax.plot(*zip(*evals), "o-", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    return save(fig, path, dpi=120)


def _plot_bars(metrics: dict, path: Path) -> Path | None:
    models = {m: _scalar_metrics(v) for m, v in metrics.get("models", {}).items() if m in MODEL_ORDER}
    # Bars compare scores on a 0-1 scale; perplexity and loss have their own units and stay in the tables.
    names = sorted(n for n in {n for per in models.values() for n in per}
                   if all(0 <= per[n]["mean"] <= 1 for per in models.values() if n in per))
    if not names or not models:
        return None
    fig, ax = pyplot().subplots(figsize=(max(5, 1.2 * len(names)), 3.5))
    width = 0.8 / len(models)
    for i, (model, per) in enumerate(models.items()):
        xs = [j + i * width for j in range(len(names))]
        means = [per.get(n, {}).get("mean", 0) for n in names]
        errs = [[m - per[n]["ci"][0] if n in per and per[n].get("ci") else 0 for n, m in zip(names, means)],
                [per[n]["ci"][1] - m if n in per and per[n].get("ci") else 0 for n, m in zip(names, means)]]
        ax.bar(xs, means, width, yerr=errs, capsize=3, label=model)
    ax.set_xticks([j + width * (len(models) - 1) / 2 for j in range(len(names))], names, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.legend()
    ax.set_title("base vs tuned (95% bootstrap intervals)")
    return save(fig, path, dpi=120)


def _plot_confusion(suite: str, model: str, confusion: dict, path: Path) -> Path:
    labels, matrix = confusion["labels"], confusion["matrix"]
    fig, ax = pyplot().subplots(figsize=(1.2 * len(labels) + 2, 1.2 * len(labels) + 1.5))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            ax.text(j, i, str(count), ha="center", va="center")
    ax.set_title(f"{suite} ({model})")
    return save(fig, path, dpi=110)


# ---------------------------------------------------------------- the stage


def _answers_table(rows: list[dict]) -> tuple[list[str], list[list[Any]]]:
    """Per-item rows pivoted to one line per (set, id) with each model's answer and scores side by side."""
    merged: dict[tuple, dict] = {}
    for row in rows:
        key = (row.get("set", "test"), row.get("id"))
        entry = merged.setdefault(key, {"set": key[0], "id": key[1]})
        model = row.get("model", "model")
        for field, value in row.items():
            if field in ("set", "id", "model"):
                continue
            if field in ("question", "reference"):
                entry.setdefault(field, value)
            else:
                entry[f"{model}_{field}"] = value
    columns: list[str] = []
    for entry in merged.values():
        columns += [c for c in entry if c not in columns]
    return columns, [[entry.get(c) for c in columns] for entry in merged.values()]


def build_report(run_dir: Path, show: bool = True) -> list[Path]:
    """Write report/ for a run and print its tables; returns the files written."""
    metrics = load_metrics(run_dir)
    out = RunDir(run_dir).report
    out.mkdir(exist_ok=True)
    run = RunDir(run_dir)
    history = run.training_history()
    # A recipe's later stages (`stages:`, e.g. KnowTuning's DPO) train on from the first: each its own loss curve,
    # in its own units (a preference loss is not an SFT loss).
    later = {name: run.training_history(name) for name in (run.stage_names() if run.resolved.is_file() else [])}
    written = []

    m_header, m_rows = metric_rows(metrics)
    s_header, s_rows = suite_rows(metrics)
    figures = {None: loss_summary(history), **{name: loss_summary(h) for name, h in later.items()}}
    training = {**figures[None], "history": history}
    if later:
        training["stages"] = {name: {**figures[name], "history": h} for name, h in later.items()}
    combined = {**metrics, "training": training}
    (out / "metrics.json").write_text(json.dumps(combined, indent=2, default=str))
    written.append(out / "metrics.json")

    curves = [_plot_loss(history, out / "loss_curve.png")]
    curves += [_plot_loss(h, out / f"loss_curve_{name}.png", title=f"stage {name}") for name, h in later.items()]
    plots = [p for p in (*curves, _plot_bars(metrics, out / "metrics_base_vs_tuned.png")) if p]
    for suite, per_model in metrics.get("suites", {}).items():
        for model, entry in per_model.items():
            if isinstance(entry, dict) and entry.get("confusion"):
                plots.append(_plot_confusion(suite, model, entry["confusion"], out / f"confusion_{suite}_{model}.png"))
    written += plots

    items = per_item_rows(run_dir)
    if items:
        import pandas as pd

        columns, rows = _answers_table(items)
        frame = pd.DataFrame(rows, columns=columns)
        frame.to_csv(out / "answers.csv", index=False)
        frame.to_excel(out / "answers.xlsx", index=False)
        written += [out / "answers.csv", out / "answers.xlsx"]
    boot = (metrics.get("config") or {}).get("eval") or {}
    analysis, analysis_files, qtypes = error_analysis.write_section(
        items, out, samples=boot.get("bootstrap_samples", 1000), seed=boot.get("seed", 0))
    written += analysis_files

    lines = [f"# Report: {run_dir.parent.name} / {run_dir.name}", ""]
    for name, f in figures.items():
        if f["steps_logged"]:
            what = f"Stage {name}" if name else ("Training (stage 1)" if later else "Training")
            lines += [f"{what}: {f['steps_logged']} logged steps, loss {f['first_loss']:.4f} -> {f['last_loss']:.4f}.", ""]
    lines += ["## Held-out questions: base vs tuned", "", markdown_table(m_header, m_rows), ""]
    note = long_rows_note(metrics)
    if note:
        lines += [note, ""]
    if s_rows:
        lines += ["## Benchmark suites", "", markdown_table(s_header, s_rows), ""]
    if plots:
        lines += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots] + [""]
    lines += analysis
    (out / "report.md").write_text("\n".join(lines))
    written.append(out / "report.md")

    if show:
        # Metrics as rows, models as columns: it stays readable in an 80-column terminal.
        transposed = [[name, *(row[i] for row in m_rows)] for i, name in enumerate(m_header) if i > 0]
        console.print(_rich("Held-out questions: base vs tuned (mean [95% CI])", ["metric", *(r[0] for r in m_rows)], transposed))
        if note:
            console.print(note)
        if s_rows:
            console.print(_rich("Benchmark suites", s_header, s_rows))
        if len({g["qtype"] for g in qtypes}) > 1:  # the first three scores fit a terminal; by_qtype.csv has them all
            console.print(_rich("Held-out questions by question type (mean [95% CI])", *error_analysis.qtype_table(qtypes, 3)))
        console.print(f"report: {out / 'report.md'}")
    return written
