"""The recipe schema: one YAML file is one experiment (model x method x data x training x launch x eval).

Every field is documented here, once; `launch.py validate --help-keys` and the README's key table are
generated from these docstrings. Loading and checking a recipe lives in medtune/recipe/loader.py.
"""
from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from ..augment.spec import KnowTuningSpec
from ..evaluate.spec import EvalSpec
from .methods import COMMON_OPTIONS, METHODS, PREFERENCE_METHODS
from ..preprocess.preference import PreferenceDataSpec
from ..preprocess.spec import DataSpec
from ..core.schema import Strict
from .sweep import SweepSpec

Attention = Literal["auto", "flash_attention_2", "sdpa", "eager", "flex_attention", "none"]
# Backends whose packed batches keep samples apart (flash/flex via position ids, sdpa/eager via a
# block-diagonal mask); with any other, packed samples attend to each other.
PACKING_SAFE_ATTENTION = {"flash_attention_2", "sdpa", "eager", "flex_attention"}


class _MethodOptions(Strict):
    """A method name plus its options: defaults filled from the method's registry entry, and which given options
    the method has no use for (the loader reports those)."""

    name: str
    _registry: ClassVar[dict] = {}
    _common_options: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _fill_method_defaults(self):
        info = self._registry.get(self.name)
        if info is not None:
            for option, default in info.defaults.items():
                if getattr(self, option) is None and option not in self.model_fields_set:
                    object.__setattr__(self, option, default)
        return self

    def options_given(self) -> set[str]:
        return {name for name in self.model_fields_set - {"name"} if getattr(self, name) is not None}

    def allowed_options(self) -> set[str]:
        info = self._registry.get(self.name)
        return set(info.defaults if info else ()) | set(self._common_options)


class MethodSpec(_MethodOptions):
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

    _registry: ClassVar[dict] = METHODS
    _common_options: ClassVar[tuple[str, ...]] = tuple(COMMON_OPTIONS)


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


class PreferenceMethodSpec(_MethodOptions):
    name: str = "dpo"
    """How a later stage trains: dpo, orpo, kto or simpo (see medtune/recipe/methods.py)."""
    beta: float | None = Field(default=None, gt=0)
    """DPO/KTO: how far the model may move from the reference (lower: further); SimPO: reward scale;
    ORPO: weight of the odds-ratio term (Axolotl's orpo_alpha)."""
    sft_weight: float | None = Field(default=None, ge=0)
    """DPO/SimPO: weight of an added SFT (language-model) loss on the chosen answers; KnowTuning uses 0.2."""
    gamma: float | None = Field(default=None, ge=0)
    """SimPO: target reward margin between chosen and rejected."""
    desirable_weight: float | None = Field(default=None, gt=0)
    """KTO: weight of the desirable (chosen) answers' loss."""
    undesirable_weight: float | None = Field(default=None, gt=0)
    """KTO: weight of the undesirable (rejected) answers' loss."""

    _registry: ClassVar[dict] = PREFERENCE_METHODS


class StageTrainingSpec(Strict):
    """A later stage's optimization settings; a key left out takes the recipe's `training:` value."""

    epochs: float | None = Field(default=None, gt=0)
    """Passes over the stage's preference pairs (setting it or max_steps replaces both of the recipe's)."""
    max_steps: int | None = Field(default=None, gt=0)
    """Stop the stage after this many optimizer steps; overrides epochs."""
    learning_rate: float | None = Field(default=None, gt=0)
    """Peak learning rate of the stage; preference stages want ~10x below SFT (KnowTuning: 1e-5)."""
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] | None = None
    """Learning-rate schedule after warm-up."""
    warmup_ratio: float | None = Field(default=None, ge=0, lt=1)
    """Share of the stage's steps spent warming up."""
    weight_decay: float | None = Field(default=None, ge=0)
    """Decoupled weight decay (AdamW)."""
    micro_batch_size: int | None = Field(default=None, gt=0)
    """Pairs per device per forward pass (each pair is two sequences: chosen and rejected)."""
    gradient_accumulation_steps: int | None = Field(default=None, gt=0)
    """Micro-batches per optimizer step."""
    sequence_len: int | None = Field(default=None, ge=32)
    """Longest prompt + answer in tokens; longer pairs are dropped by Axolotl."""
    gradient_checkpointing: bool | None = None
    """Recompute activations in the backward pass: less memory, ~30% slower."""
    seed: int | None = None
    """Seed of the stage's data order and new adapter weights."""
    save_steps: int | None = Field(default=None, gt=0)
    """Checkpoint every N steps; default: once per epoch."""


class StageDataSpec(Strict):
    preference: PreferenceDataSpec
    """The pairs the stage trains on: your file, or the KnowTuning augmentation's."""


class StageSpec(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    """The stage's name: its config is axolotl-<name>.yaml and its output train-<name>/ in the run directory."""
    method: PreferenceMethodSpec
    """The preference method and its options."""
    data: StageDataSpec
    """What the stage trains on."""
    training: StageTrainingSpec = StageTrainingSpec()
    """Settings that differ from the recipe's `training:` (every other one is the same)."""


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
    knowtuning: KnowTuningSpec | None = None
    """KnowTuning's data augmentation (Lyu et al., 2024): the first stage trains on the training rows plus
    question-answer pairs for each answer's hardest facts, and a later stage with `data: {preference: {generated:
    knowtuning}}` on worse answers made by deleting, revising and shuffling facts. Every generated file is written
    to data/knowtuning/ (see the README's "KnowTuning")."""
    stages: list[StageSpec] = []
    """Training stages after the first (`method:`), run in order in the same run directory, each starting from
    the one before's weights (an adapter is merged into its base and a fresh one of the same shape trains on
    top); eval scores the last (see the README's "Multi-stage recipes")."""
    sweep: SweepSpec | None = None
    """Run the recipe once per point (a grid of overrides and/or named points), each as its own run, then
    compare them and name the best (see the README's "Compare, sweep, chat")."""
    axolotl: dict[str, Any] = {}
    """Raw Axolotl config keys for anything the schema does not model; checked against Axolotl's own
    schema and applied last, over the rendered config."""

    @model_validator(mode="after")
    def _format_fits_model(self) -> "Recipe":
        """data.format against the model and eval: a base model has no chat turns, documents no test questions."""
        from ..models.catalog import lookup

        facts = lookup(self.model)
        if self.data.format == "chat" and facts is not None and not facts.has_chat_template:
            raise ValueError(f"model {self.model} is a base model without a chat template: set data.format to "
                             "instruction or completion (plain-text prompts), or text (continued pretraining)")
        if self.data.format == "text" and self.eval.metrics:
            raise ValueError("data.format text holds out no test questions: set eval.metrics: [] (measure the model "
                             "with eval.suites, or fine-tune it on questions in a recipe that names it as its model)")
        return self

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

    @model_validator(mode="after")
    def _knowtuning_without_disclaimer(self) -> "Recipe":
        """KnowTuning splits each reference answer into facts: an appended disclaimer would become one, scored for
        perplexity and deleted or shuffled into the worse answers like a medical fact."""
        if self.knowtuning is not None and self.data.disclaimer.enabled:
            raise ValueError("knowtuning and data.disclaimer.enabled both set: the disclaimer would be split into a "
                             "fact and deleted or shuffled like one; set data.disclaimer.enabled: false (measure the "
                             "disclaimer rate with eval.metrics: [disclaimer] instead)")
        return self

    @model_validator(mode="after")
    def _unique_stage_names(self) -> "Recipe":
        names = [stage.name for stage in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stages: two stages share a name ({', '.join(names)}); give each its own")
        return self

    def stage_training(self, stage: StageSpec) -> TrainingSpec:
        """A stage's whole training settings: the recipe's, with the stage's own on top.

        Setting epochs or max_steps in a stage sets both (the recipe's max_steps must not cut the stage short).
        No packing: Axolotl's preference trainers take one pair per row.
        """
        given = stage.training.model_dump(exclude_none=True)
        if "epochs" in given or "max_steps" in given:
            given.setdefault("max_steps", None)
        merged = {**self.training.model_dump(), **given, "sample_packing": False}
        return TrainingSpec.model_validate(merged)

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
