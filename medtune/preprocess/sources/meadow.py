"""medAlpaca's "medical meadow" sets in instruction/input/output layout (flashcards, WikiDoc, patient info).

`input` holds the question; `instruction` is a fixed task line ("Answer this question truthfully")
and becomes the question only where `input` is empty.
"""
from __future__ import annotations

from pathlib import Path

from ..readers import iter_json_objects, show
from ..records import Malformed, Record
from ..spec import SourceSpec
from ..text import clean, clean_question
from ...core import hub_catalog
from ...core.hub import HubDataset
from .base import HubData, Rows, Source, need_files

_LICENCE = "from a GPL-3.0 repository (medAlpaca): use for tests and research only; check before redistributing"


def files(path: Path) -> list[Path]:
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix.lower() in (".json", ".jsonl"))
        return need_files(found, path, "instruction/input/output .json or .jsonl files")
    return [path]


def _record(row: dict, name: str, rid: str, origin: str) -> Record | Malformed:
    if "output" not in row or not ("input" in row or "instruction" in row):
        return Malformed(origin, "expected the keys instruction, input and output")
    question = clean_question(row.get("input")) or clean_question(row.get("instruction"))
    return Record(id=rid, question=question, answer=clean(row.get("output")), source=name, origin=origin)


def _reader(name: str):
    def read(paths: list[Path], src: SourceSpec) -> Rows:
        for path in paths:
            for row_no, row in iter_json_objects(path):
                if isinstance(row, Malformed):
                    yield row
                    continue
                yield _record(row, name, f"{path.stem}/{row_no}", f"{show(path)}:{row_no}")

    def read_hub(data: HubData, src: SourceSpec) -> Rows:
        for split, ds in data[None].items():
            for i, row in enumerate(ds):
                yield _record(row, name, f"{split}/{i}", f"hub {split} row {i}")

    return read, read_hub


def _source(name: str, hub: HubDataset, summary: str, aliases: tuple[str, ...] = ()) -> Source:
    read, read_hub = _reader(name)
    return Source(name=name, summary=summary, licence=_LICENCE, files=files, read=read, hub=hub,
                  read_hub=read_hub, aliases=aliases)


FLASHCARDS = _source("flashcards", hub_catalog.FLASHCARDS,
                     "Medical flashcards (medAlpaca): 34k short question/answer cards", ("medical_flashcards",))
WIKIDOC = _source("wikidoc", hub_catalog.WIKIDOC, "WikiDoc textbook QA (medAlpaca): 10k questions")
MEDICAL_MEADOW = _source("medical_meadow", hub_catalog.WIKIDOC_PATIENT_INFORMATION,
                         "WikiDoc patient information (medAlpaca medical meadow): 5,942 questions", ("wikidoc_patient_information",))
