"""Load a recipe file strictly: collect every problem (syntax, keys, types, combinations) and report them at once."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import ValidationError

from ..models import catalog as models
from ..core.errors import Problem, RecipeError, did_you_mean
from ..core.schema import validation_problems
from .methods import METHODS, PREFERENCE_METHODS
from .schema import PACKING_SAFE_ATTENTION, Recipe, StageSpec
from .sweep import TRAINING_METRICS, expand, point_overrides, stage_loss_column


# ---------------------------------------------------------------- reading


def read_yaml(path: Path) -> dict:
    """The recipe file as a mapping, or a RecipeError saying why it is not one."""
    label = str(path)
    if not path.is_file():
        raise RecipeError(label, [Problem(label, "file not found" if not path.exists() else "not a file")])
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RecipeError(label, [Problem(label, f"not UTF-8 text (byte {exc.start})")]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        detail = getattr(exc, "problem", None) or str(exc)
        context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and start is not None and (mark is None or start.line != mark.line):
            detail += f" ({context} at line {start.line + 1})"  # where the unclosed thing began
        raise RecipeError(label, [Problem(label, f"broken YAML at {where}{detail}")]) from None
    if raw is None:
        raise RecipeError(label, [Problem(label, "the file is empty; a recipe needs at least name, model and data")])
    if not isinstance(raw, dict):
        raise RecipeError(label, [Problem(label, f"a recipe is a mapping of keys, not a {type(raw).__name__}")])
    return raw


def apply_overrides(raw: dict, overrides: Iterable[str]) -> list[Problem]:
    """Apply `--set a.b=value` overrides in place (values parsed as YAML); return malformed ones.

    A number indexes a list that is there: `data.train.0.path=DIR` points the first source at DIR.
    """
    problems = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            problems.append(Problem(f"--set {item}", "expected KEY=VALUE, e.g. training.learning_rate=1e-4"))
            continue
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            parsed = value
        parts = key.split(".")
        node = raw
        for depth, part in enumerate(parts):
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    where = ".".join(parts[:depth])
                    problems.append(Problem(f"--set {item}", f"{where} is a list of {len(node)}: index it with a number "
                                            f"from 0 to {len(node) - 1} (e.g. {where}.0.path=...), or give the whole list"))
                    break
                part = int(part)
            elif depth < len(parts) - 1 and not isinstance(node.get(part), (dict, list)):
                node[part] = {}
            if depth == len(parts) - 1:
                node[part] = parsed
            else:
                node = node[part]
    return problems


# ---------------------------------------------------------------- meaning checks


def _model_problems(ref: str, base_dir: Path) -> list[Problem]:
    if models.lookup(ref) is not None:
        return []
    if ref.startswith((".", "/", "~")):
        path = Path(ref).expanduser()
        path = path if path.is_absolute() else base_dir / path
        if not (path.exists() or Path(ref).expanduser().exists()):
            return [Problem("model", "local model folder not found", ref)]
        return []
    if "/" not in ref:  # not a path, not org/name: a typo of a catalog key
        keys = sorted(models.catalog())
        return [Problem("model", "unknown model: not a catalog key, Hub id (org/name) or path", ref, tuple(keys), did_you_mean(ref, keys))]
    return []


def _method_problems(recipe: Recipe) -> list[Problem]:
    method = recipe.method
    if method.name not in METHODS:
        names = sorted(METHODS)
        return [Problem("method.name", "unknown method", method.name, tuple(names), did_you_mean(method.name, names))]
    stray = sorted(method.options_given() - method.allowed_options())
    return [
        Problem(f"method.{opt}", f"not an option of method {method.name}", allowed=tuple(sorted(method.allowed_options())))
        for opt in stray
    ]


def _stage_problems(raw: dict, base_dir: Path) -> list[Problem]:
    """Each later stage's method options, and its preference file read and checked row by row now, so a bad
    file stops the run before any training (not after stage 1's hours). Read from the raw mapping, stage by
    stage, so they are reported beside the schema's own errors."""
    from ..preprocess.errors import PreprocessError
    from ..preprocess.preference import read_preference_file

    found = []
    stages = raw.get("stages")
    for i, item in enumerate(stages if isinstance(stages, list) else []):
        try:
            stage = StageSpec.model_validate(item)
        except ValidationError:
            continue  # its schema errors are reported with the rest
        at, method = f"stages[{i}]", stage.method
        if method.name not in PREFERENCE_METHODS:
            names = sorted(PREFERENCE_METHODS)
            found.append(Problem(f"{at}.method.name", "unknown preference method", method.name, tuple(names),
                                 did_you_mean(method.name, names)))
        else:
            found += [Problem(f"{at}.method.{opt}", f"not an option of method {method.name}",
                              allowed=tuple(sorted(method.allowed_options())))
                      for opt in sorted(method.options_given() - method.allowed_options())]
        if method.name == "simpo" and stage.training.warmup_ratio:
            found.append(Problem(f"{at}.training.warmup_ratio", "Axolotl's SimPO trainer refuses a warm-up ratio (medtune "
                                 "renders warmup_steps: 0); remove it", stage.training.warmup_ratio))
        pref = stage.data.preference
        if pref.path is not None:
            try:
                read_preference_file(pref, base_dir, None)
            except PreprocessError as exc:
                found.append(Problem(f"{at}.data.preference", str(exc).replace("\n", "\n    ")))
        elif pref.generated == "knowtuning" and raw.get("knowtuning") is None:
            found.append(Problem(f"{at}.data.preference.generated", "the recipe has no `knowtuning:` section to "
                                 "generate pairs; add one, or give path: to your own file", pref.generated))
    data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
    data_format = data.get("format", "chat")
    if data_format != "chat" and (stages or raw.get("knowtuning") is not None):
        found.append(Problem("data.format", "preference stages and KnowTuning train on chat-template conversations; "
                             "set data.format: chat", data_format))
    return found


def _combination_problems(recipe: Recipe) -> list[Problem]:
    """Settings that validate one by one but are known to fail together."""
    t, launch, method = recipe.training, recipe.launch, recipe.method.name
    found = []
    if method == "qlora" and launch.deepspeed == "zero3":
        found.append(Problem("launch.deepspeed", "QLoRA with ZeRO-3 fails to shard the 4-bit weights here; use zero2 or none", "zero3"))
    if method == "galore" and launch.deepspeed != "none":
        found.append(Problem("launch.deepspeed", "GaLore's optimizer does not run under DeepSpeed; use none (DDP)", launch.deepspeed))
    if launch.deepspeed == "zero3" and recipe.axolotl.get("liger_fused_linear_cross_entropy"):
        # Liger's fused loss reads lm_head.weight by attribute, so ZeRO-3 never gathers the shard: the step
        # crashes with a size mismatch (huggingface/trl#3368, explained in huggingface/trl#5891). The
        # templates render Liger's plain cross-entropy under ZeRO-3; only this override brings it back.
        found.append(Problem(
            "axolotl.liger_fused_linear_cross_entropy",
            "Liger's fused linear cross-entropy crashes with launch.deepspeed: zero3 (it reads the sharded lm_head "
            "weight directly); remove this override (under ZeRO-3 medtune uses Liger's plain cross-entropy) "
            "or use launch.deepspeed: zero2",
            True,
        ))
    if t.sample_packing is True and t.attention not in PACKING_SAFE_ATTENTION:
        found.append(Problem(
            "training.sample_packing",
            f"packing with attention '{t.attention}' lets packed samples attend to each other; "
            "use sdpa, eager, flex_attention or flash_attention_2 (CUDA), or set sample_packing: false",
            True,
        ))
    if launch.device == "cpu":
        if t.attention == "flash_attention_2":
            found.append(Problem("training.attention", "flash_attention_2 needs CUDA; on CPU use sdpa", t.attention))
        if t.precision in ("bf16", "fp16"):
            found.append(Problem("training.precision", "mixed precision is for CUDA here; on CPU use fp32", t.precision))
        if launch.gpus > 1:
            found.append(Problem("launch.gpus", "a CPU recipe runs one process; use --rehearse to try a multi-GPU recipe on CPU", launch.gpus))
        if launch.deepspeed != "none":
            found.append(Problem("launch.deepspeed", "DeepSpeed needs CUDA; use --rehearse to try it on CPU", launch.deepspeed))
    if t.tracking == "wandb" and "wandb_project" not in recipe.axolotl:
        found.append(Problem("training.tracking", "W&B needs a project: set axolotl.wandb_project", "wandb"))
    facts = models.lookup(recipe.model)
    if facts is not None and t.sequence_len > facts.max_context:
        found.append(Problem("training.sequence_len", f"longer than {recipe.model}'s context of {facts.max_context}", t.sequence_len))
    if launch.num_machines > 1 and not (launch.main_process_ip or launch.hostfile):
        found.append(Problem("launch.main_process_ip", "a multi-node run needs machine 0's address (or a hostfile)"))
    if launch.machine_rank >= launch.num_machines:
        found.append(Problem("launch.machine_rank", f"must be below num_machines ({launch.num_machines})", launch.machine_rank))
    return found


def _data_problems(raw_data: Any, base_dir: Path) -> list[Problem]:
    from ..preprocess.registry import check_source
    from ..preprocess.spec import SourceSpec

    problems = []
    if not isinstance(raw_data, dict):
        return problems
    for group in ("train", "eval"):
        for i, item in enumerate(raw_data.get(group) or []):
            try:
                src = SourceSpec.model_validate(item)
            except ValidationError:
                continue  # its schema errors are reported with the rest
            problems += [Problem(f"data.{group}[{i}].source", msg) for msg in check_source(src, base_dir)]
    return problems


def _axolotl_override_problems(raw: dict) -> list[Problem]:
    overrides = raw.get("axolotl")
    if not isinstance(overrides, dict) or not overrides:
        return []
    from .axolotl_check import unknown_key_problems

    plugins = tuple(overrides.get("plugins") or ())
    # Preprocess, eval and chat render the template the model's catalog entry pins (models/chat_template.py);
    # training on another would score the tuned model on prompts it never saw.
    pinned = [Problem(f"axolotl.{key}", "the chat template is the model's (its catalog entry, else its tokenizer's "
                      "own), which preprocess, eval and chat use too; remove this override", overrides[key])
              for key in ("chat_template", "chat_template_jinja", "chat_template_kwargs") if key in overrides]
    return pinned + unknown_key_problems(overrides, "axolotl.", plugins)


# ---------------------------------------------------------------- entry point


def load(path: str | Path, overrides: Iterable[str] = (), base_dir: Path | None = None) -> tuple[Recipe, dict]:
    """The validated recipe and the raw mapping it came from; RecipeError listing every problem otherwise.

    Relative paths in it start at base_dir: the recipe file's folder unless given (a resumed run's recipe copy
    names them relative to the original file).
    """
    path = Path(path)
    overrides = list(overrides)  # read twice when the recipe has a sweep
    raw = read_yaml(path)
    problems = apply_overrides(raw, overrides)
    base_dir = Path(base_dir) if base_dir is not None else path.resolve().parent
    recipe = None
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as exc:
        problems += validation_problems(exc, Recipe)
    if isinstance(raw.get("model"), str):
        problems += _model_problems(raw["model"], base_dir)
    problems += _data_problems(raw.get("data"), base_dir)
    problems += _axolotl_override_problems(raw)
    problems += _stage_problems(raw, base_dir)
    if recipe is not None:
        problems += _method_problems(recipe)
        if not any(p.path.startswith("method.name") for p in problems):
            problems += _combination_problems(recipe)
    if recipe is not None and recipe.sweep is not None and not problems:

        problems += _sweep_problems(path, overrides, recipe, base_dir)
    if problems:
        raise RecipeError(str(path), problems)
    return recipe, raw


def _metric_problem(recipe: Recipe, stage_names: set[str]) -> Problem | None:
    """The metric must be one the recipe measures; names are checked by family, as eval writes e.g. rouge1.
    stage_names: the later training stages of the recipe and its points, whose losses are columns too."""
    metric = recipe.sweep.metric if recipe.sweep else None
    stage_losses = sorted(stage_loss_column(name) for name in stage_names)
    if metric is None or metric in TRAINING_METRICS or metric in stage_losses:
        return None
    if metric.split(".")[0] in recipe.eval.suites or any(metric.startswith(m) for m in recipe.eval.metrics):
        return None
    allowed = (*TRAINING_METRICS, *stage_losses, *(f"{m}..." for m in recipe.eval.metrics),
               *(f"{s}.{field}" for s in recipe.eval.suites for field in ("acc", "gen_acc")))
    return Problem("sweep.metric", "not something this recipe measures", metric, allowed)


def _sweep_problems(path: Path, overrides: list[str], recipe: Recipe, base_dir: Path) -> list[Problem]:
    """Every point loaded like `--set` overrides of the file; each failure named by its point."""
    problems = []
    if recipe.sweep.lr_search and recipe.data.split.val == 0:  # the search picks by validation loss: it needs the rows
        problems.append(Problem("sweep.lr_search", "picks each point's rate by validation loss, but data.split.val is 0",
                                0, suggestion="hold out validation rows, e.g. data.split.val: 0.1"))
    stage_names = {stage.name for stage in recipe.stages}
    for point in expand(recipe.sweep):
        try:
            point_recipe, _ = load(path, point_overrides(recipe.name, point, overrides), base_dir)
            stage_names |= {stage.name for stage in point_recipe.stages}
        except RecipeError as exc:
            problems += [Problem(f"sweep point {point.label}: {p.path}", p.message, p.given, p.allowed, p.suggestion)
                         for p in exc.problems]
    return [p for p in [_metric_problem(recipe, stage_names)] if p] + problems
