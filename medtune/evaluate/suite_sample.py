"""Which questions a limited suite run scores: a seeded sample that keeps each task's mix of gold answers.

The harness's own `limit` takes the first N documents, and benchmark files are often sorted: the
official PubMedQA test file lists its 276 "yes" questions first, so a 120-question run scored only
"yes" questions. Here each task's documents are grouped by stratum (gold answer, and MedQA's USMLE
step), each stratum gets its share of N by largest remainder, and the documents within it are drawn
at random from a seed, so the same seed always scores the same questions.
"""
from __future__ import annotations

import random
from typing import Hashable, Sequence


def stratified_sample(strata: Sequence[Hashable], k: int, seed: str | int) -> list[int]:
    """Sorted indices of k of the items (all when k covers them), drawn per stratum in proportion to its size."""
    n = len(strata)
    if k >= n:
        return list(range(n))
    groups: dict[Hashable, list[int]] = {}
    for index, key in enumerate(strata):
        groups.setdefault(key, []).append(index)
    order = sorted(groups, key=repr)  # a fixed order, so the draw depends on the seed alone
    quotas = {key: k * len(groups[key]) / n for key in order}
    counts = {key: int(quotas[key]) for key in order}
    # The seats left after rounding down go to the largest remainders (Hamilton's method).
    by_remainder = sorted(order, key=lambda key: (counts[key] - quotas[key], -len(groups[key])))
    for key in by_remainder[: k - sum(counts.values())]:
        counts[key] += 1
    rng = random.Random(str(seed))
    return sorted(index for key in order for index in rng.sample(groups[key], counts[key]))


def describe(drawn: dict[str, tuple[int, int]], *, by: str, seed: int, per: str | None = None) -> str:
    """How a suite's questions were chosen, from {task: (scored, available)}; `per` names the unit of a
    multi-task suite (MMLU: "subject"), whose limit applies to each task."""
    scored = sum(k for k, _ in drawn.values())
    available = sum(n for _, n in drawn.values())
    if scored == available:
        return f"all {available:,}"
    if per is not None and len(drawn) > 1:
        return f"seeded stratified {max(k for k, _ in drawn.values())} per {per} ({scored:,} of {available:,}) by {by}, seed {seed}"
    return f"seeded stratified {scored:,} of {available:,} by {by}, seed {seed}"
