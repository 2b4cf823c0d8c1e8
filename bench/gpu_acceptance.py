#!/usr/bin/env python
"""GPU acceptance: medtune's real path on one GPU in one command under ten minutes. The shipped Llama-3.2-1B
recipes (QLoRA, LoRA, full) each train 20 steps through `launch.py` (preprocess, then accelerate + Axolotl), and
the QLoRA run is evaluated through `launch.py eval RUN_DIR` (its 4-bit base with the adapter on top).

    bash bench/gpu_acceptance.sh            # on a lent GPU machine, with .whl/ carried (README, "Performance")
    python bench/gpu_acceptance.py          # where medtune's requirements are installed and a CUDA GPU is present
    python bench/gpu_acceptance.py --tiny   # on CPU: a 2-layer stand-in, the same stages (tests/test_bench_gpu.py)

The model is a stand-in for meta-llama/Llama-3.2-1B-Instruct (bench/gpu_acceptance_model.py): random weights in
its published architecture, a tokenizer learned from the rows it trains on with Llama 3's special tokens and chat
format, put in a private Hugging Face cache under the catalog's Hub id, so the recipes load it by their catalog
key with the Hub off. It trains on medtune's demo MedQuAD rows (data.train replaced; 10% held out for the eval;
about 145 tokens a row): 20 steps of 16 packed 1,024-token sequences go over them about eight times, so a model
starting from random weights must lower its loss on them: "loss fell" means the mean of the last three logged
losses is at least LOSS_DROP below the mean of the first three. --tiny: a 2-layer, 64-wide stand-in whose
tokenizer puts the special tokens right after the 8,000 learned ones (a 128,256-row LM head would take most of
each CPU step), micro-batches of 2 x 256 tokens, and learning rate TINY_LEARNING_RATE.

Recorded per method (bench/results/gpu_acceptance.json; --tiny: a file in the temp folder): the loss curve;
throughput over the steps after WARMUP_STEPS from Axolotl's per-step logs (token slots computed per second, and
answer tokens trained per second); model TFLOP/s and MFU against a bf16 matmul peak measured on the same GPU
(FLOPs per token as bench/bench_gpu.py counts them); PyTorch's peak allocated and reserved memory (Axolotl logs
them each step) beside medtune.launch.plan.estimate_memory for the recipe as it ran. For the QLoRA eval: whether
the tuned model was loaded 4-bit, and base vs tuned answer loss on the held-out rows (tuned must be lower).
Exit code 0 when every check passes, 1 otherwise, 2 when the machine cannot run it.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

from bench_gpu import LLAMA_32_1B, TINY, facts_for, measured_peak_tflops, random_model_folder  # noqa: E402
from gpu_acceptance_model import corpus, hub_snapshot, llama3_token_ids, write_tokenizer  # noqa: E402
from machine import machine  # noqa: E402
from gpu_acceptance_report import WARMUP_STEPS, checks_for, eval_row, print_table, training_row  # noqa: E402

METHODS = ("qlora", "lora", "full")  # qlora first: its eval is the other half of the acceptance
STEPS = 20
PACKAGES = ("torch", "transformers", "axolotl", "peft", "accelerate", "trl", "datasets", "bitsandbytes",
            "liger-kernel", "flash-attn")
# A lent machine stops a command at 10 minutes: the run has a deadline (the wheels' install comes before it), each
# stage a cap within it, so one hang cannot take the others' time and the JSON is written whatever happened.
BUDGET_S = 540
TIMEOUT_S = {"train": 300, "eval": 240}
TINY_TIMEOUT_S = 600
MIN_STAGE_S = 30  # a stage with less time left than this is skipped (and recorded so), not started
TINY_LEARNING_RATE = 6e-3


def recipe_path(method: str) -> Path:
    return REPO / "recipes" / f"llama1b-{method}.yaml"


def overrides(args, demo_csv: Path) -> list[str]:
    """The --set overrides every method runs with: the acceptance's data, steps and eval; the rest as shipped."""
    sets = [
        f"training.max_steps={args.steps}",
        f"training.save_steps={args.steps}",  # one checkpoint, at the end (its trainer state holds the step logs)
        "training.save_total_limit=1",
        "training.logging_steps=1",
        "data.train=" + json.dumps([{"source": "medquad", "path": str(demo_csv)}]),
        "data.split={val: 0, test: 0.1, seed: 42}",  # no validation pass: it would only cost time here
        "eval.suites=[]",  # the suites' data comes from the Hub
        "eval.metrics=[perplexity, disclaimer]",  # answer loss (the 4-bit check) and one generation-based score
        f"eval.limit={8 if args.tiny else 16}",
        f"eval.max_new_tokens={16 if args.tiny else 32}",
    ]
    if args.tiny:
        # A 64-wide model's logits are small and move slowly at the recipes' rates (0.015-0.04 nats in 20 steps,
        # measured): a higher rate makes "the loss fell" a real test of the plumbing there too.
        return sets + ["launch.device=cpu", "training.micro_batch_size=2", "training.gradient_accumulation_steps=1",
                       "training.sequence_len=256", f"training.learning_rate={TINY_LEARNING_RATE}"]
    if importlib.util.find_spec("flash_attn") is None:
        sets.append("training.attention=sdpa")  # the CUDA default wants flash-attn, which the GPU image lacks
    if importlib.util.find_spec("liger_kernel") is None:
        sets.append("training.liger=false")
    return sets


def child_env(work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "HF_HOME": str(work / "hf"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
        "MEDTUNE_CACHE": str(work / "cache"), "PYTHONUNBUFFERED": "1", "COLUMNS": "160",
        # Training's processes start in the run directory and import medtune's Axolotl plugin: from the checkout.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
    })
    return env


def run_logged(cmd: list[str], log: Path, env: dict, timeout: int) -> tuple[int, float]:
    """(exit code, seconds) of cmd run from the checkout with its output in log; its process group ends at timeout."""
    started = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            fh.write(f"\n[gpu_acceptance] stopped after {timeout} s\n")
            code = 124
    return code, time.perf_counter() - started


def tail(path: Path, lines: int = 25) -> str:
    if not path.is_file():
        return ""
    text = path.read_text(errors="replace").replace("\r", "\n").splitlines()
    kept = [line[:300] for line in text if line.strip() and "it/s]" not in line and "s/it]" not in line]
    return "\n".join(kept[-lines:])


def versions() -> dict:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def build_model(work: Path, tiny: bool, device: str, repo_id: str, texts: list[str]) -> tuple[dict, int]:
    """The stand-in model and tokenizer, in work/hf's Hub cache as repo_id: (its architecture, its parameter count)."""
    snapshot = hub_snapshot(work / "hf", repo_id, "tiny" if tiny else "full")
    vocab = write_tokenizer(snapshot, texts, llama3_ids=not tiny)
    config = dict(TINY, vocab_size=vocab) if tiny else LLAMA_32_1B
    if config["vocab_size"] != vocab:
        raise SystemExit(f"the tokenizer has {vocab} ids and {repo_id}'s architecture {config['vocab_size']}")
    params = random_model_folder({**config, **llama3_token_ids(vocab)}, snapshot, device)
    return config, params


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="a 2-layer stand-in on CPU: checks the script, measures nothing")
    parser.add_argument("--steps", type=int, default=STEPS, help=f"optimizer steps per method (default {STEPS})")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}")
    parser.add_argument("--out", type=Path,
                        help="the JSON's path (default bench/results/gpu_acceptance.json; --tiny: the temp folder)")
    parser.add_argument("--work", type=Path,
                        help="folder for the model, caches and run directories (default: a temp folder, removed after)")
    parser.add_argument("--logs", type=Path, help="copy each stage's log here (one file per method, plus the eval's)")
    parser.add_argument("--budget-s", type=float, default=BUDGET_S,
                        help=f"seconds the whole run may take (default {BUDGET_S}; --tiny: no limit)")
    args = parser.parse_args()
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown or not args.methods:
        parser.error(f"--methods takes some of {','.join(METHODS)}; got {', '.join(unknown) or 'none'}")
    if args.steps <= WARMUP_STEPS:
        parser.error(f"--steps must exceed the {WARMUP_STEPS} untimed warm-up steps; got {args.steps}")
    return args


class Budget:
    """Each stage's time limit: its own cap, within what is left of the run's deadline (None: no deadline)."""

    def __init__(self, seconds: float | None):
        self.deadline = None if seconds is None else time.perf_counter() + seconds

    def limit(self, stage: str) -> int | None:
        """Seconds the stage may take, or None when too little is left to start it."""
        if self.deadline is None:
            return TINY_TIMEOUT_S
        left = int(self.deadline - time.perf_counter())
        return min(TIMEOUT_S[stage], left) if left >= MIN_STAGE_S else None


def run_methods(args, recipes: dict, sets: list[str], facts, peak, work: Path, env: dict, budget: Budget):
    """Train each method through `launch.py`, evaluate the QLoRA run through `launch.py eval`: (rows, eval, skipped)."""
    from medtune.core.rundir import RunDir

    rows, evaluation, skipped, runs = [], None, [], work / "runs"
    for method, recipe in recipes.items():
        if budget.limit("train") is None:
            skipped.append(method)
            print(f"[gpu_acceptance] {method}: skipped, the {args.budget_s:.0f} s budget is spent", flush=True)
            continue
        log = work / "logs" / f"{method}.log"
        cmd = [sys.executable, str(REPO / "launch.py"), str(recipe_path(method)), "--stages", "preprocess,train",
               "--runs-dir", str(runs), *[part for s in sets for part in ("--set", s)]]
        code, seconds = run_logged(cmd, log, env, budget.limit("train"))
        run = RunDir.latest(runs, recipe.name) if (runs / recipe.name).is_dir() else None
        row = training_row(method, recipe, facts, run, code, seconds, args.steps, peak)
        rows.append(row)
        print(f"[gpu_acceptance] {method}: exit {code}, {row['steps_logged']} steps, loss "
              f"{row.get('loss_first', '-')} -> {row.get('loss_last', '-')}, {row.get('tokens_per_s', '-')} tokens/s, "
              f"{seconds:.0f} s", flush=True)
        if code != 0:
            print(tail(log) + "\n" + (tail(run.train_log) if run else ""), flush=True)
        if method == "qlora" and run is not None and code == 0 and budget.limit("eval") is not None:
            eval_log = work / "logs" / "qlora-eval.log"
            code, seconds = run_logged([sys.executable, str(REPO / "launch.py"), "eval", str(run.path), "--no-progress"],
                                       eval_log, env, budget.limit("eval"))
            evaluation = eval_row(run, code, seconds)
            print(f"[gpu_acceptance] qlora eval: exit {code}, {seconds:.0f} s", flush=True)
            if code != 0:
                print(tail(eval_log), flush=True)
    if "qlora" in recipes and evaluation is None:
        evaluation = {"exit_code": None, "seconds_wall": 0.0,
                      "skipped": "the QLoRA run did not finish training, or the budget was spent"}
    return rows, evaluation, skipped


def copy_logs(folder: Path, rows: list[dict], work: Path) -> None:
    """One file per method (launch.py's output, then the run's train/train.log), plus the eval's output."""
    folder.mkdir(parents=True, exist_ok=True)
    for row in rows:
        text = (work / "logs" / f"{row['method']}.log").read_text(errors="replace")
        train_log = Path(row["run_dir"]) / "train" / "train.log" if row["run_dir"] else None
        if train_log and train_log.is_file():
            text += "\n==== train/train.log ====\n" + train_log.read_text(errors="replace")
        (folder / f"{row['method']}.log").write_text(text)
    if (work / "logs" / "qlora-eval.log").is_file():
        shutil.copyfile(work / "logs" / "qlora-eval.log", folder / "qlora-eval.log")


def main() -> int:
    args = parse_args()
    started = time.perf_counter()
    budget = Budget(None if args.tiny else args.budget_s)

    import torch

    cuda = torch.cuda.is_available() and not args.tiny
    if not cuda and not args.tiny:
        print("no CUDA GPU here: run on a GPU machine, or pass --tiny to check the script on CPU", file=sys.stderr)
        return 2
    device = "cuda" if cuda else "cpu"
    out = args.out or (Path(tempfile.gettempdir()) / "medtune-gpu-acceptance-tiny.json" if args.tiny
                       else REPO / "bench" / "results" / "gpu_acceptance.json")
    work = args.work or Path(tempfile.mkdtemp(prefix="medtune-gpu-acceptance-"))
    (work / "logs").mkdir(parents=True, exist_ok=True)
    env = child_env(work)
    os.environ.update({k: env[k] for k in ("HF_HOME", "HF_HUB_OFFLINE", "MEDTUNE_CACHE")})  # for the recipe loader here

    from medtune.core.paths import DATA_DIR
    from medtune.models.catalog import lookup
    from medtune.recipe.loader import load as load_recipe

    demo_csv = DATA_DIR / "medquad_demo.csv"
    sets = overrides(args, demo_csv)
    recipes = {m: load_recipe(recipe_path(m), sets)[0] for m in args.methods}
    models = {r.model for r in recipes.values()}
    if len(models) != 1:
        raise SystemExit(f"the recipes train different models ({sorted(models)}): one stand-in per run")
    first = next(iter(recipes.values()))
    hub_id = lookup(first.model).hub_id
    print(f"[gpu_acceptance] {device}: building the stand-in for {hub_id} in {work} ...", flush=True)
    texts = corpus(demo_csv, [first.data.system_prompt or "", first.data.disclaimer.text])
    config, params = build_model(work, args.tiny, device, hub_id, texts)
    facts = facts_for(config, params, first.model)
    peak = measured_peak_tflops(device)
    if cuda:
        torch.cuda.empty_cache()
    print(f"[gpu_acceptance] {params / 1e6:,.1f} M parameters; bf16 peak {peak or 0:.0f} TFLOP/s "
          f"({time.perf_counter() - started:.0f} s)", flush=True)

    rows, evaluation, skipped = run_methods(args, recipes, sets, facts, peak, work, env, budget)
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "mode": "tiny (CPU; checks the script, measures nothing)" if args.tiny else "gpu",
        "machine": {**machine(), "device": torch.cuda.get_device_name(0) if cuda else platform.processor() or "cpu",
                    "python": platform.python_version(), "packages": versions()},
        "architecture": "tiny llama stand-in (--tiny)" if args.tiny else "Llama-3.2-1B (random weights)",
        "params": params, "steps": args.steps, "warmup_steps_untimed": WARMUP_STEPS,
        "measured_bf16_peak_tflops": round(peak, 1) if peak else None,
        "methods": rows, "skipped_methods": skipped, "qlora_eval": evaluation,
        "seconds_total": round(time.perf_counter() - started, 1),
    }
    result["checks"] = checks_for(rows, evaluation, args.steps, cuda)
    for method in skipped:
        result["checks"][f"{method}: ran within the budget"] = False
    result["passed"] = all(result["checks"].values())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    if args.logs:
        copy_logs(args.logs, rows, work)
    print_table(result)
    print(f"wrote {out}" + ("" if args.work else f"; removing {work}"))
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
