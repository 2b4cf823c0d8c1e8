"""Pre-flight and the memory plan: what would fail on the machine is refused before any process starts."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from medtune.models import catalog as models

from medtune.launch import preflight
from medtune.launch.plan import estimate_memory, lora_params
from medtune.recipe.loader import load

REPO = Path(__file__).resolve().parents[1]


def recipe(name: str, *overrides: str):
    return load(REPO / "recipes" / f"{name}.yaml", list(overrides))[0]


def fake_gpus(monkeypatch, count: int, gib: float) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: SimpleNamespace(total_memory=int(gib * 1024**3)))


def test_lora_parameter_count_matches_peft_for_smollm2(smollm2_dir):
    """The planner's trainable-parameter arithmetic agrees with PEFT on the real model."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    facts = models.catalog()["smollm2-135m-instruct"]
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(smollm2_dir), LoraConfig(r=16, target_modules=list(facts.lora_target_modules)))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert lora_params(facts, 16, facts.lora_target_modules) == trainable


def test_memory_estimate_orders_methods_and_zero_stages():
    facts = models.catalog()["llama-3.2-3b-instruct"]
    full = estimate_memory(recipe("llama3b-full"), facts)
    lora = estimate_memory(recipe("llama3b-lora", "training.gradient_checkpointing=true"), facts)
    qlora = estimate_memory(recipe("llama3b-qlora", "training.gradient_checkpointing=true"), facts)
    assert qlora.weights_gib < lora.weights_gib / 3  # 4-bit base vs bf16 base (+ fp32 adapters in both)
    assert qlora.total_gib < lora.total_gib < full.total_gib
    assert lora.optimizer_gib < full.optimizer_gib / 20
    zero3 = estimate_memory(recipe("llama3b-full-zero3"), facts)
    assert zero3.weights_gib == pytest.approx(full.weights_gib / 4)
    assert zero3.optimizer_gib == pytest.approx(full.optimizer_gib / 4)


def test_preflight_refuses_a_model_too_big_for_the_gpu(monkeypatch):
    fake_gpus(monkeypatch, count=1, gib=8)
    monkeypatch.setattr(preflight, "_model_problems", lambda r: [])
    with pytest.raises(preflight.PreflightError) as err:
        preflight.check(recipe("mistral7b-lora"))
    text = str(err.value)
    assert "training.micro_batch_size: estimated" in text and "8.0 GiB" in text


def test_preflight_refuses_too_few_gpus(monkeypatch):
    fake_gpus(monkeypatch, count=2, gib=80)
    monkeypatch.setattr(preflight, "_model_problems", lambda r: [])
    with pytest.raises(preflight.PreflightError) as err:
        preflight.check(recipe("llama3b-full-zero3"))
    assert "wants 4 GPUs per machine and this one has 2" in str(err.value)


def test_preflight_needs_cuda_and_reachable_weights_offline(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", "/nonexistent-medtune-test")
    with pytest.raises(preflight.PreflightError) as err:
        preflight.check(recipe("llama1b-lora"))
    text = str(err.value)
    assert "launch.device" in text and "has none" in text
    assert "not in the Hugging Face cache" in text


def test_cpu_recipe_passes_preflight():
    preflight.check(recipe("smollm2-135m-lora"))
