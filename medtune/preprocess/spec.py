"""The recipe's `data:` section, which is also the preprocess stage's whole input."""
from __future__ import annotations

from pydantic import Field, model_validator

from ..core.schema import Strict

DEFAULT_DISCLAIMER = (
    "This information is for general education and is not a substitute for professional medical advice. "
    "Consult a healthcare professional about your own situation."
)


class SourceSpec(Strict):
    source: str
    """A dataset name from the preprocess registry (medquad, pubmedqa, medqa, medmcqa, mmlu_medical,
    flashcards, ...) or the path of your own CSV/XLSX/JSONL file."""
    path: str | None = None
    """Where the named dataset's publisher files are (a folder or file); default: its Hub id."""
    columns: dict[str, str] | None = None
    """For your own files: which column holds question, answer (and optionally context, qtype, id)."""
    qtypes: list[str] | None = None
    """Keep only these question types: MedQuAD qtype, MedQA step1/step2&3, MMLU or MedMCQA subject, or
    your file's mapped qtype column."""
    limit: int | None = Field(default=None, gt=0)
    """Keep at most this many records from this source (seeded sample); trades data for speed."""


class SplitSpec(Strict):
    val: float = Field(default=0.1, ge=0.0, lt=1.0)
    """Share of records held out for validation loss during training (at least one row when not 0; 0: no
    validation pass)."""
    test: float = Field(default=0.1, ge=0.0, lt=1.0)
    """Share held out for evaluation (ignored where a source has an official test split; at least one row
    when not 0)."""
    seed: int = 42
    """Seed of the shuffle that makes the split; the same seed gives the same split."""
    official: bool = True
    """Use a source's own test/validation split where it ships one (PubMedQA's 500-question test set,
    MedQA and MedMCQA folders with train and test files) instead of the shares above."""

    @model_validator(mode="after")
    def _leaves_training_data(self) -> "SplitSpec":
        if self.val + self.test >= 1.0:
            raise ValueError(f"val + test is {self.val + self.test:g}; it must stay below 1 to leave rows to train on")
        return self


class DisclaimerSpec(Strict):
    enabled: bool = False
    """Append a safety disclaimer to every answer (never twice); held-out rows get it too, so the
    reference answers look like what the model was trained to say."""
    text: str = DEFAULT_DISCLAIMER
    """The disclaimer sentence(s) appended."""


class DataSpec(Strict):
    train: list[SourceSpec] = Field(min_length=1)
    """Sources for training; their held-out val/test parts come from the split below."""
    eval: list[SourceSpec] = []
    """Extra sources used only as held-out test questions (never trained on)."""
    split: SplitSpec = SplitSpec()
    """How the train sources are split into train/val/test."""
    system_prompt: str | None = None
    """System turn put before every question, in training and in evaluation alike."""
    disclaimer: DisclaimerSpec = DisclaimerSpec()
    """Safety-disclaimer injection on training answers."""
