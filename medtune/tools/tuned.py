"""A run's tuned model, for chat and export: the base weights plus train/'s PEFT adapter, or train/'s full weights.

The tokenizer comes from train/ when training saved one there (it carries the chat template training
used), else from the base model.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from threading import Thread
from typing import Any, Iterator

import yaml

from ..models import catalog as models
from ..core.errors import MedtuneError


@dataclass(frozen=True)
class RunModel:
    run_dir: Path
    name: str
    model_ref: str
    """recipe.model as the run recorded it (catalog key, Hub id or path)."""
    base: str
    """Local folder (or Hub id) of the base weights."""
    weights: Path
    adapter: bool
    """True: weights holds a PEFT adapter for base; False: full weights."""
    tokenizer_dir: str
    system_prompt: str | None

    def describe(self) -> str:
        return f"{self.base} + adapter {self.weights}" if self.adapter else str(self.weights)


def _base_ref(run_dir: Path, ref: str) -> str:
    """A relative model path is relative to the recipe the run came from, as when it trained."""
    if models.lookup(ref) is None and ref.startswith("."):
        manifest = run_dir / "manifest.json"
        source = json.loads(manifest.read_text()).get("recipe_source") if manifest.is_file() else None
        if source:
            return str((Path(source).parent / ref).resolve())
    return ref


def locate(run_dir: Path) -> RunModel:
    """What to load for a run, checked before any ML library is imported."""
    resolved = run_dir / "recipe.resolved.yaml"
    if not resolved.is_file():
        raise MedtuneError(f"{run_dir}: not a run directory (no recipe.resolved.yaml)")
    recipe = yaml.safe_load(resolved.read_text()) or {}
    train = run_dir / "train"
    adapter = (train / "adapter_config.json").is_file()
    full = (train / "config.json").is_file() and any(train.glob("*.safetensors"))
    if not (adapter or full):
        raise MedtuneError(f"{train}: neither a PEFT adapter (adapter_config.json) nor model weights (config.json + "
                           f"*.safetensors); has the train stage finished? (python launch.py --resume {run_dir})")
    ref = str(recipe.get("model"))
    base = models.ensure_local(_base_ref(run_dir, ref))
    tokenizer_dir = str(train) if (train / "tokenizer_config.json").is_file() else base
    system_prompt = (recipe.get("data") or {}).get("system_prompt")
    return RunModel(run_dir, str(recipe.get("name") or run_dir.name), ref, base, train, adapter, tokenizer_dir, system_prompt)


def load(run: RunModel) -> tuple[Any, Any]:
    """(model, tokenizer) in eval mode; an adapter stays separate (chat) until export merges it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(run.tokenizer_dir)
        if run.adapter:
            from peft import PeftModel

            # A QLoRA adapter is applied to the unquantized base here: what export merges into, and fast on CPU.
            base = AutoModelForCausalLM.from_pretrained(run.base, dtype="auto")
            model = PeftModel.from_pretrained(base, str(run.weights))
        else:
            model = AutoModelForCausalLM.from_pretrained(str(run.weights), dtype="auto")
    except OSError as exc:  # weights not on disk (and the Hub offline or unreachable)
        raise MedtuneError(f"cannot load {run.describe()}: {exc}") from None
    model.eval()
    return model, tokenizer


def messages_for(system_prompt: str | None, history: list[dict], question: str) -> list[dict]:
    """The conversation as training saw it: the recipe's system turn, earlier turns, then the question."""
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [*system, *history, {"role": "user", "content": question}]


def stream_answer(model, tokenizer, messages: list[dict], max_new_tokens: int, temperature: float = 0.0) -> Iterator[str]:
    """Yield the answer's text as it is generated, with the tokenizer's chat template and its end-of-turn token."""
    from transformers import TextIteratorStreamer

    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    settings = dict(max_new_tokens=max_new_tokens, streamer=streamer, eos_token_id=tokenizer.eos_token_id,
                    pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
                    do_sample=temperature > 0)
    if temperature > 0:
        settings["temperature"] = temperature
    errors: list[BaseException] = []

    def generate() -> None:
        try:
            model.generate(**inputs, **settings)
        except BaseException as exc:  # the streamer would wait forever for text; end it and re-raise below
            errors.append(exc)
            streamer.end()

    thread = Thread(target=generate, daemon=True)
    thread.start()
    yield from streamer
    thread.join()
    if errors:
        raise errors[0]
