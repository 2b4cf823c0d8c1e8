"""PubMedQA: the publisher's ori_pqal.json (+ test_ground_truth.json) or the Hub's pqa_labeled layout.

A record keeps the abstract as context, yes/no/maybe as answer key and the conclusion as answer.
With test_ground_truth.json beside ori_pqal.json, its 500 ids are the official test split.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import PreprocessError
from ..readers import load_json, show
from ..records import Malformed, Record
from ..spec import SourceSpec
from ..text import clean, clean_question
from ...core import hub_catalog
from .base import HubData, Rows, Source

GROUND_TRUTH = "test_ground_truth.json"


def files(path: Path) -> list[Path]:
    if path.is_dir():
        main = path / "ori_pqal.json"
        if not main.is_file():
            raise PreprocessError("no ori_pqal.json in this folder", file=path, fix="point `path:` at the PubMedQA data folder or at the JSON file")
        path = main
    truth = path.parent / GROUND_TRUTH
    return [path, truth] if truth.is_file() and path.name != GROUND_TRUTH else [path]


def _context(contexts: list, labels: list | None) -> str:
    """Abstract sections as `LABEL: text` paragraphs (labels are BACKGROUND, METHODS, RESULTS, ...)."""
    labels = labels or []
    parts = []
    for i, text in enumerate(contexts or []):
        label = clean(labels[i]) if i < len(labels) else ""
        parts.append(f"{label.upper()}: {clean(text)}" if label else clean(text))
    return "\n\n".join(parts)


def _record(pmid: str, question: object, contexts: list, labels: list | None, decision: object, long_answer: object,
            split: str | None, origin: str) -> Record:
    key = clean(decision).lower() or None
    return Record(
        id=str(pmid), question=clean_question(question), answer=clean(long_answer), source="pubmedqa",
        context=_context(contexts, labels) or None, answer_key=key, split=split, origin=origin,
    )


def read(paths: list[Path], src: SourceSpec) -> Rows:
    main = paths[0]
    data = load_json(main)
    if not isinstance(data, dict):
        raise PreprocessError("expected a JSON object keyed by PubMed id (the ori_pqal.json layout)", file=show(main))
    test_ids: set[str] = set()
    if len(paths) > 1:
        truth = load_json(paths[1])
        if not isinstance(truth, dict):
            raise PreprocessError("expected a JSON object {pmid: decision}", file=show(paths[1]))
        test_ids = set(map(str, truth))
    for pmid, item in data.items():
        origin = f"{show(main)} id {pmid}"
        if not isinstance(item, dict) or "QUESTION" not in item:
            yield Malformed(origin, "entry has no QUESTION")
            continue
        split = ("test" if pmid in test_ids else "train") if test_ids else None
        yield _record(pmid, item["QUESTION"], item.get("CONTEXTS"), item.get("LABELS"), item.get("final_decision"),
                      item.get("LONG_ANSWER"), split, origin)


def read_hub(data: HubData, src: SourceSpec) -> Rows:
    # pqa_labeled ships one `train` split of 1,000; the official 500-question test split is not marked on
    # the Hub, so its ids, shipped with medtune, split the rows as test_ground_truth.json does for the files.
    test_ids = set(hub_catalog.pubmedqa_test_ids())
    for split, ds in data["pqa_labeled"].items():
        for i, row in enumerate(ds):
            context = row.get("context") or {}
            pmid = str(row["pubid"])
            yield _record(pmid, row.get("question"), context.get("contexts"), context.get("labels"),
                          row.get("final_decision"), row.get("long_answer"), "test" if pmid in test_ids else "train",
                          f"hub {split} row {i}")


SOURCE = Source(
    name="pubmedqa",
    summary="PubMedQA: 1,000 expert-labelled yes/no/maybe questions on PubMed abstracts (official 500-question test split)",
    licence="MIT",
    files=files,
    read=read,
    hub=hub_catalog.PUBMEDQA,
    read_hub=read_hub,
)
