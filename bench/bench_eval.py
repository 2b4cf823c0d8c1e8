#!/usr/bin/env python
"""Benchmark: evaluation's batched generation against one question at a time (model.generate per question).

    python bench/bench_eval.py [--questions 32] [--max-new-tokens 96] [--batch-size 32] [--threads N] [--data MEDQUAD]

Same model (SmolLM2-135M-Instruct, fp32), same MedQuAD questions, same greedy settings; checks that both
give the same token ids, prints a table and writes bench/results/eval.json. The defaults are the demo
recipe's evaluation (96 new tokens) with torch's own thread count (all cores), as `make demo` runs it.
After an untimed warm-up of both paths, the batched path runs once before and once after the
one-at-a-time loop and counts the mean of the two (this machine's speed drifts over minutes).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from medtune.core.env import private_env  # noqa: E402  (needs the sys.path line above)

private_env()

from medquad_data import DATA_HELP, answered_questions, describe  # noqa: E402  (beside this script; imports medtune)
from machine import describe as describe_machine, machine  # noqa: E402  (beside this script)


def medquad_questions(data: Path | None, count: int, seed: int) -> list[str]:
    """A seeded sample of MedQuAD questions that have answers (the kind of held-out question eval sees).

    The publisher's XML folder is read as the README's figures were measured; any other MedQuAD (a CSV, the Hub
    copy, the demo rows) through medtune's own reader.
    """
    questions = []
    if data is not None and data.is_dir():
        for path in sorted(data.glob("*/*.xml")):
            for pair in ET.parse(path).getroot().iter("QAPair"):
                question, answer = pair.find("Question"), pair.find("Answer")
                if question is not None and answer is not None and (answer.text or "").strip():
                    questions.append(" ".join(question.text.split()))
    else:
        questions = answered_questions(data)
    if len(questions) < count:
        raise SystemExit(f"only {len(questions)} answered questions in {describe(data)}")
    return random.Random(seed).sample(questions, count)


def one_at_a_time(model, tokenizer, prompts: list[list[int]], max_new_tokens: int) -> list[list[int]]:
    """The seeds' way: model.generate on each question alone, no batching, no padding."""
    import torch

    from medtune.evaluate.generate import stop_ids, trim_at_stop

    stops = stop_ids(model, tokenizer)
    outputs = []
    for prompt in prompts:
        ids = torch.tensor([prompt])
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, eos_token_id=stops, pad_token_id=tokenizer.pad_token_id)
        outputs.append(trim_at_stop(out[0, len(prompt):].tolist(), stops)[0])
    return outputs


def top2_margin(model, prompt: list[int], prefix: list[int]) -> float:
    """How close the single run's choice at the first differing step was to its runner-up (logit gap)."""
    import torch

    with torch.inference_mode():
        logits = model(torch.tensor([prompt + prefix])).logits[0, -1]
    top = torch.topk(logits.float(), 2).values
    return float(top[0] - top[1])


def logit_drift(model, prompts: list[list[int]], pad: int) -> dict:
    """How far left padding moves the logits: the first answer token's logits for all prompts in one padded
    forward (positions from the mask, as generate computes them) against each prompt alone."""
    import torch

    from medtune.evaluate.generate import left_padded

    ids, mask = left_padded(prompts, pad)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        batched = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, -1].float()
        alone = torch.stack([model(torch.tensor([p])).logits[0, -1].float() for p in prompts])
    gaps = torch.topk(alone, 2).values
    return {"max_abs_logit_difference": float((batched - alone).abs().max()),
            "smallest_top2_logit_gap": float((gaps[:, 0] - gaps[:, 1]).min()),
            "same_argmax": int((batched.argmax(-1) == alone.argmax(-1)).sum())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's own)")
    parser.add_argument("--data", type=Path, help=DATA_HELP)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "eval.json")
    args = parser.parse_args()

    import torch

    from medtune.evaluate.generate import Request, generate_batch, generate_missing, prompt_ids
    from medtune.models.loader import ModelRef, load
    from medtune.evaluate.store import GenerationStore

    if args.threads:
        torch.set_num_threads(args.threads)
    questions = medquad_questions(args.data, args.questions, seed=0)
    model, tokenizer = load(ModelRef("base", "smollm2-135m-instruct"))
    requests = [Request(f"q{i}", [{"role": "user", "content": q}]) for i, q in enumerate(questions)]
    prompts = [prompt_ids(tokenizer, r.messages) for r in requests]

    def run_batched() -> tuple[float, list[list[int]]]:
        """The evaluation's own path (length-sorted batches, resumable store), from an empty store."""
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            records = generate_missing(model, tokenizer, requests, GenerationStore(Path(tmp) / "generations.jsonl"),
                                       model_label="base", set_name="bench", identity="bench",
                                       max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                                       show_progress=False)
            return time.perf_counter() - started, [records[r.id]["output_ids"] for r in requests]

    # Untimed warm-up of both paths at their shapes: the first batched pass in a process measured ~40% slower
    # than the next ones (kernel and allocator warm-up), which belongs to neither path's steady speed.
    generate_batch(model, tokenizer, sorted(prompts, key=len, reverse=True)[:args.batch_size], 4)
    one_at_a_time(model, tokenizer, prompts[:1], 4)
    # Batched before and after the one-at-a-time loop, its time the mean of both: the two paths then see the
    # same machine on average (a shared VM's compute speed drifts by tens of percent over minutes).
    before_s, batched = run_batched()
    started = time.perf_counter()
    single = one_at_a_time(model, tokenizer, prompts, args.max_new_tokens)
    single_s = time.perf_counter() - started
    after_s, again = run_batched()
    batched_s = (before_s + after_s) / 2
    if again != batched:
        print("warning: the two batched runs gave different tokens", file=sys.stderr)

    diverged = []
    for i, (a, b) in enumerate(zip(single, batched)):
        if a != b:
            step = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
            diverged.append({"question": i, "first_different_token": step,
                             "single_top2_logit_gap": round(top2_margin(model, prompts[i], a[:step]), 6)})
    drift = logit_drift(model, prompts, tokenizer.pad_token_id)
    tokens = sum(map(len, single))
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),  # CPU model, AVX-512/AVX2, cores, torch threads, load: compare like with like
        "model": "smollm2-135m-instruct (fp32)", "data": describe(args.data), "questions": len(questions), "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size, "prompt_tokens_mean": round(sum(map(len, prompts)) / len(prompts), 1),
        "generated_tokens": tokens,
        "one_at_a_time": {"seconds": round(single_s, 2), "answers_per_s": round(len(prompts) / single_s, 3),
                          "tokens_per_s": round(tokens / single_s, 1)},
        "batched": {"seconds": round(batched_s, 2), "runs_seconds": [round(before_s, 2), round(after_s, 2)],
                    "answers_per_s": round(len(prompts) / batched_s, 3),
                    "tokens_per_s": round(sum(map(len, batched)) / batched_s, 1)},
        "speedup": round(single_s / batched_s, 2),
        "identical_outputs": len(prompts) - len(diverged), "diverged": diverged, "padding_logit_drift": drift,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Generation: {len(prompts)} MedQuAD questions, {args.max_new_tokens} new tokens max, "
                        f"{torch.get_num_threads()} torch thread(s)\n{describe_machine(result['machine'])}")
    for column in ("path", "seconds", "answers/s", "tokens/s"):
        table.add_column(column, justify="right" if column != "path" else "left")
    for name, key in (("one at a time (model.generate per question)", "one_at_a_time"),
                      (f"batched ({args.batch_size}, left-padded, length-sorted; mean of a run before and after)", "batched")):
        row = result[key]
        table.add_row(name, f"{row['seconds']:.1f}", f"{row['answers_per_s']:.2f}", f"{row['tokens_per_s']:.0f}")
    table.add_row("speedup", f"{result['speedup']:.1f}x", "", "", style="bold")
    Console().print(table)
    print(f"identical token ids: {result['identical_outputs']}/{len(prompts)}"
          + (f"; diverged: {diverged}" if diverged else ""))
    print(f"left padding moves first-token logits by at most {drift['max_abs_logit_difference']:.2e}; "
          f"the closest top-2 race among these prompts is {drift['smallest_top2_logit_gap']:.2e} apart")
    return 0


if __name__ == "__main__":
    sys.exit(main())
