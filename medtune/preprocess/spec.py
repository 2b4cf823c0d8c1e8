"""The recipe's `data:` section, which is also the preprocess stage's whole input."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ..core.schema import Strict

TEXT_SOURCES = frozenset({"cord19"})
"""Registry sources that give documents, not questions: only the `text` format reads them (tests check this set
against the registry's, which this module cannot import)."""

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
    full_text: bool = False
    """cord19 only: append each paper's body text from its full-text JSON parse (pmc_json preferred, else
    pdf_json, as metadata.csv lists them) to its title and abstract; much more text, much slower training."""


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
    format: Literal["chat", "instruction", "completion", "text"] = "chat"
    """How rows are laid out for training and evaluation alike: `chat` (the model's chat template), `instruction`
    (`### Instruction:` / `Question:` / `### Response:`), `completion` (`### Question Type:` / `### Question:` /
    `### Answer:`), both plain text for base models with the prompt untrained, or `text` (continued pretraining:
    every token trained, no test questions). Templates: medtune/templates/formats/."""
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

    @model_validator(mode="after")
    def _fits_format(self) -> "DataSpec":
        problems = []
        if self.format == "text":
            if self.eval:
                problems.append("format text trains on documents and has no test questions: remove `eval:` sources")
            if "test" in self.split.model_fields_set and self.split.test > 0:
                problems.append("format text holds out no test rows (split.val gives the validation loss): remove split.test")
            if self.disclaimer.enabled:
                problems.append("format text has no answers to append a disclaimer to: remove `disclaimer:`")
        else:
            text = [s.source for s in [*self.train, *self.eval] if s.source.lower() in TEXT_SOURCES]
            if text:
                problems.append(f"{', '.join(sorted(set(text)))} gives documents, not questions: set `format: text` "
                                "(continued pretraining), then fine-tune the pretrained model on questions in a second recipe")
        if self.format in ("completion", "text") and self.system_prompt:
            problems.append(f"format {self.format} has no place for system_prompt (chat and instruction do): remove it")
        for s in [*self.train, *self.eval]:
            if s.full_text and s.source.lower() not in TEXT_SOURCES:
                problems.append(f"full_text applies to {', '.join(sorted(TEXT_SOURCES))} only, not to '{s.source}'")
        if problems:
            raise ValueError("; ".join(problems))
        return self
