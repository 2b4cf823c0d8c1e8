"""Loss and perplexity of a model on the held-out reference answers, counting answer tokens only."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .generate import prompt_ids, stop_ids, training_ids


@dataclass(frozen=True)
class AnswerLoss:
    nll: float
    """Summed negative log-likelihood (nats) of the answer tokens."""
    tokens: int


def answer_span(tokenizer, messages: list[dict], stops: list[int]) -> tuple[list[int], int]:
    """(token ids of prompt + answer, where the answer starts).

    The answer is what training renders after the inference prompt, up to and including the
    end-of-turn token: the model is scored on writing the answer and stopping, not on the
    template's newline after it.
    """
    full = training_ids(tokenizer, messages)
    prompt = prompt_ids(tokenizer, messages[:-1])
    if full[: len(prompt)] != prompt:
        raise ValueError("the chat template's inference prompt is not a prefix of its training rendering")
    end = next((pos + 1 for pos in range(len(prompt), len(full)) if full[pos] in stops), len(full))
    return full[:end], len(prompt)


@torch.inference_mode()
def answer_losses(model, tokenizer, conversations: list[list[dict]], *, batch_size: int) -> list[AnswerLoss]:
    """Per-conversation loss of its last (assistant) turn given everything before it, in length-sorted batches."""
    stops = stop_ids(model, tokenizer)
    spans = [answer_span(tokenizer, messages, stops) for messages in conversations]
    order = sorted(range(len(spans)), key=lambda i: len(spans[i][0]), reverse=True)
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    results: dict[int, AnswerLoss] = {}
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        width = max(len(spans[i][0]) for i in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        labels = torch.full_like(ids, -100)  # -100: ignored by cross_entropy (prompt and padding)
        for row, i in enumerate(chunk):
            tokens, answer_start = spans[i]
            ids[row, : len(tokens)] = torch.tensor(tokens)  # right padding: positions stay those of training
            mask[row, : len(tokens)] = 1
            labels[row, answer_start: len(tokens)] = ids[row, answer_start: len(tokens)]
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
        shifted = labels[:, 1:].to(device)
        nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), shifted, ignore_index=-100, reduction="none")
        for row, i in enumerate(chunk):
            results[i] = AnswerLoss(nll=float(nll[row].sum()), tokens=int((shifted[row] != -100).sum()))
    return [results[i] for i in range(len(spans))]
