"""Planning arithmetic: trainable parameters and an estimate of training memory per device.

The estimate is deliberately simple (weights + gradients + optimizer states, sharded as ZeRO does,
plus activations and logits) so a user can follow it; pre-flight compares it with real devices.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..models.catalog import ModelFacts
from ..recipe.methods import PREFERENCE_METHODS
from ..recipe.schema import Recipe, StageSpec

GIB = 1024**3
_PROJ = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _proj_shapes(f: ModelFacts) -> dict[str, tuple[int, int]]:
    h, i, kv = f.hidden_size, f.intermediate_size, f.kv_dim
    return {
        "q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h),
        "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h),
    }


def matmul_params(f: ModelFacts) -> int:
    """Weights that take part in a matrix multiply per token: every projection plus the LM head (the input
    embedding is a lookup). The N of the usual 6N training FLOPs per token."""
    per_layer = sum(rows * cols for rows, cols in _proj_shapes(f).values())
    return per_layer * f.num_layers + f.vocab_size * f.hidden_size


def lora_params(f: ModelFacts, rank: int, targets: list[str] | tuple[str, ...]) -> int:
    shapes = _proj_shapes(f)
    per_layer = sum(rank * (shapes[t][0] + shapes[t][1]) for t in targets if t in shapes)
    return per_layer * f.num_layers


@dataclass
class MemoryEstimate:
    weights_gib: float
    gradients_gib: float
    optimizer_gib: float
    activations_gib: float
    overhead_gib: float
    trainable_params: int

    @property
    def total_gib(self) -> float:
        return self.weights_gib + self.gradients_gib + self.optimizer_gib + self.activations_gib + self.overhead_gib

    def as_dict(self) -> dict:
        return {**asdict(self), "total_gib": round(self.total_gib, 2)}


def estimate_memory(recipe: Recipe, f: ModelFacts, stage: StageSpec | None = None) -> MemoryEstimate:
    """Peak training memory per device for this recipe (or one of its later `stages`), in GiB: what each
    precision really keeps.

    - LoRA/QLoRA: the frozen base in the compute dtype (NF4 for QLoRA); adapters, their gradients and AdamW
      moments in fp32 (PEFT upcasts adapters).
    - Full/GaLore without DeepSpeed, bf16/fp16: fp32 weights, gradients and moments (the template's
      Fp32MasterWeights plugin; the compute runs in half precision under autocast).
    - Under DeepSpeed, bf16/fp16: the model and its gradients in half precision, and the optimizer's
      fp32 master copy of the trainable weights beside its fp32 moments (12 bytes per weight), sharded by ZeRO.
    - A preference stage: chosen and rejected run as one batch (twice the tokens; KTO's single answers once),
      TRL builds the logits itself (no fused loss), and DPO/KTO on full weights hold a reference copy of the model
      in the compute dtype. With an adapter the reference is the same model with the adapter disabled: no copy.
    """
    launch, m = recipe.launch, recipe.method
    t = recipe.stage_training(stage) if stage is not None else recipe.training
    info = PREFERENCE_METHODS.get(stage.method.name) if stage is not None else None
    params = f.params_b * 1e9
    half = t.precision in ("bf16", "fp16")
    compute = 2 if half else 4  # bytes per activation (autocast) and per frozen or DeepSpeed-held weight
    deepspeed = launch.deepspeed != "none"
    shards = launch.gpus * launch.num_machines
    zero = {"none": 0, "zero1": 1, "zero2": 2, "zero3": 3}[launch.deepspeed]

    if m.name in ("lora", "qlora"):
        trainable = lora_params(f, m.rank, m.target_modules or f.lora_target_modules)
        weights = params * (0.55 if m.name == "qlora" else compute) + trainable * 4  # NF4 + scales; fp32 adapters
        grads, optim = trainable * 4, trainable * 8
    else:
        trainable = int(params)
        wbytes = compute if deepspeed else 4  # fp32 master weights unless DeepSpeed holds them
        weights, grads = params * wbytes, params * wbytes
        optim = params * 8  # AdamW's two fp32 moments
        if m.name == "galore":  # moments live in the rank-r projection of each matrix
            optim *= min(1.0, m.rank / f.hidden_size)
    if deepspeed and half:
        optim += trainable * 4  # DeepSpeed's fp32 master copy of the half-precision weights
    if zero >= 1:
        optim /= shards
    if zero >= 2:
        grads /= shards
    if zero >= 3:
        weights /= shards

    if info is not None and info.reference and m.name not in ("lora", "qlora"):
        weights += params * compute / (shards if zero >= 3 else 1)  # the frozen reference model

    tokens = t.micro_batch_size * t.sequence_len * (2 if info is not None and info.paired else 1)
    per_token_layer = f.hidden_size * (compute / 2)
    if t.gradient_checkpointing:  # each layer's input is kept; one layer's activations live again in backward
        activations = tokens * per_token_layer * (2 * f.num_layers + 34)
    else:
        activations = tokens * per_token_layer * 34 * f.num_layers
    if not recipe.fused_cross_entropy or info is not None:  # fp32 logits and their gradient, unless fused
        activations += tokens * f.vocab_size * 4 * 2
    overhead = 1.0 if launch.device == "cuda" else 0.5
    return MemoryEstimate(
        weights_gib=weights / GIB, gradients_gib=grads / GIB, optimizer_gib=optim / GIB,
        activations_gib=activations / GIB, overhead_gib=overhead, trainable_params=int(trainable),
    )


def largest_estimate(recipe: Recipe, f: ModelFacts) -> tuple[int | None, MemoryEstimate]:
    """(index in recipe.stages, or None for the first stage; estimate) of the training stage that needs the most
    memory per device: the number pre-flight compares with the GPUs."""
    estimates: list[tuple[int | None, MemoryEstimate]] = [(None, estimate_memory(recipe, f))]
    estimates += [(i, estimate_memory(recipe, f, stage)) for i, stage in enumerate(recipe.stages)]
    return max(estimates, key=lambda item: item[1].total_gib)
