"""KnowTuning's options (a recipe's `knowtuning:` section): who writes facts and questions, how many facts, which negatives."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from ..core.schema import Strict

NegativeKind = Literal["deletion", "revision", "shuffle"]


class GeneratorSpec(Strict):
    kind: Literal["openai", "hf"]
    """openai: any OpenAI-compatible endpoint; hf: a local Hugging Face chat model."""
    model: str
    """The model's name at the endpoint, or a Hub id / local path for kind hf."""
    base_url: str | None = None
    """Endpoint URL for kind openai (default: the MEDTUNE_GENERATOR_BASE_URL environment variable)."""
    api_key_env: str = "OPENAI_API_KEY"
    """Name of the environment variable holding the key; the key itself is never written to disk."""
    max_tokens: int = Field(default=512, gt=0)
    """Longest reply (a fact list, a question or a revised fact); longer costs time."""


class KnowTuningSpec(Strict):
    generator: Literal["offline"] | GeneratorSpec = "offline"
    """Who splits answers into facts, writes questions for the hardest facts and revises facts: offline (rules, no LLM; a simplification of the paper, which used GPT-3.5) or an LLM (kind, model as eval.judge)."""
    augment: bool = True
    """Stage 1's fine-grained augmentation: true trains on the original rows plus a question-answer pair per hardest fact; false trains on the original rows only and scores no fact (the paper's ablation without knowledge augmentation: plain SFT, then preference training on the negatives)."""
    max_facts: int = Field(default=16, gt=1)
    """Facts per answer scored and eligible for augmentation (the first N; perplexity costs one scored row per fact); negatives use every fact."""
    hard_share: float = Field(default=0.5, gt=0, le=1)
    """Share of an answer's scored facts, highest perplexity under the base model first, turned into extra question-answer pairs (at least one)."""
    negatives: list[NegativeKind] = ["deletion", "revision", "shuffle"]
    """Worse answers built from each reference for the preference stage: deletion (completeness), revision (factuality), shuffle (logicality)."""
    delete_share: float = Field(default=0.5, gt=0, lt=1)
    """Deletion: share of an answer's facts dropped (at least one, never all)."""
    revise_share: float = Field(default=0.5, gt=0, le=1)
    """Revision: share of an answer's facts made wrong (at least one)."""
    max_tokens: int = Field(default=2048, gt=0)
    """Longest row (prompt + fact) scored for perplexity; a fact whose prompt alone fills it is not scored and is counted."""
    batch_tokens: int = Field(default=16384, gt=0)
    """Perplexity scoring: padded tokens per batch; memory grows with it."""
    seed: int = 0
    """Seed of deletion, revision and shuffling; the same seed and data give the same pairs."""

    @field_validator("negatives")
    @classmethod
    def _negatives_once_each(cls, kinds: list[str]) -> list[str]:
        if not kinds or len(set(kinds)) != len(kinds):
            raise ValueError("list each negative kind once, at least one (the preference stage trains on them)")
        return kinds
