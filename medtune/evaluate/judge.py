"""LLM-judge correctness with DeepEval's GEval, judged by an OpenAI-compatible endpoint or a local HF model."""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..core.env import private_env
from .errors import EvalInputError
from .spec import JudgeSpec

# DeepEval reports usage to Sentry, PostHog and New Relic at import unless told not to; medical
# evaluations must not phone home. Set before any deepeval import, also where the judge is used without the CLI.
private_env()

# Fixed steps instead of letting the judge write its own from a criteria sentence: one judge call
# fewer per run, and every model is judged against the same rubric.
EVALUATION_STEPS = [
    "Compare the medical facts in 'actual output' with those in 'expected output' for the question in 'input'.",
    "Penalise any statement that contradicts the expected output or is medically wrong or unsafe.",
    "Penalise omission of facts from the expected output that are needed to answer the question.",
    "Do not penalise extra correct detail, different wording, or a safety disclaimer.",
]
BASE_URL_ENV = "MEDTUNE_JUDGE_BASE_URL"
MAX_JUDGE_TOKENS = 512


def _base_llm():
    from deepeval.models import DeepEvalBaseLLM

    return DeepEvalBaseLLM


def openai_judge(spec: JudgeSpec):
    """A DeepEval model calling any OpenAI-compatible chat endpoint; the key is read from the environment only."""
    base_url = spec.base_url or os.environ.get(BASE_URL_ENV)
    key = os.environ.get(spec.api_key_env)
    if not key:
        raise EvalInputError(f"judge kind openai needs its API key in the environment variable {spec.api_key_env}")

    class OpenAICompatibleJudge(_base_llm()):
        def load_model(self):
            from openai import OpenAI

            return OpenAI(base_url=base_url, api_key=key)

        def generate(self, prompt: str) -> str:
            reply = self.model.chat.completions.create(
                model=spec.model, messages=[{"role": "user", "content": prompt}], temperature=0, max_tokens=MAX_JUDGE_TOKENS)
            return reply.choices[0].message.content or ""

        async def a_generate(self, prompt: str) -> str:
            return self.generate(prompt)

        def get_model_name(self) -> str:
            return f"{spec.model} @ {base_url or 'api.openai.com'}"

    return OpenAICompatibleJudge(spec.model)


def hf_judge(spec: JudgeSpec):
    """A DeepEval model wrapping a local Hugging Face chat model (greedy, its own chat template)."""
    from .generate import generate_one, prompt_ids
    from ..models.loader import ModelRef, load

    class LocalHFJudge(_base_llm()):
        def load_model(self):
            return load(ModelRef("judge", spec.model))

        def generate(self, prompt: str) -> str:
            model, tokenizer = self.model
            ids, _ = generate_one(model, tokenizer, prompt_ids(tokenizer, [{"role": "user", "content": prompt}]),
                                  MAX_JUDGE_TOKENS)
            return tokenizer.decode(ids, skip_special_tokens=True)

        async def a_generate(self, prompt: str) -> str:
            return self.generate(prompt)

        def get_model_name(self) -> str:
            return spec.model

    return LocalHFJudge(spec.model)


def make_judge(spec: JudgeSpec):
    return openai_judge(spec) if spec.kind == "openai" else hf_judge(spec)


@dataclass
class Verdict:
    score: float | None
    """0..1 (GEval's 0-10 scale normalised); None when the judge's reply could not be parsed."""
    reason: str


def judge_answers(judge, questions: list[str], outputs: list[str], references: list[str]) -> list[Verdict]:
    """One GEval correctness verdict per answer; an unparsable reply becomes score None, not an error."""
    from deepeval.metrics import GEval
    from deepeval.test_case import LLMTestCase, LLMTestCaseParams

    params = [LLMTestCaseParams.INPUT, LLMTestCaseParams.ACTUAL_OUTPUT, LLMTestCaseParams.EXPECTED_OUTPUT]
    verdicts = []
    for question, output, reference in zip(questions, outputs, references):
        metric = GEval(name="Correctness", evaluation_params=params, evaluation_steps=EVALUATION_STEPS,
                       model=judge, async_mode=False, verbose_mode=False)
        case = LLMTestCase(input=question, actual_output=output, expected_output=reference)
        try:
            score = metric.measure(case, _show_indicator=False)
        except (ValueError, KeyError, TypeError) as err:
            # ValueError: DeepEval found no JSON; KeyError/TypeError: JSON without a usable score.
            verdicts.append(Verdict(None, f"unparsable judge output: {err}"))
            continue
        if not 0.0 <= float(score) <= 1.0:  # a score off GEval's 0-10 scale is as unusable as no score
            verdicts.append(Verdict(None, f"unparsable judge output: score {score!r} outside 0..1"))
            continue
        verdicts.append(Verdict(float(score), metric.reason or ""))
    return verdicts
