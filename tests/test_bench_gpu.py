"""bench/bench_gpu.py and bench/gpu_acceptance.py run where GPUs are lent, rarely; their --tiny modes prove on CPU
that they still work."""
from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # trains three stand-ins with a 128,256-row LM head: the fast set's longest test
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


@pytest.mark.slow
def test_gpu_acceptance_tiny_trains_every_method_through_axolotl_and_scores_qlora_in_4_bits(tmp_path):
    """bench/gpu_acceptance.py --tiny: the same stages as on a GPU (launch.py preprocess + train per shipped
    llama1b recipe, then `launch.py eval` of the QLoRA run), on CPU with a 2-layer stand-in.

    QLoRA and full fine-tuning, the two ends of the script (4-bit base with an adapter, then its eval; all weights
    trained): each method is a whole Axolotl launch (about a minute here). The LoRA recipe runs the same per-method
    code as QLoRA without the 4 bits; its PEFT parameter count is checked by the test above, and LoRA training
    through Axolotl by tests/test_train.py."""
    out, work, logs = tmp_path / "acceptance.json", tmp_path / "work", tmp_path / "logs"
    proc = subprocess.run([sys.executable, "bench/gpu_acceptance.py", "--tiny", "--steps", "10", "--methods", "qlora,full",
                           "--out", str(out), "--work", str(work), "--logs", str(logs)],
                          cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    rows = {row["method"]: row for row in result["methods"]}
    assert list(rows) == ["qlora", "full"] and result["skipped_methods"] == []
    for method, row in rows.items():
        assert row["exit_code"] == 0 and row["steps_logged"] == 10 and len(row["losses"]) == 10, method
        assert row["loss_fell"] and row["loss_last"] <= row["loss_first"] - 0.05, (method, row["losses"])
        assert row["tokens_per_s"] > 0 and 0 < row["answer_tokens_per_s"] < row["tokens_per_s"], method
        assert row["model_flops_per_token"] > 0 and row["steps_timed"] == 10 - result["warmup_steps_untimed"]
        assert row["peak_allocated_gib"] is None and row["peak_reserved_gib"] is None  # Axolotl logs them on CUDA
        assert row["estimate_gib"]["total_gib"] > 0 and row["estimate_gib"]["trainable_params"] == row["trainable_params"]
        # The real path: the shipped recipe, its catalog model, rendered for Axolotl and trained in a run directory.
        run_dir = Path(row["run_dir"])
        resolved = yaml.safe_load((run_dir / "recipe.resolved.yaml").read_text())
        assert resolved["name"] == f"llama1b-{method}" and resolved["model"] == "llama-3.2-1b-instruct"
        assert (logs / f"{method}.log").is_file()
    axolotl = yaml.safe_load((Path(rows["qlora"]["run_dir"]) / "axolotl.yaml").read_text())
    assert axolotl["adapter"] == "qlora" and axolotl["load_in_4bit"] is True
    assert rows["full"]["trainable_params"] == result["params"]
    evaluation = result["qlora_eval"]
    assert evaluation["exit_code"] == 0 and evaluation["n_test_items"] == 8
    tuned, base = evaluation["models"]["tuned"], evaluation["models"]["base"]
    assert tuned["quantized_4bit"] is True and tuned["adapter"] and base["quantized_4bit"] is False
    assert tuned["loss"] < base["loss"]  # the 4-bit model + adapter that eval loaded is the one that trained
    assert result["passed"] and all(result["checks"].values()) and len(result["checks"]) == 2 * 3 + 3


@pytest.mark.slow
def test_gpu_acceptance_stand_in_tokenizer_has_llama3_ids_and_renders_chats_as_axolotl_trains():
    """The stand-in's tokenizer puts Llama 3's special tokens at their ids, and its own chat template renders exactly
    what Axolotl's `llama3` template renders (no date line): prompts agree whichever of the two a stage uses."""
    sys.path.insert(0, str(REPO / "bench"))
    from gpu_acceptance_model import corpus, write_tokenizer
    from transformers import AutoTokenizer
    from axolotl.utils.chat_templates import get_chat_template

    from medtune.core.paths import DATA_DIR

    with tempfile.TemporaryDirectory() as folder:
        assert write_tokenizer(Path(folder), corpus(DATA_DIR / "medquad_demo.csv", [])) == 128256
        tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = tokenizer.convert_tokens_to_ids(["<|begin_of_text|>", "<|finetune_right_pad_id|>", "<|start_header_id|>",
                                           "<|end_header_id|>", "<|eot_id|>", "<|reserved_special_token_247|>"])
    assert ids == [128000, 128004, 128006, 128007, 128009, 128255]
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (128000, 128009, 128004)
    assert max(tokenizer("What are the symptoms of Asthma ?").input_ids[1:]) < 8000  # learned tokens, no fillers
    chat = [{"role": "system", "content": " Be careful. "}, {"role": "user", "content": "What is asthma?"},
            {"role": "assistant", "content": "A lung disease.\n"}]
    for messages, prompt in ((chat, False), (chat[:2], True)):
        ours = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=prompt)
        axolotl = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=prompt,
                                                chat_template=get_chat_template("llama3"))
        assert ours == axolotl and "Today Date" not in ours
