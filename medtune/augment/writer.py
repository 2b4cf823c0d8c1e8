"""Who writes KnowTuning's text: an LLM (knowtuning.generator: an endpoint or a local model, through the judge's
plumbing in evaluate/textgen.py) or offline rules. Each LLM reply is checked; an unusable one falls back to the
offline rule for that item, and the caller counts it."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .facts import parse_fact_list, plain, split_facts
from .spec import GeneratorSpec

if TYPE_CHECKING:
    from ..evaluate.textgen import TextGenerator

BASE_URL_ENV = "MEDTUNE_GENERATOR_BASE_URL"

FACTS_PROMPT = """Break the answer below into independent atomic facts: each fact one short, self-contained \
sentence that names its subject, stating exactly one piece of information from the answer. Add nothing that \
the answer does not say. Reply with the facts only, one per line, each line starting with "- ".

Question: {question}
Answer: {answer}"""

QUESTION_PROMPT = """Here is a question and one fact taken from its answer. Write one new question, on the same \
subject, that this fact answers completely on its own. Reply with the question only.

Question: {question}
Fact: {fact}"""

REVISE_PROMPT = """Revise the medical fact below so that it becomes false, changing as few words as possible \
(a number, a dose, a name, a cause, an effect or a relation). Reply with the revised fact only.

Fact: {fact}"""


def offline_question(question: str, fact: str) -> str:
    """The original question asking for one fact by its opening words (an offline simplification: the paper has
    GPT-3.5 write a question the fact answers). The opening words tell apart the several facts of one answer."""
    words = plain(fact).split()
    opening = " ".join(words[:max(1, min(4, len(words) // 2))])
    return f'{question}\n\nState the fact from the answer that begins "{opening} ...".'


def _one_line(reply: str) -> str:
    """The first non-empty line of a reply, without the quotes or label a model may wrap it in."""
    line = next((ln.strip() for ln in reply.splitlines() if ln.strip()), "")
    for label in ("Question:", "Revised fact:", "Fact:"):
        if line.lower().startswith(label.lower()):
            line = line[len(label):].strip()
    return line.strip('"\u201c\u201d').strip()


class Writer:
    """Facts, questions and revisions, by the configured LLM or offline; `used` counts which wrote what."""

    def __init__(self, generator: TextGenerator | None):
        self.generator = generator
        self.name = generator.name if generator is not None else "offline"
        self.used: dict[str, dict[str, int]] = {"facts": {}, "questions": {}, "revisions": {}}

    def _count(self, what: str, by: str) -> None:
        self.used[what][by] = self.used[what].get(by, 0) + 1

    def facts(self, question: str, answer: str) -> tuple[list[str], str]:
        """(the answer's facts, who split them)."""
        if self.generator is not None:
            facts = parse_fact_list(self.generator(FACTS_PROMPT.format(question=question, answer=answer)))
            if facts:
                self._count("facts", "generator")
                return facts, "generator"
            by = "offline (generator reply unusable)"
        else:
            by = "offline"
        self._count("facts", by)
        return split_facts(answer), by

    def question(self, question: str, fact: str) -> tuple[str, str]:
        """(a question the fact answers, who wrote it)."""
        if self.generator is not None:
            asked = _one_line(self.generator(QUESTION_PROMPT.format(question=question, fact=plain(fact))))
            if asked and asked.lower() != question.strip().lower():
                self._count("questions", "generator")
                return asked, "generator"
            by = "offline template (generator reply unusable)"
        else:
            by = "offline template"
        self._count("questions", by)
        return offline_question(question, fact), by

    def revise(self, fact: str) -> str | None:
        """The fact made false by the LLM; None offline or when the reply is unusable (the caller swaps instead)."""
        if self.generator is None:
            return None
        revised = _one_line(self.generator(REVISE_PROMPT.format(fact=fact)))
        return revised if revised and revised.lower() != fact.lower() else None


def make_writer(generator: str | GeneratorSpec) -> Writer:
    if generator == "offline":
        return Writer(None)
    from ..evaluate.textgen import text_generator

    return Writer(text_generator(generator.kind, generator.model, base_url=generator.base_url,
                                 api_key_env=generator.api_key_env, base_url_env=BASE_URL_ENV,
                                 max_tokens=generator.max_tokens, purpose="knowtuning.generator"))
