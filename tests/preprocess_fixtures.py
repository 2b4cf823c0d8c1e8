"""Tiny data in each publisher's exact layout, written by the tests themselves (never copied from ../shared/data)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

_MEDQUAD_DOC = """<?xml version="1.0" encoding="UTF-8"?>
<Document id="{doc_id}" source="{source}" url="https://example.org/{doc_id}">
{comment}<Focus>{focus}</Focus>
<FocusAnnotations>
\t<UMLS>
\t\t<CUIs>
\t\t\t<CUI>C0000001</CUI>
\t\t</CUIs>
\t</UMLS>
</FocusAnnotations>
<QAPairs>
{pairs}</QAPairs>
</Document>
"""
_MEDQUAD_PAIR = """\t<QAPair pid="{pid}">
\t\t\t<Question qid="{doc_id}-{pid}" qtype="{qtype}">{question}</Question>
\t\t\t<Answer>{answer}</Answer>
\t</QAPair>
"""
_NINDS_DOC = """<?xml version="1.0" encoding="UTF-8"?>
<doc docid="{doc_id}" corpus="NINDS" url="http://example.org/ninds">
<doctitle-focus>{focus}</doctitle-focus>
<umls>
<cui></cui>
</umls>
<qaPairs>
{pairs}</qaPairs>
</doc>
"""
_NINDS_PAIR = """<pair pid="{pid}">
<question qid="{doc_id}-{pid}" qtype="{qtype}">{question}</question>
<answer>{answer}</answer>
</pair>
"""


def _medquad_file(path: Path, doc_id: str, source: str, focus: str, pairs: list[tuple[str, str, str]], removed: bool = False) -> None:
    body = "".join(_MEDQUAD_PAIR.format(pid=i, doc_id=doc_id, qtype=t, question=q, answer=a) for i, (t, q, a) in enumerate(pairs, 1))
    comment = " <!--Answers from the A.D.A.M. medical encyclopedia were removed to comply with the MedlinePlus copyright-->\n" if removed else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_MEDQUAD_DOC.format(doc_id=doc_id, source=source, comment=comment, focus=focus, pairs=body))


def write_medquad(root: Path) -> dict:
    """Four folders like the real tree; returns the counts a loader must report."""
    _medquad_file(root / "1_CancerGov_QA" / "0000001_1.xml", "0000001_1", "CancerGov", "Adult Acute Leukemia", [
        ("information", "What is (are) Adult Acute Leukemia ?",
         "Key Points\n                    - Leukemia is a cancer of the blood.    - It may affect red cells.\n"
         "                \n                \n                    Leukemia starts in the bone marrow.       Treatment depends on the type."),
        ("symptoms", "What are the symptoms of Adult Acute Leukemia ?", "Fever, tiredness and easy bruising &amp; bleeding."),
        ("symptoms", "What are the symptoms of Adult Acute Leukemia ?", "Fever, tiredness and easy bruising &amp; bleeding."),
    ])
    _medquad_file(root / "2_GARD_QA" / "0000004.xml", "0000004", "GARD", "ABCD syndrome", [
        ("symptoms", "What are the symptoms of ABCD syndrome ?",
         "What are the signs and symptoms of ABCD syndrome? The Human Phenotype Ontology lists albinism - deafness."),
        ("causes", "What causes ABCD syndrome ?", "ABCD syndrome is caused by mutations in the EDNRB gene."),
    ])
    _medquad_file(root / "4_MPlus_Health_Topics_QA" / "0000001.xml", "0000001", "MPlusHealthTopics", "A1C", [
        ("information", "Do you have information about A1C", "Summary : A1C is a blood test for type 2 diabetes.    Ask what your goal should be."),
    ])
    _medquad_file(root / "10_MPlus_ADAM_QA" / "0000001.xml", "0000001", "ADAM", "A guide to clinical trials", [
        ("information", "What is (are) A guide to clinical trials ?", ""),
        ("research", "what research (or clinical trials) is being done for A guide to clinical trials ?", ""),
    ], removed=True)
    ninds = "".join(_NINDS_PAIR.format(pid=i, doc_id="0000007", qtype=t, question=q, answer=a) for i, (t, q, a) in enumerate([
        ("information", "what is holmes-adie syndrome ?", "Holmes-Adie syndrome is a neurological disorder affecting the pupil."),
        ("treatment", "what are the treatments for holmes-adie syndrome ?", "Doctors may prescribe reading glasses."),
    ], 1))
    (root / "6_NINDS_QA").mkdir(parents=True, exist_ok=True)
    (root / "6_NINDS_QA" / "0000007.xml").write_text(_NINDS_DOC.format(doc_id="0000007", focus="Holmes-Adie", pairs=ninds))
    return {"pairs": 10, "answered": 8, "no_answer": 2, "duplicates": 1, "files": 5}


def write_medquad_hub_csv(path: Path) -> None:
    """The keivalya/MedQuAD-MedicalQnADataset layout: qtype, Question, Answer."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["qtype", "Question", "Answer"])
        writer.writerow(["susceptibility", "Who is at risk for Lymphocytic Choriomeningitis (LCM)? ?", "LCMV infections can occur after exposure."])
        writer.writerow(["symptoms", "What are the symptoms of LCM ?", "Fever, malaise,   headache."])
        writer.writerow(["treatment", "What are the treatments for LCM ?", ""])


def pubmedqa_items(n: int = 10) -> dict:
    decisions = ["yes", "no", "maybe"]
    return {
        str(10000 + i): {
            "QUESTION": f"Does treatment {i} reduce mortality in condition {i}?",
            "CONTEXTS": [f"Background sentence {i}.", f"We studied {i * 10} patients."],
            "LABELS": ["BACKGROUND", "METHODS"],
            "MESHES": ["Humans"],
            "YEAR": "2010",
            "reasoning_required_pred": "yes",
            "reasoning_free_pred": "yes",
            "final_decision": decisions[i % 3],
            "LONG_ANSWER": f"Treatment {i} {'reduced' if i % 3 == 0 else 'did not reduce'} mortality.",
        }
        for i in range(n)
    }


def write_pubmedqa(folder: Path, n: int = 10, test_ids: int = 4) -> dict:
    items = pubmedqa_items(n)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ori_pqal.json").write_text(json.dumps(items))
    truth = {pmid: items[pmid]["final_decision"] for pmid in list(items)[:test_ids]}
    if test_ids:
        (folder / "test_ground_truth.json").write_text(json.dumps(truth))
    return truth


def medqa_rows(n: int = 6) -> list[dict]:
    rows = []
    for i in range(n):
        options = {"A": f"Drug alpha {i}", "B": f"Drug beta {i}", "C": f"Drug gamma {i}", "D": f"Drug delta {i}"}
        idx = "ABCD"[i % 4]
        rows.append({"question": f"A {20 + i}-year-old man presents with pain {i}. Which is the best next step?",
                     "answer": options[idx], "options": options, "meta_info": "step1" if i % 2 else "step2&3",
                     "answer_idx": idx, "metamap_phrases": ["man", "pain"]})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def medmcqa_rows(n: int = 6, base: int = 1) -> list[dict]:
    """The publisher's dev.json layout; `cop` is 1-based there (base=1) and 0-based on the Hub (base=0)."""
    return [{"question": f"Which nerve supplies muscle {i}:", "exp": None, "cop": (i % 4) + base,
             "opa": f"Nerve a{i}", "opb": f"Nerve b{i}", "opc": f"Nerve c{i}", "opd": f"Nerve d{i}",
             "subject_name": "Anatomy" if i % 2 else "Physiology", "topic_name": None,
             "id": f"0000-{i:04d}", "choice_type": "single"} for i in range(n)]


def write_mmlu(folder: Path) -> None:
    """Headerless `question,A,B,C,D,answer` files for two medical subjects and one other subject."""
    folder.mkdir(parents=True, exist_ok=True)
    for subject, n_test in (("anatomy", 4), ("medical_genetics", 3), ("astronomy", 2)):
        for split, n in (("test", n_test), ("dev", 2)):
            with (folder / f"{subject}_{split}.csv").open("w", newline="") as fh:
                writer = csv.writer(fh)
                for i in range(n):
                    writer.writerow([f"{subject} {split} question {i}, with a comma?", f"opt A{i}", f"opt B{i}", f"opt C{i}", f"opt D{i}", "ABCD"[i % 4]])


def meadow_rows() -> list[dict]:
    return [
        {"instruction": "Answer this question truthfully", "input": "What are the symptoms of Allergy?", "output": "Sneezing and itching."},
        {"instruction": "Answer this question truthfully", "input": "What causes Asthma?", "output": "Inflammation of the airways."},
        {"instruction": "What is the normal range of blood pH?", "input": "", "output": "7.35 to 7.45."},
    ]


def write_custom_csv(path: Path, header=("Question", "Answer", "Type"), rows=None) -> None:
    rows = rows if rows is not None else [
        ("How should insulin be stored?", "Keep unopened insulin in the fridge.", "storage"),
        ("What is a normal resting heart rate?", "60 to 100 beats per minute for adults.", "vitals"),
        ("Can I take ibuprofen with food?", "Yes, taking it with food reduces stomach upset.", "drugs"),
        ("What is hypertension?", "Blood pressure that stays at or above 130/80 mm Hg.", "vitals"),
    ]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def write_xlsx(path: Path, header, rows) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(list(header))
    for row in rows:
        sheet.append(list(row))
    book.save(path)
