"""Error analysis in the run report (length error, worst answers, scores by question type, BERTScore P/R/F1) and
generic judge criteria in the report and the compare table, all from a synthetic eval/ folder (no model)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from medtune.cli import main
from medtune.report import error_analysis
from medtune.report.run_report import build_report

PNG = b"\x89PNG\r\n\x1a\n"
TEST_SET = '{"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]}\n'

# (id, qtype, reference, base answer, base rougeL, tuned answer, tuned rougeL)
ITEMS = [
    ("q1", "symptoms", "fever and cough", "fever", 0.5, "fever and cough", 1.0),
    ("q2", "symptoms", "joint pain and swelling at night", "pain", 0.2, "joint pain and swelling", 0.8),
    ("q3", "treatment", "rest", "rest and drink water and sleep well", 0.25, "rest", 1.0),
    ("q4", "treatment", "antibiotics for ten days", "surgery", 0.0, "antibiotics for a week", 0.6),
]
JUDGE = {"judge": 0.6, "judge_completeness": 0.5, "judge_factuality": 0.7, "judge_logicality": 0.8}


def _rows() -> list[dict]:
    rows = []
    for model in ("base", "tuned"):
        for i, (item_id, qtype, ref, base_out, base_score, tuned_out, tuned_score) in enumerate(ITEMS):
            out, score = (base_out, base_score) if model == "base" else (tuned_out, tuned_score)
            rows.append({"set": "test", "model": model, "id": item_id, "qtype": qtype, "question": f"question {item_id} | why?",
                         "reference": ref, "output": out, "stopped_at_eos": True, "rougeL": score,
                         "bertscore_precision": score / 2, "bertscore_recall": score / 4, "bertscore_f1": score / 3,
                         "answer_tokens": 7, "judge_completeness": score, "judge_reason": "fine"})
    # A yes/no benchmark: gold "yes"; base answers wordily and wrong once, tuned answers in one word.
    for model, answers in (("base", [("No, it does not help.", False), ("Yes indeed", True)]),
                           ("tuned", [("yes", True), ("yes", True)])):
        rows += [{"model": model, "suite": "pubmedqa", "set": "suite", "task": "pubmedqa", "id": str(i), "gold": "yes",
                  "output": text, "generation_correct": correct, "loglik_correct": True} for i, (text, correct) in enumerate(answers)]
    return rows


def _metrics() -> dict:
    def model(scores):
        return {"rougeL": {"mean": sum(scores) / 4, "ci": [0.0, 1.0], "n": 4},
                "bertscore_precision": {"mean": 0.41, "ci": [0.3, 0.5], "n": 4},
                "bertscore_recall": {"mean": 0.22, "ci": [0.1, 0.3], "n": 4},
                "bertscore_f1": {"mean": 0.29, "ci": [0.2, 0.4], "n": 4},
                **{name: {"mean": value, "ci": [value - 0.1, value + 0.1], "n": 4} for name, value in JUDGE.items()}}

    return {"models": {"base": model([i[4] for i in ITEMS]), "tuned": model([i[6] for i in ITEMS])},
            "deltas": {}, "suites": {}, "config": {"eval": {"bootstrap_samples": 200, "seed": 0}}}


def fake_eval_run(root: Path, name: str = "ea") -> Path:
    run = root / name / "20260101-000000"
    (run / "eval").mkdir(parents=True)
    (run / "data").mkdir()
    (run / "data" / "test.jsonl").write_text(TEST_SET)
    (run / "recipe.resolved.yaml").write_text(yaml.safe_dump({"name": name, "model": "smollm2-135m-instruct",
                                                               "method": {"name": "lora"}, "eval": {"limit": 4}}))
    (run / "eval" / "metrics.json").write_text(json.dumps(_metrics()))
    (run / "eval" / "per_item.jsonl").write_text("\n".join(json.dumps(r) for r in _rows()) + "\n")
    return run


def test_length_errors_count_words_and_mark_wrong_answers():
    entries = {(e["set"], e["model"], e["id"]): (e["error"], e["wrong"]) for e in error_analysis.length_errors(_rows())}
    # base rougeL 0.5, 0.2, 0.25, 0.0: median 0.225, so q2 and q4 are wrong; lengths 1-3, 1-6, 7-1, 1-4 words.
    assert [entries[("test", "base", q)] for q in ("q1", "q2", "q3", "q4")] == [(-2, False), (-5, True), (6, False), (-3, True)]
    assert [entries[("test", "tuned", q)] for q in ("q1", "q2", "q3", "q4")] == [(0, False), (-2, True), (0, False), (0, True)]
    # Benchmark answers: wrong when incorrect, whatever the score; length against the gold label's one word.
    assert entries[("suite", "base", "pubmedqa/0")] == (4, True) and entries[("suite", "base", "pubmedqa/1")] == (1, False)
    assert entries[("suite", "tuned", "pubmedqa/0")] == (0, False)
    header, rows = error_analysis.length_summary(error_analysis.length_errors(_rows()))
    base = dict(zip(header, rows[0]))
    assert base["answers"] == "held-out" and base["n"] == "4" and base["wrong"] == "2"
    assert base["mean error, wrong"] == "-4.0" and base["mean error, right"] == "+2.0" and base["median |length error|"] == "4.0"


def test_worst_answers_and_qtype_scores():
    metric, worst = error_analysis.worst_answers(_rows(), n=2)
    assert metric == "rougeL"  # the first ranking score the rows carry
    assert [(w["model"], w["id"], w["score"]) for w in worst] == [("base", "q4", 0.0), ("base", "q2", 0.2),
                                                                  ("tuned", "q4", 0.6), ("tuned", "q2", 0.8)]
    assert worst[0]["question"] == "question q4 | why?" and worst[0]["answer"] == "surgery"
    assert worst[0]["judge_completeness"] == 0.0 and "answer_tokens" not in worst[0]  # a count is not a score

    groups = {(g["qtype"], g["model"]): g for g in error_analysis.by_qtype(_rows(), samples=200, seed=0)}
    assert set(groups) == {(q, m) for q in ("symptoms", "treatment") for m in ("base", "tuned")}
    assert groups[("symptoms", "base")]["n"] == 2
    assert groups[("symptoms", "base")]["scores"]["rougeL"]["mean"] == pytest.approx(0.35)
    assert groups[("treatment", "tuned")]["scores"]["rougeL"]["mean"] == pytest.approx(0.8)
    assert groups[("treatment", "tuned")]["scores"]["judge_completeness"]["mean"] == pytest.approx(0.8)
    assert "answer_tokens" not in groups[("treatment", "tuned")]["scores"]


def test_report_holds_the_error_analysis_files_and_sections(tmp_path: Path):
    run = fake_eval_run(tmp_path)
    written = {p.name for p in build_report(run, show=False)}
    assert {"error_length.png", "worst_answers.csv", "by_qtype.csv", "report.md"} <= written
    assert (run / "report" / "error_length.png").read_bytes()[:8] == PNG

    worst = pd.read_csv(run / "report" / "worst_answers.csv")
    assert list(worst["id"][:2]) == ["q4", "q2"] and list(worst["model"].unique()) == ["base", "tuned"]
    qtypes = pd.read_csv(run / "report" / "by_qtype.csv")
    row = qtypes[(qtypes["qtype"] == "symptoms") & (qtypes["model"] == "tuned")].iloc[0]
    assert row["rougeL"] == pytest.approx(0.9) and row["n"] == 2 and row["rougeL_lo"] <= 0.9 <= row["rougeL_hi"]

    report = (run / "report" / "report.md").read_text()
    assert "## Error analysis" in report and "![error length](error_length.png)" in report
    assert "### Worst answers by rougeL" in report and "question q4 \\| why?" in report  # a | in a cell is escaped
    assert "| treatment | tuned | 2 | 0.8000 [" in report
    # BERTScore precision, recall and F1 side by side, and every judge criterion, each a column of the main table.
    header = next(line for line in report.splitlines() if line.startswith("| model |"))
    for name in ("bertscore_precision", "bertscore_recall", "bertscore_f1", *JUDGE):
        assert f" {name} " in header
    assert "0.4100 [0.3000, 0.5000]" in report and "0.2200 [0.1000, 0.3000]" in report


def test_compare_table_shows_bertscore_parts_and_every_judge_criterion(tmp_path: Path):
    runs = [fake_eval_run(tmp_path, "ea-a"), fake_eval_run(tmp_path, "ea-b")]
    out = tmp_path / "cmp"
    assert main(["compare", *map(str, runs), "--out", str(out)]) == 0
    table = pd.read_csv(out / "comparison.csv")
    for name in ("bertscore_precision", "bertscore_recall", "bertscore_f1", *JUDGE):
        assert name in table.columns and f"{name}_lo" in table.columns
    tuned = table[table["kind"] == "tuned"].iloc[0]
    assert tuned["judge_logicality"] == pytest.approx(0.8) and tuned["bertscore_recall"] == pytest.approx(0.22)
    # Per question type, each row's mean of the score the paired tests compare (rougeL, the first ranking score).
    qtypes = pd.read_csv(out / "comparison_by_qtype.csv").set_index("row")
    assert list(qtypes.columns) == ["kind", "rougeL symptoms", "rougeL treatment"]
    assert qtypes.loc["ea-a", "rougeL symptoms"] == pytest.approx(0.9) and qtypes.loc["ea-b", "rougeL treatment"] == pytest.approx(0.8)
    assert qtypes.loc["base smollm2-135m-instruct", "rougeL treatment"] == pytest.approx(0.125)
    # Two runs that answered alike: no difference between them; both beat the base model, on only 4 questions.
    tests = pd.read_csv(out / "paired_tests.csv")
    same = tests[(tests["a"] == "ea-a") & (tests["b"] == "ea-b")].iloc[0]
    assert same["mean"] == 0 and same["p"] == 1 and not same["significant"]
    markdown = (out / "comparison.md").read_text()
    assert "## By question type" in markdown and "## Paired tests on rougeL" in markdown
    assert "## Across seeds" not in markdown  # no run shares a point with another


def test_a_run_without_per_item_rows_has_no_error_analysis(tmp_path: Path):
    run = fake_eval_run(tmp_path)
    (run / "eval" / "per_item.jsonl").unlink()
    written = {p.name for p in build_report(run, show=False)}
    assert not {"error_length.png", "worst_answers.csv", "by_qtype.csv"} & written
    assert "Error analysis" not in (run / "report" / "report.md").read_text()
