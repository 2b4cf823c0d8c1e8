"""Loss and perplexity of a model on the held-out reference answers, counting answer tokens only, in bounded memory.

Memory is bounded three ways: a row is scored on at most `max_tokens` tokens (a longer reference answer is cut,
one whose prompt alone fills the limit is skipped, and both are counted); batches hold at most `batch_tokens`
padded tokens; and the LM head is applied only at answer positions, a chunk of positions at a time, so no
(batch x length x vocabulary) logits tensor ever exists. With Llama's 128k vocabulary that tensor would be
about 0.5 MB per position in fp32: tens of GB for a batch of long answers.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .errors import EvalInputError
from ..preprocess.layouts import is_segments, prompt_part, segment_ids
from .generate import prompt_ids, stop_ids, token_budget_batches, training_ids

LOGITS_CHUNK_ELEMENTS = 2**25
"""Logits computed at once: 128 MiB in fp32 (683 positions of SmolLM2's 49k vocabulary, 261 of Llama's 128k)."""


@dataclass(frozen=True)
class AnswerLoss:
    nll: float
    """Summed negative log-likelihood (nats) of the scored answer tokens."""
    tokens: int
    """Answer tokens scored."""
    cut: int = 0
    """Answer tokens beyond the row's token limit, not scored (0: the whole answer was scored)."""


def answer_span(tokenizer, messages: list[dict], stops: list[int]) -> tuple[list[int], int]:
    """(token ids of prompt + answer, where the answer starts).

    `messages` are chat turns, or a plain-text format's segments (preprocess/layouts.py), tokenized as training
    tokenized them. The answer is what training renders after the inference prompt, up to and including the
    end-of-turn token: the model is scored on writing the answer and stopping, not on the
    template's newline after it.
    """
    if is_segments(messages):
        full = segment_ids(tokenizer, messages)
        prompt = segment_ids(tokenizer, prompt_part(messages))
    else:
        full = training_ids(tokenizer, messages)
        prompt = prompt_ids(tokenizer, messages[:-1])
    if full[: len(prompt)] != prompt:
        raise ValueError("the inference prompt is not a prefix of the training rendering")
    end = next((pos + 1 for pos in range(len(prompt), len(full)) if full[pos] in stops), len(full))
    return full[:end], len(prompt)


def _final_hidden(model, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(the decoder's last hidden state at every position, the model's own logits at the last position).

    One forward of the whole model (so a PEFT wrapper's or a 4-bit model's forward runs as it does for
    generation), asked for the last position's logits only (`logits_to_keep=1`); a forward hook on the
    decoder keeps its output, the final-norm hidden states the LM head reads. No KV cache: nothing decodes
    after this pass, and a cache of a long batch would cost as much as the activations.
    """
    captured: list[torch.Tensor] = []
    handle = model.get_decoder().register_forward_hook(lambda _module, _args, output: captured.append(output[0]))
    try:
        out = model(input_ids=ids, attention_mask=mask, use_cache=False, logits_to_keep=1)
    finally:
        handle.remove()
    if len(captured) != 1 or captured[0].shape[:2] != ids.shape:
        raise EvalInputError(f"{type(model).__name__}: its decoder (get_decoder()) did not give one hidden state per "
                             "token, so answer loss cannot be computed position by position for this model")
    return captured[0], out.logits[:, -1]


def _check_head(model, head, hidden: torch.Tensor, logits: torch.Tensor) -> None:
    """Stop if the output embeddings on the hidden state are not the model's logits (e.g. a soft cap or logit
    scale after the head): the loss computed here would silently differ from the model's."""
    ours = head(hidden[:, -1:]).float()[:, -1]
    if ours.shape != logits.shape or not torch.allclose(ours, logits.float(), rtol=1e-2, atol=1e-2):
        raise EvalInputError(f"{type(model).__name__} transforms its logits after the output embeddings; answer "
                             "perplexity does not support it: remove 'perplexity' from eval.metrics for this model")


def _batch_losses(model, rows: list[tuple[list[int], int]], pad: int, device) -> list[tuple[float, int]]:
    """(summed nll, tokens) of each row's answer; rows are (token ids, where the answer starts), right-padded."""
    width = max(len(tokens) for tokens, _ in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, (tokens, _) in enumerate(rows):
        ids[row, : len(tokens)] = torch.tensor(tokens)  # right padding: positions stay those of training
        mask[row, : len(tokens)] = 1
    # Position p predicts token p + 1: the answer's tokens [start, end) are predicted at [start - 1, end - 1).
    which = torch.cat([torch.full((len(tokens) - start,), row) for row, (tokens, start) in enumerate(rows)])
    where = torch.cat([torch.arange(start - 1, len(tokens) - 1) for tokens, start in rows])
    targets, which, where = ids[which, where + 1].to(device), which.to(device), where.to(device)
    hidden, last_logits = _final_hidden(model, ids.to(device), mask.to(device))
    head = model.get_output_embeddings()
    _check_head(model, head, hidden, last_logits)
    selected = hidden[which, where]  # (answer tokens, hidden size): the batch's activations can go
    del hidden, last_logits
    vocab = getattr(head, "out_features", None) or model.config.vocab_size
    step = max(1, LOGITS_CHUNK_ELEMENTS // vocab)
    nll = torch.empty(len(targets), dtype=torch.float32, device=device)
    for first in range(0, len(targets), step):
        logits = head(selected[first:first + step]).float()  # fp32 log-softmax, as the full-logits loss did
        nll[first:first + step] = F.cross_entropy(logits, targets[first:first + step], reduction="none")
    sums = torch.zeros(len(rows), dtype=torch.float64, device=device).index_add_(0, which, nll.double())
    return [(float(total), len(tokens) - start) for total, (tokens, start) in zip(sums.tolist(), rows)]


@torch.inference_mode()
def answer_losses(model, tokenizer, conversations: list[list[dict]], *, batch_tokens: int,
                  max_tokens: int, label: str | None = None) -> list[AnswerLoss | None]:
    """Per-conversation loss of its last (assistant) turn given everything before it (a conversation is chat
    messages, or a plain-text row's segments: generate.scored_conversation gives either).

    A conversation longer than max_tokens is scored on its first max_tokens tokens (AnswerLoss.cut says how
    many answer tokens were left out); one whose prompt alone takes max_tokens has no answer token left and
    gives None. Batches are formed longest first with at most batch_tokens padded tokens each. With a label, a
    progress bar of that name counts the rows scored.
    """
    stops = stop_ids(model, tokenizer)
    spans = [answer_span(tokenizer, messages, stops) for messages in conversations]
    kept = [i for i, (_, start) in enumerate(spans) if start < max_tokens]
    rows = [(spans[i][0][:max_tokens], spans[i][1]) for i in kept]
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    results: list[AnswerLoss | None] = [None] * len(spans)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=label is None or not rows) as progress:
        task = progress.add_task(label or "", total=len(rows))
        for batch in token_budget_batches([len(tokens) for tokens, _ in rows], batch_tokens):
            losses = _batch_losses(model, [rows[b] for b in batch], pad, device)
            for b, (nll, tokens) in zip(batch, losses):
                i = kept[b]
                results[i] = AnswerLoss(nll=nll, tokens=tokens, cut=len(spans[i][0]) - len(rows[b][0]))
            progress.advance(task, len(batch))
    return results
