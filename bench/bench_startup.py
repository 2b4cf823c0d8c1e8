#!/usr/bin/env python
"""Benchmark: a CPU training launch's start-up with medtune's `dataset_num_proc: 1` against Axolotl's default.

    python bench/bench_startup.py [--recipe recipes/smollm2-135m-lora.yaml] [--pairs 4]

Axolotl's default is one dataset process per core; its packing sampler then packs in a pool of forked processes,
a new pool at each of its length estimates, and every fork compiles the packer's numba code again. medtune's
rendered config for a CPU run sets `dataset_num_proc: 1`. This times the training stage's own command (`accelerate
launch -m axolotl.cli.train`, as launch.py runs it) for one optimizer step on the recipe's data, with the rendered
config (A) and the same config without that key (B), in turns A B A B ... in one run directory (its tokenized
copy removed before each start), and prints each side's median and the median of the pairs' ratios A/B. Writes
bench/results/startup.json with the machine.
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
    parser.add_argument("--pairs", type=int, default=4, help="A/B pairs timed (default 4)")
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
        if rendered.get("dataset_num_proc") != 1:
            parser.error("the rendered config does not set dataset_num_proc: 1; nothing to compare")
        default = {k: v for k, v in rendered.items() if k != "dataset_num_proc"}
        (run_dir / "a.yaml").write_text(yaml.safe_dump(rendered, sort_keys=False))
        (run_dir / "b.yaml").write_text(yaml.safe_dump(default, sort_keys=False))
        env = child_env()

        def launch(config: str) -> float:
            shutil.rmtree(run_dir / "train", ignore_errors=True)  # no tokenized copy, no checkpoint to resume
            started = time.perf_counter()
            proc = subprocess.run(train_command(recipe, 1, config=config), cwd=run_dir, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"{config}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
            return time.perf_counter() - started

        record = machine()
        pairs = []
        for i in range(args.pairs):
            a, b = launch("a.yaml"), launch("b.yaml")
            pairs.append((a, b))
            print(f"pair {i + 1}: dataset_num_proc 1 {a:.1f} s, Axolotl's default {b:.1f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    a_med = statistics.median(a for a, _ in pairs)
    b_med = statistics.median(b for _, b in pairs)
    ratio = statistics.median(a / b for a, b in pairs)
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "recipe": args.recipe,
              "machine": record, "what": "accelerate launch -m axolotl.cli.train, one optimizer step",
              "seconds": {"dataset_num_proc_1": [round(a, 2) for a, _ in pairs],
                          "axolotl_default": [round(b, 2) for _, b in pairs]},
              "median_seconds": {"dataset_num_proc_1": round(a_med, 2), "axolotl_default": round(b_med, 2)},
              "median_pair_ratio": round(ratio, 3)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"{describe_machine(record)}\nmedian: {a_med:.1f} s with dataset_num_proc 1, {b_med:.1f} s with Axolotl's "
          f"default; median pair ratio {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
