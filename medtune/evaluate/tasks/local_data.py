"""Loaders for lm-eval's `custom_dataset:` hook: publisher files on disk -> the Hub schemas the harness's prompts expect.

lm-eval calls each loader with the task's metadata (our `suite_data` folder, set through the
TaskManager) plus its `dataset_kwargs`. Rows are converted into the field names of the Hub copies
the shipped tasks were written for, so the harness's own doc_to_text/doc_to_target apply unchanged.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import datasets

LETTERS = "ABCD"


def _folder(suite_data: str | None, name: str) -> Path:
    if not suite_data:
        raise ValueError("suite_data is not set: pass TaskManager(metadata={'suite_data': FOLDER})")
    folder = Path(suite_data).expanduser() / name
    if not folder.is_dir():
        raise FileNotFoundError(f"suite data folder {folder} does not exist")
    return folder


def _require(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"suite data file {path} does not exist")
    return path


def pubmedqa(suite_data: str | None = None, **_: object) -> datasets.DatasetDict:
    """PubMedQA's official 500-question test split (bigbio `pubmed_qa_labeled_fold0_source` test)."""
    folder = _folder(suite_data, "pubmedqa")
    records = json.loads(_require(folder / "ori_pqal.json").read_text())
    truth = json.loads(_require(folder / "test_ground_truth.json").read_text())
    rows = []
    for pmid, decision in truth.items():
        record = records[pmid]
        if record["final_decision"] != decision:
            raise ValueError(f"pubmedqa {pmid}: ori_pqal says {record['final_decision']}, ground truth {decision}")
        rows.append({"pubid": pmid, **{key: record[key] for key in ("QUESTION", "CONTEXTS", "LABELS", "MESHES",
                                                                      "YEAR", "final_decision", "LONG_ANSWER")}})
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def medqa(suite_data: str | None = None, **_: object) -> datasets.DatasetDict:
    """MedQA-USMLE 4 options test split, in the SWAG-like layout of GBaker/MedQA-USMLE-4-options-hf."""
    path = _require(_folder(suite_data, "medqa") / "us_4options_test.jsonl")
    rows = []
    for index, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        record = json.loads(line)
        rows.append({
            "id": f"test-{index:05d}",
            "sent1": record["question"],
            "sent2": "",
            **{f"ending{i}": record["options"][letter] for i, letter in enumerate(LETTERS)},
            "label": LETTERS.index(record["answer_idx"]),
            "meta_info": record.get("meta_info", ""),  # step1 / step2&3: reported separately
        })
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def medmcqa(suite_data: str | None = None, **_: object) -> datasets.DatasetDict:
    """MedMCQA dev split (the Hub's `validation`); the publisher's `cop` is 1-based, the Hub's 0-based."""
    path = _require(_folder(suite_data, "medmcqa") / "dev.json")
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        if record["cop"] not in (1, 2, 3, 4):
            raise ValueError(f"medmcqa {record.get('id')}: cop {record['cop']!r} is not 1..4")
        rows.append({
            "id": record["id"], "question": record["question"],
            "opa": record["opa"], "opb": record["opb"], "opc": record["opc"], "opd": record["opd"],
            "cop": record["cop"] - 1,
            "choice_type": record.get("choice_type") or "", "exp": record.get("exp") or "",
            "subject_name": record.get("subject_name") or "", "topic_name": record.get("topic_name") or "",
        })
    return datasets.DatasetDict({"validation": datasets.Dataset.from_list(rows)})


def _mmlu_rows(path: Path, subject: str) -> list[dict]:
    rows = []
    with path.open(newline="", encoding="utf-8") as fh:
        for fields in csv.reader(fh):  # headerless: question, A, B, C, D, answer letter
            if len(fields) != 6:
                raise ValueError(f"{path}: expected 6 columns, got {len(fields)}")
            rows.append({"question": fields[0], "subject": subject, "choices": fields[1:5],
                         "answer": LETTERS.index(fields[5].strip())})
    return rows


def mmlu(suite_data: str | None = None, subject: str | None = None, **_: object) -> datasets.DatasetDict:
    """One MMLU subject's test split (and dev, the harness's few-shot source) in cais/mmlu's layout."""
    folder = _folder(suite_data, "mmlu")
    splits = {"test": _mmlu_rows(_require(folder / f"{subject}_test.csv"), subject)}
    dev = folder / f"{subject}_dev.csv"
    if dev.is_file():
        splits["dev"] = _mmlu_rows(dev, subject)
    return datasets.DatasetDict({name: datasets.Dataset.from_list(rows) for name, rows in splits.items()})
