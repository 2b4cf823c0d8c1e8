"""The headline GPU recipe's whole pipeline rehearsed on CPU: `launch.py recipes/llama3b-qlora.yaml --rehearse`.

As a user on a Hub-connected machine would run it, except that the Hub is a Hugging Face cache this test
writes in the Hub's own layout (MedQuAD's CSV, the four suites' parquet/JSONL files, at medtune's pinned
revisions) and HF_HUB_OFFLINE=1 keeps anything from being fetched: preprocess reads MedQuAD through the Hub
path, training runs 3 QLoRA steps on SmolLM2 (bitsandbytes' CPU backend), eval scores base and tuned on the
held-out rows and on every suite read from the Hub copies, and the report is written; the manifest names
what the rehearsal swapped.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hub_cache import suite_rows, write_suite_hub
from medquad_hub import medquad_rows, write_medquad_hub
from medtune.core import hub_catalog

REPO = Path(__file__).resolve().parents[1]
SUITES = ("pubmedqa", "medqa", "medmcqa", "mmlu_medical")


@pytest.mark.slow
def test_rehearsal_of_the_headline_recipe_runs_every_stage_through_the_hub(tmp_path):
    hf = tmp_path / "hf"
    write_medquad_hub(hf / "hub")
    rows = suite_rows()
    write_suite_hub(hf / "hub", rows)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(hf), "HF_HUB_CACHE": str(hf / "hub"),
           "HF_DATASETS_CACHE": str(hf / "datasets"),
           # One thread per process: on a shared 2-core machine two threads wait on each other at every op
           # (generation measured 7x slower); a user's own machine keeps torch's default.
           "OMP_NUM_THREADS": "1"}
    runs = tmp_path / "runs"
    done = subprocess.run([sys.executable, "launch.py", "recipes/llama3b-qlora.yaml", "--rehearse", "--runs-dir", str(runs)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=2400)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    [run_dir] = [p.parent for p in runs.glob("*/*/manifest.json")]
    assert run_dir.parent.name == "llama3b-qlora-rehearsal"
    manifest = json.loads((run_dir / "manifest.json").read_text())

    # Every stage finished.
    assert manifest["status"] == "done"
    assert {name: stage["status"] for name, stage in manifest["stages"].items()} == {
        "preprocess": "done", "train": "done", "eval": "done", "report": "done"}

    # Preprocess read MedQuAD through the Hub path, at the pinned revision, from this test's cache.
    data = json.loads((run_dir / "data" / "manifest.json").read_text())
    [source] = data["sources"]
    medquad = hub_catalog.MEDQUAD
    assert source["hub_id"] == medquad.repo_id and "path" not in source
    assert source["sha256"] == f"{medquad.repo_id}@{medquad.revision}:None/train"
    assert source["read"] == len(medquad_rows()) and source["options"]["limit"] == 96
    assert sum(data["counts"].values()) == 96 and data["counts"]["test"] >= 4

    # Training ran 3 QLoRA steps on SmolLM2, on CPU, and saved the adapter.
    train = manifest["stages"]["train"]
    assert "medtune.launch.rehearse_child" in train["command"] and train["steps_logged"] == 3
    state = json.loads((run_dir / "train" / "checkpoint-3" / "trainer_state.json").read_text())
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    assert state["global_step"] == 3 and len(losses) == 3 and all(math.isfinite(x) and 0.5 < x < 6 for x in losses)
    assert (run_dir / "train" / "adapter_model.safetensors").is_file()

    # Eval scored base and tuned (the 4-bit base with the adapter) on 4 held-out rows and on every suite,
    # each read from its Hub copy (suite_data unset) and sampled as the rehearsal asked.
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    config = metrics["config"]
    assert config["eval"]["suite_data"] is None and config["eval"]["suite_limit"] == 4 and config["n_test_items"] == 4
    assert config["models"]["base"]["base"] == "smollm2-135m-instruct" and config["models"]["tuned"]["quantized_4bit"]
    for label in ("base", "tuned"):
        scores = metrics["models"][label]
        for name in ("rouge1", "bleu", "bertscore_f1", "perplexity"):
            assert scores[name]["n"] == 4 and math.isfinite(scores[name]["mean"]), (label, name)
        for suite in SUITES:
            entry = metrics["suites"][suite][label]
            assert 0.0 <= entry["acc"] <= 1.0 and 0.0 <= entry["gen_acc"] <= 1.0, (label, suite)
        # The questions are this test's fixture rows: their counts appear only in the cache it wrote.
        suites = metrics["suites"]
        assert suites["pubmedqa"][label]["n"] == 4 and "4 of 500 by label" in suites["pubmedqa"][label]["sample"]
        assert suites["medqa"][label]["n"] == 4 and f"of {len(rows['medqa'])} by step and label" in suites["medqa"][label]["sample"]
        assert suites["medmcqa"][label]["n"] == 4 and f"of {len(rows['medmcqa'])}" in suites["medmcqa"][label]["sample"]
        assert suites["mmlu_medical"][label]["n"] == sum(min(4, len(r)) for r in rows["mmlu"].values())
        assert suites["medqa_step1"][label]["n"] + suites["medqa_step2_3"][label]["n"] == 4

    # The report was written from those results.
    report = manifest["stages"]["report"]["files"]
    assert {"report/report.md", "report/metrics.json", "report/loss_curve.png"} <= set(report)
    assert all((run_dir / name).is_file() for name in report)
    assert "pubmedqa" in (run_dir / "report" / "report.md").read_text()

    # What the rehearsal swapped is in the manifest and was printed.
    rehearsal = manifest["rehearsal"]
    assert (rehearsal["recipe"], rehearsal["model"]) == ("llama3b-qlora", "llama-3.2-3b-instruct")
    swaps = {swap["key"]: swap for swap in rehearsal["swaps"]}
    assert (swaps["model"]["real"], swaps["model"]["rehearsal"]) == ("llama-3.2-3b-instruct", "smollm2-135m-instruct")
    assert (swaps["launch.device"]["real"], swaps["launch.device"]["rehearsal"]) == ("cuda", "cpu")
    assert swaps["training.precision"]["config"]["axolotl.yaml:bf16"] == [True, False]
    assert swaps["training.liger"]["rehearsal"] is False and "quantization (bitsandbytes)" in swaps
    assert (swaps["eval.limit"]["real"], swaps["eval.limit"]["rehearsal"]) == (500, 4)
    assert "launch.gpus" not in swaps, "a one-GPU recipe rehearses in one process"
    assert "rehearsal of llama3b-qlora on CPU" in done.stdout
    assert all(f"{key}:" in done.stdout for key in swaps)
