"""One prompt in, one reply out: an OpenAI-compatible chat endpoint or a local Hugging Face chat model, greedy.

The LLM judge (judge.py) and KnowTuning's fact generator (augment/) both talk to a model through this, so the
endpoint, key and local-model handling exist once. The key is read from the environment only, never stored.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal, Protocol

from .errors import EvalInputError


class TextGenerator(Protocol):
    name: str
    """The model and where it runs, for manifests and reports (never the key)."""

    def __call__(self, prompt: str) -> str: ...


@dataclass
class OpenAIChat:
    """Any OpenAI-compatible /chat/completions endpoint, temperature 0."""

    model: str
    base_url: str | None
    api_key: str
    max_tokens: int
    purpose: str

    def __post_init__(self):
        from openai import OpenAI

        self._client = OpenAI(base_url=self.base_url, api_key=self.api_key)
        self.name = f"{self.model} @ {self.base_url or 'api.openai.com'}"

    def __repr__(self) -> str:  # the dataclass default would print the key
        return f"OpenAIChat({self.name})"

    def __call__(self, prompt: str) -> str:
        from openai import APIError

        try:
            reply = self._client.chat.completions.create(model=self.model, messages=[{"role": "user", "content": prompt}],
                                                         temperature=0, max_tokens=self.max_tokens)
        except APIError as err:  # unreachable, refused key, unknown model: the user's to fix, not a traceback
            raise EvalInputError(f"{self.purpose} {self.name} failed: {err}; check the endpoint URL, the model name "
                                 "and the key") from None
        return reply.choices[0].message.content or ""


class LocalChat:
    """A local Hugging Face chat model (loaded once by models.loader), greedy, in its own chat template."""

    def __init__(self, model: str, max_tokens: int):
        from ..models.loader import ModelRef, load

        self.name = model
        self.max_tokens = max_tokens
        self._model, self._tokenizer = load(ModelRef("generator", model))

    def __call__(self, prompt: str) -> str:
        from .generate import generate_one, prompt_ids

        ids, _ = generate_one(self._model, self._tokenizer,
                              prompt_ids(self._tokenizer, [{"role": "user", "content": prompt}]), self.max_tokens)
        return self._tokenizer.decode(ids, skip_special_tokens=True)


def text_generator(kind: Literal["openai", "hf"], model: str, *, base_url: str | None, api_key_env: str,
                   base_url_env: str, max_tokens: int, purpose: str) -> TextGenerator:
    """A generator of kind openai (endpoint: base_url, else $base_url_env, else OpenAI's) or hf (a local model).

    purpose names the user of the model in errors ("judge", "knowtuning.generator").
    """
    if kind == "hf":
        return LocalChat(model, max_tokens)
    key = os.environ.get(api_key_env)
    if not key:
        raise EvalInputError(f"{purpose} kind openai needs its API key in the environment variable {api_key_env}")
    return OpenAIChat(model, base_url or os.environ.get(base_url_env), key, max_tokens, purpose)
