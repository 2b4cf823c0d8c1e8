"""MedQuAD's Hub copy (keivalya/MedQuad-MedicalQnADataset at medtune's pinned revision) written into a test's
Hugging Face cache from rows made here, so a recipe that reads MedQuAD from the Hub runs offline.

The rows are in the Hub CSV's layout (qtype, Question, Answer): distinct consumer-health questions about a
dozen conditions, short enough that every one fits a 256-token training sequence.
"""
from __future__ import annotations

from pathlib import Path

from hub_cache import write_hub_dataset

CONDITIONS = ("asthma", "anemia", "gout", "psoriasis", "migraine", "glaucoma", "celiac disease", "shingles",
              "hypothyroidism", "kidney stones", "osteoporosis", "sleep apnea")
QUESTIONS = {
    "information": ("What is (are) {c} ?", "{C} is a long-term condition that a doctor can diagnose and help manage. "
                    "Many people with {c} lead full lives when it is recognized early."),
    "symptoms": ("What are the symptoms of {c} ?", "Signs of {c} differ from person to person. Some people notice them "
                 "slowly over months, while others have sudden episodes that need prompt care."),
    "causes": ("What causes {c} ?", "{C} can follow from a mix of inherited risk and things in daily life. In many "
               "people no single cause is ever found."),
    "treatment": ("What are the treatments for {c} ?", "Treatment of {c} depends on how severe it is. Options include "
                  "medicines, changes in daily habits and regular check-ups with a specialist."),
    "exams and tests": ("How to diagnose {c} ?", "A doctor asks about the history of {c} in the family, examines the "
                        "patient and may order blood tests or imaging to confirm it."),
    "prevention": ("How to prevent {c} ?", "Not every case of {c} can be prevented, but a healthy weight, no smoking "
                   "and early treatment of related problems lower the risk."),
    "outlook": ("What is the outlook for {c} ?", "Most people with {c} do well with treatment. The outlook is better "
                "when the condition is found early and followed over time."),
    "complications": ("What are the complications of {c} ?", "Without care, {c} can lead to other health problems. "
                      "Regular follow-up helps catch them before they become serious."),
    "frequency": ("How many people are affected by {c} ?", "{C} is fairly common. Its frequency differs with age, sex "
                  "and the part of the world a person lives in."),
    "susceptibility": ("Who is at risk for {c}? ?", "People with a family history of {c} are at higher risk, as are "
                       "those with certain other long-term illnesses."),
}


def medquad_rows() -> list[dict]:
    """120 distinct rows, qtype by qtype for each condition (the Hub file's order: grouped by topic)."""
    return [{"qtype": qtype, "Question": question.format(c=c),
             "Answer": answer.format(c=c, C=c[0].upper() + c[1:])}
            for c in CONDITIONS for qtype, (question, answer) in QUESTIONS.items()]


def write_medquad_hub(cache_dir: Path, rows: list[dict] | None = None) -> Path:
    """MedQuAD's Hub CSV at the pinned revision in the cache; returns the snapshot folder."""
    from medtune.core import hub_catalog

    dataset = hub_catalog.MEDQUAD
    return write_hub_dataset(cache_dir, dataset.repo_id, dataset.revision,
                             {dataset.files[None]["train"]: rows or medquad_rows()})
