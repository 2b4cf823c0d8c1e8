"""`launch.py RECIPE --rehearse`: the recipe's distributed path (DDP or DeepSpeed ZeRO) on CPU, small.

Two CPU processes train SmolLM2-135M for a few steps with the recipe's method and ZeRO stage, so a
broken multi-GPU recipe fails here, in minutes, instead of on a rented GPU node. What changes and why:

- model: smollm2-135m-instruct (the GPU recipes' models are too big for CPU, and not on this machine);
- launch: 2 CPU processes on one machine, same deepspeed stage; medtune/launch/rehearse_child.py gives the
  ranks the gloo backend and CPU placement that Axolotl would otherwise route to CUDA;
- training: 3 steps of one 256-token sequence, fp32, sdpa, no Liger/checkpointing, one checkpoint;
- data: the recipe's sources, 48 rows each; a source read from the Hub (no local path) is replaced by
  the project's demo MedQuAD file, since a rehearsal must run offline.

The normal combination check (CPU recipes run one process, DeepSpeed needs CUDA) still applies to
every recipe: `load()` runs it before the rehearsal changes anything.
"""
from __future__ import annotations

from ..core.console import console
from ..core.paths import REPO_ROOT
from ..preprocess.sources import custom
from ..preprocess.spec import DataSpec, SourceSpec
from ..recipe.schema import Recipe

MODEL = "smollm2-135m-instruct"
PROCESSES = 2
MAX_STEPS = 3
ROWS_PER_SOURCE = 48
DEMO_DATA = REPO_ROOT / "data" / "demo" / "medquad_demo.csv"


def _is_local(src: SourceSpec) -> bool:
    """Whether a source reads files on this machine (its own file, or a named dataset given a path)."""
    return src.path is not None or custom.is_custom(src.source)


def _limited(src: SourceSpec) -> SourceSpec:
    return src.model_copy(update={"limit": min(src.limit or ROWS_PER_SOURCE, ROWS_PER_SOURCE)})


def _rehearsal_data(data: DataSpec) -> DataSpec:
    train = [_limited(src) for src in data.train if _is_local(src)]
    from_hub = [src.source for src in data.train if not _is_local(src)]
    if from_hub:
        # One demo source stands in for all of them: several copies would only duplicate rows.
        train.append(SourceSpec(source="medquad", path=str(DEMO_DATA), limit=ROWS_PER_SOURCE))
        console.print(f"[yellow]rehearsal:[/yellow] data source(s) {', '.join(from_hub)} come from the Hub, which a "
                      f"rehearsal does not reach; training on the demo MedQuAD rows in {DEMO_DATA.relative_to(REPO_ROOT)} instead")
    # Extra eval sources only feed the eval stage, which a rehearsal does not run; local ones are kept
    # (small) so preprocess still reads them, Hub ones are left out for the same reason as above.
    eval_sources = [_limited(src) for src in data.eval if _is_local(src)]
    skipped = [src.source for src in data.eval if not _is_local(src)]
    if skipped:
        console.print(f"[yellow]rehearsal:[/yellow] left out eval source(s) {', '.join(skipped)} (Hub; not used by train)")
    return data.model_copy(update={"train": train, "eval": eval_sources})


def rehearsal_recipe(recipe: Recipe) -> Recipe:
    """A copy of a loaded recipe that rehearses its distributed training on CPU (see the module docstring).

    Every `auto` setting is given a concrete value: Recipe resolves `auto` in a validator, which
    model_copy does not run.
    """
    # The method stays as it is: lora, qlora (bitsandbytes' CPU backend), full and galore all train in
    # 2 CPU processes (measured with the shipped recipes).
    training = recipe.training.model_copy(update={
        "max_steps": MAX_STEPS,
        "micro_batch_size": 1,
        "gradient_accumulation_steps": 1,
        "sequence_len": 256,
        "precision": "fp32",
        "attention": "sdpa",
        "sample_packing": recipe.training.sample_packing is True,  # sdpa keeps packed samples apart
        "liger": False,  # Liger's kernels are Triton (CUDA)
        "gradient_checkpointing": False,
        "save_steps": MAX_STEPS,
        "eval_steps": MAX_STEPS,
        "optimizer": "galore_adamw" if recipe.method.name == "galore" else "adamw_torch",
        "tracking": "none",  # a rehearsal's metrics are not worth a tracker run, and nothing leaves the machine
    })
    # deepspeed and zero3_offload stay: ZeRO-1/2/3 and ZeRO-3 offload (DeepSpeed's CPU Adam, compiled on
    # first use) all run over gloo.
    launch = recipe.launch.model_copy(update={
        "device": "cpu",
        "gpus": PROCESSES,  # render() turns gpus x num_machines into accelerate's num_processes
        "num_machines": 1,
        "machine_rank": 0,
        "main_process_ip": None,
        "hostfile": None,
    })
    return recipe.model_copy(update={
        "name": f"{recipe.name}-rehearsal",  # its own runs/ folder: `--resume latest` never mixes it with real runs
        "model": MODEL,
        "training": training,
        "launch": launch,
        "data": _rehearsal_data(recipe.data),
    })
