"""Pre-flight: compare what a recipe needs with the machine at hand, before any process starts."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from ..models import catalog as models
from ..core.hub import hub_offline
from ..core.errors import MedtuneError, Problem
from .plan import estimate_memory
from ..recipe.schema import Recipe


class PreflightError(MedtuneError):
    def __init__(self, recipe: str, problems: list[Problem]):
        self.problems = problems
        lines = [f"pre-flight: recipe '{recipe}' cannot run on this machine:"]
        lines += [f"  - {p.render()}" for p in problems]
        super().__init__("\n".join(lines))


def _gpu_problems(recipe: Recipe) -> list[Problem]:
    import torch

    launch = recipe.launch
    if not torch.cuda.is_available():
        return [Problem("launch.device", "this recipe trains on CUDA GPUs and this machine has none; use a CPU recipe "
                        "(recipes/smollm2-135m-*.yaml), or `--rehearse` to prove a multi-GPU recipe on CPU", "cuda")]
    found = []
    count = torch.cuda.device_count()
    if launch.gpus > count:
        found.append(Problem("launch.gpus", f"the recipe wants {launch.gpus} GPUs per machine and this one has {count}", launch.gpus))
    facts = models.lookup(recipe.model)
    if facts is not None:
        need = estimate_memory(recipe, facts).total_gib
        have = min(torch.cuda.get_device_properties(i).total_memory for i in range(count)) / 1024**3
        if need > have * 0.95:
            found.append(Problem("training.micro_batch_size", f"estimated {need:.1f} GiB per GPU, the GPUs have {have:.1f} GiB; "
                                 "lower micro_batch_size or sequence_len, enable gradient_checkpointing, or use qlora/ZeRO"))
    if recipe.training.attention == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        found.append(Problem("training.attention", "flash_attention_2 needs the flash-attn package (pip install flash-attn "
                             "--no-build-isolation), or set training.attention: sdpa", "flash_attention_2"))
    return found


def _model_problems(recipe: Recipe) -> list[Problem]:
    ref = recipe.model
    facts = models.lookup(ref)
    if facts is not None and facts.pypi_gguf:
        if models.gguf_source(facts) is None:
            return [Problem("model", f"the package shipping {ref} is not installed; run `make setup`", ref)]
        return []
    target = models.resolve(ref)
    if Path(target).is_dir():
        return []
    if hub_offline():
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(target, "config.json")
        if not isinstance(cached, str):
            return [Problem("model", f"{target} is not in the Hugging Face cache and the Hub is off (HF_HUB_OFFLINE is set); "
                            "download it where the Hub is reachable, or point model: at a local folder", ref)]
    return []


def check(recipe: Recipe) -> None:
    """Raise PreflightError (exit code 2) listing everything that would fail on this machine."""
    problems = _model_problems(recipe)
    if recipe.launch.device == "cuda":
        problems += _gpu_problems(recipe)
    if problems:
        raise PreflightError(recipe.name, problems)
