"""MedQA (USMLE): JSONL rows with question, options {A..D}, answer, answer_idx and meta_info (step1, step2&3).

A folder is read file by file; a file's name says its split (`us_4options_test.jsonl`, `..._dev.jsonl`).
"""
from __future__ import annotations

from pathlib import Path

from ..readers import iter_json_objects, show
from ..records import Malformed, Record
from ..spec import SourceSpec
from ..text import clean, clean_question
from ...core import hub_catalog
from .base import HubData, Rows, Source, need_files, walk_files, split_from_name


def files(path: Path) -> list[Path]:
    if path.is_dir():
        return need_files(walk_files(path, (".jsonl",)), path, "MedQA .jsonl files", "the folder holding e.g. us_4options_test.jsonl")
    return [path]


def _record(row: dict, rid: str, split: str | None, origin: str) -> Record | Malformed:
    options = row.get("options")
    if isinstance(options, list):  # some re-uploads store options as [{"key": "A", "value": ...}]
        options = {o.get("key"): o.get("value") for o in options if isinstance(o, dict)}
    if not isinstance(options, dict) or not options:
        return Malformed(origin, "no options object")
    letters = sorted(options)
    texts = [clean(options[k]) for k in letters]
    key = clean(row.get("answer_idx")).upper() or None
    answer = clean(row.get("answer"))
    if key is None and answer:  # older dumps carry only the answer text
        key = next((k for k, t in zip(letters, texts) if t == answer), None)
    if key is not None and key in letters:
        key = chr(ord("A") + letters.index(key))  # options are re-lettered from A in sorted order
        answer = texts[ord(key) - ord("A")]
    return Record(
        id=rid, question=clean_question(row.get("question")), answer=answer, source="medqa",
        qtype=clean(row.get("meta_info")) or None, options=texts, answer_key=key, split=split, origin=origin,
    )


def read(paths: list[Path], src: SourceSpec) -> Rows:
    for path in paths:
        split = split_from_name(path.stem)
        for row_no, row in iter_json_objects(path):
            if isinstance(row, Malformed):
                yield row
                continue
            yield _record(row, f"{path.stem}/{row_no}", split, f"{show(path)}:{row_no}")


def read_hub(data: HubData, src: SourceSpec) -> Rows:
    for split, ds in data[None].items():
        for i, row in enumerate(ds):
            yield _record(row, f"{split}/{i}", split_from_name(split), f"hub {split} row {i}")


SOURCE = Source(
    name="medqa",
    summary="MedQA-USMLE 4-option: 12,723 board-exam questions (train 10,178 / test 1,273), meta_info step1 or step2&3",
    licence="MIT",
    files=files,
    read=read,
    hub=hub_catalog.MEDQA,
    read_hub=read_hub,
    aliases=("medqa_usmle",),
    qtypes=frozenset({"step1", "step2&3"}),
)
