"""Seeded train/val/test assignment by question group, official splits, and the leakage check."""
from __future__ import annotations

import random

from .hygiene import group_key
from .records import SPLITS, Record
from .spec import SplitSpec
from .text import normalize

HELD_OUT_RANK = {name: i for i, name in enumerate(SPLITS)}
"""train < val < test: a question group goes to its most held-out split."""


def has_official_split(records: list[Record]) -> bool:
    """True when every record carries a publisher split and there is more than one of them."""
    tags = {r.split for r in records}
    return None not in tags and len(tags) > 1


def _held_out(a: str, b: str) -> str:
    return a if HELD_OUT_RANK[a] >= HELD_OUT_RANK[b] else b


def _rows(share: float, n: int) -> int:
    """Rows a share of n holds out: at least one when the share is not 0 and n leaves rows to train on
    (a validation file with no rows would stop training)."""
    if share <= 0:
        return 0
    return max(1, round(share * n)) if n > 2 else round(share * n)


def split_source(records: list[Record], spec: SplitSpec, salt: str) -> dict[str, str]:
    """Group key -> split for one training source.

    Official val/test records are pinned; the remaining groups are shuffled with the seed and cut
    so that `spec.val` / `spec.test` of those records are held out (a share is skipped where the
    publisher's split already provides it).
    """
    official = spec.official and has_official_split(records)
    sizes: dict[str, int] = {}
    pinned: dict[str, str] = {}
    for record in records:
        key = group_key(record)
        sizes[key] = sizes.get(key, 0) + 1
        if official and record.split in ("val", "test"):
            pinned[key] = _held_out(pinned.get(key, "train"), record.split)
    free = [key for key in sizes if key not in pinned]
    n_free = sum(sizes[key] for key in free)
    tags = {r.split for r in records} if official else set()
    want = {
        "test": 0 if "test" in tags else _rows(spec.test, n_free),
        "val": 0 if "val" in tags else _rows(spec.val, n_free),
    }
    random.Random(f"{spec.seed}/{salt}").shuffle(free)
    assigned = dict(pinned)
    filled = {"test": 0, "val": 0}
    for key in free:
        target = next((s for s in ("test", "val") if filled[s] < want[s]), "train")
        if target != "train":
            filled[target] += sizes[key]
        assigned[key] = target
    return assigned


def assign(train: list[tuple[str, list[Record]]], held_out: list[Record], spec: SplitSpec) -> tuple[dict[str, list[Record]], int]:
    """Records per split, and how many were moved to a more held-out split to join their question group.

    `train` is (salt, records) per training source; `held_out` (the eval sources) all go to test.
    A question that two sources put in different splits goes to the more held-out one.
    """
    per_source = [(records, split_source(records, spec, salt)) for salt, records in train]
    final: dict[str, str] = {}
    for _records, assigned in per_source:
        for key, split in assigned.items():
            final[key] = _held_out(final.get(key, "train"), split)
    for record in held_out:
        final[group_key(record)] = "test"
    out: dict[str, list[Record]] = {name: [] for name in SPLITS}
    moved = 0
    for records, assigned in per_source:
        for record in records:
            key = group_key(record)
            moved += assigned[key] != final[key]
            out[final[key]].append(record)
    out["test"].extend(held_out)
    return out, moved


def leakage(rows: dict[str, list[dict]]) -> dict[str, int]:
    """How many questions each pair of written splits shares, compared as the model sees them.

    Computed from the output rows' user turns (a text row's whole text), normalized, not from the grouping
    that made the split, so it checks what is actually written.
    """
    def asked(split: str) -> set[str]:
        return {normalize(row["text"] if "text" in row else next(m["content"] for m in row["messages"] if m["role"] == "user"))
                for row in rows[split]}

    keys = {name: asked(name) for name in SPLITS}
    return {
        "train_val": len(keys["train"] & keys["val"]),
        "train_test": len(keys["train"] & keys["test"]),
        "val_test": len(keys["val"] & keys["test"]),
    }
