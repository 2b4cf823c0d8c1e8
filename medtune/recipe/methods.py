"""Fine-tuning methods: which options each accepts and their defaults.

A method is a template in medtune/templates/methods/<name>.yaml.j2 plus an entry here; adding one is
those two edits.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class MethodInfo:
    description: str
    defaults: dict = field(default_factory=dict)
    """Options this method accepts, with the value used when the recipe leaves them out."""
    output: str = "adapter"
    """What training leaves in train/: a PEFT `adapter` or `full` weights."""


_LORA = {"rank": 16, "alpha": 32, "dropout": 0.05, "target_modules": None}

METHODS: dict[str, MethodInfo] = {
    "full": MethodInfo("Full fine-tune: every weight trains; most memory.", {}, output="full"),
    "lora": MethodInfo("LoRA: low-rank adapters on frozen weights.", dict(_LORA)),
    "qlora": MethodInfo("QLoRA: LoRA on a 4-bit (bitsandbytes NF4) quantized base.", dict(_LORA)),
    "galore": MethodInfo(
        "GaLore: full-parameter training with low-rank projected optimizer states.",
        {"rank": 128, "update_proj_gap": 200, "scale": 0.25, "target_modules": None},
        output="full",
    ),
}

# Options every method accepts (NEFTune adds noise to embeddings whatever else trains).
COMMON_OPTIONS = {"neftune_noise_alpha": None}


# ---------------------------------------------------------------- preference methods (later training stages)


@dataclass(frozen=True)
class PreferenceMethodInfo:
    description: str
    defaults: dict = field(default_factory=dict)
    """Options this method accepts, with the value used when the stage leaves them out."""
    reference: bool = True
    """Whether the loss compares against a frozen reference model (DPO, KTO); ORPO and SimPO need none."""
    paired: bool = True
    """Whether it trains on (chosen, rejected) pairs; KTO trains on single answers labelled good or bad."""


PREFERENCE_METHODS: dict[str, PreferenceMethodInfo] = {
    "dpo": PreferenceMethodInfo(
        "DPO: raise the likelihood of chosen over rejected answers relative to the reference model; "
        "sft_weight adds the chosen answers' language-model loss (as KnowTuning trains).",
        {"beta": 0.1, "sft_weight": 0.0},
    ),
    "orpo": PreferenceMethodInfo(
        "ORPO: SFT on chosen answers plus an odds-ratio penalty on rejected ones; no reference model. "
        "beta weighs the odds-ratio term (Axolotl's orpo_alpha, the paper's lambda).",
        {"beta": 0.1}, reference=False,
    ),
    "kto": PreferenceMethodInfo(
        "KTO: single answers labelled desirable (each chosen) or undesirable (each rejected) against the "
        "reference model; pairs are split into such rows.",
        {"beta": 0.1, "desirable_weight": 1.0, "undesirable_weight": 1.0}, paired=False,
    ),
    "simpo": PreferenceMethodInfo(
        "SimPO: length-normalized likelihood margin between chosen and rejected, no reference model; "
        "gamma is the target margin, sft_weight adds the chosen answers' loss (TRL's cpo_alpha).",
        {"beta": 2.0, "gamma": 0.5, "sft_weight": 0.0}, reference=False,
    ),
}
