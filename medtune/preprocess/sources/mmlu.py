"""MMLU, the six medical subjects: headerless CSV rows `question,A,B,C,D,answer` named `<subject>_<split>.csv`.

The publisher's `dev` files (5 few-shot examples per subject) count as training data, `val` as
validation and `test` as the official test split; other subjects' files in the folder are not read.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..readers import iter_csv, show
from ..records import Malformed, Record
from ..spec import SourceSpec
from ..text import clean, clean_question
from ...core import hub_catalog
from .base import HubData, Rows, Source, need_files, walk_files

SUBJECTS = hub_catalog.MMLU_MEDICAL_SUBJECTS
_NAME = re.compile(r"^(?P<subject>[a-z_]+?)_(?P<split>dev|val|test)$")
_SPLITS = {"dev": "train", "val": "val", "validation": "val", "test": "test", "auxiliary_train": "train"}
_LETTERS = "ABCD"


def _subject_split(path: Path) -> tuple[str, str] | None:
    match = _NAME.match(path.stem)
    if match and match["subject"] in SUBJECTS:
        return match["subject"], _SPLITS[match["split"]]
    return None


def files(path: Path) -> list[Path]:
    if path.is_dir():
        found = [p for p in walk_files(path, (".csv",)) if _subject_split(p)]
        return need_files(found, path, "MMLU medical subject files", f"a folder of <subject>_test.csv files for {', '.join(SUBJECTS)}")
    return [path]


def _record(question: object, options: list, answer: object, subject: str | None, split: str | None, rid: str, origin: str) -> Record:
    texts = [clean(o) for o in options]
    key = clean(answer).upper() or None
    return Record(
        id=rid, question=clean_question(question), answer=texts[_LETTERS.index(key)] if key and key in _LETTERS else "",
        source="mmlu_medical", qtype=subject, options=texts, answer_key=key, split=split, origin=origin,
    )


def read(paths: list[Path], src: SourceSpec) -> Rows:
    for path in paths:
        subject, split = _subject_split(path) or (None, None)
        for row_no, row in iter_csv(path):
            origin = f"{show(path)}:{row_no}"
            if len(row) != 6:
                yield Malformed(origin, f"{len(row)} fields; MMLU rows are question,A,B,C,D,answer")
                continue
            yield _record(row[0], row[1:5], row[5], subject, split, f"{path.stem}/{row_no}", origin)


def read_hub(data: HubData, src: SourceSpec) -> Rows:
    for subject, splits in data.items():
        for split, ds in splits.items():
            for i, row in enumerate(ds):
                answer = row.get("answer")
                letter = _LETTERS[answer] if isinstance(answer, int) and 0 <= answer < 4 else None
                yield _record(row.get("question"), list(row.get("choices") or []), letter, subject, _SPLITS.get(split),
                              f"{subject}_{split}/{i}", f"hub {subject} {split} row {i}")


SOURCE = Source(
    name="mmlu_medical",
    summary="MMLU medical subjects: " + ", ".join(SUBJECTS) + " (1,089 test questions, 4 options)",
    licence="MIT",
    files=files,
    read=read,
    hub=hub_catalog.MMLU,
    read_hub=read_hub,
    aliases=("mmlu",),
    qtypes=frozenset(SUBJECTS),
)
