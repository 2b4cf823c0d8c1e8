"""`launch.py export RUN_DIR`: one self-contained model folder (merged weights + tokenizer) from a run's train/.

models.loader.load_merged decides what an adapter is merged into (a LoRA adapter: the base weights; a
QLoRA adapter: its 4-bit base dequantized, what training and eval used) and says so; that sentence goes
to the console and into medtune_export.json. The tokenizer must end turns with the catalog's eos token,
or generation from the exported model would not stop.
"""
from __future__ import annotations

from pathlib import Path

from ..core.console import console
from ..core.errors import MedtuneError
from ..core.rundir import RunDir, write_json_atomic
from ..models import catalog as models

EXPORT_MANIFEST = "medtune_export.json"


def _check_eos(tokenizer, model_ref: str, where: str) -> None:
    facts = models.lookup(model_ref)
    if facts is not None and tokenizer.eos_token != facts.eos_token:
        raise MedtuneError(f"the tokenizer in {where} ends turns with {tokenizer.eos_token!r}, but {facts.key} needs "
                           f"{facts.eos_token!r}; an export with it would not stop generating")


def export_run(run_dir: Path, out: Path | None = None) -> Path:
    from transformers import AutoTokenizer

    from ..models.loader import load_merged, tuned_ref

    run = RunDir.open(run_dir, "export")
    ref = tuned_ref(run)
    out = out or run.path / "export"
    tokenizer_from = ref.tokenizer_source()
    _check_eos(AutoTokenizer.from_pretrained(tokenizer_from), ref.base, tokenizer_from)  # before the slow part
    console.print(f"exporting {ref.describe()} -> {out}", markup=False)
    model, tokenizer, merged_into = load_merged(ref)
    dtype = str(model.dtype).removeprefix("torch.")
    console.print(f"  the adapter is merged into {merged_into}" if merged_into else f"  full weights, saved in {dtype}",
                  markup=False)
    eos_id = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)
    # Generation stops on the config's eos id; keep it in step with the tokenizer's end-of-turn token.
    model.config.eos_token_id = eos_id
    model.generation_config.eos_token_id = eos_id
    if tokenizer.pad_token_id is not None:
        model.config.pad_token_id = model.generation_config.pad_token_id = tokenizer.pad_token_id
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    write_json_atomic(out / EXPORT_MANIFEST, {
        "run_dir": str(run.path.resolve()), "base": ref.base, "adapter": ref.adapter, "full_weights": ref.full,
        "trained_on_4bit_base": ref.quantized_4bit, "merged_into": merged_into,
        "dtype": dtype, "tokenizer_from": tokenizer_from,
        "eos_token": tokenizer.eos_token,
    })

    _check_eos(AutoTokenizer.from_pretrained(out), ref.base, str(out))  # what a user loads back
    console.print(f"[green]exported[/green] {out} (eos {tokenizer.eos_token!r}, "
                  f"{'merged adapter' if ref.adapter else 'full weights'})")
    return out
