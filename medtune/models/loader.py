"""Which model to evaluate (base, base + PEFT adapter, or a full-weights folder) and loading it for inference."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from ..core.errors import MedtuneError
from .catalog import ensure_local

TunedKind = Literal["adapter", "full"]


@dataclass(frozen=True)
class ModelRef:
    label: str
    """How the model is named in generations.jsonl and metrics.json: base or tuned."""
    base: str
    """The base model: catalog key, Hub id or local folder."""
    adapter: str | None = None
    """A PEFT adapter folder loaded on top of base."""
    full: str | None = None
    """A full-weights folder used instead of base."""

    def weights_source(self) -> str:
        return self.full or ensure_local(self.base)

    def identity(self) -> str:
        """A fingerprint of the weights, so resumed generations are only reused for the same model.

        An adapter counts by content (small, and a copied run directory keeps its generations); a
        full-weights folder by file sizes and times (hashing gigabytes would cost more than it saves).
        """
        digest = hashlib.sha256(self.weights_source().encode())
        if self.adapter:
            for path in sorted(Path(self.adapter).iterdir()):
                if path.is_file() and (path.suffix in (".safetensors", ".bin") or path.name == "adapter_config.json"):
                    digest.update(path.name.encode() + path.read_bytes())
        if self.full:
            for path in sorted(Path(self.full).glob("*.safetensors")) + sorted(Path(self.full).glob("*.bin")):
                stat = path.stat()
                digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        return digest.hexdigest()[:16]


def model_refs(base_model: str, tuned: str | None, tuned_kind: TunedKind | None, *, baseline: bool) -> list[ModelRef]:
    """The models one evaluation compares, base first."""
    source = ensure_local(base_model)
    if not Path(source).is_dir() and (source.startswith((".", "/", "~")) or source.count("/") != 1):
        raise MedtuneError(f"model {base_model!r} is neither a catalog key, a local folder nor a Hub id (owner/name)")
    refs = [ModelRef("base", base_model)] if baseline or tuned is None else []
    if tuned is not None:
        if tuned_kind not in ("adapter", "full"):
            raise MedtuneError(f"tuned_kind must be 'adapter' or 'full' for tuned model {tuned}, got {tuned_kind!r}")
        folder = Path(tuned).expanduser()
        marker = "adapter_config.json" if tuned_kind == "adapter" else "config.json"
        if not (folder / marker).is_file():
            raise MedtuneError(f"{folder} has no {marker}: not a {'PEFT adapter' if tuned_kind == 'adapter' else 'model'} folder")
        field = {"adapter": str(folder.resolve())} if tuned_kind == "adapter" else {"full": str(folder.resolve())}
        refs.append(ModelRef("tuned", base_model, **field))
    return refs


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _grouped_query_attention(model) -> None:
    """On CPU, sdpa without its per-step copy of the KV cache for grouped-query models (see models.attention)."""
    from .attention import register

    if model.config._attn_implementation == "sdpa" and model._can_set_attn_implementation():
        model.set_attn_implementation(register())


def load(ref: ModelRef):
    """The model (eval mode, on the device) and the tokenizer it was trained with."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = ref.weights_source()
    # Training may save a tokenizer with the adapter (Axolotl does); it is the one the adapter saw.
    tokenizer_source = ref.adapter if ref.adapter and (Path(ref.adapter) / "tokenizer_config.json").is_file() else source
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
        # fp32 on CPU: half precision is slow there and changes greedy outputs.
        dtype = "auto" if device().type == "cuda" else torch.float32
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    except OSError as err:
        raise MedtuneError(f"cannot load model {source}: {err}") from err
    if ref.adapter:
        from peft import PeftModel

        # Merged into the base weights: the same model up to float rounding, and generation no longer
        # pays the adapter's extra matmuls and Python hooks on every layer (about 2x on CPU).
        model = PeftModel.from_pretrained(model, ref.adapter).merge_and_unload()
    if device().type == "cpu":
        _grouped_query_attention(model)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # only used to fill padding positions, which are masked
    return model.to(device()).eval(), tokenizer
