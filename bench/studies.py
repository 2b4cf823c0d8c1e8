#!/usr/bin/env python
"""Run each published study's CPU twin on the publishers' real files and write docs/studies.md.

    python bench/studies.py --data ../shared/data [--only 004,003] [--runs-dir runs] [--docs-only]

Each twin (recipes/studies/cpu/*.yaml) runs through `launch.py` as a user would, one at a time, with its
`data.train` sources pointed at the publishers' files under --data (the recipes themselves name no local
path: they read the pinned Hub copies unless told otherwise) and, where it scores a benchmark suite,
`eval.suite_data` at the same folder. Per twin the script records the exact command, the wall time, the
machine (CPU model, cores, AVX-512) and the comparison table of the runs it made, in
bench/results/studies.json, then renders docs/studies.md: each study's published numbers (claims, from its
write-up) beside the measured table. The prose on what reproduces is written by hand between
`<!-- studyNNN:notes:begin/end -->` markers and kept when the page is rendered again.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without the package installed too
sys.path.insert(0, str(REPO / "bench"))
from machine import describe, machine  # noqa: E402  (bench/machine.py: the record every bench result carries)

# Where each registry source's publisher files sit in a data folder laid out like ../shared/data.
DATA_FOLDERS = {"medquad": "medquad", "pubmedqa": "pubmedqa", "medqa": "medqa", "medmcqa": "medmcqa",
                "mmlu_medical": "mmlu"}


@dataclass(frozen=True)
class Study:
    key: str                 # "000"
    title: str
    write_up: str            # the study's file name in the shared studies folder
    gpu_recipes: tuple[str, ...]
    twin: str
    columns: tuple[str, ...]  # comparison columns shown first (others measured are listed below the table)
    claims: str              # the published numbers, Markdown, as the write-up states them


STUDIES = (
    Study("000", "Llama 3.2 3B on MedQuAD: pre-trained vs LoRA vs full fine-tune", "000_9dba767a42b5dd13.txt",
          ("recipes/studies/study000-llama3b-medquad-lora-vs-full.yaml",),
          "recipes/studies/cpu/study000-medquad-lora-vs-full.yaml",
          ("bertscore_f1", "bleu", "rougeL", "perplexity", "train_loss"),
          "The write-up publishes no numbers, only directions:\n\n"
          "- full fine-tune: \"significant improvement in BERT F1 and BLEU scores compared to both pre-trained and "
          "LoRA\"; \"moderate drop in factual correctness compared to pre-trained\".\n"
          "- LoRA: \"modest gain in BERT F1, but notable decrease in DeepEval correctness\".\n"
          "- pre-trained: \"consistently high factual accuracy\".\n"),
    Study("001", "QLoRA on PubMedQA: Mistral 7B, Llama 3.2 1B and 3B", "001_4c8ba39b701a72c3.txt",
          ("recipes/studies/study001-pubmedqa-qlora.yaml",), "recipes/studies/cpu/study001-pubmedqa-qlora.yaml",
          ("pubmedqa.gen_acc", "pubmedqa.acc", "rouge1", "perplexity", "train_loss"),
          "Yes/no accuracy on 100 PubMedQA test questions (at most 10 generated tokens), as ranges:\n\n"
          "| model | before fine-tuning | after QLoRA |\n| --- | --- | --- |\n"
          "| Mistral 7B (base) | ~40-50% | ~75-85% |\n| Llama 3.2 1B | ~35-45% | ~65-75% |\n"
          "| Llama 3.2 3B | ~45-55% | ~70-80% |\n\n"
          "\"Average improvement: 25-35% accuracy increase.\" The test split's trivial baseline (always \"yes\") "
          "is 55.2% on the official 500 questions (data README), above every claimed \"before\" range.\n"),
    Study("002", "Llama 3.2 3B: SFT, LoRA, QLoRA, GaLore, KnowTuning", "002_8b6bbb947ad67ea4.txt",
          ("recipes/studies/study002-llama3b-methods.yaml", "recipes/studies/study002-llama3b-knowtuning.yaml"),
          "recipes/studies/cpu/study002-methods.yaml",
          ("medqa.acc", "medqa.gen_acc", "bertscore_precision", "bertscore_recall", "bertscore_f1", "perplexity",
           "train_loss"),
          "USMLE accuracy:\n\n| model | Step 1 | Step 2 | Step 3 |\n| --- | --- | --- | --- |\n"
          "| Baseline | 0.39 | 0.29 | 0.38 |\n| SFT | 0.39 | 0.32 | 0.42 |\n| LoRA | 0.39 | 0.33 | 0.36 |\n"
          "| QLoRA | 0.38 | 0.38 | 0.38 |\n| GaLore | 0.42 | 0.34 | 0.45 |\n\n"
          "MedQuAD precision / recall / F1:\n\n| model | P | R | F1 |\n| --- | --- | --- | --- |\n"
          "| Baseline | 0.56 | 0.57 | 0.56 |\n| SFT | 0.69 | 0.69 | 0.69 |\n| LoRA | 0.70 | 0.68 | 0.69 |\n"
          "| QLoRA | 0.72 | 0.68 | 0.70 |\n| GaLore | 0.71 | 0.69 | 0.70 |\n| KnowTuning | 0.69 | 0.66 | 0.67 |\n\n"
          "The write-up does not say how many questions each step had or which P/R/F1 (token overlap or "
          "BERTScore) it reports.\n"),
    Study("003", "Llama 3.2 1B Instruct + LoRA on MedQuAD: NEFTune, disclaimer, LR x rank", "003_3032657b4554adfa.txt",
          ("recipes/studies/study003-llama1b-lora-medquad.yaml",), "recipes/studies/cpu/study003-lora-lr-rank.yaml",
          ("rouge1", "rouge2", "rougeL", "bleu", "disclaimer", "perplexity", "train_loss"),
          "Hyperparameter study (ROUGE-1):\n\n| config | learning rate | rank | ROUGE-1 |\n| --- | --- | --- | --- |\n"
          "| 1 (baseline) | 1e-4 | 16 | 0.3234 (best) |\n| 2 (aggressive) | 2e-4 | 8 | 0.3190 |\n"
          "| 3 (conservative) | 5e-5 | 32 | 0.3140 |\n\nBase vs fine-tuned on the test set:\n\n"
          "| metric | base | fine-tuned |\n| --- | --- | --- |\n| ROUGE-1 | 0.2547 | 0.3359 |\n"
          "| ROUGE-2 | 0.0455 | 0.1884 |\n| ROUGE-L | 0.1226 | 0.2367 |\n\n"
          "The write-up's \"improvement\" column (+8.12%, +14.29%, +11.41%) is the difference in points, not a "
          "relative change; its best configuration (0.3234) differs from its final model (0.3359).\n"),
    Study("004", "Llama 3.2 1B Instruct + QLoRA (q/v) on MedQuAD symptoms questions", "004_b6755492a1e92987.txt",
          ("recipes/studies/study004-llama1b-qlora-symptoms.yaml",), "recipes/studies/cpu/study004-qlora-symptoms.yaml",
          ("loss", "perplexity", "rouge1", "rougeL", "bleu", "train_loss", "eval_loss"),
          "| metric | baseline | fine-tuned |\n| --- | --- | --- |\n| loss | 2.1705 | 1.4230 |\n"
          "| perplexity | 8.76 | 4.15 |\n\n(perplexity = exp(loss) in both rows, so the two rows are one "
          "measurement.)\n"),
)
# The most informative first: crisp published numbers (loss, accuracy) at settings a 135M model can follow.
ORDER = ("004", "001", "003", "000", "002")


# ---------------------------------------------------------------- commands


def data_overrides(twin: Path, data: Path) -> list[str]:
    """`--set` values that point the twin's training sources (and suites) at the publisher files under data."""
    raw = yaml.safe_load(twin.read_text())
    sources = []
    for entry in raw["data"]["train"]:
        folder = DATA_FOLDERS.get(entry["source"])
        if folder is None:
            raise SystemExit(f"{twin}: no publisher folder known for source {entry['source']!r}")
        sources.append({**entry, "path": str(data / folder)})
    sets = ["data.train=" + yaml.safe_dump(sources, default_flow_style=True, sort_keys=False, width=10**6).strip()]
    if raw.get("eval", {}).get("suites"):
        sets.append(f"eval.suite_data={data}")
    return sets


def command(study: Study, data: Path, runs_dir: Path) -> list[str]:
    sets = [arg for value in data_overrides(REPO / study.twin, data) for arg in ("--set", value)]
    return ["python", "launch.py", study.twin, "--runs-dir", str(runs_dir), *sets]


def _new_dirs(runs_dir: Path, name: str, before: set[Path]) -> list[Path]:
    folder = runs_dir / name
    return sorted(set(folder.glob("*")) - before) if folder.is_dir() else []


def run_dirs_of(runs_dir: Path, twin: Path, before: dict[str, set[Path]]) -> tuple[list[Path], dict[Path, str]]:
    """The run directories the twin's command made (a sweep's points, or the one run) and their labels."""
    raw = yaml.safe_load(twin.read_text())
    made = _new_dirs(runs_dir, raw["name"], before.get(raw["name"], set()))
    if not made:
        return [], {}
    sweep_file = made[-1] / "sweep.json"
    if sweep_file.is_file():
        points = [p for p in json.loads(sweep_file.read_text())["points"] if p["status"] == "done"]
        labels = {Path(p["run_dir"]): p["label"] for p in points}
        return list(labels), labels
    return [made[-1]], {made[-1]: "tuned"}


def measure(study: Study, data: Path, runs_dir: Path, threads: int | None) -> dict:
    """Run one twin and return what docs/studies.md shows of it."""
    twin = REPO / study.twin
    name = yaml.safe_load(twin.read_text())["name"]
    before = {name: set((runs_dir / name).glob("*"))}
    cmd = command(study, data, runs_dir)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if threads:  # on a machine shared with other jobs, fewer OpenMP threads avoid spin-waiting on busy cores
        env["OMP_NUM_THREADS"] = str(threads)
    print(f"== study {study.key}: {shlex.join(cmd)}", flush=True)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, *cmd[1:]], cwd=REPO, env=env)
    wall = time.perf_counter() - started
    prefix = f"OMP_NUM_THREADS={threads} " if threads else ""
    record = machine(torch_threads=threads)  # the twin's, not this script's
    # As a reader reruns it: DATA is their folder of the publishers' files, runs/ the default runs folder.
    shown = command(study, Path("DATA"), Path("runs"))
    result = {"command": prefix + shlex.join(shown), "wall_s": round(wall, 1), "exit_code": proc.returncode,
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": record}
    runs, labels = run_dirs_of(runs_dir, twin, before)
    if not runs:
        result["error"] = "no finished run directory found"
        return result
    result["labels"] = {str(run): label for run, label in labels.items()}
    return {**result, **tabulate(study, labels, runs_dir)}


def tabulate(study: Study, labels: dict[Path, str], runs_dir: Path) -> dict:
    """The comparison table of a twin's runs (the study's columns first), its data counts and, for QLoRA, the
    untuned 4-bit base's answer loss: the tuned row is measured on that base, the base row unquantized."""
    from medtune.report.compare import compare_runs, text_rows

    runs = list(labels)
    name = yaml.safe_load((REPO / study.twin).read_text())["name"]
    comparison = compare_runs(runs, runs_dir / f"{name}-compare", labels, title=f"Study {study.key} CPU twin")
    header, rows = text_rows(comparison)
    shown = [c for c in study.columns if c in comparison.columns]
    keep = [0, 2] + [header.index(c) for c in shown]
    out = {"columns": [header[i] for i in keep], "rows": [[row[i] for i in keep] for row in rows],
           "other_columns": [c for c in comparison.columns if c not in shown], "run_dirs": [str(r) for r in runs]}
    manifest = runs[0] / "data" / "manifest.json"
    if manifest.is_file():
        data = json.loads(manifest.read_text())
        out["data_counts"] = data.get("counts")
        out["data_dropped"] = {k: v for k, v in data.get("dropped", {}).items() if v}
    if yaml.safe_load((REPO / study.twin).read_text())["method"]["name"] == "qlora" and len(runs) == 1:
        out["nf4_base"] = nf4_base_loss(runs[0])
    return out


def nf4_base_loss(run_dir: Path) -> dict:
    """Answer loss of the untuned model loaded in 4 bits (NF4, as QLoRA trains and eval measures the tuned model)
    on the run's scored test rows: it separates what quantization costs from what the adapter gains."""
    import math

    from medtune.core.rundir import RunDir
    from medtune.evaluate.perplexity import answer_losses
    from medtune.models.loader import ModelRef, load

    resolved = yaml.safe_load((run_dir / RunDir.RESOLVED).read_text())  # the recipe as the run used it
    spec = resolved["eval"]
    rows = [json.loads(line) for line in (run_dir / "data" / "test.jsonl").read_text().splitlines() if line.strip()]
    rows = rows[: spec["limit"]] if spec.get("limit") else rows
    model, tokenizer = load(ModelRef("base", resolved["model"], quantized_4bit=True))
    losses = [x for x in answer_losses(model, tokenizer, [r["messages"] for r in rows],
                                       batch_tokens=spec["perplexity_batch_tokens"],
                                       max_tokens=spec["max_test_tokens"]) if x is not None]
    nll, tokens = sum(x.nll for x in losses), sum(x.tokens for x in losses)
    return {"loss": round(nll / tokens, 4), "perplexity": round(math.exp(nll / tokens), 3), "answer_tokens": tokens,
            "rows": len(losses)}


# ---------------------------------------------------------------- docs


def _table(columns: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(round(seconds % 60))} s"


def measured_block(study: Study, result: dict | None) -> str:
    if result is None:
        return "Not run yet: `python bench/studies.py --data DIR --only " + study.key + "`."
    m = result["machine"]
    if "cpu_model" not in m:  # results written before the bench used bench/machine.py's record
        m = {"cpu_model": m["cpu"], "cpus": m["cores"], "avx512f": m["avx512f"],
             "load_average_1min": result.get("load_average_1min_after")}
    where = describe(m) + " (1-minute load average at the end of the run: the machine was shared)"
    lines = [f"Command (from the repository root, {result['date'][:10]}; DATA is the folder of the publishers' "
             "files, laid out as medquad/, pubmedqa/, medqa/, medmcqa/):", "",
             f"    {result['command']}", "",
             f"Wall time {_minutes(result['wall_s'])} on {where}; exit code {result['exit_code']}."]
    if result.get("data_counts"):
        dropped = ", ".join(f"{k} {v}" for k, v in result.get("data_dropped", {}).items())
        counts = result["data_counts"]
        lines += ["", f"Rows: {counts.get('train')} train / {counts.get('val')} val / {counts.get('test')} test"
                      + (f" (dropped: {dropped})." if dropped else ".")]
    if result.get("rows"):
        lines += ["", "Mean [95% bootstrap interval]; `base` is SmolLM2-135M-Instruct untuned, scored on the same "
                      "questions:", "", _table(result["columns"], result["rows"])]
        if result.get("nf4_base"):
            q = result["nf4_base"]
            lines += ["", f"The untuned model loaded in 4 bits (NF4), the base the tuned row is measured on: answer "
                          f"loss {q['loss']:.4f}, perplexity {q['perplexity']:.2f} on the same {q['rows']} questions "
                          f"(`tabulate` in bench/studies.py)."]
        if result.get("other_columns"):
            lines += ["", "Also measured (in the run directories' reports): " + ", ".join(result["other_columns"]) + "."]
    if result.get("error"):
        lines += ["", f"Error: {result['error']}"]
    return "\n".join(lines)


def _kept_notes(old: str, key: str) -> str:
    begin, end = f"<!-- study{key}:notes:begin -->", f"<!-- study{key}:notes:end -->"
    _, sep, rest = old.partition(begin)
    body, sep2, _ = rest.partition(end)
    return body.strip() if sep and sep2 else "(to be written after a run: what reproduces at 135M, what does not, and why)"


def render_docs(results: dict, old: str) -> str:
    intro_begin, intro_end = "<!-- intro:begin -->", "<!-- intro:end -->"
    _, sep, rest = old.partition(intro_begin)
    intro = rest.partition(intro_end)[0].strip() if sep else "(introduction)"
    parts = ["# The published studies, reproduced", "",
             "<!-- Generated by `python bench/studies.py --data DIR`; edit only between the notes/intro markers. -->",
             "", intro_begin, intro, intro_end]
    for study in STUDIES:
        parts += ["", f"## Study {study.key}: {study.title}", "",
                  f"Write-up: `studies/{study.write_up}` (in the project's shared folder). GPU recipe at the "
                  f"published settings: {', '.join(f'`{r}`' for r in study.gpu_recipes)}; CPU twin: `{study.twin}`.", "",
                  "### Published (claims, as the write-up states them)", "", study.claims.strip(), "",
                  "### Measured: the CPU twin on the publishers' files", "",
                  measured_block(study, results.get(study.key)), "",
                  "### What reproduces at 135M, and what does not", "",
                  f"<!-- study{study.key}:notes:begin -->", _kept_notes(old, study.key),
                  f"<!-- study{study.key}:notes:end -->"]
    return "\n".join(parts) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="folder of the publishers' files (medquad/, pubmedqa/, medqa/, medmcqa/, mmlu/)")
    parser.add_argument("--only", help=f"comma-separated study numbers, run in this order (default: {','.join(ORDER)})")
    parser.add_argument("--runs-dir", type=Path, default=REPO / "runs", help="where the twins' runs go (default: runs/)")
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results" / "studies.json")
    parser.add_argument("--docs", type=Path, default=REPO / "docs" / "studies.md")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS for each twin (default: as the environment has it)")
    parser.add_argument("--retable", action="store_true",
                        help="rebuild the recorded twins' tables from their run directories (no training), then the page")
    parser.add_argument("--docs-only", action="store_true", help="re-render docs/studies.md from the results file; run nothing")
    args = parser.parse_args()
    results = json.loads(args.results.read_text()) if args.results.is_file() else {}
    by_key = {s.key: s for s in STUDIES}
    if args.retable:
        for key, result in results.items():
            if result.get("labels"):
                labels = {Path(run): label for run, label in result["labels"].items()}
            else:  # recorded before labels were: a sweep point's runs sit in <name>.<point>/, one run is "tuned"
                labels = {Path(run): Path(run).parent.name.partition(".")[2] or "tuned" for run in result.get("run_dirs", [])}
            if labels:
                result.update(tabulate(by_key[key], labels, args.runs_dir.resolve()))
        args.results.write_text(json.dumps(results, indent=1) + "\n")
    elif not args.docs_only:
        if args.data is None or not args.data.is_dir():
            parser.error("--data must name the folder of the publishers' files")
        keys = [k.strip() for k in args.only.split(",")] if args.only else list(ORDER)
        unknown = [k for k in keys if k not in by_key]
        if unknown:
            parser.error(f"unknown study {', '.join(unknown)}; known: {', '.join(by_key)}")
        for key in keys:  # one at a time: the twins share the machine's cores
            results[key] = measure(by_key[key], args.data.resolve(), args.runs_dir.resolve(), args.threads)
            args.results.parent.mkdir(parents=True, exist_ok=True)
            args.results.write_text(json.dumps(results, indent=1) + "\n")
    old = args.docs.read_text() if args.docs.is_file() else ""
    args.docs.write_text(render_docs(results, old))
    print(f"wrote {args.docs}")
    return 0 if all(r.get("exit_code") == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
