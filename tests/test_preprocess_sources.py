"""Every loader on tiny files in its publisher's layout, and on a stand-in for its Hub copy."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import preprocess_fixtures as fx
from hub_cache import hub_cache, write_hub_dataset  # noqa: F401  (hub_cache is a fixture)
from medtune.core import hub_catalog
from medtune.preprocess.errors import PreprocessError
from medtune.preprocess.records import Malformed, Record
from medtune.preprocess.registry import lookup
from medtune.preprocess.sources import base
from medtune.preprocess.spec import SourceSpec


def load(name: str, path: Path, **options) -> list[Record | Malformed]:
    src = SourceSpec(source=name, path=str(path), **options)
    source = lookup(src)
    return list(source.read(source.files(path), src))


def records(items) -> list[Record]:
    return [r for r in items if isinstance(r, Record)]


# ---------------------------------------------------------------- MedQuAD


def test_medquad_xml_tree_counts_removed_answers_and_both_layouts(tmp_path):
    expected = fx.write_medquad(tmp_path)
    items = load("medquad", tmp_path)
    assert len(items) == expected["pairs"]
    assert sum(1 for r in items if not r.answer) == expected["no_answer"]
    ninds = [r for r in items if r.id.startswith("6_NINDS_QA/")]
    assert [r.qtype for r in ninds] == ["information", "treatment"]  # the lowercase doc/pair layout
    assert ninds[0].question == "what is holmes-adie syndrome?"


def test_medquad_answers_lose_markup_artefacts(tmp_path):
    fx.write_medquad(tmp_path)
    by_id = {r.id: r for r in load("medquad", tmp_path)}
    leukemia = by_id["1_CancerGov_QA/0000001_1-1"]
    assert leukemia.question == "What is (are) Adult Acute Leukemia?"
    assert leukemia.answer == (
        "Key Points\n- Leukemia is a cancer of the blood.\n- It may affect red cells.\n\n"
        "Leukemia starts in the bone marrow.\nTreatment depends on the type."
    )
    assert by_id["1_CancerGov_QA/0000001_1-2"].answer == "Fever, tiredness and easy bruising & bleeding."
    # GARD repeats its heading as a question; the hyphen in prose stays.
    assert by_id["2_GARD_QA/0000004-1"].answer == "The Human Phenotype Ontology lists albinism - deafness."
    assert by_id["4_MPlus_Health_Topics_QA/0000001-1"].answer == "A1C is a blood test for type 2 diabetes.\nAsk what your goal should be."


def test_medquad_hub_csv_layout(tmp_path):
    fx.write_medquad_hub_csv(tmp_path / "medquad.csv")
    items = load("medquad", tmp_path / "medquad.csv")
    assert [r.qtype for r in items] == ["susceptibility", "symptoms", "treatment"]
    assert items[0].question == "Who is at risk for Lymphocytic Choriomeningitis (LCM)?"
    assert items[1].answer == "Fever, malaise, headache."
    assert items[2].answer == ""  # counted as no_answer by the pipeline


# ---------------------------------------------------------------- PubMedQA


def test_pubmedqa_official_test_split_from_ground_truth(tmp_path):
    truth = fx.write_pubmedqa(tmp_path, n=10, test_ids=4)
    items = load("pubmedqa", tmp_path)
    assert len(items) == 10
    assert {r.id for r in items if r.split == "test"} == set(truth)
    assert {r.split for r in items} == {"train", "test"}
    first = items[0]
    assert first.answer_key == "yes" and first.answer == "Treatment 0 reduced mortality."
    assert first.context == "BACKGROUND: Background sentence 0.\n\nMETHODS: We studied 0 patients."


def test_pubmedqa_file_path_finds_ground_truth_beside_it_and_works_without(tmp_path):
    fx.write_pubmedqa(tmp_path / "with", n=6, test_ids=2)
    assert sum(r.split == "test" for r in load("pubmedqa", tmp_path / "with" / "ori_pqal.json")) == 2
    fx.write_pubmedqa(tmp_path / "without", n=6, test_ids=0)
    assert {r.split for r in load("pubmedqa", tmp_path / "without")} == {None}


# ---------------------------------------------------------------- MedQA, MedMCQA, MMLU


def test_medqa_keeps_step_and_answer_letter(tmp_path):
    fx.write_jsonl(tmp_path / "us_4options_test.jsonl", fx.medqa_rows(4))
    items = load("medqa", tmp_path / "us_4options_test.jsonl")
    assert [r.qtype for r in items] == ["step2&3", "step1", "step2&3", "step1"]
    assert [r.answer_key for r in items] == ["A", "B", "C", "D"]
    assert items[1].answer == "Drug beta 1" and items[1].options[1] == "Drug beta 1"
    assert {r.split for r in items} == {"test"}


def test_medqa_folder_reads_split_from_file_names(tmp_path):
    fx.write_jsonl(tmp_path / "train.jsonl", fx.medqa_rows(3))
    fx.write_jsonl(tmp_path / "dev.jsonl", fx.medqa_rows(2))
    fx.write_jsonl(tmp_path / "test.jsonl", fx.medqa_rows(2))
    assert sorted(r.split for r in load("medqa", tmp_path)) == ["test", "test", "train", "train", "train", "val", "val"]


@pytest.mark.parametrize("base_index", [1, 0])
def test_medmcqa_cop_one_based_in_files_zero_based_from_hub_exports(tmp_path, base_index):
    rows = fx.medmcqa_rows(8, base=base_index)
    fx.write_jsonl(tmp_path / "dev.json", rows)
    items = load("medmcqa", tmp_path / "dev.json")
    assert [r.answer_key for r in items] == list("ABCDABCD")
    assert items[2].answer == "Nerve c2"
    assert items[0].qtype == "Physiology"


def test_medmcqa_out_of_range_cop_is_malformed_and_missing_cop_is_unanswered(tmp_path):
    rows = fx.medmcqa_rows(3)
    rows[0]["cop"] = 9
    del rows[1]["cop"]
    fx.write_jsonl(tmp_path / "dev.json", rows)
    items = load("medmcqa", tmp_path / "dev.json")
    assert isinstance(items[0], Malformed) and "cop 9" in items[0].why
    assert items[1].answer_key is None


def test_mmlu_reads_only_the_medical_subjects_with_official_splits(tmp_path):
    fx.write_mmlu(tmp_path)
    items = load("mmlu_medical", tmp_path)
    assert {r.qtype for r in items} == {"anatomy", "medical_genetics"}
    assert sum(r.split == "test" for r in items) == 7 and sum(r.split == "train" for r in items) == 4
    first = next(r for r in items if r.id == "anatomy_test/1")
    assert first.question == "anatomy test question 0, with a comma?" and first.answer_key == "A" and first.answer == "opt A0"


# ---------------------------------------------------------------- flashcards / medical meadow


@pytest.mark.parametrize("name", ["flashcards", "medical_meadow", "wikidoc"])
def test_meadow_layout_question_from_input_or_instruction(tmp_path, name):
    (tmp_path / "meadow.json").write_text(json.dumps(fx.meadow_rows()))
    items = load(name, tmp_path / "meadow.json")
    assert [r.question for r in items] == ["What are the symptoms of Allergy?", "What causes Asthma?", "What is the normal range of blood pH?"]
    assert items[2].answer == "7.35 to 7.45." and {r.source for r in items} == {name}


# ---------------------------------------------------------------- your own files


def test_custom_csv_with_column_mapping(tmp_path):
    fx.write_custom_csv(tmp_path / "train.csv")
    src = SourceSpec(source=str(tmp_path / "train.csv"), columns={"question": "Question", "answer": "Answer", "qtype": "Type"})
    source = lookup(src)
    items = list(source.read(source.files(Path(src.source)), src))
    assert [r.qtype for r in items] == ["storage", "vitals", "drugs", "vitals"]
    assert items[0].source == "train" and items[0].id == "row2"  # spreadsheet row numbers: the header is row 1


@pytest.mark.parametrize("name, separator", [("semicolons.csv", ";"), ("tabs.tsv", "\t")])
def test_custom_csv_separators_from_the_header(tmp_path, name, separator):
    (tmp_path / name).write_text(f"question{separator}answer\nIs it safe, really?{separator}Yes, mostly.\n")
    src = SourceSpec(source=str(tmp_path / name))
    (item,) = list(lookup(src).read([Path(src.source)], src))
    assert (item.question, item.answer) == ("Is it safe, really?", "Yes, mostly.")


def test_custom_json_list_with_input_output_names(tmp_path):
    (tmp_path / "mine.json").write_text(json.dumps([{"input": "What is BMI?", "output": "A weight-for-height index."}]))
    src = SourceSpec(source=str(tmp_path / "mine.json"))
    (item,) = list(lookup(src).read([Path(src.source)], src))
    assert (item.question, item.answer, item.source) == ("What is BMI?", "A weight-for-height index.", "mine")


def test_custom_xlsx_guesses_usual_column_names(tmp_path):
    fx.write_xlsx(tmp_path / "VerifiedQ_A.xlsx", ["question", "ANSWER", "Notes"], [["What is BMI?", "Weight divided by height squared.", None], ["Is 7.5% an HbA1c target?", 7.5, "x"]])
    src = SourceSpec(source=str(tmp_path / "VerifiedQ_A.xlsx"))
    items = list(lookup(src).read([Path(src.source)], src))
    assert [(r.question, r.answer) for r in items] == [("What is BMI?", "Weight divided by height squared."), ("Is 7.5% an HbA1c target?", "7.5")]


def test_custom_jsonl_with_context_and_ids(tmp_path):
    fx.write_jsonl(tmp_path / "qa.jsonl", [{"uid": "q1", "q": "Dose?", "a": "10 mg daily.", "ctx": "Adult patient."}])
    src = SourceSpec(source=str(tmp_path / "qa.jsonl"), columns={"question": "q", "answer": "a", "context": "ctx", "id": "uid"})
    (item,) = list(lookup(src).read([Path(src.source)], src))
    assert (item.id, item.question, item.answer, item.context) == ("q1", "Dose?", "10 mg daily.", "Adult patient.")


# ---------------------------------------------------------------- Hub copies (a Hugging Face cache in the Hub's layout)


def _write_hub(cache, dataset, files: dict) -> None:
    """`files`: {(config, split): rows} at the paths and pinned revision the catalog names."""
    write_hub_dataset(cache, dataset.repo_id, dataset.revision,
                      {dataset.files[config][split]: rows for (config, split), rows in files.items()})


def _hub_records(name: str) -> list[Record | Malformed]:
    src = SourceSpec(source=name)
    source = lookup(src)
    return list(source.read_hub(base.load_hub(source), src))


def test_hub_layouts_of_every_named_source(hub_cache):
    test_id, other_id = hub_catalog.pubmedqa_test_ids()[0], "90000001"
    pubmed = [{"pubid": int(pmid), "question": f"Is X better in {pmid}?",
               "context": {"contexts": ["Some text."], "labels": ["RESULTS"], "meshes": ["H"]},
               "long_answer": "X was better.", "final_decision": "yes"} for pmid in (test_id, other_id)]
    medmcqa = fx.medmcqa_rows(4, base=0)
    _write_hub(hub_cache, hub_catalog.MEDQUAD, {(None, "train"): [
        {"qtype": "symptoms", "Question": "What are the symptoms of Y ?", "Answer": "Cough."}]})
    _write_hub(hub_cache, hub_catalog.PUBMEDQA, {("pqa_labeled", "train"): pubmed})
    _write_hub(hub_cache, hub_catalog.MEDQA, {(None, "train"): fx.medqa_rows(2), (None, "test"): fx.medqa_rows(1)})
    _write_hub(hub_cache, hub_catalog.MEDMCQA, {(None, "train"): medmcqa[:2], (None, "validation"): medmcqa[2:]})
    _write_hub(hub_cache, hub_catalog.FLASHCARDS, {(None, "train"): fx.meadow_rows()})
    _write_hub(hub_cache, hub_catalog.MMLU, {(s, split): [{"question": f"{s} {split}?", "subject": s, "choices": ["a", "b", "c", "d"],
                                                           "answer": 2}] for s in hub_catalog.MMLU_MEDICAL_SUBJECTS
                                             for split in ("test", "validation", "dev")})

    (medquad,) = _hub_records("medquad")
    assert (medquad.question, medquad.answer, medquad.qtype) == ("What are the symptoms of Y?", "Cough.", "symptoms")
    test, other = _hub_records("pubmedqa")  # the shipped official test ids split pqa_labeled as the publisher's files do
    assert (test.id, test.split, other.id, other.split) == (test_id, "test", other_id, "train")
    assert (test.answer_key, test.context, test.answer) == ("yes", "RESULTS: Some text.", "X was better.")
    medqa = _hub_records("medqa")
    assert [r.split for r in medqa] == ["train", "train", "test"] and medqa[1].answer_key == "B"
    mcq = _hub_records("medmcqa")  # the unlabelled test split is not even fetched; validation is the benchmark's test
    assert [(r.answer_key, r.split) for r in mcq] == [("A", "train"), ("B", "train"), ("C", "test"), ("D", "test")]
    assert len(_hub_records("flashcards")) == 3
    mmlu = _hub_records("mmlu")
    assert len(mmlu) == 18 and {r.answer_key for r in mmlu} == {"C"}
    assert sorted({(r.qtype, r.split) for r in mmlu})[:3] == [("anatomy", "test"), ("anatomy", "train"), ("anatomy", "val")]


def test_hub_copy_not_cached_offline_names_the_dataset_and_the_fix(hub_cache):
    with pytest.raises(PreprocessError) as info:
        _hub_records("pubmedqa")
    message = str(info.value)
    assert "qiaojin/PubMedQA@9001f28" in message and "not in the Hugging Face cache" in message
    assert "path:" in message and "HF_HUB_OFFLINE" in message


def test_hub_copy_with_a_renamed_column_is_an_error_naming_it(hub_cache):
    """Not "no training rows": a re-upload that renamed `answer_idx` says so."""
    renamed = [{("answer_key" if key == "answer_idx" else key): value for key, value in row.items()} for row in fx.medqa_rows(2)]
    _write_hub(hub_cache, hub_catalog.MEDQA, {(None, "train"): renamed, (None, "test"): renamed})
    with pytest.raises(PreprocessError) as info:
        _hub_records("medqa")
    message = str(info.value)
    assert "GBaker/MedQA-USMLE-4-options@0fb93dd" in message and "no column 'answer_idx'" in message
    assert "answer_key" in message and "path:" in message
