"""KnowTuning's data (Lyu et al., EMNLP 2024), built from a run's training rows, written where a user can read it.

Stage 1, fine-grained knowledge augmentation: split each reference answer into atomic facts, score every fact's
perplexity as the answer to its question under the base model, and turn the hardest (highest perplexity) into
extra question-answer pairs, trained on with the original rows. Stage 2, coarse-grained knowledge comparison:
worse answers from each reference, by deletion (completeness), revision (factuality) and shuffle (logicality),
as (chosen, rejected) pairs for preference training. Where no LLM is configured (the default), splitting,
question writing and revision follow rules; counts["offline_simplifications"] says which, and the README's
KnowTuning section how they differ from the paper's LLM-made data.
"""
from __future__ import annotations

import gc
import json
import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..core.rundir import write_json_atomic
from .errors import AugmentError
from .facts import is_heading, join_facts, plain
from .negatives import Donor, Negative, delete_facts, revise_facts, shuffle_facts
from .spec import KnowTuningSpec
from .writer import Writer, make_writer

FACTS_FILE = "facts.jsonl"
"""One line per long-form training row: its facts, each fact's perplexity, which were picked as hardest."""
AUGMENTED_FILE = "augmented.jsonl"
"""The extra question-answer pairs (stage 1), chat rows plus `detail` (the row and fact they came from)."""
PREFERENCES_FILE = "preferences.jsonl"
"""The (chosen, rejected) pairs (stage 2), plus `detail` (what was deleted, revised or moved)."""
SUMMARY_FILE = "knowtuning.json"
"""counts, for the manifest."""

OFFLINE_SIMPLIFICATIONS = {
    "facts": "offline simplification: facts are sentences, list items and semicolon clauses (the paper: GPT-3.5 "
             "extracts atomic facts)",
    "questions": "offline simplification: an augmented question is the original question asking for the fact by its "
                 "opening words (the paper: GPT-3.5 rewrites each hard fact into a question-answer pair)",
    "revisions": "offline simplification: a revised fact swaps a number, the question's subject or the whole fact "
                 "with another answer's of the same qtype (the paper: GPT-3.5 makes the fact wrong)",
    "polish": "simplification (with or without a generator): changed facts are joined as they are, chosen and "
              "rejected alike (the paper: GPT-3.5 polishes them into a fluent answer)",
}


@dataclass
class KnowTuningData:
    sft_rows: list[dict]
    """Chat rows like data/train.jsonl's: the originals, then the augmented question-answer pairs."""
    preference_rows: list[dict]
    """{"id", "messages": [system?, user], "chosen", "rejected", "kind", "source", "qtype"}."""
    counts: dict
    """Numbers for the manifest: facts, hardest picked, pairs per kind, what was skipped and why, simplifications."""


@dataclass
class _Item:
    """One long-form training row and what KnowTuning made of it."""

    row: dict
    prompt: list[dict]
    question: str
    facts: list[str] = field(default_factory=list)
    split_by: str = ""
    perplexity: list[float | None] = field(default_factory=list)
    """Per fact; None where the fact was not scored (see `unscored`)."""
    unscored: dict[int, str] = field(default_factory=dict)
    hardest: list[int] = field(default_factory=list)


def _long_form(rows: list[dict], system_prompt: str | None, skipped: Counter) -> list[_Item]:
    """Rows with a free-text reference answer; multiple-choice and yes/no rows (an answer key) have no facts."""
    items = []
    for row in rows:
        messages = row.get("messages") or []
        users = [m for m in messages if m.get("role") == "user"]
        if not messages or messages[-1].get("role") != "assistant" or not users:
            skipped["not a question-answer chat row"] += 1
        elif row.get("answer_key") is not None or row.get("choices"):
            skipped["has an answer key (multiple choice or yes/no): no long-form answer"] += 1
        elif not messages[-1]["content"].strip():
            skipped["empty answer"] += 1
        else:
            # The prompt every generated row and every perplexity uses: the recipe's system prompt and the question.
            prompt = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [users[-1]]
            items.append(_Item(row, prompt, users[-1]["content"]))
    return items


def fact_perplexities(model_path: str | Path, conversations: list[list[dict]], *, batch_tokens: int,
                      max_tokens: int) -> list[float | None]:
    """Perplexity of each conversation's last turn under the model (evaluate.perplexity's scoring, answer tokens
    only); None where the prompt alone reaches max_tokens."""
    from ..evaluate.perplexity import answer_losses
    from ..models.loader import ModelRef, load

    model, tokenizer = load(ModelRef("base", str(model_path)))
    losses = answer_losses(model, tokenizer, conversations, batch_tokens=batch_tokens, max_tokens=max_tokens,
                           label="knowtuning: facts scored")
    del model
    gc.collect()
    return [None if loss is None else math.exp(loss.nll / max(loss.tokens, 1)) for loss in losses]


def _score(items: list[_Item], spec: KnowTuningSpec, model_path: str | Path) -> None:
    """Every item's candidate facts scored in one pass of the base model; then the hardest share picked per item."""
    asked: list[tuple[_Item, int]] = []
    for item in items:
        item.perplexity = [None] * len(item.facts)
        for index, fact in enumerate(item.facts):
            if is_heading(fact):
                item.unscored[index] = "heading (states no fact)"
            elif index >= spec.max_facts:
                item.unscored[index] = "beyond max_facts"
            else:
                asked.append((item, index))
    if not asked:
        return
    conversations = [[*item.prompt, {"role": "assistant", "content": plain(item.facts[i])}] for item, i in asked]
    scores = fact_perplexities(model_path, conversations, batch_tokens=spec.batch_tokens, max_tokens=spec.max_tokens)
    for (item, index), score in zip(asked, scores):
        item.perplexity[index] = score
        if score is None:
            item.unscored[index] = "prompt reaches max_tokens"
    for item in items:
        scored = [i for i, p in enumerate(item.perplexity) if p is not None]
        if len(item.facts) < 2 or not scored:
            continue  # a one-fact answer's pair would repeat the original row
        count = max(1, math.ceil(spec.hard_share * len(scored)))
        item.hardest = sorted(sorted(scored, key=lambda i: -item.perplexity[i])[:count])


def _augmented_rows(items: list[_Item], writer: Writer) -> list[dict]:
    rows = []
    for item in items:
        for index in item.hardest:
            question, by = writer.question(item.question, item.facts[index])
            row = item.row
            rows.append({
                "messages": [*_copy(item.prompt[:-1]), {"role": "user", "content": question},
                             {"role": "assistant", "content": plain(item.facts[index])}],
                "id": f"{row.get('id')}#fact{index}", "source": row.get("source"), "qtype": row.get("qtype"),
                "answer_key": None, "choices": None,
                "detail": {"from_id": row.get("id"), "fact_index": index, "perplexity": item.perplexity[index],
                           "question_by": by},
            })
    return rows


def _donor(item: _Item, pool: list[_Item], rng: random.Random) -> Donor | None:
    """Another answer of the same qtype (a different question), picked by the row's own seeded generator."""
    others = sorted((o for o in pool if o is not item and o.question.strip() != item.question.strip() and o.facts),
                    key=lambda o: str(o.row.get("id")))  # by id: the same donor whatever the rows' order
    if not others:
        return None
    other = rng.choice(others)
    return Donor(str(other.row.get("id")), other.question, tuple(other.facts))


def _negative(kind: str, item: _Item, spec: KnowTuningSpec, pool: list[_Item],
              writer: Writer) -> tuple[Negative | None, str]:
    """(the worse answer, why there is none)."""
    rng = random.Random(f"{spec.seed}/{item.row.get('id')}/{kind}")  # per row and kind: independent of row order
    if kind == "deletion":
        return delete_facts(item.facts, spec.delete_share, rng), "fewer than 2 facts"
    if kind == "shuffle":
        return shuffle_facts(item.facts, rng), "fewer than 2 facts"
    donor = _donor(item, pool, rng)
    if donor is None and writer.generator is None:
        return None, "no other answer of the same qtype to swap with"
    revised = revise_facts(item.facts, item.question, spec.revise_share, rng, donor, writer.revise)
    return revised, "no fact could be changed"


def _preference_rows(items: list[_Item], spec: KnowTuningSpec, writer: Writer, skipped: dict) -> list[dict]:
    by_qtype: dict[object, list[_Item]] = defaultdict(list)
    for item in items:
        by_qtype[item.row.get("qtype")].append(item)
    rows = []
    for item in items:
        chosen = join_facts(item.facts)
        for kind in spec.negatives:
            negative, why = _negative(kind, item, spec, by_qtype[item.row.get("qtype")], writer)
            if negative is not None and join_facts(negative.facts) == chosen:
                negative, why = None, "same text as the chosen answer"
            if negative is None:
                skipped[kind][why] += 1
                continue
            row = item.row
            rows.append({"id": f"{row.get('id')}#{kind}", "messages": _copy(item.prompt), "chosen": chosen,
                         "rejected": join_facts(negative.facts), "kind": kind, "source": row.get("source"),
                         "qtype": row.get("qtype"), "detail": {"from_id": row.get("id"), **negative.detail}})
    return rows


def _copy(messages: list[dict]) -> list[dict]:
    """Each generated row its own messages: a caller editing one row must not edit its siblings."""
    return [dict(m) for m in messages]


def _without_detail(row: dict) -> dict:
    """A row as training reads it; the files keep `detail` for the user."""
    return {k: v for k, v in row.items() if k != "detail"}


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def _facts_record(item: _Item) -> dict:
    row = item.row
    return {"id": row.get("id"), "source": row.get("source"), "qtype": row.get("qtype"), "question": item.question,
            "split_by": item.split_by,
            "facts": [{"text": fact, "perplexity": item.perplexity[i], "hardest": i in item.hardest,
                       **({"not_scored": item.unscored[i]} if i in item.unscored else {})}
                      for i, fact in enumerate(item.facts)]}


def build_knowtuning_data(train_rows: list[dict], spec: KnowTuningSpec, *, model_path: str | Path, out_dir: Path,
                          system_prompt: str | None) -> KnowTuningData:
    """Facts, hardest facts, augmented pairs and preference pairs from train_rows; every file written into out_dir.

    model_path: the base model (catalog key, Hub id or folder) whose perplexity picks the hardest facts.
    system_prompt: the system turn of every generated row (the recipe's), before the row's question.
    """
    skipped_rows: Counter = Counter()
    items = _long_form(train_rows, system_prompt, skipped_rows)
    if not items:
        raise AugmentError(f"knowtuning: none of the {len(train_rows)} training rows has a free-text answer to split "
                           f"into facts ({dict(skipped_rows)}); use a long-form dataset such as MedQuAD")
    writer = make_writer(spec.generator)
    for item in items:
        item.facts, item.split_by = writer.facts(item.question, item.row["messages"][-1]["content"])
    if spec.augment:
        _score(items, spec, model_path)
    else:  # no fact scored, none picked: stage 1 trains on the original rows only
        for item in items:
            item.perplexity = [None] * len(item.facts)
            item.unscored = {i: "augment: false" for i in range(len(item.facts))}
    augmented = _augmented_rows(items, writer)
    skipped_pairs: dict[str, Counter] = {kind: Counter() for kind in spec.negatives}
    preferences = _preference_rows(items, spec, writer, skipped_pairs)
    if not preferences:
        raise AugmentError(f"knowtuning: no preference pair could be built from {len(items)} long-form answers "
                           f"(skipped: { {k: dict(v) for k, v in skipped_pairs.items()} }); answers need at least two "
                           "facts (or, for revision, another answer of the same qtype)")

    out_dir.mkdir(parents=True, exist_ok=True)
    _write_jsonl(out_dir / FACTS_FILE, [_facts_record(item) for item in items])
    _write_jsonl(out_dir / AUGMENTED_FILE, augmented)
    _write_jsonl(out_dir / PREFERENCES_FILE, preferences)
    unscored = Counter(why for item in items for why in item.unscored.values())
    revised_by = Counter(c["how"] for row in preferences if row["kind"] == "revision" for c in row["detail"]["revised"])
    offline_used = {"facts": any(i.split_by.startswith("offline") for i in items),
                    "questions": any(r["detail"]["question_by"].startswith("offline") for r in augmented),
                    "revisions": any(how != "generator" for how in revised_by), "polish": True}
    counts = {
        "generator": writer.name, "augment": spec.augment,
        "rows": len(train_rows), "long_form_rows": len(items), "skipped_rows": dict(skipped_rows),
        "facts": sum(len(item.facts) for item in items), "facts_split_by": writer.used["facts"],
        "facts_scored": sum(p is not None for item in items for p in item.perplexity),
        "facts_not_scored": dict(unscored),
        "hardest_picked": sum(len(item.hardest) for item in items),
        "hardest_skipped": ({"one-fact answer (its pair would repeat the row)": sum(len(i.facts) < 2 for i in items)}
                            if spec.augment else {}),
        "augmented_pairs": len(augmented),
        "questions_by": writer.used["questions"],
        "pairs": {kind: sum(row["kind"] == kind for row in preferences) for kind in spec.negatives},
        "pairs_skipped": {kind: dict(why) for kind, why in skipped_pairs.items()},
        "revisions_by": dict(revised_by),
        "offline_simplifications": [OFFLINE_SIMPLIFICATIONS[k] for k, used in offline_used.items() if used],
        "files": [FACTS_FILE, AUGMENTED_FILE, PREFERENCES_FILE],
    }
    write_json_atomic(out_dir / SUMMARY_FILE, counts, ensure_ascii=False)
    return KnowTuningData(sft_rows=[*train_rows, *map(_without_detail, augmented)],
                          preference_rows=[_without_detail(row) for row in preferences], counts=counts)


def read_knowtuning_data(train_rows: list[dict], out_dir: Path) -> KnowTuningData:
    """The KnowTuningData whose files build_knowtuning_data wrote into out_dir, for the same train_rows."""
    def rows(name: str) -> list[dict]:
        return [json.loads(line) for line in (out_dir / name).read_text(encoding="utf-8").splitlines() if line.strip()]

    counts = json.loads((out_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
    return KnowTuningData(sft_rows=[*train_rows, *map(_without_detail, rows(AUGMENTED_FILE))],
                          preference_rows=[_without_detail(row) for row in rows(PREFERENCES_FILE)], counts=counts)
