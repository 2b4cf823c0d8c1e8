"""Atomic facts of a reference answer without an LLM: sentence and clause splitting that survives medical prose.

An offline simplification of KnowTuning's fact extraction (the paper asks GPT-3.5 to break an answer into atomic
facts): a fact here is a sentence, a list item, or a clause of a long sentence split at a semicolon. It knows
abbreviations ("e.g.", "Dr.", "vs."), decimals and doses ("2.5 mg"), and bulleted or numbered lists.
"""
from __future__ import annotations

import re

LIST_MARKER = re.compile(r"^\s*(?:[-*\u2022]|\d{1,2}[.)])\s+")
"""A bullet (-, *, •) or a number (1. or 1)) opening a line."""
ABBREVIATIONS = frozenset({
    "e.g", "i.e", "etc", "vs", "cf", "al", "approx", "dr", "mr", "mrs", "ms", "prof", "st", "jr", "sr", "fig", "no",
    "u.s", "u.k", "inc", "ltd", "dept", "mt",
})
"""Words (lower case, no final period) whose period never ends a sentence."""
# End of a sentence: . ! or ? (plus closing quotes/brackets), whitespace, then what opens a sentence.
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s+(?=[A-Z0-9\"'(\[])")
_WORD_BEFORE = re.compile(r"([A-Za-z][A-Za-z.]*)\.[\"')\]]*\s*$")
_CLAUSE_END = re.compile(r";\s+")
_INLINE_NUMBER = re.compile(r"^\d{1,2}[.)]$")
_LEAD_IN_NUMBER = re.compile(r"^(.*:)\s+(\d{1,2}[.)])$")
MIN_CLAUSE_WORDS = 4
"""A semicolon splits a sentence only when both sides have this many words (not `fever; cough; rash`)."""


def _sentences(text: str) -> list[str]:
    pieces, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        before = _WORD_BEFORE.search(text[start:match.start() + 1])
        if text[match.start()] == "." and before and before.group(1).lower() in ABBREVIATIONS:
            continue
        pieces.append(text[start:match.end()].strip())
        start = match.end()
    pieces.append(text[start:].strip())
    return [p for p in pieces if p]


def _clauses(sentence: str) -> list[str]:
    parts = _CLAUSE_END.split(sentence)
    out = [parts[0]]
    for part in parts[1:]:
        if len(out[-1].split()) >= MIN_CLAUSE_WORDS and len(part.split()) >= MIN_CLAUSE_WORDS:
            out[-1] += ";"
            out.append(part)
        else:
            out[-1] += "; " + part
    return out


def split_facts(answer: str) -> list[str]:
    """The answer's facts in order; list items keep their marker ("- fever"), so join_facts can lay them out again."""
    facts: list[str] = []
    for line in answer.splitlines():
        line = line.strip()
        if not line:
            continue
        marker = LIST_MARKER.match(line)
        body = line[marker.end():] if marker else line
        prefix = marker.group(0).strip() + " " if marker else ""
        for sentence in (s for sentence in _sentences(body) for s in _clauses(sentence)):
            lead_in = _LEAD_IN_NUMBER.match(sentence)
            if _INLINE_NUMBER.match(sentence):  # "1. Rest. 2. Ice.": the "2." opens the next item
                prefix = sentence + " "
            elif lead_in:  # "Steps: 1. Rest.": the lead-in stays, its "1." opens the first item
                facts.append(prefix + lead_in.group(1))
                prefix = lead_in.group(2) + " "
            elif not re.search(r"[A-Za-z]{2}", sentence) and facts:  # a stray number or symbol is no fact
                facts[-1] += " " + sentence
            else:
                facts.append(prefix + sentence)
                prefix = ""
    return facts


def plain(fact: str) -> str:
    """The fact without a list marker: what a question asks for and perplexity scores."""
    return LIST_MARKER.sub("", fact, count=1).strip()


def is_heading(fact: str) -> bool:
    """A lead-in such as "Symptoms include:" announces facts but states none; it is never a hardest fact."""
    return plain(fact).endswith(":")


def join_facts(facts: list[str]) -> str:
    """Facts back into one answer: a list item or what follows a lead-in on its own line, the rest in one paragraph.

    Chosen and rejected answers of a preference pair are both joined here, so they differ in content, never in layout.
    """
    text = ""
    for fact in facts:
        if text:
            text += "\n" if LIST_MARKER.match(fact) or text.endswith(":") else " "
        text += fact
    return text


def parse_fact_list(reply: str) -> list[str]:
    """Facts from an LLM's reply listing one per line (bulleted, numbered or bare); blank lines and a lead-in such as
    "Here are the facts:" are dropped."""
    facts = []
    for line in reply.splitlines():
        text = plain(line.strip())
        if text and not (not facts and text.endswith(":")):
            facts.append(text)
    return facts
