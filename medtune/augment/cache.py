"""KnowTuning's augmentation, cached: the same training rows, options, system prompt and scoring model give the
first run's files again (cache_dir()/knowtuning/<key>/), without scoring a fact or asking a generator.

A sweep's points and seeds share one augmentation instead of each scoring every fact under the base model again
(a pass over the model per batch of facts), and with an LLM generator a rerun of a recipe trains on the same
generated data instead of paying for a new, different set.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..core.hashing import sha256_text
from ..models import catalog as models
from ..preprocess.cache import Store, make_key, output_hashes
from .knowtuning import (AUGMENTED_FILE, FACTS_FILE, PREFERENCES_FILE, SUMMARY_FILE, KnowTuningData,
                         build_knowtuning_data, read_knowtuning_data)
from .spec import KnowTuningSpec
from .writer import BASE_URL_ENV

VERSION = 1
"""Bump when build_knowtuning_data's output for the same inputs changes, so old entries are not reused."""
STORE = Store("knowtuning", (FACTS_FILE, AUGMENTED_FILE, PREFERENCES_FILE, SUMMARY_FILE))


def key_parts(train_rows: list[dict], spec: KnowTuningSpec, system_prompt: str | None) -> dict:
    """Everything the augmentation reads but the scoring model (an LLM generator's endpoint included, when the
    environment names it)."""
    endpoint = None if spec.generator == "offline" else spec.generator.base_url or os.environ.get(BASE_URL_ENV)
    return {"version": VERSION, "spec": spec.model_dump(mode="json"), "endpoint": endpoint, "system_prompt": system_prompt,
            "rows": sha256_text(json.dumps(train_rows, sort_keys=True, ensure_ascii=True))}


def knowtuning_data(train_rows: list[dict], spec: KnowTuningSpec, *, model_path: str, out_dir: Path,
                    system_prompt: str | None) -> tuple[KnowTuningData, str]:
    """build_knowtuning_data's result and files in out_dir, from the cache when an entry matches: (data, "hit" or
    "miss"). Without augmentation no fact is scored and the model is not part of the key; a model whose weights
    are not here yet is downloaded by the scoring, and its entry stored after."""
    parts = key_parts(train_rows, spec, system_prompt)
    if spec.augment:  # the device and its dtype can change which facts score hardest
        import torch

        parts["device"] = "cuda" if torch.cuda.is_available() else "cpu"
    weights = models.weights_identity(model_path) if spec.augment else "not scored"
    if weights is not None:
        key = make_key({**parts, "model": weights})
        if STORE.lookup(key) is not None:
            STORE.copy_out(key, out_dir)
            return read_knowtuning_data(train_rows, out_dir), "hit"
    built = build_knowtuning_data(train_rows, spec, model_path=model_path, out_dir=out_dir, system_prompt=system_prompt)
    weights = weights or models.weights_identity(model_path)
    if weights is not None:
        def write(folder: Path) -> dict:
            for name in STORE.outputs:
                shutil.copyfile(out_dir / name, folder / name)
            return {"model": model_path, "outputs": output_hashes(folder, STORE.outputs)}

        STORE.store(make_key({**parts, "model": weights}), write)
    return built, "miss"
