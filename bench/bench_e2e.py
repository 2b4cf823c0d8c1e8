#!/usr/bin/env python
"""Benchmark: the CPU demo end to end (what `make demo` runs), wall time split by stage from its run manifest.

    python bench/bench_e2e.py [--recipe recipes/smollm2-135m-lora.yaml]

Writes bench/results/e2e.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="recipes/smollm2-135m-lora.yaml")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "e2e.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "launch.py", args.recipe, "--runs-dir", tmp], cwd=REPO)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            print(f"the demo run failed with exit code {proc.returncode}", file=sys.stderr)
            return proc.returncode
        manifest = json.loads(next(Path(tmp).glob("*/*/manifest.json")).read_text())
    stages = {name: info.get("seconds") for name, info in manifest["stages"].items()}
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "recipe": args.recipe,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
              "wall_seconds": round(wall, 1), "stage_seconds": stages}
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
