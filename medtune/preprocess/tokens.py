"""Token counts of rows as training renders them (the too_long filter), and the tokenizer's fingerprint.

Chat rows are rendered with the chat template the model trains with; plain-text rows (instruction, completion)
are their segments, tokenized as Axolotl's input_output strategy does (preprocess/layouts.py).
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from .errors import PreprocessError
from ..core.hashing import sha256_text
from ..models.chat_template import catalog_entry, use_chat_template
from .layouts import is_segments, segment_ids

_BATCH = 512


def load_tokenizer(tokenizer: Any, chat: bool = True) -> Any:
    """The tokenizer to count with, carrying the chat template its model trains with (models.chat_template), so
    the filter counts the tokens training will see: a copy of a tokenizer object, or one loaded from a local
    folder / Hub id given as a string (as models.catalog.resolve gives it).

    chat=False (the plain-text formats) sets no chat template; a catalog model's end-of-sequence token is set
    as the rendered Axolotl config's `special_tokens` sets it for training."""
    if tokenizer is None:
        return None
    if isinstance(tokenizer, (str, Path)):
        from transformers import AutoTokenizer

        model = str(tokenizer)
        try:
            loaded = AutoTokenizer.from_pretrained(model)
        except (OSError, ValueError) as exc:
            raise PreprocessError(f"cannot load a tokenizer from '{tokenizer}': {exc}",
                                  fix="give a local model folder, or a Hub id on a machine that can reach the Hub") from exc
    else:
        model, loaded = str(tokenizer.name_or_path), copy.copy(tokenizer)  # the caller's object keeps its template
    if chat:
        return use_chat_template(loaded, model)
    facts = catalog_entry(model)
    if facts is not None and loaded.eos_token != facts.eos_token:
        loaded = copy.deepcopy(loaded)  # a shallow copy shares the special-token map with the caller's tokenizer
        loaded.eos_token = facts.eos_token
    return loaded


def fingerprint(tokenizer: Any, chat: bool = True) -> dict[str, str]:
    """What decides token counts (and plain-text rows' BOS/EOS texts): chat template, special tokens, vocabulary."""
    template = tokenizer.chat_template if chat else None
    if chat and not template:
        raise PreprocessError(f"the tokenizer of '{tokenizer.name_or_path}' has no chat template",
                              fix="use a chat/instruct model, or data.format instruction/completion for a base model")
    backend = getattr(tokenizer, "backend_tokenizer", None)
    vocab = backend.to_str() if backend is not None else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    special = {name: str(getattr(tokenizer, name, None)) for name in ("bos_token", "eos_token", "pad_token", "unk_token")}
    special["all"] = sorted(map(str, tokenizer.all_special_tokens))
    return {
        "name": str(tokenizer.name_or_path),
        "chat_template_sha256": sha256_text(json.dumps(template, sort_keys=True)),
        "special_tokens_sha256": sha256_text(json.dumps(special, sort_keys=True)),
        "vocab_sha256": sha256_text(vocab),
    }


def _bytes_bound_tokens(tokenizer: Any) -> bool:
    """Whether no text can have more tokens than UTF-8 bytes: true for byte-level BPE without a normalizer
    (Llama 3, SmolLM2, GPT-2 style), where every token stands for at least one byte of the text."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    spec = json.loads(backend.to_str())
    norm = spec.get("normalizer")
    no_norm = norm is None or (norm.get("type") == "Sequence" and not norm.get("normalizers"))
    pre = spec.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    return no_norm and any(step.get("type") == "ByteLevel" for step in steps)


def too_long(tokenizer: Any, conversations: list[list[dict]], limit: int) -> list[bool]:
    """For each conversation (chat messages or plain-text segments), whether training's rendering of it has
    more than `limit` tokens.

    Tokenizing is the slow part (about 9 s for MedQuAD's 20 MB), so rows whose byte length already
    proves they fit are not tokenized where the tokenizer allows that bound; the answer is the same.
    """
    if conversations and is_segments(conversations[0]):  # each segment is tokenized alone, as Axolotl does
        bound = _bytes_bound_tokens(tokenizer)
        return [not (bound and sum(len(s["text"].encode()) for s in parts) <= limit)
                and len(segment_ids(tokenizer, parts)) > limit for parts in conversations]
    texts = [tokenizer.apply_chat_template(messages, tokenize=False) for messages in conversations]
    result = [False] * len(texts)
    bound = _bytes_bound_tokens(tokenizer)
    todo = [i for i, text in enumerate(texts) if not (bound and len(text.encode()) <= limit)]
    for start in range(0, len(todo), _BATCH):
        batch = todo[start:start + _BATCH]
        ids = tokenizer([texts[i] for i in batch], add_special_tokens=False)["input_ids"]
        for i, row_ids in zip(batch, ids):
            result[i] = len(row_ids) > limit
    return result
