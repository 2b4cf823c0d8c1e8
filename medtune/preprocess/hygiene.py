"""Dedup (exact and normalized text) and the question key that keeps duplicates inside one split."""
from __future__ import annotations

from .drops import Tally
from .records import Record
from .text import normalize


def group_key(record: Record) -> str:
    """The question as a reader sees it (stem, context, options in any order), normalized.

    Records with equal keys always land in the same split, so a repeated question never straddles two.
    """
    if record.group is None:
        options = "|".join(sorted(normalize(o) for o in record.options)) if record.options else ""
        record.group = f"{normalize(record.question)}\x1f{normalize(record.context)}\x1f{options}"
    return record.group


class Deduper:
    """Drops a record whose question and answer were already seen, exactly or after normalization.

    One instance spans all sources, so a question given by two sources is kept once (the caller
    feeds the most held-out copies first). Answers are normalized only when their question was
    seen before: normalizing every MedQuAD answer would cost a second for nothing.
    """

    def __init__(self) -> None:
        self._exact: set[tuple] = set()
        self._answers: dict[str, list[list]] = {}
        """group key -> [answer_key, raw answer, normalized answer or None until needed]."""

    def keep(self, record: Record, tally: Tally) -> bool:
        exact = (record.question, record.context, tuple(record.options or ()), record.answer, record.answer_key)
        if exact in self._exact:
            tally.dedup["exact"] += 1
            tally.drop("duplicate")
            return False
        self._exact.add(exact)
        seen = self._answers.setdefault(group_key(record), [])
        if seen:
            mine = normalize(record.answer)
            for entry in seen:
                if entry[2] is None:
                    entry[2] = normalize(entry[1])
                if entry[0] == record.answer_key and entry[2] == mine:
                    tally.dedup["normalized"] += 1
                    tally.drop("duplicate")
                    return False
        seen.append([record.answer_key, record.answer, None])
        return True
