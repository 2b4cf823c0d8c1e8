"""Later training stages: the weights each starts from, made from what the stage before left.

An adapter stage before is merged into its base (medtune's one loader, as export merges), and the merged model is
saved into the later stage's own folder (train-<stage>/start/), which its config names as base_model; the stage
then trains a fresh adapter of the same shape on it. So the model the stage starts from is exactly the one the
stage before trained, and for DPO and KTO the reference model (TRL's PEFT path: the adapter disabled) is that
same model, as in the papers (the SFT model is the reference), without a second copy in memory.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

from ..core.console import console
from ..core.errors import MedtuneError
from ..core.rundir import RunDir, weights_in
from ..models.loader import FOUR_BIT_METHODS, ModelRef, adapter_ref, base_ref, load_merged
from ..recipe.schema import Recipe
from .render import RenderedStage

MERGED_FROM = "merged_from.json"
"""Written last into start/: which adapter (by content) the merged weights came from."""


def previous_ref(run: RunDir, recipe: Recipe, stage: RenderedStage, recipe_dir: Path) -> ModelRef:
    """The model the stage before left: the recipe's base + train/'s adapter, or an earlier stage's start + adapter."""
    folder = run.path / stage.previous_output
    trained = weights_in(folder)
    if trained is None or trained[1] != "adapter":
        raise MedtuneError(f"{folder}: no adapter there for stage '{stage.name}' to start from; has the stage before "
                           f"finished? (python launch.py --resume {run.path})")
    base = base_ref(recipe.model, recipe_dir=recipe_dir)
    if stage.previous_output != RunDir.TRAIN:  # an earlier later stage: its own merged start is its base
        base = replace(base, full=str((folder / RunDir.STAGE_START).resolve()))
    return adapter_ref(base, folder, quantized_4bit=recipe.method.name in FOUR_BIT_METHODS)


def prepare_start(run: RunDir, recipe: Recipe, stage: RenderedStage, recipe_dir: Path) -> dict:
    """Make train-<stage>/start/ (merged weights and tokenizer) unless it already holds this very merge."""
    if not stage.merge:
        return {"start": stage.start}
    ref = previous_ref(run, recipe, stage, recipe_dir)
    start = run.path / stage.start
    identity = {"adapter": stage.previous_output, "identity": ref.identity()}
    marker = start / MERGED_FROM
    if marker.is_file() and json.loads(marker.read_text()) == identity:
        return {"start": stage.start, "merged": "reused"}
    console.print(f"  {stage.name}: merging the adapter in {stage.previous_output}/ into its base -> {stage.start}/")
    model, tokenizer, into = load_merged(ref)
    partial = start.with_name(start.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial, safe_serialization=True)
    tokenizer.save_pretrained(partial)
    (partial / MERGED_FROM).write_text(json.dumps(identity, indent=2) + "\n")
    shutil.rmtree(start, ignore_errors=True)
    partial.rename(start)
    return {"start": stage.start, "merged": into}


def drop_base_copy(output: Path) -> list[str]:
    """Delete the copy of the start weights Axolotl saves beside a preference stage's adapter; return what went.

    Axolotl's RL path saves the adapter and then the whole wrapped base model too (axolotl/train.py,
    save_trained_model: `model.save_pretrained(cfg.output_dir)` after `trainer.model.save_pretrained`), so
    train-<stage>/ would hold start/'s weights a second time (6 GB for a 3B model in bf16). The adapter is
    what the stage trained; start/ keeps the weights it sits on.
    """
    if not (output / "adapter_config.json").is_file():
        return []
    dropped = []
    for path in [*output.glob("model*.safetensors"), *output.glob("model.safetensors.index.json"),
                 *output.glob("pytorch_model*.bin")]:
        path.unlink()
        dropped.append(path.name)
    return dropped
