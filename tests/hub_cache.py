"""A Hugging Face Hub cache written from rows, in the layout huggingface_hub leaves after a download, so
code that reads the Hub runs offline (HF_HUB_OFFLINE=1) against data a test chose.

    <HF_HUB_CACHE>/datasets--<owner>--<name>/
        blobs/<sha256 of the content>
        snapshots/<commit>/<path in the repository>   -> ../../blobs/<sha256> (relative symlink)
        refs/main                                      the commit

`write_hub_dataset` writes one repository at one revision; `write_suite_layouts` writes the four
benchmark suites both as the Hub copies medtune pins (hub_catalog) and as the publishers' files,
from the same fixture rows. Reusable from any test (the whole-pipeline rehearsal too): use
`use_hub_cache(monkeypatch, folder)` or the `hub_cache` fixture to point the process at it.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from pathlib import Path

import pytest

_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def _encode(path: str, rows: list[dict] | list[list]) -> bytes:
    """The bytes of a repository file holding `rows`, in the format its name says."""
    suffix = Path(path).suffix.lower()
    if suffix == ".parquet":
        import datasets

        buffer = io.BytesIO()
        datasets.Dataset.from_list(rows).to_parquet(buffer)  # with the `huggingface` schema metadata the Hub's files carry
        return buffer.getvalue()
    if suffix == ".jsonl":
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()
    if suffix == ".json":
        return json.dumps(rows, ensure_ascii=False).encode()
    if suffix == ".csv":
        text = io.StringIO()
        if rows and isinstance(rows[0], dict):
            writer = csv.DictWriter(text, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        else:
            csv.writer(text).writerows(rows)
        return text.getvalue().encode()
    raise ValueError(f"no writer for {path}")


def write_hub_dataset(cache_dir: Path, repo_id: str, revision: str, files: dict[str, list]) -> Path:
    """Write a dataset repository's files (path in the repository -> rows) at `revision` into a Hub cache.

    A revision that is not a commit (e.g. "main") gets a commit made from the content, and refs/<revision>
    names it, as after downloading a branch. Returns the snapshot folder.
    """
    repo = Path(cache_dir) / ("datasets--" + repo_id.replace("/", "--"))
    contents = {path: _encode(path, rows) for path, rows in files.items()}
    commit = revision if _COMMIT.match(revision) else hashlib.sha1(
        b"".join(path.encode() + data for path, data in sorted(contents.items()))).hexdigest()
    snapshot = repo / "snapshots" / commit
    for path, data in contents.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / path
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / ("main" if _COMMIT.match(revision) else revision)).write_text(commit)
    return snapshot


def use_hub_cache(monkeypatch: pytest.MonkeyPatch, folder: Path) -> Path:
    """Point this process (and processes it starts) at a Hub cache under `folder`, offline."""
    hub = Path(folder) / "hub"
    hub.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(Path(folder) / "datasets"))  # datasets' Arrow copies stay in tmp too
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return hub


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hub cache for this test, offline; write datasets into it with write_hub_dataset."""
    return use_hub_cache(monkeypatch, tmp_path / "hf")


# ---------------------------------------------------------------- the four benchmark suites, both layouts

LETTERS = "ABCD"


def suite_rows(extra_pubmedqa: int = 12) -> dict:
    """Fixture questions of every suite, in the publishers' layouts (the Hub layouts are derived from them).

    PubMedQA: one record per official test id (labels in the official split's proportions, sorted by
    label as the official file is) plus `extra_pubmedqa` records outside the test split.
    """
    from medtune.core.hub_catalog import MMLU_MEDICAL_SUBJECTS, pubmedqa_test_ids

    test_ids = pubmedqa_test_ids()
    decisions = ["yes"] * 276 + ["no"] * 169 + ["maybe"] * 55
    pubmedqa = {pmid: {"QUESTION": f"Does factor {i} change outcome {i % 7}?",
                       "CONTEXTS": [f"We studied {i} patients.", f"Outcome {i % 7} was measured."],
                       "LABELS": ["METHODS", "RESULTS"], "MESHES": ["Humans"], "YEAR": "2012",
                       "reasoning_required_pred": decisions[i], "reasoning_free_pred": decisions[i],
                       "final_decision": decisions[i], "LONG_ANSWER": f"Factor {i} mattered."}
                for i, pmid in enumerate(test_ids)}
    for j in range(extra_pubmedqa):
        pubmedqa[str(90000000 + j)] = {**pubmedqa[test_ids[j]], "QUESTION": f"Outside the test split {j}?",
                                       "final_decision": "no"}
    medqa = []
    for i in range(8):
        options = {letter: f"Option {letter.lower()}{i}" for letter in LETTERS}
        key = LETTERS[(i * 3) % 4]
        medqa.append({"question": f"A {30 + i}-year-old woman has symptom {i}. What is the next step?",
                      "answer": options[key], "options": options, "meta_info": "step1" if i % 2 else "step2&3",
                      "answer_idx": key, "metamap_phrases": ["woman", f"symptom {i}"]})
    medmcqa = [{"question": f"Which enzyme is deficient in disorder {i}:", "exp": "Explained." if i % 2 else None,
                "cop": (i % 4) + 1, "opa": f"Enzyme a{i}", "opb": f"Enzyme b{i}", "opc": f"Enzyme c{i}",
                "opd": f"Enzyme d{i}", "subject_name": "Biochemistry", "topic_name": None,
                "id": f"mcqa-{i:04d}", "choice_type": "single"} for i in range(8)]
    mmlu = {subject: [[f"{subject} question {i}?", f"{subject} a{i}", f"{subject} b{i}", f"{subject} c{i}",
                       f"{subject} d{i}", LETTERS[(i + n) % 4]] for i in range(3 + n % 2)]
            for n, subject in enumerate(MMLU_MEDICAL_SUBJECTS)}
    return {"pubmedqa": pubmedqa, "pubmedqa_test": test_ids, "medqa": medqa, "medmcqa": medmcqa, "mmlu": mmlu}


def write_suite_files(folder: Path, rows: dict) -> Path:
    """The publishers' layout of `rows`, as an `eval.suite_data` folder reads it."""
    (folder / "pubmedqa").mkdir(parents=True, exist_ok=True)
    (folder / "pubmedqa" / "ori_pqal.json").write_text(json.dumps(rows["pubmedqa"]))
    truth = {pmid: rows["pubmedqa"][pmid]["final_decision"] for pmid in rows["pubmedqa_test"]}
    (folder / "pubmedqa" / "test_ground_truth.json").write_text(json.dumps(truth))
    (folder / "medqa").mkdir(exist_ok=True)
    (folder / "medqa" / "us_4options_test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows["medqa"]))
    (folder / "medmcqa").mkdir(exist_ok=True)
    (folder / "medmcqa" / "dev.json").write_text("".join(json.dumps(r) + "\n" for r in rows["medmcqa"]))
    (folder / "mmlu").mkdir(exist_ok=True)
    for subject, subject_rows in rows["mmlu"].items():
        with (folder / "mmlu" / f"{subject}_test.csv").open("w", newline="") as fh:
            csv.writer(fh).writerows(subject_rows)
    return folder


def write_suite_hub(cache_dir: Path, rows: dict) -> None:
    """The same questions as the Hub copies medtune pins serve them, at the pinned revisions."""
    from medtune.core import hub_catalog as hub

    labeled = []
    for pmid, record in rows["pubmedqa"].items():
        labeled.append({"pubid": int(pmid), "question": record["QUESTION"],
                        "context": {"contexts": record["CONTEXTS"], "labels": record["LABELS"], "meshes": record["MESHES"],
                                    "reasoning_required_pred": list(record["reasoning_required_pred"]),
                                    "reasoning_free_pred": list(record["reasoning_free_pred"])},
                        "long_answer": record["LONG_ANSWER"], "final_decision": record["final_decision"]})
    labeled.sort(key=lambda row: row["pubid"])  # the Hub's order is not the test file's
    write_hub_dataset(cache_dir, hub.PUBMEDQA.repo_id, hub.PUBMEDQA.revision,
                      {hub.PUBMEDQA.files["pqa_labeled"]["train"]: labeled})
    write_hub_dataset(cache_dir, hub.MEDQA.repo_id, hub.MEDQA.revision,
                      {hub.MEDQA.files[None]["test"]: rows["medqa"], hub.MEDQA.files[None]["train"]: rows["medqa"][:2]})
    validation = [{**row, "cop": row["cop"] - 1} for row in rows["medmcqa"]]  # 0-based on the Hub
    write_hub_dataset(cache_dir, hub.MEDMCQA.repo_id, hub.MEDMCQA.revision,
                      {hub.MEDMCQA.files[None]["validation"]: validation, hub.MEDMCQA.files[None]["train"]: validation[:2]})
    mmlu_files = {}
    for subject, subject_rows in rows["mmlu"].items():
        as_hub = [{"question": q, "subject": subject, "choices": [a, b, c, d], "answer": LETTERS.index(key)}
                  for q, a, b, c, d, key in subject_rows]
        mmlu_files[hub.MMLU.files[subject]["test"]] = as_hub
        mmlu_files[hub.MMLU.files[subject]["validation"]] = as_hub[:1]  # read by preprocess, not by the suites
        mmlu_files[hub.MMLU.files[subject]["dev"]] = as_hub[:1]
    write_hub_dataset(cache_dir, hub.MMLU.repo_id, hub.MMLU.revision, mmlu_files)


def write_suite_layouts(folder: Path, cache_dir: Path, rows: dict | None = None) -> dict:
    """Both layouts of the same fixture rows: publisher files under `folder`, Hub copies in `cache_dir`."""
    rows = rows or suite_rows()
    write_suite_files(folder, rows)
    write_suite_hub(cache_dir, rows)
    return rows
