#!/usr/bin/env python
"""Benchmark: training throughput, the seeds' way against medtune's, side by side in one run.

    python bench/bench_train.py [--rows 28] [--packed-per-step 1] [--val-share 0] [--lora-dropout 0.05] [--data MEDQUAD_FOLDER]

Both sides train SmolLM2-135M-Instruct with the same LoRA settings (the demo recipe's) on the same MedQuAD training rows
(real lengths, preprocessed once by medtune; --data, else the Hub copy when the Hub may be contacted, else the
project's demo rows), one epoch, on CPU:
  seed-style: transformers' Trainer + peft, every row padded to 512 tokens, no packing (the seeds' notebooks);
  medtune:    the rendered recipe through `accelerate launch -m axolotl.cli.train` (sample packing with
              sdpa's block-diagonal mask keeping packed rows apart; one packed 512-token sequence per step,
              which ran faster per token here than the demo's four, see the README; the script checks that
              every answer token of the split was trained).
medtune's side runs while the seed-style loop is paused halfway (the pause is not timed), so both sides
see the VM at the same speed; it drifts by tens of percent over minutes.
Reports real (non-pad) tokens per second of training time for each, their ratio, and each side's mean
training loss, so speed is not bought with a broken objective. Writes bench/results/train.json.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from medtune.core.env import private_env  # noqa: E402  (needs the sys.path line above)

private_env()

from machine import describe as describe_machine, machine  # noqa: E402  (beside this script)
from medquad_data import DATA_HELP, describe, medquad_path, launch  # noqa: E402  (beside this script; imports medtune)

LORA = {"r": 16, "alpha": 32, "dropout": 0.05}  # the demo recipe's; --lora-dropout changes both sides
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
SEQ = 512
BATCH = 4  # the seed-style batch
LR = 2e-4


def write_recipe(folder: Path, data: Path | None, rows: int, packed_per_step: int, val_share: float = 0.0) -> Path:
    path = folder / "bench-medtune.yaml"
    where = medquad_path(data)
    source = f"\n      path: {where}" if where is not None else "   # its Hub copy"
    path.write_text(f"""# python launch.py {path}
name: bench-medtune
model: smollm2-135m-instruct
method: {{name: lora, rank: {LORA['r']}, alpha: {LORA['alpha']}, dropout: {LORA['dropout']}}}
data:
  train:
    - source: medquad{source}
      limit: {rows}
  split: {{val: {val_share}, test: 0.0, seed: 7}}  # default 0: no validation split
training:
  epochs: 1
  learning_rate: {LR}
  lr_scheduler: constant
  warmup_ratio: 0.0
  micro_batch_size: {packed_per_step}
  sequence_len: {SEQ}
  save_steps: 100000           # no checkpoint inside the timed loop
  eval_steps: 100000           # and no evaluation, with or without a validation split
launch:
  device: cpu
""")
    return path


def run_medtune(recipe: Path, runs: Path) -> dict:
    """medtune's side: preprocess (cached by then) and train; the trainer's summary, checked to cover every row."""
    from medtune.launch.train import split_answer_tokens

    started = time.perf_counter()
    run_dir = launch(recipe, runs, "preprocess,train")
    history = json.loads((run_dir / "train" / "history.json").read_text())
    summary = next(h for h in reversed(history) if "train_runtime" in h)
    # Every row must have been trained: the answer tokens the trainer counted are all of the split's.
    trained = max((h.get("tokens/trainable", 0) for h in history), default=0)
    answers = split_answer_tokens(run_dir)
    if trained != answers:
        raise SystemExit(f"medtune trained {trained:.0f} of the split's {answers} answer tokens: rows were left out")
    return {"train_seconds": summary["train_runtime"], "mean_loss": summary.get("train_loss"),
            "steps": len([h for h in history if "loss" in h]),
            "wall_seconds_including_startup": round(time.perf_counter() - started, 1),
            "answer_tokens_trained": answers,
            "padded_tokens": max((h.get("tokens/total", 0) for h in history), default=0)}


def run_seed_style(model_dir: str, train_rows: list[dict], midway) -> dict:
    """The seeds' loop: HF Trainer, pad to 512, labels = inputs with padding masked, no packing.

    `midway()` runs after half of the steps, inside the loop and outside its timing: the two sides then
    share the VM's speed of the moment (it drifts by tens of percent over minutes) instead of each
    getting its own.
    """
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainerCallback, TrainingArguments

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    texts = [tokenizer.apply_chat_template(r["messages"], tokenize=False) for r in train_rows]
    enc = tokenizer(texts, padding="max_length", truncation=True, max_length=SEQ)
    tokens = sum(sum(mask) for mask in enc["attention_mask"])  # real (non-pad) tokens, the same rows medtune packs
    labels = [[t if m else -100 for t, m in zip(ids, mask)] for ids, mask in zip(enc["input_ids"], enc["attention_mask"])]
    dataset = Dataset.from_dict({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels})

    class Midway(TrainerCallback):
        seconds = 0.0

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == math.ceil(state.max_steps / 2):
                started = time.perf_counter()
                midway()
                self.seconds = time.perf_counter() - started

    torch.manual_seed(7)
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa")
    model = get_peft_model(model, LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                                             target_modules=TARGETS, task_type="CAUSAL_LM"))
    pause = Midway()
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=BATCH, num_train_epochs=1, learning_rate=LR,
                                 lr_scheduler_type="constant", logging_steps=1, save_strategy="no", report_to=[],
                                 use_cpu=True, dataloader_num_workers=0, seed=7)
        result = Trainer(model=model, args=args, train_dataset=dataset, callbacks=[pause]).train()
    if not pause.seconds:
        raise SystemExit("the seed-style loop never reached its midpoint: medtune's side did not run")
    return {"train_seconds": result.metrics["train_runtime"] - pause.seconds, "mean_loss": result.metrics["train_loss"],
            "real_tokens": tokens, "padded_tokens": len(train_rows) * SEQ}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=28,
                        help="MedQuAD rows sampled for training (default 28, to keep `make bench` short)")
    parser.add_argument("--lora-dropout", type=float, default=LORA["dropout"],
                        help="LoRA dropout on both sides (default: the demo recipe's 0.05)")
    parser.add_argument("--packed-per-step", type=int, default=1,
                        help="medtune's micro_batch_size: packed 512-token sequences per step (default 1)")
    parser.add_argument("--val-share", type=float, default=0.0,
                        help="validation split held out by medtune's recipe, never evaluated in the timed loop (default 0)")
    parser.add_argument("--data", type=Path, help=DATA_HELP)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "train.json")
    args = parser.parse_args()
    LORA["dropout"] = args.lora_dropout
    if args.data is not None and not args.data.exists():
        print(f"MedQuAD not found at {args.data}", file=sys.stderr)
        return 2

    from medtune.models.catalog import ensure_local

    model_dir = ensure_local("smollm2-135m-instruct")
    with tempfile.TemporaryDirectory() as tmp:
        recipe = write_recipe(Path(tmp), args.data, args.rows, args.packed_per_step, args.val_share)
        # medtune's split (preprocessed once, then cached) is what both sides train on.
        split = launch(recipe, Path(tmp) / "split", "preprocess")
        rows = [json.loads(line) for line in (split / "data" / "train.jsonl").read_text().splitlines()]
        medtune = {}
        seed = run_seed_style(model_dir, rows, midway=lambda: medtune.update(run_medtune(recipe, Path(tmp) / "runs")))
        medtune["real_tokens"] = seed["real_tokens"]

    for side in (seed, medtune):
        side["real_tokens_per_s"] = side["real_tokens"] / side["train_seconds"]
    ratio = medtune["real_tokens_per_s"] / seed["real_tokens_per_s"]
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),  # CPU model, AVX-512/AVX2, cores, torch threads: compare like with like
        "data": describe(args.data), "rows": len(rows), "sequence_len": SEQ, "micro_batch_size": {"seed_style": BATCH, "medtune": args.packed_per_step},
        "val_share": args.val_share, "lora": dict(LORA),
        "seed_style": seed, "medtune": medtune, "speedup_real_tokens_per_s": ratio,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Training throughput: {len(rows)} MedQuAD rows, SmolLM2-135M LoRA\n{describe_machine(result['machine'])}")
    for col in ("", "train s", "real tokens", "real tokens/s", "mean train loss"):
        table.add_column(col)
    table.add_row("seed-style (pad to 512)", f"{seed['train_seconds']:.1f}", str(seed["real_tokens"]),
                  f"{seed['real_tokens_per_s']:.1f}", f"{seed['mean_loss']:.4f}")
    table.add_row("medtune (packing)", f"{medtune['train_seconds']:.1f}", str(medtune["real_tokens"]),
                  f"{medtune['real_tokens_per_s']:.1f}", f"{medtune['mean_loss']:.4f}")
    table.add_row("ratio", "", "", f"{ratio:.2f}x", "")
    Console().print(table)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
