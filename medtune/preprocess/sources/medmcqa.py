"""MedMCQA: JSON lines with question, opa..opd, cop, subject_name, topic_name, exp.

`cop` (the correct option) is 1-based in the publisher's files and 0-based on the Hub. Each file's
convention is read from its own values (a 0 proves 0-based, a 4 proves 1-based) and otherwise
follows where it came from. The dev split is the benchmark's test split (test labels are withheld).
"""
from __future__ import annotations

from pathlib import Path

from ..readers import iter_json_objects, show
from ..records import Malformed, Record
from ..spec import SourceSpec
from ..text import clean, clean_question
from ...core import hub_catalog
from .base import HubData, Rows, Source, need_files

_OPTION_FIELDS = ("opa", "opb", "opc", "opd")
# dev/validation is what everyone reports MedMCQA accuracy on; the public test split has no labels.
_SPLITS = {"train": "train", "dev": "test", "validation": "test", "test": None}


def files(path: Path) -> list[Path]:
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix.lower() in (".json", ".jsonl"))
        return need_files(found, path, "MedMCQA .json files", "the folder holding train.json and dev.json")
    return [path]


def _cop_base(rows: list, default: int) -> int:
    cops = {r.get("cop") for r in rows if isinstance(r, dict)}
    if 0 in cops:
        return 0
    if 4 in cops:
        return 1
    return default


def _record(row: dict, base: int, split: str | None, rid: str, origin: str) -> Record | Malformed:
    if any(f not in row for f in _OPTION_FIELDS):
        return Malformed(origin, "missing one of the options opa, opb, opc, opd")
    options = [clean(row[f]) for f in _OPTION_FIELDS]
    cop = row.get("cop")
    key = None
    if isinstance(cop, int) and not isinstance(cop, bool) and cop >= 0:  # the unlabelled test split has -1 or none
        index = cop - base
        if not 0 <= index < len(options):
            return Malformed(origin, f"cop {cop} is outside 1..4 (publisher files) / 0..3 (Hub)")
        key = chr(ord("A") + index)
    return Record(
        id=str(row.get("id") or rid), question=clean_question(row.get("question")),
        answer=options[ord(key) - ord("A")] if key else "", source="medmcqa",
        qtype=clean(row.get("subject_name")) or None, options=options, answer_key=key, split=split, origin=origin,
    )


def read(paths: list[Path], src: SourceSpec) -> Rows:
    for path in paths:
        rows = list(iter_json_objects(path))
        base = _cop_base([r for _, r in rows], default=1)
        split = _SPLITS.get(path.stem.lower())
        for row_no, row in rows:
            if isinstance(row, Malformed):
                yield row
                continue
            yield _record(row, base, split, f"{path.stem}/{row_no}", f"{show(path)}:{row_no}")


def read_hub(data: HubData, src: SourceSpec) -> Rows:
    for split, ds in data[None].items():  # train and validation: the test split's cop is -1 throughout
        for i, row in enumerate(ds):
            yield _record(row, 0, _SPLITS[split], f"{split}/{i}", f"hub {split} row {i}")


SOURCE = Source(
    name="medmcqa",
    summary="MedMCQA: 194k Indian medical entrance-exam questions, 4 options, 21 subjects (dev 4,183 is the test split)",
    licence="MIT (the publisher's files); Apache-2.0 on the Hub",
    files=files,
    read=read,
    hub=hub_catalog.MEDMCQA,
    read_hub=read_hub,
    hub_splits=("train", "validation"),
)
