"""`launch.py compare`: the table's numbers are the runs' metrics.json, base rows shared, test sets must match."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from medtune.cli import main

REPO = Path(__file__).resolve().parents[1]
TEST_SET = '{"messages": [{"role": "user", "content": "What is asthma?"}, {"role": "assistant", "content": "A lung disease."}]}\n'
BASE = {"rouge1": {"mean": 0.21, "ci": [0.18, 0.24]}, "bleu": {"mean": 3.2, "ci": [2.0, 4.4]}, "perplexity": {"mean": 14.5, "ci": [12.0, 17.0]}}


def fake_run(root: Path, name: str, tuned: dict, *, model: str = "smollm2-135m-instruct", method: str = "lora",
             test_set: str = TEST_SET, base: dict = BASE, suites: dict | None = None, loss: list[float] | None = None) -> Path:
    run_dir = root / name / "20260101-000000"
    (run_dir / "data").mkdir(parents=True)
    (run_dir / "data" / "test.jsonl").write_text(test_set)
    recipe = {"name": name, "model": model, "method": {"name": method}, "data": {"system_prompt": "Be careful."},
              "eval": {"limit": 2, "max_new_tokens": 8}}
    (run_dir / "recipe.resolved.yaml").write_text(yaml.safe_dump(recipe))
    if tuned is not None:
        (run_dir / "eval").mkdir()
        metrics = {"models": {"base": base, "tuned": tuned}, "suites": suites or {}}
        (run_dir / "eval" / "metrics.json").write_text(json.dumps(metrics))
    if loss:
        (run_dir / "train").mkdir()
        history = [{"loss": value, "step": i + 1} for i, value in enumerate(loss)] + [{"eval_loss": loss[-1] + 0.1, "step": len(loss)}]
        (run_dir / "train" / "history.json").write_text(json.dumps(history))
    return run_dir


LORA = {"rouge1": {"mean": 0.31, "ci": [0.27, 0.35]}, "bleu": {"mean": 5.5, "ci": [4.1, 6.9]}, "perplexity": {"mean": 9.1, "ci": [8.0, 10.2]}}
FULL = {"rouge1": {"mean": 0.35, "ci": [0.30, 0.40]}, "bleu": 6.25, "perplexity": {"mean": 8.4, "ci": [7.5, 9.3]}}
SUITES = {"pubmedqa": {"base": {"acc": 0.5, "gen_acc": 0.45, "baseline": 0.55, "n": 20,
                                "confusion": {"labels": ["yes", "no"], "matrix": [[5, 5], [5, 5]]}},
                       "tuned": {"acc": 0.6, "gen_acc": 0.5, "baseline": 0.55, "n": 20}}}


def _value(entry):
    return (entry["mean"], *entry["ci"]) if isinstance(entry, dict) else (entry, None, None)


def test_table_values_are_the_runs_metrics(tmp_path: Path, capsys):
    a = fake_run(tmp_path, "m-lora", LORA, suites=SUITES, loss=[2.0, 1.5])
    b = fake_run(tmp_path, "m-full", FULL, method="full", loss=[2.1, 1.2])
    out = tmp_path / "cmp"
    assert main(["compare", str(a), str(b), "--out", str(out)]) == 0
    console = capsys.readouterr().out
    assert "Comparison" in console and "comparison written to" in console

    table = pd.read_csv(out / "comparison.csv")
    assert list(table["kind"]) == ["base", "tuned", "tuned"]  # one base row: same model, test set and eval settings
    assert table.loc[0, "runs"] == "m-lora; m-full"
    rows = {row["row"]: row for _, row in table.iterrows()}
    for label, tuned in (("m-lora", LORA), ("m-full", FULL)):
        for metric, entry in tuned.items():
            mean, lo, hi = _value(entry)
            assert rows[label][metric] == pytest.approx(mean)
            if lo is not None:
                assert (rows[label][f"{metric}_lo"], rows[label][f"{metric}_hi"]) == pytest.approx((lo, hi))
            else:
                assert pd.isna(rows[label][f"{metric}_lo"])
    for metric, entry in BASE.items():
        assert rows["base smollm2-135m-instruct"][metric] == pytest.approx(entry["mean"])
    assert rows["m-lora"]["pubmedqa.acc"] == 0.6 and rows["base smollm2-135m-instruct"]["pubmedqa.gen_acc"] == 0.45
    assert pd.isna(rows["m-full"]["pubmedqa.acc"])
    assert rows["m-lora"]["train_loss"] == 1.5 and rows["m-full"]["eval_loss"] == pytest.approx(1.3)
    assert pd.isna(rows["base smollm2-135m-instruct"]["train_loss"])

    xlsx = pd.read_excel(out / "comparison.xlsx")
    assert xlsx.shape == table.shape and list(xlsx.columns) == list(table.columns)
    markdown = (out / "comparison.md").read_text()
    assert "| m-full | tuned | full | 6.2500 |" in markdown and str(a) in markdown
    plots = sorted(p.name for p in out.glob("plot_*.png"))
    assert plots == sorted(f"plot_{c}.png" for c in ["bleu", "perplexity", "rouge1", "pubmedqa.acc", "pubmedqa.gen_acc",
                                                      "train_loss", "eval_loss"])
    saved = json.loads((out / "comparison.json").read_text())
    assert saved["rows"][1]["values"]["rouge1"] == {"mean": 0.31, "ci": [0.27, 0.35]}


def test_base_rows_split_when_the_base_model_differs(tmp_path: Path):
    from medtune.report.compare import build, read_run

    a = fake_run(tmp_path, "a", LORA)
    b = fake_run(tmp_path, "b", FULL, model="../models/other", base={"rouge1": 0.1})
    c = fake_run(tmp_path, "c", LORA)
    table = build([read_run(d) for d in (a, b, c)])
    assert [(r.kind, r.label) for r in table.rows] == [
        ("base", "base smollm2-135m-instruct"), ("base", "base ../models/other"), ("tuned", "a"), ("tuned", "b"), ("tuned", "c")]
    assert table.rows[0].runs == ["a", "c"]


def test_two_runs_of_one_recipe_are_told_apart(tmp_path: Path):
    from medtune.report.compare import build, read_run

    a = fake_run(tmp_path, "same", LORA)
    b = fake_run(tmp_path / "again", "same", LORA)
    b = b.rename(b.parent / "20260102-000000")
    labels = [r.label for r in build([read_run(a), read_run(b)]).rows if r.kind == "tuned"]
    assert labels == ["same (20260101-000000)", "same (20260102-000000)"]


def test_different_eval_settings_get_a_note(tmp_path: Path):
    from medtune.report.compare import build, read_run

    a = fake_run(tmp_path, "a", LORA)
    b = fake_run(tmp_path, "b", LORA)
    assert build([read_run(a), read_run(b)]).notes == []
    resolved = b / "recipe.resolved.yaml"
    resolved.write_text(resolved.read_text().replace("limit: 2", "limit: 32"))
    table = build([read_run(a), read_run(b)])
    assert [r.kind for r in table.rows] == ["base", "base", "tuned", "tuned"]  # not the same base measurement
    assert len(table.notes) == 1 and "eval.limit" in table.notes[0]


def test_runs_on_different_test_sets_are_refused(tmp_path: Path):
    a = fake_run(tmp_path, "a", LORA)
    b = fake_run(tmp_path, "b", FULL, test_set=TEST_SET.replace("asthma", "gout"))
    out = tmp_path / "cmp"
    proc = subprocess.run([sys.executable, "launch.py", "compare", str(a), str(b), "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "different test sets" in proc.stderr and str(a) in proc.stderr and str(b) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_the_manifest_hash_stands_in_for_a_missing_test_file(tmp_path: Path):
    from medtune.report.compare import test_set_hash
    from medtune.core.hashing import sha256_file

    a = fake_run(tmp_path, "a", LORA)
    sha = sha256_file(a / "data" / "test.jsonl")
    (a / "data" / "manifest.json").write_text(json.dumps({"outputs": {"test.jsonl": {"sha256": sha}}}))
    (a / "data" / "test.jsonl").unlink()
    assert test_set_hash(a) == sha


@pytest.mark.parametrize("make, message", [
    (lambda root: root / "nowhere", "no such run directory"),
    (lambda root: root, "not a run directory"),
    (lambda root: (fake_run(root, "x", LORA) / "data" / "test.jsonl").unlink() or root / "x" / "20260101-000000",
     "has not finished preprocess"),
])
def test_bad_run_directories_exit_2(tmp_path: Path, capsys, make, message):
    assert main(["compare", str(make(tmp_path)), "--out", str(tmp_path / "cmp")]) == 2
    assert message in capsys.readouterr().err


def test_a_later_stage_loss_has_its_own_column(tmp_path: Path):
    """A KnowTuning run's DPO stage logs a preference loss: it is shown beside the SFT stage's train_loss, not in
    its place, and a one-stage run beside it has no value there."""
    from medtune.report.compare import build, read_run

    kt = fake_run(tmp_path, "kt", None, loss=[1.0, 0.5])
    recipe = yaml.safe_load((kt / "recipe.resolved.yaml").read_text())
    (kt / "recipe.resolved.yaml").write_text(yaml.safe_dump({**recipe, "stages": [{"name": "dpo"}]}))
    (kt / "train-dpo").mkdir()
    (kt / "train-dpo" / "history.json").write_text(json.dumps([{"loss": 0.69, "step": 1}, {"loss": 0.61, "step": 2}]))
    sft = fake_run(tmp_path, "sft", None, loss=[1.1, 0.7])
    table = build([read_run(kt), read_run(sft)])
    assert table.columns == ["train_loss", "eval_loss", "dpo_train_loss"]
    values = {row.label: {c: v["mean"] for c, v in row.values.items()} for row in table.rows}
    assert values == {"kt": {"train_loss": 0.5, "eval_loss": 0.6, "dpo_train_loss": 0.61},
                      "sft": {"train_loss": 0.7, "eval_loss": pytest.approx(0.8)}}


def test_a_run_without_eval_shows_its_training_loss(tmp_path: Path):
    from medtune.report.compare import build, read_run

    a = fake_run(tmp_path, "a", None, loss=[1.0, 0.5])
    table = build([read_run(a)])
    assert [r.kind for r in table.rows] == ["tuned"] and table.columns == ["train_loss", "eval_loss"]
    assert table.rows[0].values["train_loss"] == {"mean": 0.5, "ci": None}
