"""The evaluate stage end to end on real SmolLM2: base and a tiny LoRA adapter -> eval/metrics.json; resume; CLI."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from medtune.cli import main
from medtune.evaluate import generate as gen
from medtune.evaluate import run as run_module
from medtune.evaluate.spec import EvalSpec, JudgeSpec
from medtune.models.loader import ModelRef, adapter_ref

SYSTEM = "You are a careful medical assistant."
DISCLAIMER = "This is general information, not a substitute for professional medical advice."
QA = [("What is gout?", "Gout is a form of arthritis caused by uric acid crystals in the joints."),
      ("What causes iron deficiency anemia?", "Blood loss, poor iron intake or poor iron absorption."),
      ("How is asthma treated?", "With inhaled corticosteroids to control it and bronchodilators for attacks."),
      ("What is hypertension?", "Blood pressure that stays at or above 130/80 mmHg."),
      ("Which organ makes insulin?", "The pancreas, in the beta cells of its islets.")]
EXPECTED_METRICS = {"rouge1", "rouge2", "rougeL", "bleu", "bleu_corpus", "bertscore_precision", "bertscore_recall",
                    "bertscore_f1", "loss", "perplexity", "disclaimer", "judge"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")



def _conversation(question: str, answer: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question},
            {"role": "assistant", "content": f"{answer} {DISCLAIMER}"}]


def _tiny_lora(base: Path, out: Path) -> None:
    """A real adapter: LoRA r=4 on q_proj/v_proj, two optimizer steps on the test answers, saved by PEFT."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    batch = [tokenizer.apply_chat_template(_conversation(q, a), return_dict=False) for q, a in QA]
    width = max(map(len, batch))
    ids = torch.tensor([row + [tokenizer.pad_token_id] * (width - len(row)) for row in batch])
    labels = torch.tensor([row + [-100] * (width - len(row)) for row in batch])
    for _ in range(2):
        model(input_ids=ids, attention_mask=(labels != -100).long(), labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(out)


def _canned_judge():
    from deepeval.models import DeepEvalBaseLLM

    class CannedJudge(DeepEvalBaseLLM):
        def load_model(self):
            return None

        def generate(self, prompt: str) -> str:  # the insulin question gets a reply with no JSON in it
            return "no idea" if "Which organ makes insulin?" in prompt else '{"reason": "ok", "score": 7}'

        async def a_generate(self, prompt: str) -> str:
            return self.generate(prompt)

        def get_model_name(self) -> str:
            return "canned"

    return CannedJudge()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, smollm2_dir) -> Path:
    root = tmp_path_factory.mktemp("run")
    (root / "data").mkdir()
    rows = [{"messages": _conversation(q, a), "id": f"q{i}", "source": "toy", "qtype": "information",
             "answer_key": None, "choices": None} for i, (q, a) in enumerate(QA)]
    (root / "data" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    _tiny_lora(smollm2_dir, root / "train")
    return root


def _spec(shared_data: Path, **changes) -> EvalSpec:
    settings = dict(metrics=["rouge", "bleu", "bertscore", "perplexity", "disclaimer", "judge"],
                    judge=JudgeSpec(kind="hf", model="canned"), suites=["medqa"], suite_limit=2,
                    suite_data=str(shared_data), max_new_tokens=24, suite_max_new_tokens=4, batch_size=8,
                    bootstrap_samples=200)
    return EvalSpec(**{**settings, **changes})


def _evaluate(run_dir: Path, spec: EvalSpec) -> dict:
    base = ModelRef("base", "smollm2-135m-instruct")
    return run_module.evaluate_run(run_dir, spec, base=base, tuned=adapter_ref(base, run_dir / "train"),
                                   system_prompt=SYSTEM, disclaimer_text=DISCLAIMER, show_progress=False)


@pytest.mark.slow
def test_base_and_lora_adapter_get_every_configured_metric(run_dir, shared_data, monkeypatch):
    monkeypatch.setattr(run_module, "make_judge", lambda spec: _canned_judge())
    metrics = _evaluate(run_dir, _spec(shared_data))
    assert json.loads((run_dir / "eval" / "metrics.json").read_text()) == json.loads(json.dumps(metrics))

    assert set(metrics["models"]) == {"base", "tuned"}
    for label, values in metrics["models"].items():
        assert set(values) == EXPECTED_METRICS, label
        for name, entry in values.items():
            assert isinstance(entry["mean"], float) and entry["n"] == (4 if name == "judge" else 5), (label, name)
            assert entry["ci"][0] <= entry["mean"] <= entry["ci"][1], (label, name)
        assert values["judge"]["mean"] == pytest.approx(0.7)
        assert metrics["judge"][label] == {"judged": 4, "unparsable": 1, "judge_model": "canned"}
    # The adapter is really applied: two steps on these answers lower their loss.
    assert metrics["models"]["tuned"]["loss"]["mean"] < metrics["models"]["base"]["loss"]["mean"]
    assert metrics["references"]["disclaimer"] == 1.0
    assert {"rouge1", "bertscore_f1", "disclaimer", "loss", "perplexity"} <= set(metrics["deltas"])
    models = metrics["models"]
    for name in ("loss", "perplexity"):  # the paired delta's point is the difference of the two models' own
        assert metrics["deltas"][name]["mean"] == pytest.approx(models["tuned"][name]["mean"] - models["base"][name]["mean"])

    for label in ("base", "tuned"):
        medqa = metrics["suites"]["medqa"][label]
        assert medqa["n"] == 2 and medqa["acc"] == medqa["harness"]["acc"]
        assert medqa["confusion"]["labels"] == ["A", "B", "C", "D"]
        assert sum(map(sum, medqa["confusion"]["matrix"])) == 2
        assert {"gen_acc", "gen_invalid", "baseline", "baseline_label", "confusion_generation"} <= set(medqa)
        steps = [name for name in metrics["suites"] if name.startswith("medqa_step")]
        assert steps and sum(metrics["suites"][s][label]["n"] for s in steps) == 2

    per_item = [json.loads(line) for line in (run_dir / "eval" / "per_item.jsonl").read_text().splitlines()]
    assert len([r for r in per_item if r["set"] == "test"]) == 10 and len([r for r in per_item if r["set"] == "suite"]) == 4
    assert {r["question"] for r in per_item if r["set"] == "test"} == {q for q, _ in QA}  # the error analysis shows it
    assert metrics["per_item"] == "eval/per_item.jsonl"
    generations = (run_dir / "eval" / "generations.jsonl").read_text().splitlines()
    assert len(generations) == 2 * (5 + 2)


@pytest.mark.slow
def test_second_evaluation_generates_nothing_again(run_dir, shared_data, monkeypatch):
    monkeypatch.setattr(run_module, "make_judge", lambda spec: _canned_judge())
    before = json.loads((run_dir / "eval" / "metrics.json").read_text())
    calls = []
    monkeypatch.setattr(gen, "generate_batch", lambda *args, **kwargs: calls.append(args) or [])
    again = _evaluate(run_dir, _spec(shared_data))
    assert calls == []
    assert again["models"] == before["models"] and again["suites"] == before["suites"]


@pytest.mark.slow
def test_cli_on_a_run_directory_reads_its_recipe(run_dir, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    recipe = {"name": "toy", "model": "smollm2-135m-instruct", "data": {"system_prompt": SYSTEM},
              "eval": {"metrics": ["rouge"], "limit": 2, "max_new_tokens": 24, "batch_size": 8}}
    (copy / "recipe.resolved.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["eval", str(copy), "--no-progress"]) == 0
    metrics = json.loads((copy / "eval" / "metrics.json").read_text())
    assert set(metrics["models"]["tuned"]) == {"rouge1", "rouge2", "rougeL"}
    assert metrics["config"]["models"]["tuned"]["adapter"] == str((copy / "train").resolve())
    assert "held-out questions" in capsys.readouterr().out


def test_cli_bad_input_is_a_message_and_exit_2(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "train").mkdir(parents=True)
    (run / "recipe.resolved.yaml").write_text(yaml.safe_dump({"model": "smollm2-135m-instruct", "eval": {"metrcs": ["rouge"]}}))
    cases = [
        (["eval", str(run)], "eval.metrcs"),
        (["eval", str(tmp_path / "missing")], "no such run directory"),
        (["eval", "--model", "smollm2-135m-instruct"], "needs at least one --suite"),
        (["eval", "--model", "smollm2-135m-instruct", "--suite", "usmle"], "unknown suite"),
        (["eval", "--model", "smollm2-135m-instruct", "--suite", "pubmedqa", "--suite-data", str(tmp_path)], "ori_pqal.json"),
        (["eval", "--model", "no-such-model", "--suite", "pubmedqa"], "neither a catalog key"),
    ]
    for argv, expected in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err, (argv, err)
    (run / "recipe.resolved.yaml").write_text(yaml.safe_dump({"model": "smollm2-135m-instruct", "eval": {}}))
    assert main(["eval", str(run)]) == 2 and "neither a PEFT adapter" in capsys.readouterr().err

