"""Error analysis of one run's answers: length against the reference, the worst answers, scores per question type.

Reads the per-item rows the eval stage wrote (eval/per_item.jsonl). Lengths are counted in words (whitespace
split), which needs no tokenizer and reads the same for every model.
"""
from __future__ import annotations

import statistics
from pathlib import Path

from ..core.fmt import markdown_table, number, with_ci
from ..core.plots import pyplot, save
from ..evaluate.stats import mean_ci

TEST_SET = "test"
NOT_SCORES = ("answer_tokens", "answer_tokens_cut")
"""Numbers in a held-out row that count tokens rather than score the answer."""
RANKING = ("rougeL", "bertscore_f1", "rouge1", "judge", "bleu")
"""The per-item score that ranks answers (worst answers, wrong below its median): the first a run has."""
WORST_N = 5
CELL_CHARS = 160


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def held_out_rows(items: list[dict]) -> list[dict]:
    return [row for row in items if row.get("set", TEST_SET) == TEST_SET and "suite" not in row]


def score_names(rows: list[dict]) -> list[str]:
    """Every per-item score the held-out rows carry (judge criteria included), in a stable order."""
    found = {k for row in rows for k, v in row.items() if _is_number(v) and k not in NOT_SCORES}
    return [n for n in RANKING if n in found] + sorted(found - set(RANKING))


def ranking_metric(rows: list[dict]) -> str | None:
    found = score_names(rows)
    return next((name for name in RANKING if name in found), None)


def words(text) -> int:
    return len(str(text or "").split())


def _models(rows: list[dict]) -> list[str]:
    seen = list(dict.fromkeys(row.get("model", "model") for row in rows))
    return [m for m in ("base", "tuned") if m in seen] + [m for m in seen if m not in ("base", "tuned")]


# ---------------------------------------------------------------- length error


def length_errors(items: list[dict]) -> list[dict]:
    """One entry per answer: {set, model, id, error = answer words - reference words, wrong}.

    Held-out answers are wrong when their ranking score lies below that model's median (unscored ones are left
    out); benchmark answers (suites, generated) are wrong when the letter or yes/no read from them is not the gold one.
    """
    entries = []
    rows = held_out_rows(items)
    metric = ranking_metric(rows)
    if metric is not None:
        for model in _models(rows):
            scored = [r for r in rows if r.get("model") == model and _is_number(r.get(metric))]
            if not scored:
                continue
            median = statistics.median(r[metric] for r in scored)
            entries += [{"set": TEST_SET, "model": model, "id": r.get("id"), "error": words(r.get("output")) - words(r.get("reference")),
                         "wrong": r[metric] < median} for r in scored]
    for row in items:
        if "suite" in row and "output" in row and isinstance(row.get("generation_correct"), bool):
            entries.append({"set": "suite", "model": row.get("model", "model"), "id": f"{row.get('task')}/{row.get('id')}",
                            "error": words(row.get("output")) - words(row.get("gold")), "wrong": not row["generation_correct"]})
    return entries


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _words(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}" if value else "0.0"


def length_summary(entries: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Per item set and model: how long answers run against their references, the wrong ones apart."""
    header = ["answers", "model", "n", "wrong", "mean length error", "median |length error|",
              "mean error, wrong", "mean error, right"]
    rows = []
    for set_name in ("test", "suite"):
        part = [e for e in entries if e["set"] == set_name]
        for model in _models(part):
            mine = [e for e in part if e["model"] == model]
            errors = [e["error"] for e in mine]
            rows.append(["held-out" if set_name == TEST_SET else "suites", model, str(len(mine)),
                         str(sum(e["wrong"] for e in mine)), _words(_mean(errors)),
                         f"{statistics.median(abs(x) for x in errors):.1f}",
                         _words(_mean([e["error"] for e in mine if e["wrong"]])),
                         _words(_mean([e["error"] for e in mine if not e["wrong"]]))])
    return header, rows


def plot_length_errors(entries: list[dict], metric: str | None, path: Path) -> Path | None:
    """Histogram of length errors: a row per item set, a panel per model on shared bins, wrong stacked on right."""
    sets = [s for s in ("test", "suite") if any(e["set"] == s for e in entries)]
    if not sets:
        return None
    models = _models(entries)
    plt = pyplot()
    fig, axes = plt.subplots(len(sets), len(models), figsize=(4.4 * len(models), 3.2 * len(sets)), squeeze=False)
    for row, set_name in enumerate(sets):
        errors = [e["error"] for e in entries if e["set"] == set_name]
        low, high = min(errors), max(errors)
        step = max(1, (high - low + 1) // 25)  # about 25 bars whatever the spread, one word wide at least
        bins = [low - 0.5 + step * i for i in range((high - low) // step + 2)]  # integers sit mid-bar
        rule = f"{metric} below median" if set_name == TEST_SET else "incorrect answer"
        for col, model in enumerate(models):
            ax = axes[row][col]
            mine = [e for e in entries if e["set"] == set_name and e["model"] == model]
            ax.hist([[e["error"] for e in mine if not e["wrong"]], [e["error"] for e in mine if e["wrong"]]],
                    bins=bins, stacked=True, color=["#4c9f70", "#d9534f"], label=["right", "wrong"])
            ax.axvline(0, color="black", linewidth=0.8)
            ax.yaxis.get_major_locator().set_params(integer=True)
            ax.set_title(f"{model}, {'held-out' if set_name == TEST_SET else 'suites'} (wrong: {rule})", fontsize=9)
            ax.set_xlabel("answer words - reference words")
            ax.set_ylabel("answers")
            ax.legend(fontsize=8)
    return save(fig, path, dpi=110)


# ---------------------------------------------------------------- worst answers


def _cell(text) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 3] + "..."


def worst_answers(items: list[dict], n: int = WORST_N) -> tuple[str | None, list[dict]]:
    """(ranking metric, the n lowest-scoring held-out answers of each model, lowest first, with every score they have)."""
    rows = held_out_rows(items)
    metric = ranking_metric(rows)
    if metric is None:
        return None, []
    worst = []
    names = score_names(rows)
    for model in _models(rows):
        scored = sorted((r for r in rows if r.get("model") == model and _is_number(r.get(metric))), key=lambda r: r[metric])
        worst += [{"model": model, "rank": i, "id": r.get("id"), "qtype": r.get("qtype"), "question": r.get("question"),
                   "reference": r.get("reference"), "answer": r.get("output"), "score": r[metric],
                   **{name: r.get(name) for name in names}} for i, r in enumerate(scored[:n], 1)]
    return metric, worst


def worst_markdown(metric: str, worst: list[dict], model: str) -> tuple[list[str], list[list[str]]]:
    header = ["#", "id", "qtype", "question", "reference", "answer", metric]
    return header, [[str(w["rank"]), str(w["id"]), str(w["qtype"] or "-"), _cell(w["question"]), _cell(w["reference"]),
                     _cell(w["answer"]), number(w["score"])] for w in worst if w["model"] == model]


# ---------------------------------------------------------------- by question type


def by_qtype(items: list[dict], *, samples: int = 1000, seed: int = 0) -> list[dict]:
    """Per (qtype, model): n and each score's {mean, ci}; rows without a qtype are grouped as "-"."""
    rows = held_out_rows(items)
    names = score_names(rows)
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((str(row.get("qtype") or "-"), row.get("model", "model")), []).append(row)
    order = _models(rows)
    result = []
    for (qtype, model), members in sorted(groups.items(), key=lambda kv: (kv[0][0], order.index(kv[0][1]))):
        scores = {}
        for name in names:
            values = [r[name] for r in members if _is_number(r.get(name))]
            if values:
                scores[name] = mean_ci(values, samples=samples, seed=seed)
        result.append({"qtype": qtype, "model": model, "n": len(members), "scores": scores})
    return result


def qtype_table(groups: list[dict], limit: int | None = None) -> tuple[list[str], list[list[str]]]:
    """Text cells, one column per score (the first `limit` of them when given)."""
    names = list(dict.fromkeys(n for g in groups for n in g["scores"]))[:limit]
    header = ["qtype", "model", "n", *names]
    return header, [[g["qtype"], g["model"], str(g["n"]),
                     *(with_ci(g["scores"][n]["mean"], g["scores"][n]["ci"]) if n in g["scores"] else "-" for n in names)]
                    for g in groups]


def qtype_frame_rows(groups: list[dict]) -> tuple[list[str], list[list]]:
    """Numeric columns (mean, lo, hi per score) for by_qtype.csv."""
    names = list(dict.fromkeys(n for g in groups for n in g["scores"]))
    header = ["qtype", "model", "n"] + [c for n in names for c in (n, f"{n}_lo", f"{n}_hi")]
    rows = []
    for g in groups:
        cells = [g["qtype"], g["model"], g["n"]]
        for n in names:
            entry = g["scores"].get(n) or {}
            ci = entry.get("ci") or [None, None]
            cells += [entry.get("mean"), ci[0], ci[1]]
        rows.append(cells)
    return header, rows


# ---------------------------------------------------------------- the report's section


def write_section(items: list[dict], out: Path, *, samples: int, seed: int) -> tuple[list[str], list[Path], list[dict]]:
    """Write error_length.png, worst_answers.csv and by_qtype.csv into out; return (report.md lines, files, qtype groups)."""
    import pandas as pd

    lines, files = ["## Error analysis", ""], []
    entries = length_errors(items)
    metric = ranking_metric(held_out_rows(items))
    if entries:
        header, rows = length_summary(entries)
        lines += ["Answer length against the reference, in words (positive: longer than the reference). Wrong: "
                  f"held-out answers whose {metric} lies below their model's median; benchmark answers that are incorrect.",
                  "", markdown_table(header, rows), ""]
        plot = plot_length_errors(entries, metric, out / "error_length.png")
        if plot:
            files.append(plot)
            lines += [f"![error length]({plot.name})", ""]
    metric, worst = worst_answers(items)
    if worst:
        pd.DataFrame(worst).to_csv(out / "worst_answers.csv", index=False)
        files.append(out / "worst_answers.csv")
        lines += [f"### Worst answers by {metric}", "",
                  f"The {WORST_N} lowest-scoring held-out answers of each model (all scores in worst_answers.csv).", ""]
        for model in dict.fromkeys(w["model"] for w in worst):
            lines += [f"**{model}**", "", markdown_table(*worst_markdown(metric, worst, model)), ""]
    groups = by_qtype(items, samples=samples, seed=seed)
    if groups:
        header, rows = qtype_frame_rows(groups)
        pd.DataFrame(rows, columns=header).to_csv(out / "by_qtype.csv", index=False)
        files.append(out / "by_qtype.csv")
        lines += ["### Scores by question type", "", markdown_table(*qtype_table(groups)), ""]
    return (lines if len(lines) > 2 else []), files, groups


def qtype_means(items: list[dict], model: str, metric: str) -> dict[str, tuple[float, int]]:
    """qtype -> (mean of one held-out score, answers) for one model: the compare table's per-type view."""
    groups: dict[str, list[float]] = {}
    for row in held_out_rows(items):
        if row.get("model") == model and _is_number(row.get(metric)):
            groups.setdefault(str(row.get("qtype") or "-"), []).append(row[metric])
    return {qtype: (sum(v) / len(v), len(v)) for qtype, v in sorted(groups.items())}
