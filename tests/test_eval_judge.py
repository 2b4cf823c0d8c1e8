"""LLM-judge wiring: DeepEval GEval driven by stub judges (canned JSON, a local OpenAI-compatible server, SmolLM2)."""
from __future__ import annotations

import json

import pytest

from medtune.evaluate import judge
from medtune.evaluate.errors import EvalInputError
from medtune.evaluate.spec import EvalSpec, JudgeSpec

from fake_llm import chat_reply, fake_endpoint


pytestmark = pytest.mark.usefixtures("one_torch_thread")



def _canned_judge(prompts: list[str]):
    from deepeval.models import DeepEvalBaseLLM

    class CannedJudge(DeepEvalBaseLLM):
        """Answers GEval by what the actual output says, as a real judge would read it."""

        def load_model(self):
            return None

        def generate(self, prompt: str) -> str:
            prompts.append(prompt)
            if "GOOD" in prompt:
                return 'Sure. {"reason": "Matches the reference.", "score": 8}'
            if "OUTOFRANGE" in prompt:
                return '{"reason": "x", "score": 42}'
            if "NOSCORE" in prompt:
                return '{"reason": "forgot the score"}'
            return "I think the answer is mostly fine."

        async def a_generate(self, prompt: str) -> str:
            return self.generate(prompt)

        def get_model_name(self) -> str:
            return "canned"

    return CannedJudge()


def test_geval_scores_parse_and_unparsable_replies_are_counted_not_raised():
    prompts: list[str] = []
    verdicts = judge.judge_answers(_canned_judge(prompts), ["What is gout?"] * 4,
                                   ["GOOD answer", "GARBAGE answer", "OUTOFRANGE answer", "NOSCORE answer"],
                                   ["Gout is arthritis from uric acid."] * 4)
    assert verdicts[0].score == pytest.approx(0.8) and verdicts[0].reason == "Matches the reference."
    assert [v.score for v in verdicts[1:]] == [None, None, None]
    assert all(v.reason.startswith("unparsable judge output") for v in verdicts[1:])
    # Our fixed rubric and all three fields reach the judge; no judge call is spent writing steps.
    assert len(prompts) == 4
    assert judge.EVALUATION_STEPS[0] in prompts[0] and "Gout is arthritis from uric acid." in prompts[0]


def test_judge_metric_needs_a_judge_configured():
    with pytest.raises(ValueError, match="no judge is configured"):
        EvalSpec(metrics=["rouge", "judge"])


def test_openai_judge_needs_its_key_in_the_environment(monkeypatch):
    monkeypatch.delenv("MEDTUNE_TEST_KEY", raising=False)
    with pytest.raises(EvalInputError, match="MEDTUNE_TEST_KEY"):
        judge.make_judge(JudgeSpec(kind="openai", model="m", api_key_env="MEDTUNE_TEST_KEY"))


def test_openai_compatible_endpoint_from_env_with_key_only_from_env(monkeypatch):
    seen = []

    def answer(path: str, authorization: str, body: dict) -> tuple[int, dict]:
        seen.append((path, authorization, body["model"]))
        return 200, chat_reply(body["model"], json.dumps({"reason": "Correct.", "score": 10}))

    with fake_endpoint(answer) as url:
        monkeypatch.setenv("MEDTUNE_JUDGE_BASE_URL", url)
        monkeypatch.setenv("MEDTUNE_TEST_KEY", "sk-test-123")
        spec = JudgeSpec(kind="openai", model="judge-model", api_key_env="MEDTUNE_TEST_KEY")
        model = judge.make_judge(spec)
        verdicts = judge.judge_answers(model, ["q"], ["a"], ["a"])
    assert verdicts[0].score == pytest.approx(1.0)
    assert seen == [("/v1/chat/completions", "Bearer sk-test-123", "judge-model")]
    assert "sk-test-123" not in json.dumps(spec.model_dump()) + model.get_model_name()


@pytest.mark.slow
def test_local_hf_judge_whose_reply_is_not_json_is_counted(smollm2_dir, monkeypatch):
    monkeypatch.setattr(judge, "MAX_JUDGE_TOKENS", 4)  # four tokens cannot hold the JSON verdict
    model = judge.make_judge(JudgeSpec(kind="hf", model=str(smollm2_dir)))
    verdicts = judge.judge_answers(model, ["What is gout?"], ["Arthritis."], ["Arthritis from uric acid."])
    assert verdicts[0].score is None and "unparsable" in verdicts[0].reason
