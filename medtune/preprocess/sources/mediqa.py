"""MEDIQA 2019 task 3 (question answering): the publisher's XML files, one per set.

Layout (github.com/abachaa/MEDIQA2019, MEDIQA_Task3_QA/): `<Question QID>` holding `<QuestionText>` and an
`<AnswerList>` of `<Answer AID SystemRank ReferenceRank ReferenceScore>` with `<AnswerURL>` and `<AnswerText>`.
ReferenceScore is the experts' grade: 4 excellent, 3 correct but incomplete, 2 related, 1 incorrect. Answers
graded 3 or 4 are correct and each becomes a record (the question with that reference answer); 1 and 2 are
counted as filtered. The file name gives the split: TrainingSet1-LiveQAMed and TrainingSet2-Alexa train,
ValidationSet val, TestSet-wLabels test.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from ..errors import PreprocessError
from ..readers import read_bytes, show
from ..records import Malformed, Record
from ..spec import SourceSpec
from ..text import clean, clean_question
from .base import Rows, Source, need_files, split_from_name, walk_files

CORRECT = (3, 4)
"""ReferenceScore grades of a correct answer."""


def files(path: Path) -> list[Path]:
    """The XML files of a folder, less an unlabelled test file whose `-wLabels` twin is there too."""
    if path.is_dir():
        found = walk_files(path, (".xml",))
        labelled = {p.stem.removesuffix("-wLabels") for p in found if p.stem.endswith("-wLabels")}
        found = [p for p in found if p.stem not in labelled]
        return need_files(found, path, "MEDIQA 2019 QA XML files",
                          "the MEDIQA_Task3_QA folder (MEDIQA2019-Task3-QA-TrainingSet1-LiveQAMed.xml, ...)")
    return [path]


def _root(path: Path) -> ET.Element:
    try:
        return ET.fromstring(read_bytes(path))
    except ET.ParseError as exc:
        raise PreprocessError(f"broken XML ({exc})", file=show(path),
                              fix="download the file again from github.com/abachaa/MEDIQA2019 (MEDIQA_Task3_QA)") from exc


def _score(answer: ET.Element) -> int | None:
    try:
        return int(answer.get("ReferenceScore", ""))
    except ValueError:
        return None


def _answers(question: ET.Element, qid: str, text: str, split: str | None, origin: str) -> Rows:
    answers = question.find("AnswerList")
    if answers is None or not answers.findall("Answer"):
        yield Malformed(origin, "no <AnswerList> with <Answer> elements")
        return
    for i, answer in enumerate(answers.findall("Answer"), start=1):
        aid = answer.get("AID") or f"{qid}_{i}"
        where = f"{origin} answer {aid}"
        score = _score(answer)
        if score is None or not 1 <= score <= 4:
            yield Malformed(where, f"ReferenceScore {answer.get('ReferenceScore')!r} is not a grade 1-4 "
                                   "(an unlabelled test file? use MEDIQA2019-Task3-QA-TestSet-wLabels.xml)")
            continue
        yield Record(id=aid, question=text, answer=clean(answer.findtext("AnswerText")), source="mediqa",
                     split=split, origin=where, filtered=score not in CORRECT)


def read(paths: list[Path], src: SourceSpec) -> Rows:
    for path in paths:
        root = _root(path)
        questions = root.findall(".//Question")
        if not questions:
            raise PreprocessError("no <Question> elements: not a MEDIQA 2019 QA file", file=show(path),
                                  fix="point `path:` at the MEDIQA_Task3_QA folder or one of its XML files")
        split = split_from_name(path.stem)
        for number, question in enumerate(questions, start=1):
            qid = question.get("QID") or f"{path.stem}/{number}"
            origin = f"{show(path)} question {qid}"
            text = clean_question(question.findtext("QuestionText"))
            if not text:
                yield Malformed(origin, "empty <QuestionText>")
                continue
            yield from _answers(question, qid, text, split, origin)


SOURCE = Source(
    name="mediqa",
    summary="MEDIQA 2019 QA (task 3): consumer questions with graded candidate answers; the correct ones (3-4) as references",
    licence="as published by the MEDIQA 2019 organizers (github.com/abachaa/MEDIQA2019); check before redistributing",
    files=files,
    read=read,
    aliases=("mediqa2019", "mediqa_qa"),
)
