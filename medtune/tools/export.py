"""`launch.py export RUN_DIR`: one self-contained model folder (merged weights + tokenizer) from a run's train/.

A LoRA/QLoRA adapter is merged into the unquantized base (peft merge_and_unload); full weights are
re-saved as they are. The tokenizer must end turns with the catalog's eos token, or generation from
the exported model would not stop.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..models import catalog as models
from ..core.console import console
from ..core.errors import MedtuneError
from .tuned import load, locate


def _check_eos(tokenizer, model_ref: str, where: str) -> None:
    facts = models.lookup(model_ref)
    if facts is not None and tokenizer.eos_token != facts.eos_token:
        raise MedtuneError(f"the tokenizer in {where} ends turns with {tokenizer.eos_token!r}, but {facts.key} needs "
                           f"{facts.eos_token!r}; an export with it would not stop generating")


def export_run(run_dir: Path, out: Path | None = None) -> Path:
    from transformers import AutoTokenizer

    run = locate(run_dir)
    out = out or run_dir / "export"
    _check_eos(AutoTokenizer.from_pretrained(run.tokenizer_dir), run.model_ref, run.tokenizer_dir)  # before the slow part
    console.print(f"exporting {run.describe()} -> {out}")
    model, tokenizer = load(run)
    if run.adapter:
        model = model.merge_and_unload()
    eos_id = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)
    # Generation stops on the config's eos id; keep it in step with the tokenizer's end-of-turn token.
    model.config.eos_token_id = eos_id
    model.generation_config.eos_token_id = eos_id
    if tokenizer.pad_token_id is not None:
        model.config.pad_token_id = model.generation_config.pad_token_id = tokenizer.pad_token_id
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "medtune_export.json").write_text(json.dumps({
        "run_dir": str(run_dir.resolve()), "base": run.base, "weights": str(run.weights), "merged_adapter": run.adapter,
        "tokenizer_from": run.tokenizer_dir, "eos_token": tokenizer.eos_token,
    }, indent=2) + "\n")

    _check_eos(AutoTokenizer.from_pretrained(out), run.model_ref, str(out))  # what a user loads back
    console.print(f"[green]exported[/green] {out} (eos {tokenizer.eos_token!r}, {'merged adapter' if run.adapter else 'full weights'})")
    return out
