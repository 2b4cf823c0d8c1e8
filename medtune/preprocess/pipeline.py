"""The preprocess stage's entry point: DataSpec -> train/val/test JSONL + manifest.json, through the cache."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import cache
from . import tokens
from .build import Built, build
from .drops import total
from .errors import PreprocessError
from .format import FORMATTER_VERSION
from .layouts import TEMPLATED
from ..core.hashing import sha256_file
from .inputs import Input, open_input
from .records import SPLITS
from .spec import DataSpec

MAX_PROBLEMS = 50


def open_inputs(spec: DataSpec, base_dir: Path | None) -> list[Input]:
    inputs = [open_input("train", i, src, base_dir) for i, src in enumerate(spec.train)]
    return inputs + [open_input("eval", i, src, base_dir) for i, src in enumerate(spec.eval)]


def _options(spec: DataSpec, sequence_len: int | None, tokenizer_fp: dict | None) -> dict:
    dumped = spec.model_dump(mode="json")
    return {"format": spec.format, "split": dumped["split"], "system_prompt": dumped["system_prompt"],
            "disclaimer": dumped["disclaimer"], "sequence_len": sequence_len, "tokenizer": tokenizer_fp,
            "formatter_version": FORMATTER_VERSION}


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def _manifest(spec: DataSpec, inputs: list[Input], built: Built, options: dict, folder: Path, seconds: float) -> dict:
    sources = []
    for inp, tally, official in zip(inputs, built.tallies, built.official):
        sources.append({
            **inp.describe(), "options": inp.spec.model_dump(mode="json", exclude={"source", "path"}),
            "read": tally.read, "dropped": tally.counts(), "dedup": dict(tally.dedup), "official_split": official,
        })
    problems = [f"{inp.label}: {e}" for inp, tally in zip(inputs, built.tallies) for e in tally.examples][:MAX_PROBLEMS]
    outputs = {f"{name}.jsonl": {"rows": len(built.rows[name]), "sha256": sha256_file(folder / f"{name}.jsonl"),
                                 "bytes": (folder / f"{name}.jsonl").stat().st_size} for name in SPLITS}
    dedup = {"exact": sum(t.dedup["exact"] for t in built.tallies), "normalized": sum(t.dedup["normalized"] for t in built.tallies)}
    return {
        "stage": "preprocess",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(seconds, 3),
        "counts": {name: len(built.rows[name]) for name in SPLITS},
        "dropped": total(built.tallies),
        "too_long_by_split": built.too_long,
        "dedup": dedup,
        "leakage": built.leakage,
        "sources": sources,
        "problems": problems,
        "options": options,
        "outputs": outputs,
    }


def prepare(spec: DataSpec, out_dir: Path, *, tokenizer: Any = None, sequence_len: int | None = None,
            base_dir: Path | None = None) -> dict:
    """Write out_dir/{train,val,test}.jsonl and manifest.json for a recipe's `data:` section; return the manifest.

    Relative source paths resolve against base_dir (the recipe's folder), then the current dir.
    `tokenizer` (an object, or a model folder / Hub id) with `sequence_len` drops training rows whose
    rendering (chat template, or plain-text segments) is longer than sequence_len tokens; the instruction and
    completion formats always need it, for the model's BOS/EOS texts. Unchanged inputs and options are
    served from the cache (the manifest then says "cache": "hit").
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    chat = spec.format == "chat"
    wanted = sequence_len is not None or spec.format in TEMPLATED
    tok = tokens.load_tokenizer(tokenizer, chat=chat) if wanted else None
    if wanted and tok is None:
        need = "sequence_len needs a tokenizer to count tokens with" if sequence_len is not None else \
            f"format {spec.format} frames rows with the model's BOS/EOS tokens, so it needs the model's tokenizer"
        raise PreprocessError(need, fix="pass tokenizer= (the model's); CLI: --tokenizer MODEL")
    options = _options(spec, sequence_len, tokens.fingerprint(tok, chat=chat) if tok is not None else None)
    inputs = open_inputs(spec, base_dir)
    key = cache.make_key({"options": options, "inputs": [inp.key_part() for inp in inputs]})

    cached = cache.DATA.lookup(key)
    if cached is not None:
        cached["sources"] = [{**entry, **inp.describe()} for entry, inp in zip(cached["sources"], inputs)]
        return cache.export(key, out_dir, cached, "hit")

    def write(folder: Path) -> dict:
        built = build(spec, inputs, tok, sequence_len)
        for name in SPLITS:
            _write_jsonl(folder / f"{name}.jsonl", built.rows[name])
        return _manifest(spec, inputs, built, options, folder, time.perf_counter() - started)

    return cache.export(key, out_dir, cache.DATA.store(key, write), "miss")
