#!/usr/bin/env python
"""Benchmark: a CPU training launch's start-up with medtune's two start-up settings, each against its absence.

    python bench/bench_startup.py [--recipe recipes/smollm2-135m-lora.yaml] [--rounds 4]

medtune's rendered config for a CPU run sets `dataset_num_proc: 1` (Axolotl's default is one dataset process per
core; its packing sampler then packs in a pool of forked processes, a new pool at each of its length estimates,
and every fork compiles the packer's numba code again), and every rendered config lists the FrozenImports plugin
(medtune/launch/axolotl_plugin.py: the imported libraries left out of each of Axolotl's gc.collect() passes).
This times the training stage's own command (`accelerate launch -m axolotl.cli.train`, as launch.py runs it) for
one optimizer step on the recipe's data with the rendered config (A), the same config at Axolotl's default
dataset_num_proc (B), and the same config without FrozenImports (C), in turns A B C A B C ... in one run directory
(its tokenized copy removed before each start). It prints each variant's median and the median of each round's
ratios A/B and A/C, and writes bench/results/startup.json with the machine.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from medtune.core.env import private_env  # noqa: E402  (needs the sys.path line above)

private_env()

from machine import describe as describe_machine, machine  # noqa: E402  (beside this script)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="recipes/smollm2-135m-lora.yaml")
    parser.add_argument("--rounds", type=int, default=4, help="rounds of the three variants timed (default 4)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "startup.json")
    args = parser.parse_args()

    import yaml

    from medtune.launch.train import child_env, train_command
    from medtune.recipe.loader import load

    work = Path(tempfile.mkdtemp(prefix="medtune-startup-"))
    try:
        # The recipe's run directory after preprocess: its data and its rendered configs, one optimizer step.
        done = subprocess.run([sys.executable, "launch.py", args.recipe, "--stages", "preprocess", "--set",
                               "training.max_steps=1", "--runs-dir", str(work)], cwd=REPO, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stdout[-2000:] + done.stderr[-2000:], file=sys.stderr)
            return done.returncode
        [run_dir] = [p.parent for p in work.glob("*/*/manifest.json")]
        recipe, _ = load(REPO / args.recipe, ["training.max_steps=1"])
        if recipe.launch.device != "cpu":
            parser.error(f"{args.recipe} is not a CPU recipe")
        rendered = yaml.safe_load((run_dir / "axolotl.yaml").read_text())
        plugin = "medtune.launch.axolotl_plugin.FrozenImports"
        if rendered.get("dataset_num_proc") != 1 or plugin not in rendered.get("plugins", []):
            parser.error("the rendered config lacks dataset_num_proc: 1 or the FrozenImports plugin; nothing to compare")
        variants = {
            "rendered": rendered,
            "axolotl_default_dataset_num_proc": {k: v for k, v in rendered.items() if k != "dataset_num_proc"},
            "without_frozen_imports": {**rendered, "plugins": [p for p in rendered["plugins"] if p != plugin]},
        }
        for name, config in variants.items():
            (run_dir / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        env = child_env()

        def launch(name: str) -> float:
            shutil.rmtree(run_dir / "train", ignore_errors=True)  # no tokenized copy, no checkpoint to resume
            started = time.perf_counter()
            proc = subprocess.run(train_command(recipe, 1, config=f"{name}.yaml"), cwd=run_dir, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"{name}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
            return time.perf_counter() - started

        record = machine()
        rounds = []
        for i in range(args.rounds):
            rounds.append({name: launch(name) for name in variants})
            print(f"round {i + 1}: " + ", ".join(f"{name} {sec:.1f} s" for name, sec in rounds[-1].items()), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    medians = {name: round(statistics.median(r[name] for r in rounds), 2) for name in rounds[0]}
    ratios = {f"rendered / {name}": round(statistics.median(r["rendered"] / r[name] for r in rounds), 3)
              for name in rounds[0] if name != "rendered"}
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "recipe": args.recipe,
              "machine": record, "what": "accelerate launch -m axolotl.cli.train, one optimizer step",
              "seconds": {name: [round(r[name], 2) for r in rounds] for name in rounds[0]},
              "median_seconds": medians, "median_round_ratio": ratios}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(describe_machine(record))
    print("median seconds: " + ", ".join(f"{name} {sec:.1f}" for name, sec in medians.items()))
    print("median round ratio: " + ", ".join(f"{name} {ratio:.3f}" for name, ratio in ratios.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
