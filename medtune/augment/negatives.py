"""KnowTuning's worse answers, built from a reference's facts: deletion (completeness), revision (factuality) and
shuffle (logicality).

Every function takes its own seeded random.Random, so a pair depends on the seed and its row only, not on the
order rows come in. The paper then has GPT-3.5 "polish" the changed facts into a fluent answer; medtune does not
(offline simplification): chosen and rejected are both the facts joined by facts.join_facts, so they differ in
content, never in layout.
"""
from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field
from typing import Callable

from .facts import LIST_MARKER, is_heading, plain

NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)?(?![\w])")
"""A count, decimal or dose value ("5", "2.5", "1,000"), not the digits inside a word ("B12", "COVID-19")."""
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'-]*")
STOPWORDS = frozenset("""a an and are as at be by can do does for from how i in is it of on or the to was what when
where which who why will with you your my about are is (are) should have has""".split())


@dataclass
class Negative:
    facts: list[str]
    """The worse answer's facts, in order."""
    detail: dict = field(default_factory=dict)
    """What was changed, for the pair file a user reads."""


@dataclass(frozen=True)
class Donor:
    """Another answer of the same question type, whose numbers, topic and facts a revision borrows."""

    id: str
    question: str
    facts: tuple[str, ...]


def delete_facts(facts: list[str], share: float, rng: random.Random) -> Negative | None:
    """Drop round-up(share x facts) facts, at least one and never all; None for a one-fact answer."""
    if len(facts) < 2:
        return None
    count = min(len(facts) - 1, max(1, math.ceil(share * len(facts))))
    dropped = sorted(rng.sample(range(len(facts)), count))
    return Negative([f for i, f in enumerate(facts) if i not in dropped], {"deleted": dropped})


def shuffle_facts(facts: list[str], rng: random.Random) -> Negative | None:
    """The same facts in another order (never the original one); None for a one-fact answer."""
    if len(facts) < 2:
        return None
    order = rng.sample(range(len(facts)), len(facts))
    if order == sorted(order):  # the identity: rotate, still seeded and still a different order
        order = order[1:] + order[:1]
    return Negative([_relist(facts[i], facts[pos]) for pos, i in enumerate(order)], {"order": order})


def _relist(fact: str, at: str) -> str:
    """A fact moved into another's place takes that place's list marker (or none), so layout stays the reference's."""
    marker = LIST_MARKER.match(at)
    return (marker.group(0).strip() + " " if marker else "") + plain(fact)


def topic(question: str, other: str) -> str | None:
    """What `question` asks about that `other` (same question type) does not: the longest run of its words absent
    from `other`: "What are the symptoms of High Blood Pressure ?" against "... of Gout ?" gives
    "High Blood Pressure"."""
    others = {w.lower() for w in _WORD.findall(other)}
    best, run = None, []
    for match in list(_WORD.finditer(question)) + [None]:
        if match is not None and match.group(0).lower() not in others and match.group(0).lower() not in STOPWORDS:
            run.append(match)
            continue
        if run:
            text = question[run[0].start():run[-1].end()]
            best = text if best is None or len(text) > len(best) else best
        run = []
    return best


def _swap_number(fact: str, donor: Donor, rng: random.Random) -> str | None:
    own = NUMBER.findall(fact)
    theirs = sorted({n for f in donor.facts for n in NUMBER.findall(f)} - set(own))
    if not own or not theirs:
        return None
    first = NUMBER.search(fact)
    return fact[:first.start()] + rng.choice(theirs) + fact[first.end():]


def _swap_entity(fact: str, question: str, donor: Donor) -> str | None:
    own, theirs = topic(question, donor.question), topic(donor.question, question)
    if not own or not theirs:
        return None
    pattern = re.compile(rf"\b{re.escape(own)}\b", re.IGNORECASE)
    if not pattern.search(fact):
        return None
    # "people with asthma" -> "people with gout"; an acronym or a capitalised mention keeps the donor's spelling.
    swapped = pattern.sub(lambda m: theirs if m.group(0)[:1].isupper() or theirs.isupper() else theirs.lower(), fact)
    article = "an" if theirs[:1].lower() in "aeiou" else "a"  # "an asthma attack" -> "a gout attack"
    return re.sub(rf"\b([Aa])n?(\s+)(?={re.escape(theirs)})", lambda m: (article.capitalize() if m.group(1) == "A"
                  else article) + m.group(2), swapped, flags=re.IGNORECASE)


def _swap_fact(fact: str, donor: Donor, rng: random.Random) -> str | None:
    options = sorted({plain(f) for f in donor.facts if not is_heading(f)} - {plain(fact)})
    return _relist(rng.choice(options), fact) if options else None


def revise_facts(facts: list[str], question: str, share: float, rng: random.Random, donor: Donor | None,
                 revise: Callable[[str], str | None] | None = None) -> Negative | None:
    """Make round-up(share x facts) facts wrong (at least one); None when no fact could be changed.

    Each picked fact is revised by `revise` (an LLM, when configured) or, offline (or when the LLM's reply is
    unusable), by a swap with the donor answer of the same question type, trying in turn: one of its numbers, its
    topic (the question's subject, "asthma" -> "gout"), or the whole fact for one of the donor's. Headings
    ("Symptoms include:") state nothing and are never picked.
    """
    candidates = [i for i, f in enumerate(facts) if not is_heading(f)]
    if not candidates:
        return None
    count = min(len(candidates), max(1, math.ceil(share * len(candidates))))
    picked = sorted(rng.sample(candidates, count))
    revised, changes = list(facts), []
    for i in picked:
        new, how = None, "generator"
        if revise is not None:
            reply = revise(plain(facts[i]))
            new = _relist(reply, facts[i]) if reply else None
        if new is None and donor is not None:
            swaps = (("number", lambda f: _swap_number(f, donor, rng)),
                     ("entity", lambda f: _swap_entity(f, question, donor)),
                     ("fact", lambda f: _swap_fact(f, donor, rng)))
            for how, swap in swaps:
                new = swap(facts[i])
                if new is not None:
                    break
        if new is not None and new != facts[i]:
            revised[i] = new
            changes.append({"index": i, "from": facts[i], "to": new, "how": how,
                            **({"donor": donor.id} if how != "generator" else {})})
    return Negative(revised, {"revised": changes}) if changes else None
