#!/usr/bin/env python
"""Benchmark (GPU): training tokens/s, MFU and peak memory of Llama-3.2-1B with LoRA, QLoRA and full
fine-tuning, against medtune's pre-flight memory estimate.

    python bench/bench_gpu.py            # on a CUDA machine: recipes/llama1b-{lora,qlora,full}.yaml
    python bench/bench_gpu.py --tiny     # anywhere (CPU): a 2-layer stand-in, to check the script itself

What runs, per recipe: its settings as medtune resolves them for CUDA (micro-batch, gradient accumulation,
sequence length, gradient checkpointing, bf16, fused AdamW, LoRA rank and targets; QLoRA's NF4 base with
double quantization; Liger's RoPE, RMSNorm, SwiGLU and fused linear cross-entropy when liger-kernel is
installed; flash-attention 2 when flash-attn is, else sdpa) in a plain transformers + PEFT training loop
on random token ids filling every sequence (packing's steady state: no padding), starting from random
weights in Llama-3.2-1B's published architecture (the Hub is out of reach on the lent machines, and
speed and memory do not depend on the weights' values). It is not Axolotl (whose install does not fit
on those machines), so it measures the architecture x method on the device, and checks the memory
estimate pre-flight uses (medtune.launch.plan.estimate_memory) against what the GPU really held.

Per method: tokens/s over timed optimizer steps after untimed warm-up steps; model FLOPs per token
(6N for full fine-tuning, 4N with a frozen base: forward plus the input gradients, no weight gradients;
N = weights in matrix multiplies, LM head included; plus 12 x layers x sequence x hidden for attention;
gradient checkpointing's recompute not counted); MFU against a bf16 matmul peak measured on the same
GPU in the same run; peak memory allocated and reserved by PyTorch, and the estimate. Writes
bench/results/gpu.json (--tiny: a file in the temp folder) and prints a table.

On a lent machine (its Python has torch, transformers, peft, accelerate; not pydantic, bitsandbytes or
liger-kernel) carry those as wheels: see the README's Performance section for the command.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from medtune.core.env import private_env  # noqa: E402  (needs the sys.path line above)

private_env()

from machine import machine  # noqa: E402  (beside this script)

RECIPES = ["recipes/llama1b-lora.yaml", "recipes/llama1b-qlora.yaml", "recipes/llama1b-full.yaml"]

# Llama-3.2-1B's config.json (meta-llama/Llama-3.2-1B-Instruct); checked against the model catalog below.
LLAMA_32_1B = dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                   num_attention_heads=32, num_key_value_heads=8, head_dim=64, max_position_embeddings=131072,
                   rms_norm_eps=1e-5, tie_word_embeddings=True, hidden_act="silu",
                   rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0,
                                    "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                    "original_max_position_embeddings": 8192})
# --tiny: the same family, small enough for a CPU, with the recipes' shapes cut to match.
TINY = dict(LLAMA_32_1B, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=16)
TINY_TRAINING = ["training.micro_batch_size=2", "training.sequence_len=64", "training.gradient_accumulation_steps=1"]


def facts_for(config: dict, params: int, catalog_key: str):
    """ModelFacts for this architecture; for the real one, they must match the catalog's (what pre-flight uses)."""
    from dataclasses import replace

    from medtune.models import catalog as models

    catalog = models.lookup(catalog_key)
    facts = replace(catalog, hidden_size=config["hidden_size"], intermediate_size=config["intermediate_size"],
                    kv_dim=config["num_key_value_heads"] * config["head_dim"], vocab_size=config["vocab_size"],
                    num_layers=config["num_hidden_layers"], params_b=params / 1e9)
    if config is LLAMA_32_1B:
        if replace(facts, params_b=catalog.params_b) != catalog or abs(facts.params_b / catalog.params_b - 1) > 0.01:
            raise SystemExit(f"the catalog's {catalog_key} disagrees with Llama-3.2-1B's config: {catalog} vs {facts}")
    return facts


def random_model_folder(config: dict, folder: Path, device: str) -> int:
    """Save a randomly initialized model of this architecture (bf16 on CUDA) and return its parameter count."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(LlamaConfig(**config), dtype=torch.bfloat16 if device == "cuda" else torch.float32)
    params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(folder)
    del model
    return params


def optimizer_for(name: str, params, lr: float):
    import torch

    if name == "adamw_torch_fused":
        return torch.optim.AdamW(params, lr=lr, fused=True)
    if name == "adamw_torch":
        return torch.optim.AdamW(params, lr=lr)
    if name in ("adamw_bnb_8bit", "paged_adamw_8bit"):
        import bitsandbytes as bnb

        cls = bnb.optim.PagedAdamW8bit if name.startswith("paged") else bnb.optim.AdamW8bit
        return cls(params, lr=lr)
    raise SystemExit(f"bench_gpu.py has no mapping for optimizer {name!r}; add one next to adamw_torch_fused")


def load_for(recipe, facts, folder: Path, device: str, attention: str):
    """The model as the recipe trains it: full weights, LoRA on a frozen base, or LoRA on a 4-bit base."""
    import torch
    from transformers import AutoModelForCausalLM

    t, m = recipe.training, recipe.method
    dtype = torch.bfloat16 if t.precision == "bf16" else torch.float32
    kwargs = {"dtype": dtype, "attn_implementation": attention}
    if m.name == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype)
        kwargs["device_map"] = {"": 0} if device == "cuda" else {"": "cpu"}
    model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    if m.name != "qlora":
        model.to(device)
    if m.name in ("lora", "qlora"):
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        if m.name == "qlora":
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=t.gradient_checkpointing)
        elif t.gradient_checkpointing:
            model.enable_input_require_grads()
        targets = m.target_modules or list(facts.lora_target_modules)
        model = get_peft_model(model, LoraConfig(r=m.rank, lora_alpha=m.alpha, lora_dropout=m.dropout,
                                                 target_modules=targets, task_type="CAUSAL_LM"))
    elif m.name != "full":
        raise SystemExit(f"bench_gpu.py measures full, lora and qlora; recipe {recipe.name} uses {m.name}")
    if t.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    return model.train()


def measured_peak_tflops(device: str) -> float | None:
    """Best bf16 matmul rate of this GPU (8192^3, after warm-up), the MFU denominator; None on CPU."""
    if device != "cuda":
        return None
    import torch

    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(10):
        a @ b
    best = 0.0
    for _ in range(5):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(20):
            a @ b
        end.record()
        torch.cuda.synchronize()
        best = max(best, 20 * 2 * 8192**3 / (start.elapsed_time(end) / 1e3) / 1e12)
    del a, b
    torch.cuda.empty_cache()
    return best


def model_flops_per_token(facts, method: str, n_trainable: int, sequence_len: int) -> int:
    """Training FLOPs per token (see the module docstring): 6N for full weights, 4N plus 6 x trainable with a frozen
    base, plus attention over the whole sequence; gradient checkpointing's recompute not counted."""
    from medtune.launch.plan import matmul_params

    frozen_base = method in ("lora", "qlora")
    return ((4 if frozen_base else 6) * matmul_params(facts) + (6 * n_trainable if frozen_base else 0)
            + 12 * facts.num_layers * sequence_len * facts.hidden_size)


def run_method(recipe, facts, folder: Path, device: str, steps: int, warmup: int, liger: bool, attention: str) -> dict:
    import torch

    from medtune.launch.plan import estimate_memory

    t = recipe.training
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model = load_for(recipe, facts, folder, device, attention)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = optimizer_for(t.optimizer, trainable, t.learning_rate)
    generator = torch.Generator().manual_seed(0)
    shape = (t.micro_batch_size, t.sequence_len)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" and t.precision == "bf16" \
        else contextlib.nullcontext()

    def step() -> torch.Tensor:
        total = torch.zeros((), device=device)
        for _ in range(t.gradient_accumulation_steps):
            ids = torch.randint(0, facts.vocab_size, shape, generator=generator).to(device)
            with autocast:
                loss = model(input_ids=ids, labels=ids).loss / t.gradient_accumulation_steps
            loss.backward()
            total += loss.detach()  # read after the timed steps: no host sync per micro-batch
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return total

    for _ in range(warmup):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    losses = [step() for _ in range(steps)]
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started

    tokens = steps * t.gradient_accumulation_steps * t.micro_batch_size * t.sequence_len
    n_trainable = sum(p.numel() for p in trainable)
    flops_per_token = model_flops_per_token(facts, recipe.method.name, n_trainable, t.sequence_len)
    # The estimate for what actually ran: Liger's fused cross-entropy only where it was applied.
    estimate = estimate_memory(recipe.model_copy(update={"training": t.model_copy(update={"liger": liger})}), facts)
    row = {
        "method": recipe.method.name, "recipe": recipe.name, "micro_batch_size": t.micro_batch_size,
        "gradient_accumulation_steps": t.gradient_accumulation_steps, "sequence_len": t.sequence_len,
        "gradient_checkpointing": t.gradient_checkpointing, "precision": t.precision, "optimizer": t.optimizer,
        "attention": attention, "liger": liger, "steps_timed": steps, "steps_warmup": warmup,
        "seconds": round(seconds, 3), "tokens_per_s": round(tokens / seconds, 1),
        "model_flops_per_token": flops_per_token, "model_tflops_per_s": round(tokens / seconds * flops_per_token / 1e12, 2),
        "trainable_params": n_trainable, "estimated_trainable_params": estimate.trainable_params,
        "loss_first_last": [round(float(losses[0]), 4), round(float(losses[-1]), 4)],
        "estimate_gib": estimate.as_dict(),
    }
    if device == "cuda":
        row["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        row["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
        free, total = torch.cuda.mem_get_info()
        row["device_used_gib_at_end"] = round((total - free) / 2**30, 2)
    del model, optimizer, trainable
    if device == "cuda":
        torch.cuda.empty_cache()
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipes", nargs="*", default=RECIPES, help="recipes to measure (default: Llama-3.2-1B LoRA, QLoRA, full)")
    parser.add_argument("--steps", type=int, default=10, help="timed optimizer steps per method")
    parser.add_argument("--warmup", type=int, default=3, help="untimed optimizer steps first (allocator, kernels, autotuning)")
    parser.add_argument("--tiny", action="store_true", help="a 2-layer stand-in on CPU: checks the script, measures nothing")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    import torch

    from medtune.recipe.loader import load as load_recipe

    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    if device == "cpu" and not args.tiny:
        print("no CUDA GPU here: run on a GPU machine, or pass --tiny to check the script on CPU", file=sys.stderr)
        return 2
    config = TINY if args.tiny else LLAMA_32_1B
    # --tiny checks the script; its numbers are not results, so they stay out of bench/results.
    out = args.out or (Path(tempfile.gettempdir()) / "medtune-bench-gpu-tiny.json" if args.tiny
                       else REPO / "bench" / "results" / "gpu.json")
    overrides = TINY_TRAINING + ["launch.device=cpu"] if args.tiny else []
    recipes = [load_recipe(REPO / path, overrides)[0] for path in args.recipes]
    mixed = [r.name for r in recipes if r.model != recipes[0].model]
    if mixed:  # checked before building a model: one architecture per run
        raise SystemExit(f"{', '.join(mixed)} train another model than {recipes[0].model}: one architecture per run")
    liger_installed = importlib.util.find_spec("liger_kernel") is not None
    flash_installed = importlib.util.find_spec("flash_attn") is not None

    peak = measured_peak_tflops(device)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "llama-3.2-1b-random"
        params = random_model_folder(config, folder, device)
        facts = facts_for(config, params, recipes[0].model)
        for recipe in recipes:
            liger = bool(recipe.training.liger) and liger_installed
            if liger:
                from liger_kernel.transformers import apply_liger_kernel_to_llama

                apply_liger_kernel_to_llama(rope=True, rms_norm=True, swiglu=True, fused_linear_cross_entropy=True)
            wanted = recipe.training.attention
            attention = wanted if wanted != "flash_attention_2" or flash_installed else "sdpa"
            print(f"{recipe.name}: {recipe.method.name}, {attention}, liger {'on' if liger else 'off'} ...", flush=True)
            row = run_method(recipe, facts, folder, device, args.steps, args.warmup, liger, attention)
            if peak:
                row["mfu"] = round(row["model_tflops_per_s"] / peak, 4)
            rows.append(row)

    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {**machine(), "device": torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "cpu"},
        "architecture": "tiny llama stand-in (--tiny)" if args.tiny else "Llama-3.2-1B (random weights)",
        "params": params, "measured_bf16_peak_tflops": round(peak, 1) if peak else None,
        "liger_kernel_installed": liger_installed, "flash_attn_installed": flash_installed, "methods": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{result['architecture']} on {result['machine']['device']}"
                        + (f", bf16 peak {peak:.0f} TFLOP/s measured" if peak else ""))
    for column in ("method", "tokens/s", "TFLOP/s", "MFU", "peak alloc GiB", "reserved GiB", "estimate GiB"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for row in rows:
        table.add_row(row["method"], f"{row['tokens_per_s']:.0f}", f"{row['model_tflops_per_s']:.1f}",
                      f"{row['mfu']:.1%}" if "mfu" in row else "-", str(row.get("peak_allocated_gib", "-")),
                      str(row.get("peak_reserved_gib", "-")), f"{row['estimate_gib']['total_gib']:.1f}")
    Console().print(table)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
