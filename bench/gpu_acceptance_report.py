"""What bench/gpu_acceptance.py reads back from the runs it started: each method's loss curve, throughput, MFU and
peak memory beside the plan (from the trainer's per-step logs), the QLoRA eval's figures, the checks, the table."""
from __future__ import annotations

import json

from bench_gpu import model_flops_per_token

WARMUP_STEPS = 3  # logged steps left out of the throughput: allocator warm-up, kernel autotuning, first batches
LOSS_DROP = 0.05  # nats: well above the step-to-step noise of a random model's loss near ln(vocab)


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def training_row(method: str, recipe, facts, run, code: int, seconds: float, steps: int, peak: float | None) -> dict:
    """What one method's run recorded: its loss curve, steady-state throughput, MFU and peak memory beside the plan."""
    from medtune.launch.plan import estimate_memory

    t = recipe.training
    estimate = estimate_memory(recipe, facts)
    row = {"method": method, "recipe": recipe.name, "run_dir": str(run.path) if run else None, "exit_code": code,
           "seconds_wall": round(seconds, 1), "micro_batch_size": t.micro_batch_size,
           "gradient_accumulation_steps": t.gradient_accumulation_steps, "sequence_len": t.sequence_len,
           "precision": t.precision, "attention": t.attention, "liger": t.liger, "optimizer": t.optimizer,
           "gradient_checkpointing": t.gradient_checkpointing, "trainable_params": estimate.trainable_params,
           "estimate_gib": estimate.as_dict()}
    history = run.training_history() if run else []
    logs = [h for h in history if "loss" in h]
    losses = [float(h["loss"]) for h in logs]
    row.update(steps_logged=len(logs), losses=[round(x, 4) for x in losses])
    if len(losses) >= 2:
        k = min(3, len(losses) // 2)
        row.update(loss_first=round(mean(losses[:k]), 4), loss_last=round(mean(losses[-k:]), 4))
        row["loss_fell"] = row["loss_last"] <= row["loss_first"] - LOSS_DROP
    # Axolotl logs, per step, cumulative token slots (padding included: what was computed) and answer tokens, and
    # the answer tokens per second since the previous log: together, each step's duration.
    seconds_timed = slots = answers = 0.0
    timed = 0
    for before, after in zip(logs[WARMUP_STEPS - 1:], logs[WARMUP_STEPS:]):
        rate = after.get("tokens/train_per_sec_per_gpu")
        trained = after.get("tokens/trainable", 0) - before.get("tokens/trainable", 0)
        if rate and trained > 0:
            seconds_timed += trained / rate
            slots += after["tokens/total"] - before["tokens/total"]
            answers += trained
            timed += 1
    if seconds_timed > 0:
        row.update(steps_timed=timed, seconds_timed=round(seconds_timed, 3),
                   tokens_per_s=round(slots / seconds_timed, 1), answer_tokens_per_s=round(answers / seconds_timed, 1),
                   answer_token_share=round(answers / slots, 3))
        row["model_flops_per_token"] = model_flops_per_token(facts, method, estimate.trainable_params, t.sequence_len)
        row["model_tflops_per_s"] = round(row["tokens_per_s"] * row["model_flops_per_token"] / 1e12, 3)
        if peak:
            row["mfu"] = round(row["model_tflops_per_s"] / peak, 4)
    allocated = [h["memory/max_allocated (GiB)"] for h in history if h.get("memory/max_allocated (GiB)")]
    reserved = [h["memory/device_reserved (GiB)"] for h in history if h.get("memory/device_reserved (GiB)")]
    row["peak_allocated_gib"] = max(allocated) if allocated else None  # Axolotl resets the peak at each log
    row["peak_reserved_gib"] = max(reserved) if reserved else None
    if row["peak_allocated_gib"]:
        row["peak_over_estimate"] = round(row["peak_allocated_gib"] / estimate.total_gib, 3)
    return row


def eval_row(run, code: int, seconds: float) -> dict:
    """What `launch.py eval RUN_DIR` recorded for the QLoRA run: how each model was loaded and its answer loss."""
    row = {"run_dir": str(run.path) if run else None, "exit_code": code, "seconds_wall": round(seconds, 1)}
    if run is None or not run.metrics.is_file():
        return row
    metrics = json.loads(run.metrics.read_text())
    config = metrics.get("config", {})
    row["models"] = {label: {"quantized_4bit": ref.get("quantized_4bit"), "adapter": ref.get("adapter")}
                     for label, ref in config.get("models", {}).items()}
    for label, scores in metrics.get("models", {}).items():
        row["models"].setdefault(label, {}).update(
            {name: round(scores[name]["mean"], 4) for name in ("loss", "perplexity", "disclaimer") if name in scores})
    row["n_test_items"] = config.get("n_test_items")
    row["seconds"] = config.get("seconds")
    return row


def checks_for(rows: list[dict], evaluation: dict | None, steps: int, cuda: bool) -> dict[str, bool]:
    checks = {}
    for row in rows:
        m = row["method"]
        checks[f"{m}: trained {steps} steps"] = row["exit_code"] == 0 and row["steps_logged"] == steps
        checks[f"{m}: loss fell by {LOSS_DROP}+"] = bool(row.get("loss_fell"))
        checks[f"{m}: tokens/s measured"] = (row.get("tokens_per_s") or 0) > 0
        if cuda:
            checks[f"{m}: peak memory measured"] = bool(row.get("peak_allocated_gib"))
    if evaluation is not None:
        models = evaluation.get("models", {})
        tuned, base = models.get("tuned", {}), models.get("base", {})
        checks["qlora eval: ran"] = evaluation["exit_code"] == 0 and "loss" in tuned
        checks["qlora eval: tuned model loaded 4-bit with its adapter"] = bool(tuned.get("quantized_4bit")
                                                                                and tuned.get("adapter"))
        checks["qlora eval: tuned answer loss below base's"] = ("loss" in tuned and "loss" in base
                                                                 and tuned["loss"] < base["loss"])
    return checks


def print_table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    peak = result["measured_bf16_peak_tflops"]
    table = Table(title=f"{result['architecture']} on {result['machine']['device']}"
                        + (f", bf16 peak {peak:.0f} TFLOP/s measured" if peak else ""))
    for column in ("method", "steps", "loss first -> last", "tokens/s", "TFLOP/s", "MFU", "peak alloc GiB",
                   "reserved GiB", "estimate GiB", "wall s"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for row in result["methods"]:
        loss = f"{row['loss_first']:.3f} -> {row['loss_last']:.3f}" if "loss_first" in row else "-"
        table.add_row(row["method"], str(row["steps_logged"]), loss, f"{row.get('tokens_per_s', 0):.0f}",
                      f"{row.get('model_tflops_per_s', 0):.1f}", f"{row['mfu']:.1%}" if "mfu" in row else "-",
                      str(row["peak_allocated_gib"] or "-"), str(row["peak_reserved_gib"] or "-"),
                      f"{row['estimate_gib']['total_gib']:.1f}", f"{row['seconds_wall']:.0f}")
    console = Console(width=160)
    console.print(table)
    evaluation = result.get("qlora_eval")
    if evaluation and evaluation.get("models"):
        parts = [f"{label} loss {m.get('loss', float('nan')):.3f}" + (" (4-bit + adapter)" if m.get("quantized_4bit") else "")
                 for label, m in evaluation["models"].items()]
        console.print(f"qlora eval ({evaluation.get('n_test_items')} held-out rows, {evaluation['seconds_wall']:.0f} s): "
                      + ", ".join(parts))
    for name, ok in result["checks"].items():
        console.print(f"  {'[green]ok[/green]' if ok else '[red]FAILED[/red]'}  {name}")
