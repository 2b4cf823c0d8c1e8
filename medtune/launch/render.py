"""Render a recipe into the files training needs: axolotl.yaml, and deepspeed.json / accelerate.yaml.

Templates live in medtune/templates/ (package data) and run in a sandboxed Jinja environment with
StrictUndefined, so a misspelt variable fails the render instead of becoming an empty string.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from ..models import catalog as models
from ..core.errors import RecipeError
from ..core.paths import TEMPLATES_DIR
from ..recipe.schema import Recipe


@dataclass
class Rendered:
    axolotl: dict
    files: dict[str, str] = field(default_factory=dict)
    """File name (relative to the run directory) -> content."""
    num_processes: int = 1

    def write(self, out_dir: Path) -> list[Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for name, text in self.files.items():
            path = out_dir / name
            path.write_text(text)
            written.append(path)
        return written


def _env() -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=False,
    )
    # JSON scalars are valid YAML; plain json.dumps keeps `<|im_end|>` readable (Jinja's tojson escapes <, >).
    env.filters["tojson"] = lambda value: json.dumps(value, ensure_ascii=False)
    return env


def _deep_merge(base: dict, extra: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _distributed_type(recipe: Recipe, num_processes: int) -> str:
    if recipe.launch.deepspeed != "none":
        return "DEEPSPEED"
    if num_processes > 1 or recipe.launch.num_machines > 1:
        # On one machine, accelerate's MULTI_CPU launcher starts a single process (it leaves the ranks
        # to mpirun); MULTI_GPU starts them with torchrun, and use_cpu keeps them off CUDA (--rehearse).
        return "MULTI_CPU" if recipe.launch.device == "cpu" and recipe.launch.num_machines > 1 else "MULTI_GPU"
    return "NO"


def render(recipe: Recipe, *, check: bool = True) -> Rendered:
    """Render every file for this recipe; with check, Axolotl's own validation must accept the config."""
    env = _env()
    facts = models.lookup(recipe.model)
    method = recipe.method
    target_modules = method.target_modules or (list(facts.lora_target_modules) if facts else None)
    context = {
        "recipe": recipe,
        "t": recipe.training,
        "launch": recipe.launch,
        "m": method,
        "facts": facts,
        "model_path": models.resolve(recipe.model),
        "target_modules": target_modules,
    }
    text = env.get_template("axolotl.yaml.j2").render(context)
    cfg = yaml.safe_load(text)
    if recipe.axolotl:
        cfg = _deep_merge(cfg, recipe.axolotl)
        text = text.rstrip("\n") + "\n\n# Overrides from the recipe's axolotl: block (applied last)\n"
        text += yaml.safe_dump(recipe.axolotl, sort_keys=False)
    files = {"axolotl.yaml": text}

    num_processes = recipe.launch.gpus * recipe.launch.num_machines
    if recipe.launch.deepspeed != "none":
        stage = int(recipe.launch.deepspeed[-1])
        ds_text = env.get_template("deepspeed/zero.json.j2").render(stage=stage, offload=recipe.launch.zero3_offload)
        files["deepspeed.json"] = json.dumps(json.loads(ds_text), indent=2) + "\n"
    distributed = _distributed_type(recipe, num_processes)
    precision = recipe.training.precision
    files["accelerate.yaml"] = env.get_template("accelerate.yaml.j2").render(
        launch=recipe.launch,
        distributed_type=distributed,
        num_processes=num_processes,
        mixed_precision=precision if precision in ("bf16", "fp16") else "no",
        use_cpu=recipe.launch.device == "cpu",
    )

    if check:
        from ..recipe.axolotl_check import validate

        problems = validate(cfg, recipe.launch.device, recipe.launch.gpus)
        if problems:
            raise RecipeError(f"the config rendered from recipe '{recipe.name}'", problems)
    return Rendered(axolotl=cfg, files=files, num_processes=num_processes)
