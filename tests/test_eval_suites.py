"""Benchmark suites: our task files read the pinned Hub copies or the publishers' files (the same documents either
way), keep the harness's prompts, score as simple_evaluate does, and a limited run scores a stratified seeded sample."""
from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import lm_eval
import pytest
import yaml
from lm_eval.api.model import LM

import hub_cache as hub
from hub_cache import hub_cache  # noqa: F401  (a fixture)
from medtune.core.hub_catalog import pubmedqa_test_ids
from medtune.evaluate import suites
from medtune.evaluate.errors import EvalInputError
from medtune.evaluate.suite_sample import describe, stratified_sample
from medtune.models.loader import ModelRef, load

HARNESS_TASKS = Path(lm_eval.__file__).parent / "tasks"
LIMIT = 1  # per suite (per subject for MMLU); both runs score every prompt token: 8 costs ~140 s on 2 cores, 2 a quarter, 1 an eighth


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
                              suite_data=shared_data, limit=LIMIT, seed=0)
    del model
    # The harness on its own: its HF model class loading the folder, our task files, the same questions.
    manager = suites.task_manager(shared_data)
    samples, _ = suites.draw_samples(manager, names, LIMIT, seed=0)
    reference = simple_evaluate(model="hf", model_args={"pretrained": str(smollm2_dir), "device": "cpu", "dtype": "float32"},
                                tasks=[suites.SUITE_TASKS[s] for s in names], samples=samples, batch_size=8,
                                task_manager=manager)
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
    assert suites.suite_data_problems(tmp_path, ["pubmedqa", "medqa"]) == [message]
    with pytest.raises(EvalInputError, match="unknown suite"):
        suites.check_suite_data(tmp_path, ["usmle"])
    assert "unknown suite" in suites.suite_data_problems(None, ["usmle"])[0]


# ---------------------------------------------------------------- the Hub copies (a Hub-layout cache, offline)


def _leaf_docs(suite_data, names=None) -> dict[str, tuple[object, list]]:
    found = suites.suite_tasks(suites.task_manager(suite_data), names or list(suites.SUITE_TASKS))
    return {name: (task, list(task.eval_docs)) for leaves in found.values() for name, task in leaves.items()}


@pytest.fixture
def both_layouts(tmp_path, hub_cache):
    """The same fixture questions as publisher files (returned folder) and as the pinned Hub copies (in the cache)."""
    hub.write_suite_layouts(tmp_path / "files", hub_cache)
    return tmp_path / "files"


def test_hub_copies_and_publisher_files_give_the_same_documents_prompts_and_targets(both_layouts):
    files, hub_copies = _leaf_docs(both_layouts), _leaf_docs(None)
    assert sorted(files) == sorted(hub_copies) and len(files) == 9  # pubmedqa, medqa, medmcqa and six MMLU subjects
    for name, (file_task, file_docs) in files.items():
        hub_task, hub_docs = hub_copies[name]
        assert file_docs == hub_docs and file_docs, name
        for doc in hub_docs:
            assert hub_task.doc_to_text(doc) == file_task.doc_to_text(doc)
            assert hub_task.doc_to_choice(doc) == file_task.doc_to_choice(doc)
            assert hub_task.doc_to_target(doc) == file_task.doc_to_target(doc)
    medmcqa = hub_copies["medtune_medmcqa"][1]
    assert [d["cop"] for d in medmcqa[:4]] == [0, 1, 2, 3]  # the Hub's 0-based cop, as the publisher's 1-based minus one
    assert {d["meta_info"] for d in hub_copies["medtune_medqa_4options"][1]} == {"step1", "step2&3"}


def test_pubmedqa_from_the_hub_is_exactly_the_official_500_in_their_order(both_layouts):
    (task, docs), = _leaf_docs(None, ["pubmedqa"]).values()
    assert [d["pubid"] for d in docs] == pubmedqa_test_ids()  # the fixture's pqa_labeled also holds 12 other ids
    assert Counter(d["final_decision"] for d in docs) == {"yes": 276, "no": 169, "maybe": 55}
    assert not any(d["QUESTION"].startswith("Outside the test split") for d in docs)


def test_nothing_cached_and_offline_names_each_missing_dataset(hub_cache):
    problems = suites.suite_data_problems(None, list(suites.SUITE_TASKS))
    assert len(problems) == 4
    for line, repo in zip(problems, ("qiaojin/PubMedQA@9001f28", "GBaker/MedQA-USMLE-4-options@0fb93dd",
                                     "openlifescienceai/medmcqa@91c6572", "cais/mmlu@c30699e")):
        assert repo in line and "not in the Hugging Face cache" in line and "eval.suite_data" in line
    with pytest.raises(EvalInputError) as err:
        suites.check_suite_data(None, ["pubmedqa", "mmlu_medical"])
    assert "pubmedqa: qiaojin/PubMedQA" in str(err.value) and "mmlu_medical: cais/mmlu" in str(err.value)


def test_a_hub_copy_with_a_renamed_column_is_named_before_anything_runs(both_layouts, hub_cache):
    from medtune.core.hub_catalog import MEDMCQA

    renamed = [{"correct_option" if k == "cop" else k: v for k, v in row.items()} for row in hub.suite_rows()["medmcqa"]]
    hub.write_hub_dataset(hub_cache, MEDMCQA.repo_id, MEDMCQA.revision, {MEDMCQA.files[None]["validation"]: renamed})
    with pytest.raises(EvalInputError) as err:
        suites.check_suite_data(None, ["medqa", "medmcqa"])
    message = str(err.value)
    assert "medmcqa: openlifescienceai/medmcqa@91c6572" in message and "no column 'cop'" in message
    assert "medqa:" not in message
    assert suites.check_suite_data(None, ["medqa"]) is None


# ---------------------------------------------------------------- limited runs: a seeded sample keeping the label mix


def test_stratified_sample_keeps_the_label_mix_of_a_sorted_split():
    official = ["yes"] * 276 + ["no"] * 169 + ["maybe"] * 55  # the order of the official PubMedQA test file
    picked = stratified_sample(official, 60, seed="0:medtune_pubmedqa")
    assert Counter(official[i] for i in picked) == {"yes": 33, "no": 20, "maybe": 7}  # 60 x 276/169/55 of 500
    assert Counter(official[:60]) == {"yes": 60}  # what "the first 60" scored
    assert picked == sorted(set(picked)) and picked == stratified_sample(official, 60, seed="0:medtune_pubmedqa")
    assert picked != stratified_sample(official, 60, seed="1:medtune_pubmedqa")
    assert stratified_sample(official, 500, seed=0) == list(range(500))
    assert describe({"t": (60, 500)}, by="label", seed=0) == "seeded stratified 60 of 500 by label, seed 0"
    assert describe({"a": (4, 9), "b": (4, 5)}, by="label", seed=3, per="subject") == \
        "seeded stratified 4 per subject (8 of 14) by label, seed 3"
    assert describe({"t": (8, 8)}, by="label", seed=0) == "all 8"


class ShortestChoice(LM):
    """A stand-in model for the harness: log-likelihood = minus the continuation's length (instant, deterministic)."""

    def loglikelihood(self, requests):
        return [(-float(len(request.args[1])), False) for request in requests]

    def loglikelihood_rolling(self, requests):
        raise NotImplementedError("the suites score choices only")

    def generate_until(self, requests):
        raise NotImplementedError("the suites score choices only")


def test_a_limited_pubmedqa_run_scores_yes_no_and_maybe_in_the_split_proportions(both_layouts):
    lm = ShortestChoice()
    results = suites.run_harness(lm, ["pubmedqa", "medqa"], suite_data=None, limit=60, seed=0)
    items = suites.suite_items(results, "pubmedqa")
    assert len(items) == 60 and len({item.doc_id for item in items}) == 60
    assert Counter(item.choices[item.gold] for item in items) == {"yes": 33, "no": 20, "maybe": 7}
    assert suites.harness_scores(results, "pubmedqa")["sample"] == "seeded stratified 60 of 500 by label, seed 0"
    assert suites.harness_scores(results, "medqa")["sample"] == "all 8"  # a limit above the suite's size takes all
    again = suites.run_harness(lm, ["pubmedqa"], suite_data=both_layouts, limit=60, seed=0)
    assert [i.doc_id for i in suites.suite_items(again, "pubmedqa")] == [i.doc_id for i in items]  # same seed, same questions
    other = suites.run_harness(lm, ["pubmedqa"], suite_data=None, limit=60, seed=1)
    assert {i.doc_id for i in suites.suite_items(other, "pubmedqa")} != {i.doc_id for i in items}
    full = suites.run_harness(lm, ["medqa"], suite_data=None, limit=None)
    assert suites.harness_scores(full, "medqa")["sample"] == "all 8"


@pytest.mark.slow
def test_hub_copies_score_item_for_item_as_the_publisher_files(smollm2_dir, both_layouts):
    """SmolLM2 on both layouts of the same questions (2 per task, the same seeded draw): equal per-item results."""
    names = list(suites.SUITE_TASKS)
    model, tokenizer = load(ModelRef("base", str(smollm2_dir)))
    lm = suites.harness_model(model, tokenizer, batch_size=8)
    by_layout = [suites.run_harness(lm, names, suite_data=data, limit=2, seed=0) for data in (both_layouts, None)]
    for suite in names:
        files, hub_copies = (suites.suite_items(results, suite) for results in by_layout)
        assert files == hub_copies and len(files) == 2 * (6 if suite == "mmlu_medical" else 1), suite
        assert suites.harness_scores(by_layout[0], suite) == suites.harness_scores(by_layout[1], suite)
