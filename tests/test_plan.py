"""The memory plan counts what each precision really keeps, checked against figures worked out by hand."""
from __future__ import annotations

from pathlib import Path

import pytest

from medtune.launch.plan import GIB, estimate_memory
from medtune.models import catalog as models
from medtune.recipe.loader import load

REPO = Path(__file__).resolve().parents[1]
LLAMA_3B = models.catalog()["llama-3.2-3b-instruct"]  # 3.21e9 weights, hidden 3072, 28 layers, vocab 128256
PINNED = ["training.micro_batch_size=4", "training.sequence_len=1024", "training.gradient_checkpointing=true"]


def test_full_fine_tune_on_one_gpu_keeps_fp32_weights_grads_and_moments():
    recipe, _ = load(REPO / "recipes/llama3b-full.yaml", PINNED)
    est = estimate_memory(recipe, LLAMA_3B)
    # Mixed precision: fp32 weights (4 bytes), fp32 gradients (4), AdamW's two fp32 moments (8).
    assert est.weights_gib == pytest.approx(12.84e9 / GIB)  # 3.21e9 x 4
    assert est.gradients_gib == pytest.approx(12.84e9 / GIB)
    assert est.optimizer_gib == pytest.approx(25.68e9 / GIB)  # 3.21e9 x 8
    # 4 x 1024 = 4096 tokens; checkpointed: each of 28 layers keeps its bf16 input (2 bytes x 3072), and one
    # layer's activations (34 bytes x 3072) live again in backward: 4096 x 3072 x (56 + 34) = 1_132_462_080.
    # Liger's fused cross-entropy builds no logits.
    assert est.activations_gib == pytest.approx(1_132_462_080 / GIB)
    assert est.total_gib == pytest.approx((12.84e9 * 2 + 25.68e9 + 1_132_462_080) / GIB + 1.0)  # + 1 GiB CUDA overhead
    assert round(est.total_gib, 2) == 49.89


def test_zero3_shards_a_bf16_model_and_deepspeeds_fp32_master_copy():
    recipe, _ = load(REPO / "recipes/llama3b-full-zero3.yaml", PINNED + ["launch.gpus=4"])
    est = estimate_memory(recipe, LLAMA_3B)
    # A quarter each of: the bf16 model (2 bytes) and its bf16 gradients (2); the optimizer's fp32 master
    # weights (4) and fp32 moments (8) = 12 bytes a weight.
    assert est.weights_gib == pytest.approx(3.21e9 * 2 / 4 / GIB)
    assert est.gradients_gib == pytest.approx(3.21e9 * 2 / 4 / GIB)
    assert est.optimizer_gib == pytest.approx(3.21e9 * 12 / 4 / GIB)
    # Under ZeRO-3 Liger's plain cross-entropy runs: the logits and their gradient in fp32 are counted,
    # 4096 tokens x 128256 x 4 bytes x 2 = 4_202_692_608, beside the layers' 1_132_462_080.
    assert est.activations_gib == pytest.approx((1_132_462_080 + 4_202_692_608) / GIB)
    assert round(est.total_gib, 2) == 17.93


def test_lora_keeps_a_bf16_base_and_fp32_adapters():
    recipe, _ = load(REPO / "recipes/llama3b-lora.yaml", PINNED)
    est = estimate_memory(recipe, LLAMA_3B)
    trainable = est.trainable_params
    assert est.weights_gib == pytest.approx((3.21e9 * 2 + trainable * 4) / GIB)
    assert (est.gradients_gib, est.optimizer_gib) == pytest.approx((trainable * 4 / GIB, trainable * 8 / GIB))
    # Under DeepSpeed the optimizer adds its fp32 master copy of the (bf16-cast) adapters: 4 more bytes each.
    ds, _ = load(REPO / "recipes/llama3b-lora.yaml", PINNED + ["launch.deepspeed=zero2", "launch.gpus=2"])
    assert estimate_memory(ds, LLAMA_3B).optimizer_gib == pytest.approx(trainable * 12 / 2 / GIB)
