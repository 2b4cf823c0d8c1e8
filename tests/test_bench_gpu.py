"""bench/bench_gpu.py runs where GPUs are lent, rarely; its --tiny mode proves on CPU that it still works."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_benchmark_runs_all_three_methods_and_agrees_with_the_plan(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, "bench/bench_gpu.py", "--tiny", "--steps", "1", "--warmup", "1", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    rows = {row["method"]: row for row in result["methods"]}
    assert list(rows) == ["lora", "qlora", "full"]
    for method, row in rows.items():
        assert row["tokens_per_s"] > 0 and row["model_flops_per_token"] > 0
        # The trainable parameters pre-flight's estimate counts are the ones PEFT / the full model really train.
        assert abs(row["trainable_params"] - row["estimated_trainable_params"]) <= 1, method
        # Random weights over a 128,256-token vocabulary start near the uniform loss: the loop trains the model it built.
        assert abs(row["loss_first_last"][0] - math.log(128256)) < 0.5, method
    assert rows["full"]["trainable_params"] == result["params"]
    assert rows["qlora"]["trainable_params"] == 2 * rows["lora"]["trainable_params"]  # the recipes' ranks: 32 vs 16
    assert rows["full"]["estimate_gib"]["total_gib"] > rows["lora"]["estimate_gib"]["total_gib"]
