"""The normalized record every loader produces, and the marker for a row that could not be read."""
from __future__ import annotations

from dataclasses import dataclass

SPLITS = ("train", "val", "test")
DROP_REASONS = ("no_answer", "duplicate", "too_long", "malformed", "filtered")
YES_NO_MAYBE = ("yes", "no", "maybe")


@dataclass(slots=True)
class Record:
    """One question with its answer, independent of the publisher's layout."""

    id: str
    """Unique within its source (publisher id where there is one, else file and row)."""
    question: str
    answer: str
    """Free-text answer; for multiple choice the correct option's text; for PubMedQA the long answer.
    Empty when the publisher ships no answer (counted as no_answer, never emitted)."""
    source: str
    qtype: str | None = None
    """Question type / subject (MedQuAD qtype, MedQA step, MMLU or MedMCQA subject)."""
    context: str | None = None
    options: list[str] | None = None
    """Multiple-choice option texts, lettered A, B, C, ... in this order."""
    answer_key: str | None = None
    """The correct letter for multiple choice, or yes/no/maybe for PubMedQA."""
    split: str | None = None
    """The publisher's own split (train/val/test) where it ships one."""
    origin: str = ""
    """Where the row came from (file and row), for messages."""
    group: str | None = None
    """Memo of hygiene.group_key (computed once; dedup, split and the leakage check all need it). A loader may
    set it to group records its own way (cord19: by abstract)."""
    filtered: bool = False
    """The publisher marks the record as not to be used (a MEDIQA answer judged incorrect): counted as filtered."""


@dataclass(slots=True)
class Malformed:
    """A row that could not become a record; counted as dropped `malformed` and listed in the manifest."""

    origin: str
    why: str


def letter(index: int) -> str:
    return chr(ord("A") + index)


def validate(record: Record) -> str | None:
    """Why a record with an answer is unusable (None if fine); called on every loader's output."""
    if not record.question:
        return "empty question"
    if record.options is not None:
        if len(record.options) < 2:
            return "fewer than two options"
        if any(not o for o in record.options):
            return "an empty option"
        keys = [letter(i) for i in range(len(record.options))]
        if record.answer_key not in keys:
            return f"answer key {record.answer_key!r} is not one of {', '.join(keys)}"
    elif record.answer_key is not None and record.answer_key not in YES_NO_MAYBE:
        return f"decision {record.answer_key!r} is not yes, no or maybe"
    return None


def has_answer(record: Record) -> bool:
    return bool(record.answer) or record.answer_key is not None
