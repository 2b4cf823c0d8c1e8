"""Every Hugging Face Hub dataset medtune reads, pinned to the commit its readers were written against.

A pinned commit keeps a benchmark's questions fixed: a re-upload on the Hub cannot change a score
silently. Each SHA below is the `main` commit that public pinned-revision code and dataset cards
record for the repository (they agree across independent projects); the one repository for which
no commit could be found is read at `main` and says so. To move to a newer upload, change the
revision here after checking its layout (the readers' column checks fail loudly if it moved).

File paths are the repositories' own files at those commits: parquet for cais/mmlu, qiaojin/PubMedQA
and openlifescienceai/medmcqa (`<config>/<split>-00000-of-00001.parquet`, `data/<split>-...`), the
publisher's JSONL for GBaker/MedQA-USMLE-4-options, a CSV for MedQuAD, a JSON list for medAlpaca's sets.
"""
from __future__ import annotations

from .hub import HubDataset
from .paths import PACKAGE_DIR

MMLU_MEDICAL_SUBJECTS = ("anatomy", "clinical_knowledge", "college_biology", "college_medicine", "medical_genetics",
                         "professional_medicine")

# The non-"-hf" copy: GBaker/MedQA-USMLE-4-options-hf (the harness's medqa task) drops `meta_info`,
# which separates USMLE Step 1 from Step 2&3; this one is the publisher's JSONL, row for row.
MEDQA = HubDataset(
    "GBaker/MedQA-USMLE-4-options", "0fb93dd23a7339b6dcd27e241cb9b5eca62d4d18",
    files={None: {"train": "phrases_no_exclude_train.jsonl", "test": "phrases_no_exclude_test.jsonl"}},
    columns=("question", "options", "answer_idx", "meta_info"),
)
# `cop` is 0-based here (1-based in the publisher's files); the test split's labels are withheld (-1).
MEDMCQA = HubDataset(
    "openlifescienceai/medmcqa", "91c6572c454088bf71b679ad90aa8dffcd0d5868",
    files={None: {split: f"data/{split}-00000-of-00001.parquet" for split in ("train", "validation", "test")}},
    columns=("id", "question", "opa", "opb", "opc", "opd", "cop"),
)
MMLU = HubDataset(
    "cais/mmlu", "c30699e8356da336a370243923dbaf21066bb9fe",
    files={subject: {split: f"{subject}/{split}-00000-of-00001.parquet" for split in ("test", "validation", "dev")}
           for subject in MMLU_MEDICAL_SUBJECTS},
    columns=("question", "choices", "answer"),
)
# pqa_labeled is one `train` split of 1,000; which 500 form the official test split is not on the
# Hub, so medtune ships their ids (PUBMEDQA_TEST_IDS) and selects them.
PUBMEDQA = HubDataset(
    "qiaojin/PubMedQA", "9001f2853fb87cab8d220904e0de81ac6973b318",
    files={"pqa_labeled": {"train": "pqa_labeled/train-00000-of-00001.parquet"}},
    columns=("pubid", "question", "context.contexts", "context.labels", "long_answer", "final_decision"),
)
MEDQUAD = HubDataset(
    "keivalya/MedQuad-MedicalQnADataset", "5b0961fbaa6d7f9c344c5d59c29943fb900c2eca",
    files={None: {"train": "medDataset_processed.csv"}},
    columns=("qtype", "Question", "Answer"),
)
FLASHCARDS = HubDataset(
    "medalpaca/medical_meadow_medical_flashcards", "7597b32036d67c731cb91bae4f49717fcfe5d5f0",
    files={None: {"train": "medical_meadow_wikidoc_medical_flashcards.json"}},
    columns=("input", "output"),
)
WIKIDOC = HubDataset(
    "medalpaca/medical_meadow_wikidoc", "976bce16fd66f55e6828422b71249a7405a11aa4",
    files={None: {"train": "*.json"}},
    columns=("input", "output"),
)
# No published commit of this repository could be found to pin: it is read at `main`.
WIKIDOC_PATIENT_INFORMATION = HubDataset(
    "medalpaca/medical_meadow_wikidoc_patient_information", "main",
    files={None: {"train": "*.json"}},
    columns=("input", "output"),
)

PUBMEDQA_TEST_IDS_FILE = PACKAGE_DIR / "data" / "pubmedqa_test_pmids.txt"


def pubmedqa_test_ids() -> list[str]:
    """The official PubMedQA test split's 500 PubMed ids, in the order of the publisher's test_ground_truth.json."""
    lines = PUBMEDQA_TEST_IDS_FILE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]
