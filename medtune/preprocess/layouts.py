"""The prompt formats (`data.format`): how a question and its answer become the tokens training and eval both see.

- chat: `messages` rendered by the model's chat template (models/chat_template.py); the default.
- instruction, completion: plain text for base models (no chat template). A named template in
  medtune/templates/formats/<name>.yaml renders the prompt; a row carries Axolotl `input_output` segments:
  [BOS] and the prompt (not trained), then the answer with the end-of-sequence token (trained). Axolotl's
  input_output strategy tokenizes each segment alone with no special tokens added; `segment_ids` does exactly
  that, so evaluation's prompt is token for token the start of the training row.
- text: every token trained (continued pretraining on documents): a `text` row for Axolotl's `completion` type,
  which adds the tokenizer's BOS and EOS itself and cuts a long document into sequence_len pieces.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import yaml

from ..core.paths import TEMPLATES_DIR
from .errors import PreprocessError

FORMATS = ("chat", "instruction", "completion", "text")
TEMPLATED = ("instruction", "completion")
"""The formats a template file in medtune/templates/formats/ renders."""
FORMATS_DIR = TEMPLATES_DIR / "formats"


@dataclass(frozen=True)
class Layout:
    """One plain-text prompt template (a file in medtune/templates/formats/)."""

    name: str
    description: str
    instruction: str | None
    """The instruction line the template shows when the recipe sets no system_prompt."""
    uses_system_prompt: bool
    """Whether data.system_prompt has a place in this layout (it replaces the instruction line)."""
    prompt: str
    """Jinja source of the prompt; it ends where the trained answer starts."""

    def render(self, variables: dict[str, Any], system_prompt: str | None) -> str:
        from jinja2 import Environment, StrictUndefined

        # keep_trailing_newline: the prompt's last newline separates it from the answer and must survive.
        env = Environment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
        return env.from_string(self.prompt).render(**variables, instruction=system_prompt or self.instruction)


@lru_cache(maxsize=None)
def layout(name: str) -> Layout:
    if name not in TEMPLATED:
        raise ValueError(f"format {name!r} has no template file; templated formats: {', '.join(TEMPLATED)}")
    raw = yaml.safe_load((FORMATS_DIR / f"{name}.yaml").read_text())
    return Layout(name=name, **raw)


@dataclass(frozen=True)
class Specials:
    """The special-token texts a plain-text row is framed with."""

    bos: str
    """The BOS token's text where the tokenizer starts every text with it (Llama, Mistral), else ""."""
    eos: str
    """The end-of-sequence token's text, trained after every answer so the model learns to stop."""


def specials(tokenizer: Any) -> Specials:
    """BOS as a plain tokenizer call adds it, and EOS; each must tokenize back to its single id, or the row's
    text would not train the token it names."""
    eos, eos_id = tokenizer.eos_token, tokenizer.eos_token_id
    if not eos or eos_id is None:
        raise PreprocessError(f"the tokenizer of '{tokenizer.name_or_path}' has no end-of-sequence token, so a model "
                              "trained on it could not learn to stop", fix="use the model's own tokenizer")
    bos_id = tokenizer.bos_token_id
    adds_bos = bos_id is not None and tokenizer("medtune")["input_ids"][:1] == [bos_id]
    bos = tokenizer.bos_token if adds_bos else ""
    for text, want in ((bos, bos_id), (eos, eos_id)):
        if text and tokenizer(text, add_special_tokens=False)["input_ids"] != [want]:
            raise PreprocessError(f"the tokenizer of '{tokenizer.name_or_path}' does not read '{text}' in text as its "
                                  "special token, so a plain-text row cannot carry it",
                                  fix="use data.format: chat with this model")
    return Specials(bos=bos, eos=eos)


def segments(prompt: str, answer: str, special: Specials) -> list[dict]:
    """Axolotl input_output segments: BOS (where the model uses one) and the prompt untrained, answer + EOS trained."""
    framed = [{"label": False, "text": special.bos}] if special.bos else []
    return framed + [{"label": False, "text": prompt}, {"label": True, "text": answer + special.eos}]


def is_segments(conversation: list[dict]) -> bool:
    """Whether a row's training payload is input_output segments (else chat messages)."""
    return bool(conversation) and "label" in conversation[0]


def prompt_part(parts: list[dict]) -> list[dict]:
    """The untrained segments before the first trained one: what evaluation generates from."""
    first = next((i for i, seg in enumerate(parts) if seg["label"]), len(parts))
    return parts[:first]


def segment_ids(tokenizer: Any, parts: list[dict]) -> list[int]:
    """Token ids of segments exactly as Axolotl's input_output strategy makes them: each segment alone, no special
    tokens added, concatenated."""
    ids: list[int] = []
    for seg in parts:
        ids += tokenizer(seg["text"], add_special_tokens=False)["input_ids"]
    return ids
