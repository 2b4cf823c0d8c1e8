"""The one model loader for eval, chat and export: what to load (base, base + adapter, full weights, a 4-bit
base under a QLoRA adapter), found once from a run directory, and loaded with one dtype and merge policy.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..core.console import hide_weight_loading_bars
from ..core.errors import MedtuneError
from ..core.rundir import RunDir
from .catalog import ensure_local, lookup
from .chat_template import chat_template

# Methods whose training loads the base in 4 bits (their template in templates/methods/ sets
# `load_in_4bit: true`); a run of one is measured, chatted with and exported on that 4-bit base.
# tests/test_loader.py checks this set against the templates.
FOUR_BIT_METHODS = frozenset({"qlora"})


@dataclass(frozen=True)
class ModelRef:
    label: str
    """How the model is named in generations.jsonl and metrics.json: base or tuned (judge for a judge model)."""
    base: str
    """The base model: catalog key, Hub id or local folder (a run's relative path already made absolute)."""
    adapter: str | None = None
    """A PEFT adapter folder loaded on top of base."""
    full: str | None = None
    """A full-weights folder used instead of base."""
    quantized_4bit: bool = False
    """Load base in 4 bits (bitsandbytes NF4, as QLoRA trained it) and keep the adapter unmerged on top of it."""

    def weights_source(self) -> str:
        return self.full or ensure_local(self.base)

    def tokenizer_source(self) -> str:
        """The tokenizer training saved beside its output (it carries the chat template training used), else the base's."""
        trained = self.adapter or self.full
        if trained and (Path(trained) / "tokenizer_config.json").is_file():
            return trained
        return self.weights_source()

    def describe(self) -> str:
        if self.full:
            return f"full weights {self.full}" + (f" + adapter {self.adapter}" if self.adapter else "")
        base = f"{self.base} (4-bit NF4)" if self.quantized_4bit else self.base
        return f"{base} + adapter {self.adapter}" if self.adapter else base

    def identity(self) -> str:
        """A fingerprint of the weights, so resumed generations are only reused for the same model.

        An adapter counts by content (small, and a copied run directory keeps its generations); a
        full-weights folder by file sizes and times (hashing gigabytes would cost more than it saves).
        """
        digest = hashlib.sha256(self.weights_source().encode())
        if self.quantized_4bit:
            digest.update(b"bnb-nf4")
        if self.adapter:
            for path in sorted(Path(self.adapter).iterdir()):
                if path.is_file() and (path.suffix in (".safetensors", ".bin") or path.name == "adapter_config.json"):
                    digest.update(path.name.encode() + path.read_bytes())
        if self.full:
            for path in sorted(Path(self.full).glob("*.safetensors")) + sorted(Path(self.full).glob("*.bin")):
                stat = path.stat()
                digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        return digest.hexdigest()[:16]


# ---------------------------------------------------------------- what to load


def base_ref(model: str, *, recipe_dir: Path | None = None, label: str = "base") -> ModelRef:
    """A base model by catalog key, Hub id or folder; a relative folder starts at recipe_dir (else the working directory)."""
    if lookup(model) is None and model.startswith(".") and recipe_dir is not None:
        model = str((recipe_dir / model).resolve())
    source = ensure_local(model)
    if not Path(source).is_dir() and (source.startswith((".", "/", "~")) or source.count("/") != 1):
        raise MedtuneError(f"model {model!r} is neither a catalog key, a local folder nor a Hub id (owner/name)")
    return ModelRef(label, model)


def adapter_ref(base: ModelRef, adapter: str | Path, *, quantized_4bit: bool = False, label: str = "tuned") -> ModelRef:
    """base with a PEFT adapter folder on top."""
    folder = Path(adapter).expanduser()
    if not (folder / "adapter_config.json").is_file():
        raise MedtuneError(f"{folder}: no adapter_config.json there, so not a PEFT adapter folder")
    return replace(base, label=label, adapter=str(folder.resolve()), quantized_4bit=quantized_4bit)


def run_refs(run: RunDir) -> tuple[ModelRef, ModelRef]:
    """(base, tuned) of a run: the recipe's model, and it with what training left in train/.

    The base is the recipe's model as published (unquantized, also for a QLoRA run), so every run of one
    model shares one base measurement; the tuned model is loaded as it trained (see ModelRef.quantized_4bit).
    """
    recipe = run.resolved_recipe()
    model = recipe.get("model")
    if not isinstance(model, str):
        raise MedtuneError(f"{run.resolved}: no `model:` naming the base model")
    recipe_dir = run.recipe_dir()
    if recipe_dir is None and lookup(model) is None and model.startswith("."):
        raise MedtuneError(f"{run.resolved}: model {model!r} is relative to the recipe file, but {run.manifest} does "
                           "not say which recipe file the run came from (recipe_source); write the model's absolute path there")
    base = base_ref(model, recipe_dir=recipe_dir)
    trained = run.trained_weights()
    if trained is None:
        raise MedtuneError(f"{run.final_train()}: neither a PEFT adapter (adapter_config.json) nor model weights "
                           f"(config.json + *.safetensors); has the train stage finished? (python launch.py --resume {run.path})")
    folder, kind = trained
    stages = run.stage_names()
    if kind == "full":
        return base, replace(base, label="tuned", full=str(folder.resolve()))
    method = (recipe.get("method") or {}).get("name")
    quantized = method in FOUR_BIT_METHODS
    if stages:
        # A later stage's adapter trained on the stage before's weights merged into the base (train-<stage>/start/).
        start = run.stage_start(stages[-1])
        return base, adapter_ref(replace(base, full=str(start.resolve())), folder, quantized_4bit=quantized)
    return base, adapter_ref(base, folder, quantized_4bit=quantized)


def tuned_ref(run: RunDir) -> ModelRef:
    """The run's tuned model (chat and export)."""
    return run_refs(run)[1]


# ---------------------------------------------------------------- loading


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _dtype():
    """fp32 on CPU: half precision is slow there and changes greedy outputs. On CUDA the checkpoint's own."""
    return "auto" if device().type == "cuda" else torch.float32


def _compute_dtype() -> torch.dtype:
    """What a 4-bit base computes in: as Axolotl's training (bf16 where the GPU has it, fp32 on CPU)."""
    if device().type == "cpu":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _weights(ref: ModelRef):
    """The base (or full) weights: in the dtype policy, or quantized to 4 bits for a QLoRA adapter."""
    from transformers import AutoModelForCausalLM

    hide_weight_loading_bars()
    source = ref.weights_source()
    try:
        if not ref.quantized_4bit:
            return AutoModelForCausalLM.from_pretrained(source, dtype=_dtype())
        from transformers import BitsAndBytesConfig

        # The settings Axolotl trains QLoRA with (its model loader, for `adapter: qlora` + `load_in_4bit`).
        # No device_map: transformers puts a bitsandbytes model on the GPU when there is one, else on the CPU.
        compute = _compute_dtype()
        quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                          bnb_4bit_compute_dtype=compute, bnb_4bit_quant_storage=torch.bfloat16)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=compute, quantization_config=quantization)
    except OSError as err:  # weights not on disk (and the Hub offline or unreachable)
        raise MedtuneError(f"cannot load model {source}: {err}") from None
    except ImportError as err:  # bitsandbytes missing or too old for this device
        raise MedtuneError(f"cannot load {source} in 4 bits as its QLoRA run trained: {err}") from None
    if device().type == "cpu":
        _compute_as_in_training(model)
    return model


def _compute_as_in_training(model) -> None:
    """On CPU, 4-bit layers compute as training's did: NF4 dequantized to fp32, then the matmul.

    In eval mode bitsandbytes' CPU backend would repack them for a bf16 kernel (where the CPU has AVX512-BF16):
    about 2x faster, but on SmolLM2 with a QLoRA adapter it moved logits by up to 1.4 and changed the greedy
    answer within ten tokens (measured); the reason this loader keeps CPU models in fp32.
    """
    from bitsandbytes.nn import Linear4bit

    for module in model.modules():
        if isinstance(module, Linear4bit):
            module.support_avx512bf16_for_cpu = False


def load_tokenizer(ref: ModelRef):
    """The tokenizer eval, chat and export use, with the chat template the model trains with
    (models.chat_template): base and tuned models get the same prompts, and the same prompts every day.

    A tokenizer training saved must carry that template already: another one means the run trained on
    prompts this model is not evaluated with.
    """
    from transformers import AutoTokenizer

    source = ref.tokenizer_source()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except OSError as err:
        raise MedtuneError(f"cannot load the tokenizer of {source}: {err}") from None
    template = chat_template(ref.base, tokenizer)
    # A base model has none (models.chat_template): its plain-text prompts never read the saved tokenizer's.
    if template is not None and source in (ref.adapter, ref.full) and tokenizer.chat_template != template:
        raise MedtuneError(f"{source}: training saved a tokenizer whose chat template is not the one {ref.base} is "
                           "evaluated with (models/chat_template.py), so its answers would be scored on prompts it "
                           "did not train on; train the run again with this version of medtune and Axolotl")
    tokenizer.chat_template = template
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # only used to fill padding positions, which are masked
    return tokenizer


def _grouped_query_attention(model) -> None:
    """On CPU, sdpa without its per-step copy of the KV cache for grouped-query models (see models.attention)."""
    from .attention import register

    if model.config._attn_implementation == "sdpa" and model._can_set_attn_implementation():
        model.set_attn_implementation(register())


def load(ref: ModelRef):
    """The model (eval mode, on the device) and its tokenizer, the same for eval and chat.

    A LoRA adapter is merged into its base: the same model up to float rounding, and generation no longer
    pays the adapter's extra matmuls and Python hooks on every layer (about 2x on CPU). A QLoRA adapter
    stays unmerged on its 4-bit base: merging would re-quantize the sum, and the model would no longer be
    the one that trained.
    """
    tokenizer = load_tokenizer(ref)
    model = _weights(ref)
    if device().type == "cpu":
        _grouped_query_attention(model)
    if ref.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, ref.adapter)
        if not ref.quantized_4bit:
            model = model.merge_and_unload()
    if not ref.quantized_4bit:  # a bitsandbytes model is placed while it loads and cannot be moved
        model = model.to(device())
    return model.eval(), tokenizer


def load_merged(ref: ModelRef):
    """For export: (model, tokenizer, what the adapter was merged into, or None for full weights); one plain model.

    A QLoRA base is loaded in 4 bits as in training, then dequantized to the compute dtype, and the adapter
    merged into that: the exported weights compute what eval measured (the base's 4-bit rounding
    included), in full precision. Merging into the original unquantized base instead would give a model
    that neither trained nor was measured.
    """
    tokenizer = load_tokenizer(ref)
    model = _weights(ref)
    if ref.quantized_4bit:
        # Before any forward pass: bitsandbytes' CPU backend repacks the 4-bit weights on the first one.
        model = model.dequantize()
    dtype = str(model.dtype).removeprefix("torch.")
    if not ref.adapter:
        return model.eval(), tokenizer, None
    from peft import PeftModel

    model = PeftModel.from_pretrained(model, ref.adapter).merge_and_unload()
    if ref.quantized_4bit:
        into = (f"its base {ref.base} loaded in 4 bits (bitsandbytes NF4, as QLoRA trained it) and dequantized to "
                f"{dtype}: the export computes what eval measured, the base's 4-bit rounding included, not the "
                "original unquantized base")
    else:
        into = f"its base {ref.base} in {dtype}"
    return model.eval(), tokenizer, into
