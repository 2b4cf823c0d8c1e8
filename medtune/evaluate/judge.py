"""LLM-judge scores with DeepEval's GEval (correctness, and KnowTuning's completeness, factuality, logicality),
judged by an OpenAI-compatible endpoint or a local HF model (textgen.py)."""
from __future__ import annotations

from dataclasses import dataclass

from ..core.env import private_env
from .spec import JudgeCriterion, JudgeSpec
from .textgen import text_generator

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
# KnowTuning's three aspects (Lyu et al., EMNLP 2024), each judged alone so a model can gain on one and lose on
# another: completeness (are the reference's facts there), factuality (is what is said true), logicality (order).
CRITERIA_STEPS: dict[str, list[str]] = {
    "correctness": EVALUATION_STEPS,
    "completeness": [
        "List the distinct medical facts in 'expected output' that answer the question in 'input'.",
        "Check which of those facts 'actual output' states, in any wording.",
        "Score by the share of the expected facts that 'actual output' covers; do not penalise extra detail.",
    ],
    "factuality": [
        "Check every medical statement in 'actual output', using 'expected output' and established medicine as "
        "the ground truth.",
        "Penalise each statement that is false, contradicts 'expected output', or is unsafe; a wrong number, "
        "dose, cause or treatment counts fully.",
        "Do not penalise missing facts or wording: judge only whether what is said is true.",
    ],
    "logicality": [
        "Read 'actual output' as an answer to the question in 'input'.",
        "Penalise statements in an order that breaks the reasoning (a consequence before its cause, a treatment "
        "before the condition), contradictions between statements, and conclusions that do not follow.",
        "Do not penalise missing facts, factual errors or wording: judge only how the answer hangs together.",
    ],
}
BASE_URL_ENV = "MEDTUNE_JUDGE_BASE_URL"
MAX_JUDGE_TOKENS = 512


def metric_name(criterion: JudgeCriterion) -> str:
    """The name a criterion's score has in metrics.json and per_item.jsonl: `judge` for correctness (the name it had
    before there were criteria), `judge_<criterion>` for the others."""
    return "judge" if criterion == "correctness" else f"judge_{criterion}"


METRIC_NAMES = tuple(metric_name(c) for c in CRITERIA_STEPS)


def _deepeval_model(generator):
    """A DeepEval model over a textgen generator."""
    from deepeval.models import DeepEvalBaseLLM

    class Judge(DeepEvalBaseLLM):
        def load_model(self):
            return generator

        def generate(self, prompt: str) -> str:
            return generator(prompt)

        async def a_generate(self, prompt: str) -> str:
            return self.generate(prompt)

        def get_model_name(self) -> str:
            return generator.name

    return Judge(generator.name)


def make_judge(spec: JudgeSpec):
    """A DeepEval model: an OpenAI-compatible endpoint (key from the environment only) or a local HF chat model."""
    return _deepeval_model(text_generator(spec.kind, spec.model, base_url=spec.base_url, api_key_env=spec.api_key_env,
                                          base_url_env=BASE_URL_ENV, max_tokens=MAX_JUDGE_TOKENS, purpose="judge"))


@dataclass
class Verdict:
    score: float | None
    """0..1 (GEval's 0-10 scale normalised); None when the judge's reply could not be parsed."""
    reason: str


def judge_answers(judge, questions: list[str], outputs: list[str], references: list[str],
                  criterion: JudgeCriterion = "correctness") -> list[Verdict]:
    """One GEval verdict on `criterion` per answer; an unparsable reply becomes score None, not an error."""
    from deepeval.metrics import GEval
    from deepeval.test_case import LLMTestCase, LLMTestCaseParams

    params = [LLMTestCaseParams.INPUT, LLMTestCaseParams.ACTUAL_OUTPUT, LLMTestCaseParams.EXPECTED_OUTPUT]
    verdicts = []
    for question, output, reference in zip(questions, outputs, references):
        metric = GEval(name=criterion.capitalize(), evaluation_params=params, evaluation_steps=CRITERIA_STEPS[criterion],
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
