"""The report stage writes every promised file from a run's eval results, and its tables carry the run's numbers."""
from __future__ import annotations

import json
from pathlib import Path

from medtune.report.run_report import build_report

PNG = b"\x89PNG\r\n\x1a\n"


def fake_run(tmp_path: Path) -> Path:
    run = tmp_path / "runs" / "demo" / "20260101-000000"
    (run / "eval").mkdir(parents=True)
    (run / "train" / "checkpoint-4").mkdir(parents=True)
    history = [{"loss": 2.0 - 0.2 * i, "step": i + 1} for i in range(4)] + [{"eval_loss": 1.5, "step": 4}]
    (run / "train" / "checkpoint-4" / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    metrics = {
        "models": {
            "base": {"rouge1": {"mean": 0.21, "ci": [0.18, 0.24], "n": 2}, "perplexity": {"mean": 9.5, "ci": [8.0, 11.0]}},
            "tuned": {"rouge1": {"mean": 0.35, "ci": [0.30, 0.40], "n": 2}, "perplexity": {"mean": 5.1, "ci": [4.5, 5.9]}},
        },
        "deltas": {"rouge1": {"mean": 0.14, "ci": [0.08, 0.2]}},
        "suites": {"pubmedqa": {m: {"n": 4, "acc": a, "acc_ci": [a - 0.1, a + 0.1], "gen_acc": 0.25, "baseline": 0.5,
                                    "confusion": {"labels": ["yes", "no", "maybe"], "matrix": [[2, 0, 0], [1, 0, 0], [1, 0, 0]]}}
                                for m, a in (("base", 0.5), ("tuned", 0.75))}},
    }
    (run / "eval" / "metrics.json").write_text(json.dumps(metrics))
    rows = [{"set": "test", "model": m, "id": str(i), "reference": f"ref {i}", "output": f"{m} answer {i}", "rouge1": 0.2 + i / 10}
            for m in ("base", "tuned") for i in range(2)]
    (run / "eval" / "per_item.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return run


def test_report_writes_tables_plots_and_spreadsheets(tmp_path, capsys):
    run = fake_run(tmp_path)
    written = {p.name for p in build_report(run)}
    assert {"metrics.json", "report.md", "answers.csv", "answers.xlsx", "loss_curve.png", "metrics_base_vs_tuned.png",
            "confusion_pubmedqa_base.png", "confusion_pubmedqa_tuned.png"} <= written
    for name in written:
        if name.endswith(".png"):
            assert (run / "report" / name).read_bytes()[:8] == PNG

    report = (run / "report" / "report.md").read_text()
    assert "0.2100 [0.1800, 0.2400]" in report and "0.3500 [0.3000, 0.4000]" in report
    assert "+0.1400 [+0.0800, +0.2000]" in report  # the paired delta with its interval
    assert "| pubmedqa | tuned | 0.7500 [0.6500, 0.8500] | 0.2500 | 0.5000 | 4 |" in report
    assert "loss 2.0000 -> 1.4000" in report
    assert "tuned - base" in capsys.readouterr().out

    import openpyxl

    sheet = openpyxl.load_workbook(run / "report" / "answers.xlsx").active
    header = [c.value for c in sheet[1]]
    assert {"id", "reference", "base_output", "tuned_output", "base_rouge1", "tuned_rouge1"} <= set(header)
    assert sheet.max_row == 3  # one line per question, both models side by side
    combined = json.loads((run / "report" / "metrics.json").read_text())
    assert combined["models"]["tuned"]["rouge1"]["mean"] == 0.35 and combined["training"]["last_loss"] == 1.4


def test_a_later_training_stage_gets_its_own_loss_line_and_curve(tmp_path):
    """KnowTuning's DPO stage trains after SFT: the report names each stage's losses apart (a preference loss is not
    an SFT loss) and draws each stage's curve."""
    import yaml

    run = fake_run(tmp_path)
    (run / "recipe.resolved.yaml").write_text(yaml.safe_dump({"name": "demo", "stages": [{"name": "dpo"}]}))
    (run / "train-dpo").mkdir()
    (run / "train-dpo" / "history.json").write_text(json.dumps([{"loss": 0.6931, "step": 1}, {"loss": 0.5, "step": 2}]))
    written = {p.name for p in build_report(run, show=False)}
    assert {"loss_curve.png", "loss_curve_dpo.png"} <= written
    report = (run / "report" / "report.md").read_text()
    assert "Training (stage 1): 4 logged steps, loss 2.0000 -> 1.4000." in report
    assert "Stage dpo: 2 logged steps, loss 0.6931 -> 0.5000." in report
    stages = json.loads((run / "report" / "metrics.json").read_text())["training"]["stages"]
    assert (stages["dpo"]["first_loss"], stages["dpo"]["last_loss"], stages["dpo"]["steps_logged"]) == (0.6931, 0.5, 2)
