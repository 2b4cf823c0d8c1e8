"""Benchmark suites: our task files read the publishers' files, keep the harness's prompts, and score as simple_evaluate does."""
from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import lm_eval
import pytest
import yaml

from medtune.evaluate import suites
from medtune.evaluate.errors import EvalInputError
from medtune.models.loader import ModelRef, load

HARNESS_TASKS = Path(lm_eval.__file__).parent / "tasks"
LIMIT = 4  # per suite (per subject for MMLU); both runs score every prompt token: 8 costs ~140 s on 2 cores


pytestmark = pytest.mark.usefixtures("one_torch_thread")



def _task_dict(shared_data, names):
    from lm_eval.tasks import get_task_dict

    flat = {}

    def walk(tree):
        for name, task in tree.items():
            walk(task) if isinstance(task, dict) else flat.setdefault(name, task)

    walk(get_task_dict(names, suites.task_manager(shared_data)))
    return flat


def _docs(task):
    return list(task.test_docs() if task.has_test_docs() else task.validation_docs())


@pytest.fixture(scope="module")
def tasks(shared_data):
    return _task_dict(shared_data, list(suites.SUITE_TASKS.values()))


def test_local_loaders_read_every_publisher_record(tasks):
    pubmedqa = _docs(tasks["medtune_pubmedqa"])
    assert len(pubmedqa) == 500 and Counter(d["final_decision"] for d in pubmedqa) == {"yes": 276, "no": 169, "maybe": 55}
    medqa = _docs(tasks["medtune_medqa_4options"])
    assert len(medqa) == 1273 and Counter(d["label"] for d in medqa)[0] / 1273 == pytest.approx(0.277, abs=1e-3)
    assert Counter(d["meta_info"] for d in medqa) == {"step1": 679, "step2&3": 594}
    medmcqa = _docs(tasks["medtune_medmcqa"])
    assert len(medmcqa) == 4183 and Counter(d["cop"] for d in medmcqa)[0] / 4183 == pytest.approx(0.322, abs=1e-3)
    assert sum(len(_docs(tasks[f"medtune_mmlu_{s}"])) for s in suites.MMLU_SUBJECTS) == 1089


def test_prompts_choices_and_targets_are_the_harness_own(tasks, shared_data):
    """Each first document, rebuilt by hand in the Hub layout the shipped task reads, gives the same prompt."""
    from lm_eval.tasks.medmcqa.utils_medmcqa import doc_to_text as medmcqa_text
    from lm_eval.tasks.medqa.preprocess_medqa import doc_to_text as medqa_text
    from lm_eval.tasks.pubmedqa.preprocess_pubmedqa import doc_to_text as pubmedqa_text
    from lm_eval.utils import apply_template

    pmid, decision = next(iter(json.loads((shared_data / "pubmedqa/test_ground_truth.json").read_text()).items()))
    record = json.loads((shared_data / "pubmedqa/ori_pqal.json").read_text())[pmid]
    ours = tasks["medtune_pubmedqa"]
    doc = _docs(ours)[0]
    assert ours.doc_to_text(doc) == pubmedqa_text({"QUESTION": record["QUESTION"], "CONTEXTS": record["CONTEXTS"]})
    assert ours.doc_to_choice(doc) == ["yes", "no", "maybe"] and ours.doc_to_target(doc) == decision

    record = json.loads((shared_data / "medqa/us_4options_test.jsonl").read_text().splitlines()[0])
    hub = {"sent1": record["question"], **{f"ending{i}": record["options"][k] for i, k in enumerate("ABCD")}}
    ours = tasks["medtune_medqa_4options"]
    doc = _docs(ours)[0]
    assert ours.doc_to_text(doc) == medqa_text(hub)
    assert ours.doc_to_target(doc) == "ABCD".index(record["answer_idx"])

    record = json.loads((shared_data / "medmcqa/dev.json").read_text().splitlines()[0])
    ours = tasks["medtune_medmcqa"]
    doc = _docs(ours)[0]
    assert ours.doc_to_text(doc) == medmcqa_text(record)
    assert ours.doc_to_target(doc) == record["cop"] - 1  # the publisher's 1-based cop is the Hub's 0-based one

    shipped = yaml.safe_load((HARNESS_TASKS / "mmlu/default/_default_template_yaml").read_text())
    ours_template = yaml.safe_load((suites.TASKS_DIR / "_medtune_mmlu_template_yaml").read_text().replace("!function", ""))
    assert ours_template["doc_to_text"] == shipped["doc_to_text"] and ours_template["doc_to_choice"] == shipped["doc_to_choice"]
    for subject in suites.MMLU_SUBJECTS:
        with (shared_data / f"mmlu/{subject}_test.csv").open(newline="") as fh:
            row = next(csv.reader(fh))
        hub = {"question": row[0], "choices": row[1:5], "answer": "ABCD".index(row[5])}
        ours = tasks[f"medtune_mmlu_{subject}"]
        doc = _docs(ours)[0]
        assert ours.doc_to_text(doc) == apply_template(shipped["doc_to_text"], hub)
        assert ours.doc_to_target(doc) == hub["answer"]
        shipped_subject = yaml.safe_load((HARNESS_TASKS / f"mmlu/default/mmlu_{subject}.yaml").read_text())
        assert ours.config.description == shipped_subject["description"]


@pytest.mark.slow
def test_suite_scores_are_exactly_simple_evaluate_on_the_same_slice(smollm2_dir, shared_data):
    from lm_eval import simple_evaluate

    names = list(suites.SUITE_TASKS)
    model, tokenizer = load(ModelRef("base", str(smollm2_dir)))
    ours = suites.run_harness(suites.harness_model(model, tokenizer, batch_size=8), names,
                              suite_data=shared_data, limit=LIMIT)
    del model
    # The harness on its own: its HF model class loading the folder, our task files, the same slice.
    reference = simple_evaluate(model="hf", model_args={"pretrained": str(smollm2_dir), "device": "cpu", "dtype": "float32"},
                                tasks=[suites.SUITE_TASKS[s] for s in names], limit=LIMIT, batch_size=8,
                                task_manager=suites.task_manager(shared_data))
    assert ours["results"] == reference["results"]
    for suite in names:
        scores = suites.harness_scores(ours, suite)
        assert scores["acc"] == suites.harness_scores(reference, suite)["acc"]
        items = suites.suite_items(ours, suite)
        assert len(items) == LIMIT * (len(suites.MMLU_SUBJECTS) if suite == "mmlu_medical" else 1)
        assert sum(item.correct for item in items) / len(items) == pytest.approx(scores["acc"])
        assert all(item.correct == (item.loglik_pred == item.gold) for item in items)
    medqa = suites.suite_items(ours, "medqa")
    assert {item.subset for item in medqa} <= {"step1", "step2&3"} and all(item.subset for item in medqa)


def test_missing_suite_files_are_named_before_anything_runs(tmp_path):
    (tmp_path / "medqa").mkdir()
    with pytest.raises(EvalInputError) as err:
        suites.check_suite_data(tmp_path, ["pubmedqa", "medqa"])
    message = str(err.value)
    assert "ori_pqal.json" in message and "test_ground_truth.json" in message and "us_4options_test.jsonl" in message
    with pytest.raises(EvalInputError, match="unknown suite"):
        suites.check_suite_data(tmp_path, ["usmle"])
