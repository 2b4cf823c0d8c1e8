"""The evaluate stage: base and tuned model on the held-out questions and the benchmark suites -> run_dir/eval/.

Writes eval/generations.jsonl (resumable), eval/per_item.jsonl and eval/metrics.json:
    {"models": {"base"|"tuned": {metric: {"mean", "ci": [lo, hi], "n"}}},
     "deltas": {metric: {"mean", "ci", "n"}}            tuned minus base, paired by question (loss, perplexity too)
     "suites": {suite: {"base"|"tuned": {"n", "sample", "acc", "acc_ci", "gen_acc", "gen_acc_ci", "gen_invalid",
                                         "baseline", "baseline_label", "confusion": {"labels", "matrix"},
                                         "confusion_generation", "harness", "subtasks"?}}},
               plus medqa_step1 / medqa_step2_3 entries of the same shape
     "judge": {model: {"judged", "unparsable", "judge_model", criterion: {"judged", "unparsable"}}},  counts of
               correctness (metric `judge`) at the top, of each other eval.judge.criteria (`judge_<criterion>`) inside,
     "references": {...}, "skipped": {...},
     "long_rows": {"max_test_tokens", model: {"truncated", "skipped"}}   test rows over the limit, loss/perplexity only
     "per_item": "eval/per_item.jsonl", "generations": "eval/generations.jsonl", "config": {...}}
"""
from __future__ import annotations

import gc
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.rundir import RunDir, write_json_atomic
from . import suite_scores
from .generate import generate_missing, request_for, scored_conversation
from .judge import METRIC_NAMES as JUDGE_METRICS, judge_answers, make_judge, metric_name as judge_metric_name
from .errors import EvalInputError
from ..models.loader import ModelRef, load
from .metrics import BertScore, score_answers
from .perplexity import AnswerLoss, answer_losses
from .safety import carries_disclaimer
from .spec import EvalSpec
from .stats import mean_ci, paired_delta_ci, paired_ratio_delta_ci, ratio_ci
from .store import GenerationStore
from .suites import check_suite_data, harness_model, harness_scores, run_harness, suite_items

TEST_SET = "test"
PAIRED_METRICS = ("rouge1", "rouge2", "rougeL", "bleu", "bertscore_precision", "bertscore_recall", "bertscore_f1",
                  "disclaimer", *JUDGE_METRICS)


def load_test_rows(path: Path, limit: int | None) -> list[dict]:
    """Held-out rows written by the preprocess stage; the last message is the reference answer."""
    if not path.is_file():
        raise EvalInputError(f"held-out questions not found: {path} (run the preprocess stage first)")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise EvalInputError(f"{path}:{number}: not JSON ({err.msg})") from err
        messages = row.get("messages")
        if not isinstance(messages, list) or len(messages) < 2 or messages[-1].get("role") != "assistant":
            raise EvalInputError(f"{path}:{number}: 'messages' must end with the assistant's reference answer")
        row.setdefault("id", f"row-{number}")
        rows.append(row)
        if limit is not None and len(rows) >= limit:
            break
    ids = [str(row["id"]) for row in rows]
    if len(set(ids)) != len(ids):
        raise EvalInputError(f"{path}: duplicate ids; generations are resumed by id, so ids must be unique")
    return rows


@dataclass
class ModelOutputs:
    """Everything one model produced while it was loaded; scoring happens after it is freed."""

    generations: dict[str, dict] = field(default_factory=dict)
    losses: list[AnswerLoss | None] | None = None
    """Per test row; None for a row whose prompt alone reaches eval.max_test_tokens (skipped)."""
    suites: dict[str, tuple] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def _run_model(ref: ModelRef, rows: list[dict], spec: EvalSpec, store: GenerationStore, eval_dir: Path,
               system_prompt: str | None, show_progress: bool, fmt: str = "chat") -> ModelOutputs:
    out = ModelOutputs()
    clock = time.perf_counter()
    model, tokenizer = load(ref)
    identity = ref.identity()
    out.seconds["load"] = time.perf_counter() - clock
    common = dict(model_label=ref.label, identity=identity, show_progress=show_progress)
    if rows:
        clock = time.perf_counter()
        requests = [request_for(row) for row in rows]
        out.generations = generate_missing(model, tokenizer, requests, store, set_name=TEST_SET,
                                           max_new_tokens=spec.max_new_tokens, batch_size=spec.batch_size, **common)
        out.seconds["generate"] = time.perf_counter() - clock
    if rows and "perplexity" in spec.metrics:
        clock = time.perf_counter()
        out.losses = answer_losses(model, tokenizer, [scored_conversation(row) for row in rows],
                                   batch_tokens=spec.perplexity_batch_tokens, max_tokens=spec.max_test_tokens)
        out.seconds["perplexity"] = time.perf_counter() - clock
    if spec.suites:
        clock = time.perf_counter()
        lm = harness_model(model, tokenizer, spec.suite_batch_size)
        results = run_harness(lm, spec.suites, suite_data=spec.suite_data, limit=spec.suite_limit, seed=spec.seed,
                              cache=eval_dir / "harness_cache" / f"{ref.label}-{identity}")
        out.seconds["suites_loglik"] = time.perf_counter() - clock
        clock = time.perf_counter()
        for suite in spec.suites:
            items = suite_items(results, suite)
            generations = generate_missing(model, tokenizer, suite_scores.generation_requests(items, system_prompt, fmt, tokenizer),
                                           store, set_name=f"suite:{suite}", max_new_tokens=spec.suite_max_new_tokens,
                                           batch_size=spec.suite_batch_size, **common)
            out.suites[suite] = (items, harness_scores(results, suite), generations)
        out.seconds["suites_generate"] = time.perf_counter() - clock
    del model
    gc.collect()
    return out


def _score_test_set(rows: list[dict], outputs: dict[str, ModelOutputs], spec: EvalSpec, disclaimer_text: str | None,
                    metrics: dict, per_item: dict[str, list[dict]]) -> None:
    references = [row["messages"][-1]["content"] for row in rows]
    questions = [row["messages"][-2]["content"] for row in rows]
    ids = [str(row["id"]) for row in rows]
    boot = dict(samples=spec.bootstrap_samples, seed=spec.seed)
    scorer = None
    if "bertscore" in spec.metrics:
        scorer = BertScore(spec.bertscore_model, spec.bertscore_num_layers, batch_size=spec.batch_size)
    judge = make_judge(spec.judge) if spec.judge is not None else None
    for label, out in outputs.items():
        answers = [out.generations[i]["output"] for i in ids]
        summary, scores = score_answers(answers, references, spec.metrics, bertscore=scorer, **boot)
        if out.losses is not None:
            scored = [loss for loss in out.losses if loss is not None]
            nll, tokens = [loss.nll for loss in scored], [loss.tokens for loss in scored]
            summary["loss"] = ratio_ci(nll, tokens, **boot)
            summary["perplexity"] = ratio_ci(nll, tokens, transform=np.exp, **boot)
            scores["loss"] = [None if loss is None else loss.nll / max(loss.tokens, 1) for loss in out.losses]
            scores["answer_tokens"] = [None if loss is None else loss.tokens for loss in out.losses]
            scores["answer_tokens_cut"] = [None if loss is None else loss.cut for loss in out.losses]
            long_rows = metrics.setdefault("long_rows", {"max_test_tokens": spec.max_test_tokens})
            long_rows[label] = {"truncated": sum(loss.cut > 0 for loss in scored),
                                "skipped": len(out.losses) - len(scored)}
        if "disclaimer" in spec.metrics and disclaimer_text:
            scores["disclaimer"] = [float(carries_disclaimer(answer, disclaimer_text)) for answer in answers]
            summary["disclaimer"] = mean_ci(scores["disclaimer"], **boot)
        if judge is not None:
            counts = metrics.setdefault("judge", {}).setdefault(label, {})
            for criterion in spec.judge.criteria:
                name = judge_metric_name(criterion)
                verdicts = judge_answers(judge, questions, answers, references, criterion)
                scores[name] = [v.score for v in verdicts]
                scores[f"{name}_reason"] = [v.reason for v in verdicts]
                summary[name] = mean_ci([v.score for v in verdicts if v.score is not None], **boot)
                judged = {"judged": sum(v.score is not None for v in verdicts),
                          "unparsable": sum(v.score is None for v in verdicts)}
                if criterion == "correctness":  # at the top, where they were before there were criteria
                    counts.update(judged)
                else:
                    counts[criterion] = judged
            counts["judge_model"] = judge.get_model_name()
        metrics["models"][label] = summary
        for index, row in enumerate(rows):
            record = out.generations[ids[index]]
            per_item[label].append({"set": TEST_SET, "model": label, "id": ids[index], "source": row.get("source"),
                                    "qtype": row.get("qtype"), "question": questions[index], "output": record["output"],
                                    "stopped_at_eos": record["stopped_at_eos"], "reference": references[index],
                                    **{name: values[index] for name, values in scores.items()}})
    if "disclaimer" in spec.metrics:
        if disclaimer_text:
            metrics["references"]["disclaimer"] = float(np.mean([carries_disclaimer(r, disclaimer_text) for r in references]))
        else:
            metrics["skipped"]["disclaimer"] = "no disclaimer was injected in training"


def _paired_deltas(per_item: dict[str, list[dict]], spec: EvalSpec) -> dict:
    if "base" not in per_item or "tuned" not in per_item:
        return {}
    base = [r for r in per_item["base"] if r["set"] == TEST_SET]
    tuned = [r for r in per_item["tuned"] if r["set"] == TEST_SET]
    deltas = {}
    for name in PAIRED_METRICS:
        pairs = [(t.get(name), b.get(name)) for t, b in zip(tuned, base)]
        pairs = [(t, b) for t, b in pairs if t is not None and b is not None]  # judge: both verdicts parsed
        if pairs:
            deltas[name] = paired_delta_ci([t for t, _ in pairs], [b for _, b in pairs],
                                           samples=spec.bootstrap_samples, seed=spec.seed)
    # Answer loss and perplexity as eval aggregates them (token-weighted), on the questions both models scored.
    scored = [(t, b) for t, b in zip(tuned, base) if t.get("loss") is not None and b.get("loss") is not None]
    if scored:
        sides = [([r["loss"] * r["answer_tokens"] for r in side], [r["answer_tokens"] for r in side])
                 for side in zip(*scored)]
        boot = dict(samples=spec.bootstrap_samples, seed=spec.seed)
        deltas["loss"] = paired_ratio_delta_ci(sides[0], sides[1], **boot)
        deltas["perplexity"] = paired_ratio_delta_ci(sides[0], sides[1], transform=np.exp, **boot)
    return deltas


def evaluate_run(run_dir: Path, spec: EvalSpec, *, base: ModelRef, tuned: ModelRef | None,
                 system_prompt: str | None, disclaimer_text: str | None, show_progress: bool = True) -> dict:
    """Evaluate base (when spec.baseline or nothing is tuned) and tuned model; write run_dir/eval/; return metrics.

    base and tuned come from models.loader (run_refs for a run directory, base_ref/adapter_ref otherwise).
    Held-out questions come from run_dir/data/test.jsonl (needed when spec.metrics is not empty);
    system_prompt is the system turn put before suite questions (test rows carry their own);
    disclaimer_text, when training appended one, turns on the disclaimer share.
    """
    run = RunDir(run_dir)
    eval_dir = run.eval
    # Every input is checked before anything is written or loaded: fail in a second, not after minutes of generation.
    refs = ([base] if spec.baseline or tuned is None else []) + ([tuned] if tuned is not None else [])
    rows = load_test_rows(run.split(TEST_SET), spec.limit) if spec.metrics else []
    if spec.suites:
        check_suite_data(spec.suite_data, spec.suites)
    if not rows and not spec.suites:
        raise EvalInputError("nothing to evaluate: eval.metrics is empty and no suites are listed")
    store = GenerationStore(run.generations)

    # The recipe's data.format: suite questions are prompted as the model trained (a base model has no chat template).
    fmt = ((run.resolved_recipe().get("data") or {}).get("format") or "chat") if run.resolved.is_file() else "chat"
    outputs = {ref.label: _run_model(ref, rows, spec, store, eval_dir, system_prompt, show_progress, fmt) for ref in refs}

    metrics: dict = {"models": {}, "deltas": {}, "suites": {}, "references": {}, "skipped": {}}
    per_item: dict[str, list[dict]] = {ref.label: [] for ref in refs}
    if rows:
        _score_test_set(rows, outputs, spec, disclaimer_text, metrics, per_item)
        metrics["deltas"] = _paired_deltas(per_item, spec)
    for suite in spec.suites:
        for label, out in outputs.items():
            items, harness, generations = out.suites[suite]
            entries, rows_out = suite_scores.score_suite(suite, items, harness, generations,
                                                         samples=spec.bootstrap_samples, seed=spec.seed)
            for name, entry in entries.items():
                metrics["suites"].setdefault(name, {})[label] = entry
            per_item[label].extend({"model": label, "suite": suite, **row} for row in rows_out)

    with run.per_item.open("w", encoding="utf-8") as fh:
        for records in per_item.values():
            for record in records:
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    metrics["per_item"] = str(run.per_item.relative_to(run.path))
    metrics["generations"] = str(run.generations.relative_to(run.path))
    metrics["config"] = {
        "eval": spec.model_dump(mode="json"),
        "models": {ref.label: {"base": ref.base, "adapter": ref.adapter, "full": ref.full,
                               "quantized_4bit": ref.quantized_4bit} for ref in refs},
        "n_test_items": len(rows), "system_prompt": system_prompt, "disclaimer_text": disclaimer_text,
        "seconds": {label: {k: round(v, 2) for k, v in out.seconds.items()} for label, out in outputs.items()},
    }
    write_json_atomic(run.metrics, metrics, ensure_ascii=False, default=float)
    return metrics
