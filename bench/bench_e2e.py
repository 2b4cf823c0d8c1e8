#!/usr/bin/env python
"""Benchmark: the CPU demo end to end (what `make demo` runs), wall time split by stage from its run manifest.

    python bench/bench_e2e.py [--recipe recipes/smollm2-135m-lora.yaml] [--runs-dir runs]

Writes bench/results/e2e.json (stage seconds and the base/tuned headline metrics); the run itself stays
in runs/ with its report, as after `make demo`.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


HEADLINE = ("rouge1", "rougeL", "bleu", "bertscore_f1", "perplexity", "disclaimer")


def headline(run_dir: Path) -> dict:
    """Base and tuned means of the demo's main metrics, as the run's report/metrics.json has them."""
    path = run_dir / "report" / "metrics.json"
    if not path.is_file():
        return {}
    metrics = json.loads(path.read_text())
    models = metrics.get("models", {})
    training = metrics.get("training", {})
    return {"training_loss": {"first": training.get("first_loss"), "last": training.get("last_loss")},
            **{name: {label: round(models[label][name]["mean"], 4) for label in ("base", "tuned")
                      if name in models.get(label, {})} for name in HEADLINE}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="recipes/smollm2-135m-lora.yaml")
    parser.add_argument("--runs-dir", type=Path, default=REPO / "runs",
                        help="where the run is kept for its report (default: runs/, as make demo)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "e2e.json")
    args = parser.parse_args()
    args.runs_dir.mkdir(parents=True, exist_ok=True)
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
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "recipe": args.recipe,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "load_average_1min_after": round(os.getloadavg()[0], 2)},
              "run_dir": str(manifest_path.parent), "wall_seconds": round(wall, 1), "stage_seconds": stages,
              "metrics": headline(manifest_path.parent)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"End to end: {args.recipe}")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    for name, seconds in stages.items():
        table.add_row(name, f"{seconds:.1f}")
    table.add_row("total wall (incl. validate/render/start-up)", f"{wall:.1f}", style="bold")
    Console().print(table)
    print(f"the run and its report: {manifest_path.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
