"""The one formatter: a normalized record -> a row in the recipe's format (what Axolotl trains on and eval scores).

Every question row keeps `messages` (question and reference answer: what eval scores and reports show); the
plain-text formats add the `segments` Axolotl's input_output type trains on and eval prompts with
(preprocess/layouts.py); the `text` format writes `text` rows instead.

Bump FORMATTER_VERSION whenever the rows produced from the same input change (wording, clean-up,
splitting), so cached outputs made by older code are never reused.
"""
from __future__ import annotations

from .layouts import Specials, layout, prompt_part, segments
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


def prompt_variables(record: Record) -> dict:
    """What a plain-text template (medtune/templates/formats/) may show of a record."""
    options = "\n".join(f"{letter(i)}. {text}" for i, text in enumerate(record.options)) if record.options else ""
    task = MC_INSTRUCTION if is_multiple_choice(record) else YES_NO_INSTRUCTION if is_yes_no(record) else ""
    return {"question": record.question, "context": record.context or "", "options": options, "task": task,
            "qtype": record.qtype or ""}


def plain_prompt(record: Record, fmt: str, system_prompt: str | None) -> str:
    """The prompt of a templated format (instruction, completion): what eval generates from, untrained in training."""
    return layout(fmt).render(prompt_variables(record), system_prompt)


def question_segments(question: str, fmt: str, system_prompt: str | None, special: Specials) -> list[dict]:
    """The prompt segments of a bare question (the chat tool), rendered as preprocess renders a held-out row's;
    for the text format the question itself, to be continued."""
    if fmt == "text":
        return prompt_part(segments(question, "", special))
    record = Record(id="chat", question=question, answer="", source="chat")
    return prompt_part(segments(plain_prompt(record, fmt, system_prompt), "", special))


def text_row(record: Record) -> dict:
    """A `text` row (continued pretraining): the question or title, then the answer or document, all trained."""
    return {"text": f"{user_turn(record)}\n\n{assistant_turn(record)}", "id": record.id, "source": record.source,
            "qtype": record.qtype}


def to_row(record: Record, system_prompt: str | None, disclaimer: DisclaimerSpec, fmt: str = "chat",
           special: Specials | None = None) -> dict:
    """The row of one record; `special` (the tokenizer's BOS/EOS texts) is needed by the instruction and
    completion formats."""
    if fmt == "text":
        return text_row(record)
    answer = assistant_turn(record)
    if disclaimer.enabled:
        answer = with_disclaimer(answer, disclaimer.text)
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages += [{"role": "user", "content": user_turn(record)}, {"role": "assistant", "content": answer}]
    extra = {}
    if fmt != "chat":
        if special is None:
            raise ValueError(f"format {fmt!r} needs the tokenizer's special tokens")
        extra = {"segments": segments(plain_prompt(record, fmt, system_prompt), answer, special)}
    if is_multiple_choice(record):
        choices = list(record.options)
    elif is_yes_no(record):
        choices = list(YES_NO_MAYBE)
    else:
        choices = None
    return {
        "messages": messages,
        **extra,
        "id": record.id,
        "source": record.source,
        "qtype": record.qtype,
        "answer_key": record.answer_key,
        "choices": choices,
    }
