"""MedQuAD: the NIH publisher's XML folders, or the Hub's flat CSV (qtype, Question, Answer).

Three MedlinePlus folders ship questions whose answers were removed for copyright; they become
records with an empty answer, so the pipeline counts them as `no_answer` instead of losing them.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from ..errors import PreprocessError
from ..readers import iter_csv, read_bytes, show
from ..records import Malformed, Record
from ..spec import SourceSpec
from ..text import clean, clean_medquad_answer, clean_question
from ...core import hub_catalog
from .base import HubData, Rows, Source, need_files, walk_files

# Most files use Document/QAPairs/QAPair/Question/Answer; four NINDS files use doc/qaPairs/pair/question/answer.
_PAIR_TAGS = {"QAPair", "pair"}
_FOCUS_TAGS = {"Focus", "doctitle-focus"}

QTYPES = frozenset({
    "information", "symptoms", "treatment", "causes", "outlook", "exams and tests",
    "when to contact a medical professional", "inheritance", "precautions", "side effects",
    "other information", "indication", "usage", "prevention", "brand names", "emergency or overdose",
    "complications", "frequency", "storage and disposal", "forget a dose", "dietary", "genetic changes",
    "considerations", "susceptibility", "important warning", "research", "brand names of combination products",
    "support groups", "dose", "how effective is it", "how does it work", "interactions with medications",
    "interactions with herbs and supplements", "interactions with foods", "stages", "how can i learn more",
    "severe reaction", "contraindication", "why get vaccinated",
})


def files(path: Path) -> list[Path]:
    if path.is_dir():
        return need_files(walk_files(path, (".xml",)), path, "MedQuAD XML files",
                          "the MedQuAD folder (holding 1_CancerGov_QA ... 12_MPlusHerbsSupplements_QA)")
    return [path]


def _child(element: ET.Element, name: str) -> ET.Element | None:
    for child in element:
        if child.tag.lower() == name:
            return child
    return None


def _read_xml(path: Path) -> Rows:
    try:
        root = ET.fromstring(read_bytes(path))
    except ET.ParseError as exc:
        raise PreprocessError(
            f"broken XML ({exc})",
            file=show(path), fix="restore this file from the MedQuAD download, or delete it (its questions are then missing)",
        ) from exc
    focus = next((clean(el.text) for el in root if el.tag in _FOCUS_TAGS), "")
    folder, shown = path.parent.name, show(path)
    for pair in root.iter():
        if pair.tag not in _PAIR_TAGS:
            continue
        question, answer = _child(pair, "question"), _child(pair, "answer")
        origin = f"{shown} pair {pair.get('pid', '?')}"
        if question is None:
            yield Malformed(origin, "QA pair without a <Question>")
            continue
        qid = question.get("qid") or f"{path.stem}-{pair.get('pid', '?')}"
        text = clean_medquad_answer("".join(answer.itertext()) if answer is not None else None, focus)
        yield Record(
            id=f"{folder}/{qid}",
            question=clean_question(question.text) if text else question.text or "",  # unanswered ones are only counted
            answer=text,
            source="medquad",
            qtype=question.get("qtype"),
            origin=origin,
        )


def _row(qtype: object, question: object, answer: object, rid: str, origin: str) -> Record:
    return Record(
        id=rid, question=clean_question(question), answer=clean_medquad_answer(clean(answer), ""),
        source="medquad", qtype=clean(qtype) or None, origin=origin,
    )


def _read_csv(path: Path) -> Rows:
    rows = iter_csv(path)
    _, header = next(rows)
    index = {name.strip().lower(): i for i, name in enumerate(header)}
    missing = [c for c in ("question", "answer") if c not in index]
    if missing:
        raise PreprocessError(
            f"no {' or '.join(missing)} column in the header {header!r}", file=show(path), row=1,
            fix="use the Hub layout (qtype, Question, Answer) or load it as your own file with `columns:`",
        )
    q, a, t = index["question"], index["answer"], index.get("qtype")
    for row_no, row in rows:
        if len(row) != len(header):
            yield Malformed(f"{show(path)}:{row_no}", f"{len(row)} fields where the header has {len(header)}")
            continue
        yield _row(row[t] if t is not None else None, row[q], row[a], f"{path.stem}/{row_no}", f"{show(path)}:{row_no}")


def read(paths: list[Path], src: SourceSpec) -> Rows:
    for path in paths:
        yield from _read_csv(path) if path.suffix.lower() == ".csv" else _read_xml(path)


def read_hub(data: HubData, src: SourceSpec) -> Rows:
    for split, ds in data[None].items():
        for i, row in enumerate(ds):
            yield _row(row.get("qtype"), row.get("Question"), row.get("Answer"), f"{split}/{i}", f"hub {split} row {i}")


SOURCE = Source(
    name="medquad",
    summary="MedQuAD: 47,457 consumer-health QA pairs from 12 NIH sites (XML folders, or the Hub CSV layout)",
    licence="CC BY 4.0",
    files=files,
    read=read,
    hub=hub_catalog.MEDQUAD,
    read_hub=read_hub,
    qtypes=QTYPES,
)
