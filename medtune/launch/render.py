"""Render a recipe into the files training needs: axolotl.yaml (and axolotl-<stage>.yaml for each later stage),
and deepspeed.json / accelerate.yaml.

Templates live in medtune/templates/ (package data) and run in a sandboxed Jinja environment with
StrictUndefined, so a misspelt variable fails the render instead of becoming an empty string.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml
from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from ..models import catalog as models
from ..core.errors import RecipeError
from ..core.paths import TEMPLATES_DIR
from ..core.rundir import RunDir
from ..recipe.methods import METHODS
from ..recipe.schema import Recipe, StageSpec


@dataclass(frozen=True)
class RenderedStage:
    """One later training stage: its config and where it reads and writes, relative to the run directory."""

    name: str
    method: str
    config_file: str
    axolotl: dict
    output_dir: str
    start: str
    """The weights it starts from: the stage before's adapter merged into its base (start/ in its own folder),
    or the stage before's output folder itself when that holds full weights."""
    previous_output: str
    """The stage before's output folder."""
    merge: bool
    """Whether `start` is made by merging the previous adapter into its base before the stage trains."""
    data_file: str


@dataclass
class Rendered:
    axolotl: dict
    files: dict[str, str] = field(default_factory=dict)
    """File name (relative to the run directory) -> content."""
    num_processes: int = 1
    stages: list[RenderedStage] = field(default_factory=list)
    """The recipe's later training stages, in order (the first is axolotl.yaml)."""

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


def _context(recipe: Recipe) -> dict:
    facts = models.lookup(recipe.model)
    method = recipe.method
    return {
        "recipe": recipe,
        "t": recipe.training,
        "launch": recipe.launch,
        "m": method,
        "facts": facts,
        "model_path": models.resolve(recipe.model),
        "target_modules": method.target_modules or (list(facts.lora_target_modules) if facts else None),
    }


class _BlockDumper(yaml.SafeDumper):
    """YAML with multi-line strings (the chat template) as readable `|` blocks."""


_BlockDumper.add_representer(str, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None))

# Keys of the first stage's config that a preference stage replaces or has no use for: its SFT data, the
# validation split (preference stages train without one) and packing (Axolotl's preference trainers refuse it).
_SFT_ONLY_KEYS = ("datasets", "test_datasets", "eval_steps", "evals_per_epoch", "eval_sample_packing",
                  "pad_to_sequence_len")


def _render_stage(env: SandboxedEnvironment, recipe: Recipe, stage: StageSpec, previous_output: str) -> RenderedStage:
    """A later stage's config: the first stage's, trained with the stage's settings from the weights the stage
    before left, plus the preference method's keys and data (templates/stages/<method>.yaml.j2)."""
    stage_recipe = recipe.model_copy(update={"training": recipe.stage_training(stage)})
    context = _context(stage_recipe)
    cfg = yaml.safe_load(env.get_template("axolotl.yaml.j2").render(context))
    for key in _SFT_ONLY_KEYS:
        cfg.pop(key, None)
    # Jinja writes 1e-5 as `1e-05`, which YAML reads as a string; this config is dumped again, so give it the number.
    cfg["learning_rate"] = float(cfg["learning_rate"])
    adapter = METHODS[recipe.method.name].output == "adapter"
    output_dir = RunDir.STAGE_TRAIN.format(stage.name)
    start = f"{output_dir}/{RunDir.STAGE_START}" if adapter else previous_output
    data_file = f"{RunDir.DATA}/{RunDir.PREFERENCE.format(stage.name)}"
    cfg.update({"base_model": start, "output_dir": output_dir, "dataset_prepared_path": f"{output_dir}/prepared"})
    extra = yaml.safe_load(env.get_template(f"stages/{stage.method.name}.yaml.j2").render(
        {**context, "sm": stage.method, "data_path": data_file}))
    cfg.update(extra)
    if "warmup_steps" in extra:  # a trainer that takes steps only (SimPO's) gets no warmup ratio beside them
        cfg.pop("warmup_ratio", None)
    if recipe.axolotl:
        cfg = _deep_merge(cfg, recipe.axolotl)
    return RenderedStage(stage.name, stage.method.name, RunDir.STAGE_CONFIG.format(stage.name), cfg, output_dir, start,
                         previous_output, adapter, data_file)


def _stage_text(recipe: Recipe, stage: RenderedStage) -> str:
    start = (f"the adapter in {stage.previous_output}/ merged into its base ({stage.start}/)" if stage.merge
             else f"the full weights in {stage.previous_output}/")
    head = (f"# Rendered by medtune from recipe \"{recipe.name}\", stage \"{stage.name}\" ({stage.method}); do not edit:\n"
            f"# change the recipe and render again. It trains from {start};\n"
            "# the recipe's training: settings apply where the stage sets none of its own.\n")
    return head + yaml.dump(stage.axolotl, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=120)


def render(recipe: Recipe, *, check: bool = True) -> Rendered:
    """Render every file for this recipe; with check, Axolotl's own validation must accept each config."""
    env = _env()
    text = env.get_template("axolotl.yaml.j2").render(_context(recipe))
    cfg = yaml.safe_load(text)
    if recipe.axolotl:
        cfg = _deep_merge(cfg, recipe.axolotl)
        text = text.rstrip("\n") + "\n\n# Overrides from the recipe's axolotl: block (applied last)\n"
        text += yaml.safe_dump(recipe.axolotl, sort_keys=False)
    files = {"axolotl.yaml": text}
    stages, previous = [], RunDir.TRAIN
    for spec in recipe.stages:
        stage = _render_stage(env, recipe, spec, previous)
        stages.append(stage)
        files[stage.config_file] = _stage_text(recipe, stage)
        previous = stage.output_dir

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
        for stage in stages:
            problems += [replace(p, path=p.path.replace("axolotl.yaml", stage.config_file, 1))
                         for p in validate(stage.axolotl, recipe.launch.device, recipe.launch.gpus)]
        if problems:
            raise RecipeError(f"the config rendered from recipe '{recipe.name}'", problems)
    return Rendered(axolotl=cfg, files=files, num_processes=num_processes, stages=stages)
