"""Counting what each source gave and why rows were dropped, with examples for the manifest."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .records import DROP_REASONS

MAX_EXAMPLES = 20


@dataclass
class Tally:
    """One source's bookkeeping: rows read, kept, dropped per reason, dedup kind, malformed examples."""

    read: int = 0
    dropped: Counter = field(default_factory=Counter)
    dedup: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def drop(self, reason: str, origin: str | None = None, why: str | None = None) -> None:
        assert reason in DROP_REASONS, reason
        self.dropped[reason] += 1
        if why and len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{origin}: {why}" if origin else why)

    def counts(self) -> dict[str, int]:
        return {reason: self.dropped.get(reason, 0) for reason in DROP_REASONS}


def total(tallies: list[Tally]) -> dict[str, int]:
    summed: Counter = Counter()
    for tally in tallies:
        summed.update(tally.dropped)
    return {reason: summed.get(reason, 0) for reason in DROP_REASONS}
