"""Loaders for lm-eval's `custom_dataset:` hook: each suite's questions, from the Hub copy at its pinned
revision or from the publisher's files, in the Hub schemas the harness's prompts were written for.

lm-eval calls each loader with the task's metadata plus its `dataset_kwargs`. `suite_data` (set through
the TaskManager) names a folder of publisher files; unset, the Hub copy is read (medtune.core.hub: the
Hugging Face cache when HF_HUB_OFFLINE is set). Both layouts go through the same row builders, so the
same questions give the same documents, prompts and targets either way.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import datasets

from medtune.core.hub import load_hub_dataset
from medtune.core.hub_catalog import pubmedqa_test_ids
from medtune.evaluate.suites import SUITE_HUB

LETTERS = "ABCD"


def _folder(suite_data: str, name: str) -> Path:
    folder = Path(suite_data).expanduser() / name
    if not folder.is_dir():
        raise FileNotFoundError(f"suite data folder {folder} does not exist")
    return folder


def _require(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"suite data file {path} does not exist")
    return path


def _hub_split(suite: str, config: str | None = None) -> datasets.Dataset:
    """The one split a suite reads from its Hub copy (for MMLU, of one subject's configuration)."""
    dataset, configs, splits = SUITE_HUB[suite]
    config = configs[0] if config is None else config
    return load_hub_dataset(dataset, configs=[config], splits=splits)[config][splits[0]]


def _json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in _require(path).read_text(encoding="utf-8").splitlines() if line.strip()]


# ---------------------------------------------------------------- PubMedQA


def _pubmedqa_doc(pmid: str, question: str, contexts: list, labels: list, meshes: list, decision: str,
                  long_answer: str) -> dict:
    """bigbio's `pubmed_qa_labeled_fold0_source` fields, which the harness's pubmedqa prompt reads."""
    return {"pubid": pmid, "QUESTION": question, "CONTEXTS": list(contexts), "LABELS": list(labels or []),
            "MESHES": list(meshes or []), "final_decision": decision, "LONG_ANSWER": long_answer}


def pubmedqa(suite_data: str | None = None, **_: object) -> datasets.DatasetDict:
    """PubMedQA's official 500-question test split, in the order of the publisher's test_ground_truth.json."""
    docs = []
    if suite_data:
        folder = _folder(suite_data, "pubmedqa")
        records = json.loads(_require(folder / "ori_pqal.json").read_text())
        truth = json.loads(_require(folder / "test_ground_truth.json").read_text())
        for pmid, decision in truth.items():
            record = records[pmid]
            if record["final_decision"] != decision:
                raise ValueError(f"pubmedqa {pmid}: ori_pqal says {record['final_decision']}, ground truth {decision}")
            docs.append(_pubmedqa_doc(pmid, record["QUESTION"], record["CONTEXTS"], record.get("LABELS"),
                                      record.get("MESHES"), decision, record.get("LONG_ANSWER") or ""))
    else:
        # pqa_labeled holds the test split and the cross-validation half in one `train` split: select the
        # official ids, in their published order.
        rows = {str(row["pubid"]): row for row in _hub_split("pubmedqa")}
        missing = [pmid for pmid in pubmedqa_test_ids() if pmid not in rows]
        if missing:
            raise ValueError(f"the Hub copy of PubMedQA lacks {len(missing)} of the official test ids, e.g. {missing[:3]}")
        for pmid in pubmedqa_test_ids():
            row, context = rows[pmid], rows[pmid]["context"]
            docs.append(_pubmedqa_doc(pmid, row["question"], context["contexts"], context.get("labels"),
                                      context.get("meshes"), row["final_decision"], row.get("long_answer") or ""))
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})


# ---------------------------------------------------------------- MedQA


def _medqa_doc(record: dict, index: int) -> dict:
    """GBaker/MedQA-USMLE-4-options-hf's SWAG-like layout (the harness's prompt), plus `meta_info`."""
    return {
        "id": f"test-{index:05d}",
        "sent1": record["question"],
        "sent2": "",
        **{f"ending{i}": record["options"][letter] for i, letter in enumerate(LETTERS)},
        "label": LETTERS.index(record["answer_idx"]),
        "meta_info": record.get("meta_info") or "",  # step1 / step2&3: reported separately
    }


def medqa(suite_data: str | None = None, **_: object) -> datasets.DatasetDict:
    """MedQA-USMLE 4 options test split: the publisher's JSONL, which the Hub copy carries row for row."""
    if suite_data:
        records = _json_lines(_folder(suite_data, "medqa") / "us_4options_test.jsonl")
    else:
        records = list(_hub_split("medqa"))
    return datasets.DatasetDict({"test": datasets.Dataset.from_list([_medqa_doc(r, i) for i, r in enumerate(records)])})


# ---------------------------------------------------------------- MedMCQA


def _medmcqa_doc(record: dict, cop: int) -> dict:
    if cop not in (0, 1, 2, 3):
        raise ValueError(f"medmcqa {record.get('id')}: correct option {cop!r} is not one of 0..3")
    return {
        "id": record["id"], "question": record["question"],
        "opa": record["opa"], "opb": record["opb"], "opc": record["opc"], "opd": record["opd"],
        "cop": cop,
        "choice_type": record.get("choice_type") or "", "exp": record.get("exp") or "",
        "subject_name": record.get("subject_name") or "", "topic_name": record.get("topic_name") or "",
    }


def medmcqa(suite_data: str | None = None, **_: object) -> datasets.DatasetDict:
    """MedMCQA dev split (the Hub's `validation`); the publisher's `cop` is 1-based, the Hub's 0-based."""
    if suite_data:
        docs = [_medmcqa_doc(r, r["cop"] - 1) for r in _json_lines(_folder(suite_data, "medmcqa") / "dev.json")]
    else:
        docs = [_medmcqa_doc(r, r["cop"]) for r in _hub_split("medmcqa")]
    return datasets.DatasetDict({"validation": datasets.Dataset.from_list(docs)})


# ---------------------------------------------------------------- MMLU


def _mmlu_csv(path: Path, subject: str) -> list[dict]:
    rows = []
    with _require(path).open(newline="", encoding="utf-8") as fh:
        for fields in csv.reader(fh):  # headerless: question, A, B, C, D, answer letter
            if len(fields) != 6:
                raise ValueError(f"{path}: expected 6 columns, got {len(fields)}")
            rows.append({"question": fields[0], "subject": subject, "choices": fields[1:5],
                         "answer": LETTERS.index(fields[5].strip())})
    return rows


def mmlu(suite_data: str | None = None, subject: str | None = None, **_: object) -> datasets.DatasetDict:
    """One MMLU subject's test split in cais/mmlu's layout (zero-shot: no few-shot split is read)."""
    if suite_data:
        rows = _mmlu_csv(_folder(suite_data, "mmlu") / f"{subject}_test.csv", subject)
    else:
        rows = [{"question": r["question"], "subject": subject, "choices": list(r["choices"]), "answer": int(r["answer"])}
                for r in _hub_split("mmlu_medical", subject)]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})
