"""The recipe schema: one YAML file is one experiment (model x method x data x training x launch x eval).

Every field is documented here, once; `launch.py validate --help-keys` and the README's key table are
generated from these docstrings. Loading and checking a recipe lives in medtune/recipe/loader.py.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from ..evaluate.spec import EvalSpec
from .methods import COMMON_OPTIONS, METHODS
from ..preprocess.spec import DataSpec
from ..core.schema import Strict
from .sweep import SweepSpec

Attention = Literal["auto", "flash_attention_2", "sdpa", "eager", "flex_attention", "none"]
# Backends whose packed batches keep samples apart (flash/flex via position ids, sdpa/eager via a
# block-diagonal mask); with any other, packed samples attend to each other.
PACKING_SAFE_ATTENTION = {"flash_attention_2", "sdpa", "eager", "flex_attention"}


class MethodSpec(Strict):
    name: str = "lora"
    """How the model trains: full, lora, qlora or galore (see medtune/recipe/methods.py)."""
    rank: int | None = Field(default=None, gt=0)
    """LoRA/QLoRA adapter rank, or GaLore projection rank; higher fits better and costs memory."""
    alpha: int | None = Field(default=None, gt=0)
    """LoRA scaling numerator (the update is scaled by alpha / rank)."""
    dropout: float | None = Field(default=None, ge=0.0, lt=1.0)
    """Dropout on the LoRA path; regularizes small datasets. On CPU its random masks cost 10-30% of a
    training step (0 turns it off)."""
    target_modules: list[str] | None = None
    """Modules that get adapters (LoRA) or projected optimizer states (GaLore); default: the
    model catalog's list (all attention and MLP projections)."""
    update_proj_gap: int | None = Field(default=None, gt=0)
    """GaLore: steps between recomputing the projection; lower adapts faster, costs more SVDs."""
    scale: float | None = Field(default=None, gt=0)
    """GaLore: scale applied to the projected update."""
    neftune_noise_alpha: float | None = Field(default=None, gt=0)
    """NEFTune: add uniform noise of this scale to embeddings while training (any method); 5 is typical."""

    @model_validator(mode="after")
    def _fill_method_defaults(self) -> "MethodSpec":
        info = METHODS.get(self.name)
        if info is not None:
            for option, default in info.defaults.items():
                if getattr(self, option) is None and option not in self.model_fields_set:
                    object.__setattr__(self, option, default)
        return self

    def options_given(self) -> set[str]:
        return self.model_fields_set - {"name"}

    def allowed_options(self) -> set[str]:
        info = METHODS.get(self.name)
        return set(info.defaults if info else ()) | set(COMMON_OPTIONS)


class TrainingSpec(Strict):
    epochs: float = Field(default=1.0, gt=0)
    """Passes over the training split (ignored when max_steps is set)."""
    max_steps: int | None = Field(default=None, gt=0)
    """Stop after this many optimizer steps; overrides epochs."""
    learning_rate: float = Field(default=2e-4, gt=0)
    """Peak learning rate; LoRA tolerates ~1e-4..3e-4, full fine-tunes want ~1e-5..5e-5."""
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = "cosine"
    """Learning-rate schedule after warm-up."""
    warmup_ratio: float = Field(default=0.05, ge=0, lt=1)
    """Share of steps spent warming the learning rate up from zero."""
    weight_decay: float = Field(default=0.0, ge=0)
    """Decoupled weight decay (AdamW)."""
    micro_batch_size: int = Field(default=4, gt=0)
    """Sequences per device per forward pass; on GPU higher is faster until memory runs out. On CPU with packing
    the demo's epoch trained in 248 s with 1 (and gradient_accumulation_steps 4) against 300 s with 4 (README)."""
    gradient_accumulation_steps: int = Field(default=1, gt=0)
    """Micro-batches per optimizer step; effective batch = micro x accumulation x processes."""
    sequence_len: int = Field(default=1024, ge=32)
    """Longest training sequence in tokens; longer rows are dropped by preprocess (and counted)."""
    sample_packing: bool | Literal["auto"] = "auto"
    """Pack several short rows into one sequence (much faster on short QA); auto: on whenever the
    attention backend keeps packed samples apart."""
    attention: Attention = "auto"
    """Attention backend; auto: sdpa, which needs no extra package (on CUDA Axolotl runs packed rows through
    torch's varlen kernel). flash_attention_2 needs the flash-attn package (`make setup-gpu`). `none` leaves
    it to Axolotl."""
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    """Training precision; auto: bf16 on CUDA, fp32 on CPU (CPU AMP is slower here)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, ~30% slower."""
    liger: bool | Literal["auto"] = "auto"
    """Liger fused kernels (RoPE, RMSNorm, SwiGLU, fused cross-entropy); auto: on for CUDA."""
    optimizer: str | None = None
    """Optimizer name as Axolotl knows it; default: adamw_torch_fused on CUDA, adamw_torch on CPU,
    galore_adamw for GaLore."""
    seed: int = 42
    """Seed for weight init of adapters, data order and dropout."""
    logging_steps: int = Field(default=1, gt=0)
    """Log loss every N steps (the report's loss curve comes from these)."""
    save_steps: int | None = Field(default=None, gt=0)
    """Checkpoint every N steps (resume starts from the last); default: once per epoch."""
    eval_steps: int | None = Field(default=None, gt=0)
    """Validation loss every N steps; default: once per epoch."""
    save_total_limit: int = Field(default=2, gt=0)
    """Keep only the newest N checkpoints."""
    tracking: Literal["none", "tensorboard", "wandb"] = "none"
    """Experiment tracker; W&B only when asked (it sends data off the machine)."""


class LaunchSpec(Strict):
    device: Literal["cuda", "cpu"] = "cuda"
    """Where training runs; CPU recipes exist for testing and demos."""
    gpus: int = Field(default=1, ge=1)
    """Processes (GPUs) per machine."""
    deepspeed: Literal["none", "zero1", "zero2", "zero3"] = "none"
    """DeepSpeed ZeRO stage: zero1 shards optimizer states, zero2 adds gradients, zero3 adds weights."""
    zero3_offload: bool = False
    """ZeRO-3 only: offload parameters and optimizer states to CPU memory (slow, fits bigger models)."""
    num_machines: int = Field(default=1, ge=1)
    """Machines taking part (multi-node); each runs the same recipe with its own machine_rank."""
    machine_rank: int = Field(default=0, ge=0)
    """This machine's rank among num_machines (0 is the main one)."""
    main_process_ip: str | None = None
    """Address of machine 0 for multi-node runs."""
    main_process_port: int = Field(default=29500, gt=0, lt=65536)
    """Port on machine 0 for the rendezvous."""
    hostfile: str | None = None
    """DeepSpeed hostfile for multi-node launches (passed through to accelerate)."""


class Recipe(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    """Experiment name; runs go to runs/<name>/<timestamp>/."""
    description: str | None = None
    """One line on what this experiment asks."""
    model: str
    """A catalog key (medtune/templates/models/), a Hugging Face Hub id, or a local model folder."""
    method: MethodSpec = MethodSpec()
    """The fine-tuning method and its options."""
    data: DataSpec
    """Training and held-out data (see the preprocess section of the README)."""
    training: TrainingSpec = TrainingSpec()
    """Optimization settings."""
    launch: LaunchSpec = LaunchSpec()
    """Hardware and distribution."""
    eval: EvalSpec = EvalSpec()
    """What to measure on base and tuned models."""
    sweep: SweepSpec | None = None
    """Run the recipe once per point (a grid of overrides and/or named points), each as its own run, then
    compare them and name the best (see the README's "Compare, sweep, chat")."""
    axolotl: dict[str, Any] = {}
    """Raw Axolotl config keys for anything the schema does not model; checked against Axolotl's own
    schema and applied last, over the rendered config."""

    @model_validator(mode="after")
    def _resolve_auto(self) -> "Recipe":
        """Turn `auto` settings into concrete ones for the recipe's device (deterministic: no probing)."""
        t, cuda = self.training, self.launch.device == "cuda"
        if t.attention == "auto":
            # Not flash_attention_2: flash-attn is not installed by default, and a probe would make the rendered
            # config depend on the machine. Axolotl 0.19 keeps sdpa's packed rows apart (varlen on CUDA).
            t.attention = "sdpa"
        if t.precision == "auto":
            t.precision = "bf16" if cuda else "fp32"
        if t.sample_packing == "auto":
            t.sample_packing = t.attention in PACKING_SAFE_ATTENTION
        if t.liger == "auto":
            t.liger = cuda
        if t.optimizer is None:
            if self.method.name == "galore":
                t.optimizer = "galore_adamw"
            else:
                t.optimizer = "adamw_torch_fused" if cuda else "adamw_torch"
        return self

    # What the resolved settings mean for training; the templates and the memory planner both read these.

    @property
    def fp32_master_weights(self) -> bool:
        """Whether full-weight training upcasts the loaded weights to fp32 and computes under bf16/fp16 autocast.

        Axolotl 0.19 loads the model in the training precision (`bf16: true` sets its torch_dtype; no key loads
        it otherwise), so a full fine-tune would keep weights and AdamW moments in bf16, where an update smaller
        than 1/256 of a weight rounds away: a full fine-tune's 1e-5 steps do. DeepSpeed's optimizer keeps fp32
        master weights and moments itself; LoRA adapters are fp32 already (PEFT upcasts them).
        """
        info = METHODS.get(self.method.name)
        return (info is not None and info.output == "full" and self.training.precision in ("bf16", "fp16")
                and self.launch.deepspeed == "none")

    @property
    def fused_cross_entropy(self) -> bool:
        """Whether Liger's fused linear cross-entropy (no logits tensor) runs.

        Not under ZeRO-3: the fused loss reads `lm_head.weight` by attribute, so DeepSpeed never gathers the
        sharded weight and the step crashes (huggingface/trl#3368). There Liger's plain cross-entropy runs.
        """
        return self.training.liger is True and self.launch.deepspeed != "zero3"
