"""From opened inputs to formatted rows per split: validate, filter, dedup, sample, split, length-filter."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from . import tokens
from .drops import Tally
from .errors import PreprocessError
from .format import to_row
from .hygiene import Deduper
from .inputs import Input
from .layouts import TEMPLATED, specials
from .records import SPLITS, Malformed, Record, has_answer, validate
from .spec import DataSpec
from .split import HELD_OUT_RANK, assign, has_official_split, leakage


@dataclass
class Built:
    rows: dict[str, list[dict]]
    tallies: list[Tally]
    """Parallel to the inputs."""
    official: list[bool]
    """Whether each input's publisher split was used."""
    leakage: dict[str, Any]
    too_long: dict[str, int] = field(default_factory=dict)


def collect(inp: Input, tally: Tally) -> list[Record]:
    """The input's usable records; everything else is counted under its drop reason."""
    wanted = {q.casefold() for q in inp.spec.qtypes} if inp.spec.qtypes else None
    kept: list[Record] = []
    for item in inp.rows():
        tally.read += 1
        if isinstance(item, Malformed):
            tally.drop("malformed", item.origin, item.why)
        elif item.filtered:
            tally.drop("filtered")
        elif not has_answer(item):
            tally.drop("no_answer")
        elif (why := validate(item)) is not None:
            tally.drop("malformed", item.origin, why)
        elif wanted is not None and (item.qtype or "").casefold() not in wanted:
            tally.drop("filtered")
        else:
            kept.append(item)
    if not kept:
        counts = ", ".join(f"{n} {reason}" for reason, n in tally.counts().items() if n) or "the source is empty"
        examples = "".join(f"\n    {e}" for e in tally.examples[:5])
        raise PreprocessError(f"{inp.label}: no usable rows out of {tally.read} ({counts}){examples}",
                              fix="check the path, the `qtypes:` filter and the column mapping")
    return kept


def _sample(records: list[Record], limit: int | None, seed: int, salt: str, tally: Tally) -> list[Record]:
    if limit is None or len(records) <= limit:
        return records
    keep = sorted(random.Random(f"{seed}/{salt}/limit").sample(range(len(records)), limit))
    for _ in range(len(records) - limit):
        tally.drop("filtered")
    return [records[i] for i in keep]


def _unique_ids(records: list[Record]) -> None:
    """Prefixes ids with their source and makes repeats unique, so (id) alone finds a row."""
    seen: dict[str, int] = {}
    for record in records:
        rid = f"{record.source}:{record.id}"
        n = seen.get(rid, 0)
        seen[rid] = n + 1
        record.id = rid if n == 0 else f"{rid}#{n + 1}"


def _dedup(inputs: list[Input], records: list[list[Record]], tallies: list[Tally]) -> list[list[Record]]:
    """Drops repeats across all inputs, keeping the most held-out copy.

    Eval sources come first, then official test and val rows, so a question shared with training
    data is never lost from the held-out side; the kept records stay in their input order.
    """
    deduper = Deduper()
    queue = [(i, j) for i, recs in enumerate(records) for j in range(len(recs))]
    queue.sort(key=lambda ij: (inputs[ij[0]].role != "eval", -HELD_OUT_RANK.get(records[ij[0]][ij[1]].split, 0)))
    keep = [[False] * len(recs) for recs in records]
    for i, j in queue:
        keep[i][j] = deduper.keep(records[i][j], tallies[i])
    deduped = [[r for r, k in zip(recs, flags) if k] for recs, flags in zip(records, keep)]
    for inp, recs in zip(inputs, deduped):
        if not recs:
            raise PreprocessError(f"{inp.label}: every row duplicates another source's", fix="remove this source")
    return deduped


def _drop_too_long(rows: dict[str, list[dict]], splits: dict[str, list[Record]], owner: dict[int, Tally],
                   tokenizer: Any, sequence_len: int) -> dict[str, int]:
    """Removes train/val rows over sequence_len tokens, counting each under its source; returns drops per split."""
    dropped = {name: 0 for name in SPLITS}
    for name in ("train", "val"):  # test rows are prompts to generate from, not training rows: a long one still scores
        long = tokens.too_long(tokenizer, [row.get("segments") or row["messages"] for row in rows[name]], sequence_len)
        for record, is_long in zip(splits[name], long):
            if is_long:
                owner[id(record)].drop("too_long")
        dropped[name] = sum(long)
        rows[name] = [row for row, is_long in zip(rows[name], long) if not is_long]
    return dropped


def build(spec: DataSpec, inputs: list[Input], tokenizer: Any = None, sequence_len: int | None = None) -> Built:
    tallies = [Tally() for _ in inputs]
    records = [collect(inp, tally) for inp, tally in zip(inputs, tallies)]
    records = _dedup(inputs, records, tallies)
    records = [_sample(recs, inp.spec.limit, spec.split.seed, f"{inp.role}{inp.index}", tally)
               for inp, recs, tally in zip(inputs, records, tallies)]

    official = [inp.role == "train" and spec.split.official and has_official_split(recs) for inp, recs in zip(inputs, records)]
    train = [(f"train{inp.index}", recs) for inp, recs in zip(inputs, records) if inp.role == "train"]
    held_out = [r for inp, recs in zip(inputs, records) if inp.role == "eval" for r in recs]
    # Text rows train on everything and hold out only a validation share: there are no questions to test on.
    split_spec = spec.split.model_copy(update={"test": 0.0, "official": False}) if spec.format == "text" else spec.split
    splits, moved = assign(train, held_out, split_spec)
    _unique_ids([r for name in SPLITS for r in splits[name]])

    if spec.format in TEMPLATED and tokenizer is None:
        raise PreprocessError(f"format {spec.format} frames rows with the model's BOS/EOS tokens, so it needs the "
                              "model's tokenizer", fix="pass tokenizer= (the model's); CLI: --tokenizer MODEL")
    special = specials(tokenizer) if spec.format in TEMPLATED else None
    rows = {name: [to_row(r, spec.system_prompt, spec.disclaimer, spec.format, special) for r in splits[name]]
            for name in SPLITS}
    too_long = {name: 0 for name in SPLITS}
    # Text rows are never too long: Axolotl's completion type cuts a long document into sequence_len pieces.
    if sequence_len is not None and spec.format != "text":
        owner = {id(r): tally for recs, tally in zip(records, tallies) for r in recs}
        too_long = _drop_too_long(rows, splits, owner, tokenizer, sequence_len)
    overlap = leakage(rows)
    if any(overlap.values()):  # assign() rules this out; writing leaked data would be worse than stopping
        raise RuntimeError(f"leakage check failed: {overlap}")
    return Built(rows=rows, tallies=tallies, official=official,
                 leakage={**overlap, "moved_to_held_out": moved, "passed": True}, too_long=too_long)
