"""Suite scores beside the harness's accuracy: answers read from generated text, confusion matrices, baselines."""
from __future__ import annotations

import re
from collections import Counter

from ..preprocess.format import question_segments
from ..preprocess.layouts import specials
from .generate import Request
from .stats import mean_ci
from .suites import SuiteItem

INVALID = "invalid"

# Where a letter answer may sit in a generated reply. A bare capital "A" anywhere else is too often
# the article ("A patient with...") to count.
_LETTER_PATTERNS = (
    r"^\W*(?:\(([A-Z])\)|([A-Z])(?=$|[.):,]))",           # "B", "B.", "B) ...", "(B) ...": not "A patient"
    r"\b(?i:answer)(?:\s+(?i:is))?\s*[:\-]?\s*\(?([A-Z])\b",  # "The answer is B", "Answer: (C)"
    r"\b(?i:option)\s+\(?([A-Z])\b",                        # "option D"
)


def extract_answer(text: str, choices: list[str]) -> int | None:
    """Index of the choice a generated reply gives, or None when it names none."""
    if all(len(choice) == 1 and choice.isupper() for choice in choices):
        for pattern in _LETTER_PATTERNS:
            match = re.search(pattern, text)
            letter = next((group for group in match.groups() if group), None) if match else None
            if letter in choices:
                return choices.index(letter)
        return None
    # Word choices (yes/no/maybe): the earliest one mentioned.
    found = [(m.start(), choices.index(m.group(0).lower())) for m in
             re.finditer(r"\b(" + "|".join(map(re.escape, choices)) + r")\b", text, flags=re.IGNORECASE)]
    return min(found)[1] if found else None


def confusion(labels: list[str], gold: list[int], predicted: list[int | None]) -> dict:
    """matrix[true][predicted] over `labels`; replies that named no choice are counted in `invalid` per true label."""
    matrix = [[0] * len(labels) for _ in labels]
    invalid = [0] * len(labels)
    for g, p in zip(gold, predicted):
        if p is None:
            invalid[g] += 1
        else:
            matrix[g][p] += 1
    result = {"labels": labels, "matrix": matrix}
    if any(invalid):
        result["invalid"] = invalid
    return result


def majority_baseline(items: list[SuiteItem]) -> dict:
    """Accuracy of always giving the most frequent right answer of these very items (the trivial baseline)."""
    if not items:
        return {"label": None, "acc": float("nan")}
    (gold, count), = Counter(item.gold for item in items).most_common(1)
    return {"label": items[0].choices[gold], "acc": count / len(items)}


def generation_requests(items: list[SuiteItem], system_prompt: str | None, fmt: str = "chat",
                        tokenizer=None) -> list[Request]:
    """The harness's prompt text as the user turn of a chat, or for a plain-text data.format as the question of
    its template (preprocess/layouts.py; `tokenizer` gives BOS/EOS), so the tuned model answers as it was trained."""
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    if fmt == "chat":
        return [Request(item.id, system + [{"role": "user", "content": item.prompt}]) for item in items]
    special = specials(tokenizer)
    return [Request(item.id, system + [{"role": "user", "content": item.prompt}],
                    question_segments(item.prompt, fmt, system_prompt, special)) for item in items]


def _entry(items: list[SuiteItem], generated: dict[str, int | None] | None, samples: int, seed: int) -> dict:
    """One model's numbers on a set of suite items, in the flat shape report/compare read."""
    correct = [float(item.correct) for item in items]
    acc = mean_ci(correct, samples=samples, seed=seed)
    baseline = majority_baseline(items)
    labels = items[0].choices if items else []
    entry = {"n": len(items), "acc": acc["mean"], "acc_ci": acc["ci"],
             "baseline": baseline["acc"], "baseline_label": baseline["label"],
             "confusion": confusion(labels, [i.gold for i in items], [i.loglik_pred for i in items])}
    if generated is not None:
        picks = [generated[item.id] for item in items]
        gen = mean_ci([float(p == item.gold) for p, item in zip(picks, items)], samples=samples, seed=seed)
        entry.update(gen_acc=gen["mean"], gen_acc_ci=gen["ci"], gen_invalid=sum(p is None for p in picks),
                     confusion_generation=confusion(labels, [i.gold for i in items], picks))
    return entry


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")


def score_suite(suite: str, items: list[SuiteItem], harness: dict, generations: dict[str, dict] | None, *,
                samples: int, seed: int) -> tuple[dict[str, dict], list[dict]]:
    """({suite entry name: this model's entry}, per-item rows).

    The suite's own entry carries the harness's row verbatim and its accuracy as the headline.
    Suites split by an item field (MedQA: Step 1 vs Step 2&3) add one entry per part
    (`medqa_step1`, `medqa_step2_3`); MMLU's subjects are listed inside its entry.
    """
    generated = None if generations is None else {
        item.id: extract_answer(generations[item.id]["output"], item.choices) for item in items}
    entry = _entry(items, generated, samples, seed)
    harness = dict(harness)
    entry["sample"] = harness.pop("sample", None)  # "all 500", or how a limited run drew its questions
    entry["acc"] = harness["acc"]  # the harness's own number is the headline (it equals the mean of its per-item acc)
    entry["harness"] = harness
    entries = {suite: entry}
    parts: dict[str, list[SuiteItem]] = {}
    for item in items:
        parts.setdefault(item.subset or item.task, []).append(item)
    split = {name: _entry(part, generated, samples, seed) for name, part in sorted(parts.items())}
    if any(item.subset for item in items):  # always, so a report finds medqa_step1 even when a slice holds one step
        entries.update({f"{suite}_{_safe(name)}": part for name, part in split.items()})
    elif len(split) > 1:
        entry["subtasks"] = split
    rows = [{"set": "suite", "task": item.task, "id": item.id, "subset": item.subset, "gold": item.choices[item.gold],
             "loglik_pred": item.choices[item.loglik_pred], "loglik_correct": item.correct,
             **({} if generated is None else {
                 "generation_pred": INVALID if generated[item.id] is None else item.choices[generated[item.id]],
                 "generation_correct": generated[item.id] == item.gold,
                 "output": generations[item.id]["output"]})}
            for item in items]
    return entries, rows
