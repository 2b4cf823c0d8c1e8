#!/usr/bin/env python
"""Benchmark: can an AVX-512 machine stand in for the slower AVX2-only kind by restricting its instruction set?

    python bench/bench_isa.py [--rounds 3] [--threads 1]

Times one forward and backward pass of a SmolLM2-135M-sized stack of MLP blocks (hidden 576, intermediate 1536,
8 blocks, 2048 tokens, fp32: the matmul shapes that dominate its training) in fresh processes, alternately as
the machine is and with every library told to use AVX2 at most (torch's ATen kernels `ATEN_CPU_CAPABILITY=avx2`,
MKL `MKL_ENABLE_INSTRUCTIONS=AVX2`, oneDNN `ONEDNN_MAX_CPU_ISA=AVX2`), and reports the ratio of the medians.
If it were near the 2x measured between the two kinds of machine, a demo or suite timed under the restriction
would estimate the slower kind; a ratio near 1 says the difference is the CPU, not its instruction set.
Writes bench/results/isa.json with the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from machine import describe, machine  # noqa: E402  (beside this script)

AVX2_ONLY = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}

STEP = """
import time, torch
torch.manual_seed(0)
torch.set_num_threads({threads})
d, f, n, t = 576, 1536, 8, 2048
blocks = [torch.nn.Sequential(torch.nn.Linear(d, f), torch.nn.SiLU(), torch.nn.Linear(f, d)) for _ in range(n)]
x = torch.randn(t, d, requires_grad=True)
def step():
    h = x
    for block in blocks:
        h = h + block(h)
    h.pow(2).mean().backward()
step()  # warm-up, untimed
started = time.perf_counter()
for _ in range(5):
    step()
print(torch.backends.cpu.get_cpu_capability(), (time.perf_counter() - started) / 5)
"""


def one(env: dict, threads: int) -> tuple[str, float]:
    out = subprocess.run([sys.executable, "-c", STEP.format(threads=threads)], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    return out[0], float(out[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per pass (default 1)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "isa.json")
    args = parser.parse_args()
    base = {k: v for k, v in os.environ.items() if k not in AVX2_ONLY}
    seconds: dict[str, list[float]] = {"native": [], "avx2_only": []}
    capability = {}
    for _ in range(args.rounds):  # interleaved: the machine's drift hits both sides alike
        for side, env in (("native", base), ("avx2_only", {**base, **AVX2_ONLY})):
            capability[side], value = one(env, args.threads)
            seconds[side].append(round(value, 3))
    ratio = statistics.median(seconds["avx2_only"]) / statistics.median(seconds["native"])
    record = machine(torch_threads=args.threads)  # the passes', not this script's
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": record,
              "threads": args.threads, "capability": capability, "seconds_per_pass": seconds,
              "avx2_only_over_native": round(ratio, 3)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(describe(record))
    for side, values in seconds.items():
        print(f"{side:10} ({capability[side]}): {values} s per pass")
    print(f"AVX2-only / native: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
