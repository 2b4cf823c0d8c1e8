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
