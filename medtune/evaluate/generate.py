"""Greedy answers from the training prompt (chat template, or a plain-text format's prompt): batched, length-sorted, resumable."""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Callable

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..core.errors import MedtuneError
from ..preprocess.layouts import prompt_part, segment_ids
from .store import GenerationStore


@dataclass(frozen=True)
class Request:
    id: str
    messages: list[dict]
    """The conversation up to (not including) the answer to generate."""
    segments: list[dict] | None = None
    """For a plain-text format (data.format instruction/completion): the prompt's segments, which are generated
    from instead of messages, with no chat template (preprocess/layouts.py)."""


def request_for(row: dict) -> Request:
    """The generation request of a held-out row: its plain-text prompt where it has one, else its chat turns."""
    segments = row.get("segments")
    return Request(str(row["id"]), row["messages"][:-1], prompt_part(segments) if segments else None)


def scored_conversation(row: dict) -> list[dict]:
    """What answer loss scores of a held-out row (perplexity.answer_losses): its segments, else its messages."""
    return row.get("segments") or row["messages"]


def _check_chat_template(tokenizer) -> None:
    if not tokenizer.chat_template:
        raise MedtuneError(f"the tokenizer of {tokenizer.name_or_path} has no chat template (a base model), so chat "
                           "turns cannot be rendered for it; train and evaluate it with data.format instruction or "
                           "completion (plain-text prompts)")


def prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    """Inference prompt, ending with the assistant-turn header, in the tokenizer's chat template: the one training
    used, which models.loader.load_tokenizer sets (models/chat_template.py)."""
    _check_chat_template(tokenizer)
    return list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False))


def request_ids(tokenizer, request: Request) -> list[int]:
    """The prompt a request generates from: its plain-text segments tokenized as training tokenized them, else
    its chat turns through the chat template."""
    if request.segments is not None:
        return segment_ids(tokenizer, request.segments)
    return prompt_ids(tokenizer, request.messages)


def training_ids(tokenizer, messages: list[dict]) -> list[int]:
    """The training rendering of a whole conversation (answer included)."""
    _check_chat_template(tokenizer)
    return list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False))


def stop_ids(model, tokenizer) -> list[int]:
    """End-of-turn tokens: the tokenizer's eos plus any the generation config lists."""
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured])
    return sorted(i for i in ids if i is not None)


def trim_at_stop(ids: list[int], stops: list[int]) -> tuple[list[int], bool]:
    """The tokens before the first end-of-turn token, and whether one came."""
    for pos, tok in enumerate(ids):
        if tok in stops:
            return ids[:pos], True
    return ids, False


def token_budget_batches(lengths: list[int], max_tokens: int) -> list[list[int]]:
    """Indices of rows grouped into batches of at most max_tokens padded tokens (rows x the longest row).

    Longest rows first, so running out of memory shows in the first batch, not after an hour; neighbours in
    length share a batch, which keeps padding small. A row longer than max_tokens forms a batch of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    batches: list[list[int]] = []
    for i in order:
        # Sorted longest first, so a batch's first row is its longest and sets its padded width.
        if batches and (len(batches[-1]) + 1) * lengths[batches[-1][0]] <= max_tokens:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def left_padded(prompts: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask with every prompt right-aligned, so each row's next token is the last column."""
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    attention = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, ids in enumerate(prompts):
        input_ids[row, width - len(ids):] = torch.tensor(ids)
        attention[row, width - len(ids):] = 1
    return input_ids, attention


@torch.inference_mode()
def generate_batch(model, tokenizer, prompts: list[list[int]], max_new_tokens: int) -> list[tuple[list[int], bool]]:
    """Greedy continuations of several prompts at once, each cut at its first end-of-turn token.

    Prompts are left-padded so every row's next token sits in the last column; the attention
    mask hides the padding (and generate derives position ids from it).
    """
    from transformers import GenerationConfig

    stops = stop_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    input_ids, attention = left_padded(prompts, pad)
    width = input_ids.shape[1]
    # A preallocated (static) KV cache where the architecture supports one: the default cache concatenates
    # every layer's keys and values at every step, measured as a quarter of a 32-row decode step on CPU.
    # No auto-compilation: batches of differing prompt width would recompile.
    static = bool(getattr(model, "_can_compile_fullgraph", False))
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stops, pad_token_id=pad,
                              cache_implementation="static" if static else None, disable_compile=True)
    device = next(model.parameters()).device
    out = model.generate(input_ids=input_ids.to(device), attention_mask=attention.to(device), generation_config=config)
    return [trim_at_stop(row[width:].tolist(), stops) for row in out]


def generate_one(model, tokenizer, prompt: list[int], max_new_tokens: int) -> tuple[list[int], bool]:
    """One prompt, no padding: the one-question-at-a-time reference the batched path is checked against."""
    return generate_batch(model, tokenizer, [prompt], max_new_tokens)[0]


def fingerprint(identity: str, prompt: list[int], max_new_tokens: int) -> str:
    blob = json.dumps([identity, max_new_tokens, prompt])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def generate_missing(
    model,
    tokenizer,
    requests: list[Request],
    store: GenerationStore,
    *,
    model_label: str,
    set_name: str,
    identity: str,
    max_new_tokens: int,
    batch_size: int,
    on_batch: Callable[[list[dict]], None] | None = None,
    show_progress: bool = True,
) -> dict[str, dict]:
    """Generate every request the store lacks, appending each batch as it finishes; return all records by id.

    Batches hold prompts of similar length (longest first, so running out of memory shows at once)
    to keep padding, and the compute wasted on it, small.
    """
    prompts = {req.id: request_ids(tokenizer, req) for req in requests}
    prints = {rid: fingerprint(identity, ids, max_new_tokens) for rid, ids in prompts.items()}
    todo = [rid for rid in prompts if store.get(model_label, set_name, rid, prints[rid]) is None]
    todo.sort(key=lambda rid: len(prompts[rid]), reverse=True)

    # Batched half-precision decoding is not batch-invariant on CUDA (a row's answer can depend on its
    # neighbours' padding), so each answer records how it was computed: the dtype, device and its batch's size.
    computed = {"dtype": str(getattr(model, "dtype", "")).removeprefix("torch."), "device": str(getattr(model, "device", ""))}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not show_progress or not todo, transient=False) as progress:
        task = progress.add_task(f"{model_label} {set_name}", total=len(prompts), completed=len(prompts) - len(todo))
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            began = time.perf_counter()
            outputs = generate_batch(model, tokenizer, [prompts[rid] for rid in chunk], max_new_tokens)
            seconds = (time.perf_counter() - began) / len(chunk)
            records = [
                {"model": model_label, "set": set_name, "id": rid, "fingerprint": prints[rid],
                 "prompt_tokens": len(prompts[rid]), "output": tokenizer.decode(ids, skip_special_tokens=True).strip(),
                 "output_ids": ids, "stopped_at_eos": ended, "seconds": round(seconds, 4),
                 **computed, "batch_rows": len(chunk)}
                for rid, (ids, ended) in zip(chunk, outputs)
            ]
            store.append(records)
            progress.advance(task, len(chunk))
            if on_batch is not None:
                on_batch(records)
    by_id = store.records(model_label, set_name)
    return {rid: by_id[rid] for rid in prompts}
