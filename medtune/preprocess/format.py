"""The one formatter: a normalized record -> a chat `messages` row (what Axolotl trains on and eval scores).

Bump FORMATTER_VERSION whenever the rows produced from the same input change (wording, clean-up,
splitting), so cached outputs made by older code are never reused.
"""
from __future__ import annotations

from .records import YES_NO_MAYBE, Record, letter
from .spec import DisclaimerSpec
from .text import normalize

FORMATTER_VERSION = 2  # 2: a non-zero val/test share holds out at least one row

MC_INSTRUCTION = "Answer with the letter of the correct option."
YES_NO_INSTRUCTION = "Answer yes, no or maybe, then explain."


def is_multiple_choice(record: Record) -> bool:
    return record.options is not None


def is_yes_no(record: Record) -> bool:
    return record.options is None and record.answer_key in YES_NO_MAYBE


def user_turn(record: Record) -> str:
    parts = []
    if record.context:
        parts.append(f"Context:\n{record.context}")
        parts.append(f"Question: {record.question}")
    else:
        parts.append(record.question)
    if is_multiple_choice(record):
        parts.append("\n".join(f"{letter(i)}. {text}" for i, text in enumerate(record.options)))
        parts.append(MC_INSTRUCTION)
    elif is_yes_no(record):
        parts.append(YES_NO_INSTRUCTION)
    return "\n\n".join(parts)


def assistant_turn(record: Record) -> str:
    """Deterministic: `Answer: B. <option text>`, `Answer: yes. <long answer>`, or the free-text answer."""
    if is_multiple_choice(record):
        return f"Answer: {record.answer_key}. {record.options[ord(record.answer_key) - ord('A')]}"
    if is_yes_no(record):
        return f"Answer: {record.answer_key}. {record.answer}".rstrip()
    return record.answer


def with_disclaimer(answer: str, disclaimer: str) -> str:
    """Appends the disclaimer unless the answer already carries it (compared case- and punctuation-blind)."""
    if normalize(disclaimer) in normalize(answer):
        return answer
    return f"{answer}\n\n{disclaimer}"


def to_row(record: Record, system_prompt: str | None, disclaimer: DisclaimerSpec) -> dict:
    answer = assistant_turn(record)
    if disclaimer.enabled:
        answer = with_disclaimer(answer, disclaimer.text)
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages += [{"role": "user", "content": user_turn(record)}, {"role": "assistant", "content": answer}]
    if is_multiple_choice(record):
        choices = list(record.options)
    elif is_yes_no(record):
        choices = list(YES_NO_MAYBE)
    else:
        choices = None
    return {
        "messages": messages,
        "id": record.id,
        "source": record.source,
        "qtype": record.qtype,
        "answer_key": record.answer_key,
        "choices": choices,
    }
