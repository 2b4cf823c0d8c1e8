#!/usr/bin/env python
"""Benchmark: the CPU demo end to end (what `make demo` runs), wall time split by stage and within each stage.

    python bench/bench_e2e.py [--recipe recipes/smollm2-135m-lora.yaml] [--runs-dir runs]

Where the time goes, from the run's own records: training's start-up (Axolotl's imports, tokenization, model
load) against its optimizer steps (the trainer's train_runtime), evaluation's model loads, generation and
perplexity per model (eval/metrics.json) against scoring (ROUGE, BLEU, BERTScore: the rest of the stage), and
whether the model had to be converted from its GGUF first (once per machine; timed before the demo starts).
Writes bench/results/e2e.json with the machine; the run itself stays in runs/ with its report, as after
`make demo`. On a shared machine absolute seconds inflate: compare the shares, measured in one run.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from medtune.core.env import private_env  # noqa: E402  (needs the sys.path line above)

private_env()

from machine import describe as describe_machine, machine  # noqa: E402  (beside this script)

HEADLINE = ("rouge1", "rougeL", "bleu", "bertscore_f1", "perplexity", "disclaimer")


def headline(run_dir: Path) -> dict:
    """Base and tuned means of the demo's main metrics, with the paired tuned-minus-base interval where reported."""
    path = run_dir / "eval" / "metrics.json"
    if not path.is_file():
        return {}
    metrics = json.loads(path.read_text())
    models, deltas = metrics.get("models", {}), metrics.get("deltas", {})
    out = {}
    for name in HEADLINE:
        row = {label: round(models[label][name]["mean"], 4) for label in ("base", "tuned") if name in models.get(label, {})}
        delta = deltas.get(name)
        if isinstance(delta, dict):  # paired bootstrap over the same questions: {"mean", "ci": [low, high], "n"}
            row["delta"] = {"mean": delta["mean"], "ci": delta.get("ci")}
        if row:
            out[name] = row
    return out


def profile(run_dir: Path, stages: dict[str, float]) -> dict:
    """Each stage's seconds split into the parts the run recorded."""
    from medtune.core.rundir import RunDir

    run = RunDir(run_dir)
    parts: dict[str, dict] = {}
    # train/history.json ends with the trainer's summary (train_runtime); a checkpoint's log, saved before it, does not.
    history = json.loads(run.history.read_text()) if run.history.is_file() else run.training_history()
    summary = next((h for h in reversed(history) if "train_runtime" in h), None)
    if summary is not None and "train" in stages:
        steps = len([h for h in history if "loss" in h])
        parts["train"] = {"optimizer_steps": steps, "steps_seconds": round(summary["train_runtime"], 1),
                          "seconds_per_step": round(summary["train_runtime"] / max(steps, 1), 2),
                          "startup_seconds": round(stages["train"] - summary["train_runtime"], 1),
                          "first_loss": next((h["loss"] for h in history if "loss" in h), None),
                          "last_loss": next((h["loss"] for h in reversed(history) if "loss" in h), None)}
    if run.metrics.is_file() and "eval" in stages:
        seconds = json.loads(run.metrics.read_text()).get("config", {}).get("seconds", {})
        eval_parts = {f"{label}_{part}": round(value, 1) for label, split in seconds.items() for part, value in split.items()}
        eval_parts["scoring_and_rest"] = round(stages["eval"] - sum(eval_parts.values()), 1)
        parts["eval"] = eval_parts
    return parts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="recipes/smollm2-135m-lora.yaml")
    parser.add_argument("--runs-dir", type=Path, default=REPO / "runs",
                        help="where the run is kept for its report (default: runs/, as make demo)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "e2e.json")
    args = parser.parse_args()
    args.runs_dir.mkdir(parents=True, exist_ok=True)
    record = machine()

    # The demo's model comes converted from its PyPI GGUF once per machine; time that apart from the demo.
    from medtune.models.catalog import converted_dir, ensure_local

    cached = (converted_dir("smollm2-135m-instruct") / "config.json").is_file()
    started = time.perf_counter()
    ensure_local("smollm2-135m-instruct")
    conversion = None if cached else round(time.perf_counter() - started, 1)

    before = set(args.runs_dir.glob("*/*/manifest.json"))
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "launch.py", args.recipe, "--runs-dir", str(args.runs_dir)], cwd=REPO)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        print(f"the demo run failed with exit code {proc.returncode}", file=sys.stderr)
        return proc.returncode
    manifest_path = max(set(args.runs_dir.glob("*/*/manifest.json")) - before, key=lambda p: p.stat().st_mtime)
    manifest = json.loads(manifest_path.read_text())
    stages = {name: info.get("seconds") for name, info in manifest["stages"].items()}
    record["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "recipe": args.recipe,
              "machine": record, "gguf_conversion_seconds": conversion,
              "run_dir": str(manifest_path.parent), "wall_seconds": round(wall, 1), "stage_seconds": stages,
              "stage_parts": profile(manifest_path.parent, stages), "metrics": headline(manifest_path.parent)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"End to end: {args.recipe}\n{describe_machine(record)}")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    table.add_column("share", justify="right")
    table.add_column("of which")
    for name, seconds in stages.items():
        parts = result["stage_parts"].get(name, {})
        detail = ", ".join(f"{k} {v}" for k, v in parts.items() if k.endswith(("seconds", "_load", "_generate",
                                                                               "_perplexity", "rest")))
        table.add_row(name, f"{seconds:.1f}", f"{seconds / wall:.0%}", detail)
    table.add_row("total wall (incl. validate/render/start-up)", f"{wall:.1f}", "100%", "", style="bold")
    if conversion is not None:
        table.add_row("GGUF conversion (first run on this machine, before the demo)", f"{conversion:.1f}", "", "")
    Console().print(table)
    for name in ("rougeL", "perplexity"):
        delta = result["metrics"].get(name, {}).get("delta")
        if delta:
            low, high = delta["ci"] or (float("nan"), float("nan"))
            excludes = "excludes 0" if low > 0 or high < 0 else "includes 0"
            print(f"{name}: tuned - base {delta['mean']:+.4f} [{low:+.4f}, {high:+.4f}] ({excludes})")
    print(f"the run and its report: {manifest_path.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
