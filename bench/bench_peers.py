#!/usr/bin/env python
"""Benchmark: medtune's default training against its strongest peers, side by side in one run.

    python bench/bench_peers.py [--rows 64] [--rounds 2] [--data MEDQUAD] [--out bench/results/peers.json]

Three sides train SmolLM2-135M-Instruct with LoRA on CPU on the same rows (medtune's training split of the
demo rows, or of --data), with the demo recipe's LoRA settings (rank, alpha, dropout, targets, schedule,
sequence length 512, one 512-token forward pass per step) and this benchmark's own training length and rate,
those the README's table was measured with (the demo's until it became an 8-step run): one epoch of the rows,
four sequences per optimizer step, 3e-4; answers only in the loss:
  medtune:        the demo recipe (row limit and no held-out splits aside) through `launch.py --stages
                  preprocess,train`: Axolotl with medtune's rendered config (sample packing, its packing plugin
                  training every row, sdpa's block-diagonal mask);
  TRL:            `trl.SFTTrainer` with `packing=True, packing_strategy="bfd"` (best-fit decreasing) and
                  `padding_free=True`, on the same rows as prompt/completion pairs (loss on the completion),
                  TRL's default loss (`chunked_nll`: lm_head only on answer tokens);
  Axolotl plain:  the same rendered config with medtune's additions taken out (no sample packing, no plugins:
                  Axolotl's defaults), one row per forward pass, four per optimizer step.
Each side runs in its own process, in the order medtune, TRL, Axolotl, then reversed, for --rounds rounds, so
the VM's drift (tens of percent over minutes, more when others share it) hits every side alike. Timed is the
trainer's own train_runtime (start-up, tokenization and model loading excluded, for every side alike).
Reports real (non-pad) tokens per second, answer tokens trained (checked against the split's), the final
logged loss and the mean training loss; writes bench/results/peers.json with the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from medtune.core.env import private_env  # noqa: E402  (needs the sys.path line above)

private_env()

from machine import describe as describe_machine, machine  # noqa: E402  (beside this script)
from medquad_data import DATA_HELP, DEMO_RECIPE, describe, medquad_path, launch  # noqa: E402

SIDES = ("medtune", "trl", "axolotl_plain")
LABELS = {"medtune": "medtune default (Axolotl + packing plugin)",
          "trl": "TRL SFTTrainer (bfd packing, padding-free)",
          "axolotl_plain": "Axolotl defaults (no packing)"}


# ---------------------------------------------------------------- the shared rows and settings


PEER_TRAINING = {"epochs": 1, "gradient_accumulation_steps": 4, "learning_rate": 3e-4}
"""Pinned here, not taken from the demo recipe: the settings the README's peer table was measured with."""


def write_recipe(folder: Path, data: Path | None, rows: int) -> Path:
    """The demo recipe with a row limit and every row in training (the sides must train the same rows)."""
    recipe = yaml.safe_load(DEMO_RECIPE.read_text())
    recipe["name"] = "bench-peers"
    where = medquad_path(data)
    recipe["data"]["train"] = [{"source": "medquad", **({"path": str(where)} if where else {}), "limit": rows}]
    recipe["data"]["split"] = {"val": 0.0, "test": 0.0, "seed": recipe["data"]["split"].get("seed", 42)}
    recipe["training"].update(save_steps=100000, eval_steps=100000)  # no checkpoint or evaluation in the timed loop
    recipe["training"].pop("max_steps", None)  # every side trains the same whole epoch
    recipe["training"].update(PEER_TRAINING)
    recipe.pop("eval", None)
    path = folder / "bench-peers.yaml"
    path.write_text(f"# python launch.py {path}\n" + yaml.safe_dump(recipe, sort_keys=False))
    return path


def prepared_counts(train_dir: Path, rows: int) -> tuple[int, int]:
    """Real tokens and answer (trainable) tokens in Axolotl's tokenized copy of the split under train_dir."""
    from datasets import load_from_disk

    for folder in (train_dir / "prepared").glob("*/"):
        if (folder / "state.json").is_file():
            data = load_from_disk(str(folder))
            if len(data) == rows:
                return (sum(len(ids) for ids in data["input_ids"]),
                        sum(sum(1 for t in labels if t != -100) for labels in data["labels"]))
    raise SystemExit(f"no tokenized copy of the {rows}-row split under {train_dir / 'prepared'}")


def axolotl_summary(history: list[dict], train_dir: Path, rows: int) -> dict:
    """A side's figures from the trainer's logged history, checked to have trained every answer token."""
    summary = next(h for h in reversed(history) if "train_runtime" in h)
    losses = [h["loss"] for h in history if "loss" in h]
    real, answers = prepared_counts(train_dir, rows)
    trained = max((h.get("tokens/trainable", 0) for h in history), default=0)
    if trained != answers:
        raise SystemExit(f"{train_dir}: trained {trained:.0f} of the split's {answers} answer tokens")
    return {"train_seconds": summary["train_runtime"], "real_tokens": real, "answer_tokens_trained": int(trained),
            "token_slots": int(max((h.get("tokens/total", 0) for h in history), default=0)),
            "optimizer_steps": len(losses), "final_loss": losses[-1], "mean_loss": summary["train_loss"]}


# ---------------------------------------------------------------- the three sides


def run_medtune(recipe: Path, folder: Path, rows: int) -> dict:
    run_dir = launch(recipe, folder, "preprocess,train")
    return axolotl_summary(json.loads((run_dir / "train" / "history.json").read_text()), run_dir / "train", rows)


def plain_axolotl_config(rendered: dict) -> dict:
    """medtune's rendered config less what medtune adds to Axolotl's defaults (packing and its plugins)."""
    medtune_only = ("plugins", "sample_packing", "eval_sample_packing", "pad_to_sequence_len", "test_datasets")
    return {key: value for key, value in rendered.items() if key not in medtune_only}


def run_axolotl_plain(split_run: Path, folder: Path, rows: int) -> dict:
    from medtune.launch.train import child_env, run_logged

    folder.mkdir(parents=True)
    (folder / "data").symlink_to(split_run / "data")
    (folder / "accelerate.yaml").write_text((split_run / "accelerate.yaml").read_text())
    config = plain_axolotl_config(yaml.safe_load((split_run / "axolotl.yaml").read_text()))
    (folder / "axolotl.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    threads = str(os.cpu_count() or 1)  # what medtune passes for one process: every core
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", "accelerate.yaml",
           "--num_cpu_threads_per_process", threads, "-m", "axolotl.cli.train", "axolotl.yaml"]
    result = run_logged(cmd, folder, folder / "train.log", child_env(), label="axolotl plain")
    if result.returncode != 0:
        raise SystemExit(f"plain Axolotl failed (exit {result.returncode}): see {folder / 'train.log'}")
    return axolotl_summary(result.history, folder / "train", rows)


def run_trl(split_run: Path, folder: Path) -> dict:
    """TRL in its own process (this script with --trl-child), as the other sides are."""
    folder.mkdir(parents=True)
    out = folder / "result.json"
    proc = subprocess.run([sys.executable, __file__, "--trl-child", str(split_run), str(out)], cwd=REPO,
                          env=private_env(dict(os.environ)), capture_output=True, text=True)
    (folder / "train.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"TRL side failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


def trl_child(split_run: Path, out: Path) -> int:
    """The TRL side: the rendered config's settings as SFTConfig, the split's rows as prompt/completion pairs."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    torch.set_num_threads(os.cpu_count() or 1)  # every core, as medtune's accelerate launch gives one process
    cfg = yaml.safe_load((split_run / "axolotl.yaml").read_text())
    rows = [json.loads(line) for line in (split_run / "data" / "train.jsonl").read_text().splitlines()]
    pairs = Dataset.from_list([{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in rows])
    tokenizer = AutoTokenizer.from_pretrained(cfg["base_model"])
    model = AutoModelForCausalLM.from_pretrained(cfg["base_model"], attn_implementation="sdpa", dtype=torch.float32)
    lora = LoraConfig(r=cfg["lora_r"], lora_alpha=cfg["lora_alpha"], lora_dropout=cfg["lora_dropout"],
                      target_modules=cfg["lora_target_modules"], task_type="CAUSAL_LM")

    class CountingTrainer(SFTTrainer):
        """Counts the answer tokens each step trains on (labels that are not -100)."""

        answer_tokens = 0
        real_tokens = 0

        def training_step(self, model, inputs, *args, **kwargs):
            CountingTrainer.answer_tokens += int((inputs["labels"] != -100).sum())
            CountingTrainer.real_tokens += int(inputs["input_ids"].numel())  # padding-free: no pad in a packed row
            return super().training_step(model, inputs, *args, **kwargs)

    with tempfile.TemporaryDirectory() as tmp:
        args = SFTConfig(output_dir=tmp, max_length=cfg["sequence_len"], packing=True, packing_strategy="bfd",
                         padding_free=True, per_device_train_batch_size=cfg["micro_batch_size"],
                         gradient_accumulation_steps=cfg["gradient_accumulation_steps"], num_train_epochs=cfg["num_epochs"],
                         learning_rate=cfg["learning_rate"], lr_scheduler_type=cfg["lr_scheduler"],
                         warmup_steps=cfg["warmup_ratio"], weight_decay=cfg["weight_decay"], optim="adamw_torch",
                         seed=cfg["seed"], logging_steps=1, save_strategy="no", report_to=[], use_cpu=True,
                         bf16=False, fp16=False, dataloader_num_workers=0)
        trainer = CountingTrainer(model=model, args=args, train_dataset=pairs, processing_class=tokenizer,
                                  peft_config=lora)
        packed = trainer.train_dataset
        answers = sum(sum(1 for t in labels if t != -100) for labels in packed["labels"])  # TRL's answer mask
        real = sum(len(ids) for ids in packed["input_ids"])
        result = trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    if CountingTrainer.answer_tokens != answers or CountingTrainer.real_tokens != real:
        raise SystemExit(f"TRL trained {CountingTrainer.answer_tokens} of {answers} answer tokens, "
                         f"{CountingTrainer.real_tokens} of {real} tokens")
    out.write_text(json.dumps({
        "train_seconds": result.metrics["train_runtime"], "real_tokens": real, "answer_tokens_trained": answers,
        "token_slots": real, "optimizer_steps": len(losses), "final_loss": losses[-1],
        "mean_loss": result.metrics["train_loss"], "packed_rows": len(packed), "torch_threads": torch.get_num_threads()}))
    return 0


# ---------------------------------------------------------------- the run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=64,
                        help="MedQuAD rows every side trains on (default 64, about 9,000 real tokens)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds of all three sides, alternately in order and reversed (default 2)")
    parser.add_argument("--sides", default=",".join(SIDES),
                        help=f"comma-separated subset of {','.join(SIDES)} (default: all three)")
    parser.add_argument("--data", type=Path, help=DATA_HELP)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "peers.json")
    parser.add_argument("--trl-child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trl_child:
        return trl_child(*args.trl_child)
    if args.data is not None and not args.data.exists():
        print(f"MedQuAD not found at {args.data}", file=sys.stderr)
        return 2
    chosen = tuple(side for side in SIDES if side in args.sides.split(","))
    unknown = set(args.sides.split(",")) - set(SIDES)
    if unknown or not chosen:
        print(f"--sides: unknown {sorted(unknown)}; choose from {','.join(SIDES)}", file=sys.stderr)
        return 2

    from medtune.models.catalog import ensure_local

    ensure_local("smollm2-135m-instruct")
    record = machine()
    runs: dict[str, list[dict]] = {side: [] for side in chosen}
    with tempfile.TemporaryDirectory() as tmp:
        recipe = write_recipe(Path(tmp), args.data, args.rows)
        split_run = launch(recipe, Path(tmp) / "split", "preprocess")  # the rows and rendered config every side uses
        rows = len((split_run / "data" / "train.jsonl").read_text().splitlines())
        for round_ in range(args.rounds):
            for side in chosen if round_ % 2 == 0 else tuple(reversed(chosen)):
                folder = Path(tmp) / f"{side}-{round_}"
                print(f"round {round_ + 1}/{args.rounds}: {LABELS[side]}", flush=True)
                if side == "medtune":
                    runs[side].append(run_medtune(recipe, folder, rows))
                elif side == "trl":
                    runs[side].append(run_trl(split_run, folder))
                else:
                    runs[side].append(run_axolotl_plain(split_run, folder, rows))
                runs[side][-1]["real_tokens_per_s"] = runs[side][-1]["real_tokens"] / runs[side][-1]["train_seconds"]
    record["load_average_1min_after"] = round(os.getloadavg()[0], 2)

    sides = {}
    for side, results in runs.items():
        rates = [r["real_tokens_per_s"] for r in results]
        sides[side] = {"label": LABELS[side], "real_tokens_per_s_median": statistics.median(rates),
                       "real_tokens_per_s_runs": rates, "runs": results}
    fastest = max(sides, key=lambda s: sides[s]["real_tokens_per_s_median"])
    for side in sides.values():
        side["of_fastest"] = side["real_tokens_per_s_median"] / sides[fastest]["real_tokens_per_s_median"]
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": record,
              "data": describe(args.data), "rows": rows, "rounds": args.rounds, "recipe": str(DEMO_RECIPE.relative_to(REPO)),
              "fastest": fastest, "sides": sides}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Training, {rows} MedQuAD rows, SmolLM2-135M LoRA, {args.rounds} interleaved rounds\n"
                        f"{describe_machine(record)}")
    for col in ("", "real tokens/s (median)", "per round", "of fastest", "answer tokens trained", "steps",
                "final loss", "mean loss"):
        table.add_column(col)
    for side in sides.values():
        last = side["runs"][-1]
        table.add_row(side["label"], f"{side['real_tokens_per_s_median']:.1f}",
                      " / ".join(f"{r:.1f}" for r in side["real_tokens_per_s_runs"]), f"{side['of_fastest']:.0%}",
                      str(last["answer_tokens_trained"]), str(last["optimizer_steps"]),
                      f"{last['final_loss']:.3f}", f"{last['mean_loss']:.3f}")
    Console().print(table)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
