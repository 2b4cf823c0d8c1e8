#!/usr/bin/env python
"""Benchmark: preprocess MedQuAD from a cold and a warm cache (the README's figures: all of the publisher's
11,274 XML files, 47,457 QA pairs, given with --data).

    python bench/bench_preprocess.py [--data MEDQUAD_FOLDER] [--repeat 3] [--tokenizer smollm2-135m-instruct --sequence-len 1024]

Without --data: MedQuAD's Hub copy when the Hub may be contacted, else the project's demo rows.

Prints rows/s and writes bench/results/preprocess.json. Each cold run uses a fresh cache folder.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from medtune.core.env import private_env  # noqa: E402  (needs the sys.path line above)

private_env()

from medquad_data import DATA_HELP, describe, medquad_entry  # noqa: E402  (beside this script; imports medtune)
from machine import machine  # noqa: E402  (beside this script)


def run_once(data: Path | None, out: Path, cache: Path, tokenizer, sequence_len) -> tuple[float, dict]:
    from medtune.preprocess.pipeline import prepare
    from medtune.preprocess.spec import DataSpec

    os.environ["MEDTUNE_CACHE"] = str(cache)
    started = time.perf_counter()
    manifest = prepare(DataSpec(train=[medquad_entry(data)]), out, tokenizer=tokenizer, sequence_len=sequence_len)
    return time.perf_counter() - started, manifest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help=DATA_HELP)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tokenizer", help="also time the too_long filter with this model's tokenizer")
    parser.add_argument("--sequence-len", type=int, default=1024)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "preprocess.json")
    args = parser.parse_args()
    if args.data is not None and not args.data.exists():
        print(f"MedQuAD not found: {args.data}", file=sys.stderr)
        return 2

    tok = None
    if args.tokenizer:
        from transformers import AutoTokenizer

        from medtune.models.catalog import ensure_local

        tok = AutoTokenizer.from_pretrained(ensure_local(args.tokenizer))  # before MEDTUNE_CACHE moves

    results = {}
    for label, tokenizer, seq in [("no_length_filter", None, None)] + ([("length_filter", tok, args.sequence_len)] if tok else []):
        cold, warm = [], []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                seconds, manifest = run_once(args.data, Path(tmp) / "out", Path(tmp) / "cache", tokenizer, seq)
                cold.append(seconds)
                seconds, hit = run_once(args.data, Path(tmp) / "out2", Path(tmp) / "cache", tokenizer, seq)
                assert hit["cache"] == "hit"
                warm.append(seconds)
        pairs = manifest["sources"][0]["read"]
        emitted = sum(manifest["counts"].values())
        best = min(cold)
        results[label] = {
            "qa_pairs_read": pairs,
            "rows_written": emitted,
            "cold_seconds": [round(s, 3) for s in cold],
            "cold_seconds_best": round(best, 3),
            "cold_seconds_median": round(statistics.median(cold), 3),
            "qa_pairs_per_second": round(pairs / best),
            "rows_written_per_second": round(emitted / best),
            "cache_hit_seconds_median": round(statistics.median(warm), 3),
            "sequence_len": seq,
            "dropped": manifest["dropped"],
        }
        print(f"{label}: {pairs:,} QA pairs -> {emitted:,} rows in {best:.2f} s (median {statistics.median(cold):.2f} s): "
              f"{pairs / best:,.0f} pairs/s, {emitted / best:,.0f} rows/s; cache hit {statistics.median(warm):.2f} s")

    report = {
        "benchmark": "preprocess MedQuAD",
        "data": describe(args.data),
        "machine": {"python": platform.python_version(), **machine()},  # CPU model, AVX-512/AVX2, cores, load
        "tokenizer": args.tokenizer,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
