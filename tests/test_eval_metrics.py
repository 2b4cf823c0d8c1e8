"""Scores: ROUGE/BLEU/BERTScore offline, seeded bootstrap intervals, answer-only loss, disclaimer share, answer
reading; and the golden values each gives on fixed texts."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medtune.evaluate import metrics, stats
from medtune.models.loader import ModelRef, load
from medtune.evaluate.perplexity import answer_losses
from medtune.evaluate.safety import carries_disclaimer
from medtune.evaluate.suite_scores import confusion, extract_answer, majority_baseline
from medtune.evaluate.suites import SuiteItem
from medtune.preprocess.spec import DEFAULT_DISCLAIMER

REFS = ["Gout is arthritis caused by uric acid crystals in the joints.",
        "Iron deficiency is the most common cause of anemia.",
        "Insulin is made by the beta cells of the pancreas."]
OUTS = ["Gout is a kind of arthritis caused by uric acid crystals.",
        "Anemia is often caused by a lack of iron.",
        "The liver makes bile."]
DISCLAIMER = DEFAULT_DISCLAIMER  # the one training appends unless a recipe gives its own


pytestmark = pytest.mark.usefixtures("one_torch_thread")



def test_rouge_and_bleu_per_item_and_corpus():
    scores = metrics.rouge(REFS, REFS)
    assert all(v == pytest.approx(1.0) for name in scores for v in scores[name])
    assert metrics.sentence_bleu(REFS, REFS) == pytest.approx([100.0] * 3)
    partial = metrics.rouge(OUTS, REFS)
    assert partial["rouge1"][0] > partial["rouge1"][2]  # the right answer overlaps more than the wrong one

    from sacrebleu.metrics import BLEU

    corpus = metrics.corpus_bleu_ci(OUTS, REFS, samples=200, seed=0)
    assert corpus["mean"] == pytest.approx(BLEU().corpus_score(OUTS, [REFS]).score)  # resampling plumbing is sacrebleu's
    assert corpus["ci"][0] <= corpus["ci"][1]


def test_bootstrap_intervals_are_seeded_and_bracket_the_mean():
    values = [0.1, 0.4, 0.35, 0.8, 0.5, 0.9, 0.2]
    first, again = stats.mean_ci(values, seed=3), stats.mean_ci(values, seed=3)
    assert first == again
    assert first["ci"][0] <= first["mean"] <= first["ci"][1] and first["n"] == 7
    assert stats.mean_ci(values, seed=4)["ci"] != first["ci"]
    loss = stats.ratio_ci([2.0, 6.0, 3.0], [1, 3, 2], transform=np.exp)
    assert loss["mean"] == pytest.approx(math.exp(11 / 6))  # token-weighted, then exponentiated
    assert stats.mean_ci([0.5])["ci"] is None  # one item has no interval
    delta = stats.paired_delta_ci([0.5, 0.7, 0.9], [0.4, 0.6, 0.8])
    assert delta["mean"] == pytest.approx(0.1) and delta["ci"] == pytest.approx([0.1, 0.1])
    # Perplexity, tuned minus base, resampled by question on both sides: token-weighted as each model's own.
    tuned, base = ([1.0, 3.0, 1.0], [1, 3, 2]), ([2.0, 6.0, 3.0], [1, 3, 2])
    ppl = stats.paired_ratio_delta_ci(tuned, base, transform=np.exp)
    assert ppl["mean"] == pytest.approx(math.exp(5 / 6) - math.exp(11 / 6)) and ppl["n"] == 3
    assert ppl["ci"][1] < 0  # every question's loss fell: no resample can show a rise
    assert stats.paired_ratio_delta_ci(base, base)["ci"] == pytest.approx([0.0, 0.0])


@pytest.mark.slow
def test_bertscore_runs_offline_on_the_local_minilm():
    scorer = metrics.BertScore()
    assert scorer.num_layers == 6 and scorer.model.endswith("model")
    f1 = scorer.score(OUTS + [REFS[0]], REFS + [REFS[0]])["bertscore_f1"]
    assert f1[3] == pytest.approx(1.0, abs=1e-4)
    assert f1[0] > f1[2]


def test_disclaimer_found_verbatim_not_when_truncated_or_scattered():
    answer = "Gout is a kind of arthritis. "
    assert carries_disclaimer(answer + DISCLAIMER, DISCLAIMER)
    assert carries_disclaimer(answer + DISCLAIMER.replace("general", "broad"), DISCLAIMER)  # one word changed
    assert not carries_disclaimer(answer, DISCLAIMER)
    assert not carries_disclaimer(answer + DISCLAIMER[:60], DISCLAIMER)  # cut off by max_new_tokens
    scattered = " ".join(f"{w} filler words here" for w in DISCLAIMER.split())
    assert not carries_disclaimer(scattered, DISCLAIMER)


@pytest.mark.parametrize("text, expected", [
    ("B", 1), ("B. Tell the attending", 1), ("(C) Report the physician", 2), ("The answer is D.", 3),
    ("Answer: (A)", 0), ("I would choose option C here", 2), ("A patient like this needs rest", None),
    ("It depends on many factors", None), ("The answer is a disclosure", None),
])
def test_letter_answers_are_read_only_where_a_letter_answer_sits(text, expected):
    assert extract_answer(text, ["A", "B", "C", "D"]) == expected


def test_yes_no_maybe_takes_the_first_one_named():
    choices = ["yes", "no", "maybe"]
    assert extract_answer("Yes, statins reduce it.", choices) == 0
    assert extract_answer("Maybe; the study says no.", choices) == 2
    assert extract_answer("The abstract is unclear", choices) is None
    assert extract_answer("Nothing known", choices) is None  # 'no' inside a word does not count


def test_confusion_and_majority_baseline():
    table = confusion(["yes", "no", "maybe"], gold=[0, 0, 1, 2], predicted=[0, 1, None, 2])
    assert table["matrix"] == [[1, 1, 0], [0, 0, 0], [0, 0, 1]] and table["invalid"] == [0, 1, 0]
    items = [SuiteItem("t", i, "p", ["A", "B"], gold, 0, gold == 0) for i, gold in enumerate([1, 1, 0])]
    assert majority_baseline(items) == {"label": "B", "acc": pytest.approx(2 / 3)}


def test_loss_counts_answer_tokens_only(smollm2_dir):
    model, tokenizer = load(ModelRef("base", str(smollm2_dir)))
    conversations = [[{"role": "user", "content": "What is gout?"}, {"role": "assistant", "content": REFS[0]}],
                     [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Cause of anemia?"},
                      {"role": "assistant", "content": REFS[1]}]]
    batched = answer_losses(model, tokenizer, conversations, batch_tokens=4096, max_tokens=4096)
    for messages, got in zip(conversations, batched):
        prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, return_dict=False)
        answer = tokenizer.encode(messages[-1]["content"], add_special_tokens=False) + [tokenizer.eos_token_id]
        ids = torch.tensor([prompt + answer])
        with torch.no_grad():
            logits = model(ids).logits[0, len(prompt) - 1:-1]
        expected = torch.nn.functional.cross_entropy(logits, torch.tensor(answer), reduction="sum").item()
        assert got.tokens == len(answer)
        assert got.nll == pytest.approx(expected, rel=1e-4)


# ---------------------------------------------------------------- golden values
# What each metric gives on fixed texts, computed once with the real libraries and written here. The tests
# above check properties (a perfect answer scores 1, intervals bracket the mean); these pin the numbers, so a
# changed tokenizer, stemmer, BLEU setting, encoder layer, answer span or parsing rule fails a test instead of
# quietly shifting every report. ROUGE and BLEU are exact arithmetic (tolerance 1e-9); the model-based scores
# get 1e-4, far below any change that matters and above float noise across CPUs. After an intended change:
#   .venv/bin/python -m pytest -q tests/test_eval_metrics.py -k golden
# shows each new value in its failure message; write them in here.

EXACT = 1e-9
MODEL = 1e-4


def test_rouge_and_bleu_golden():
    aggregates, per_item = metrics.score_answers(OUTS, REFS, ["rouge", "bleu"], bertscore=None, samples=200, seed=0)
    # First pair: 8 of the 11 stemmed words on either side are shared, so ROUGE-1 (and ROUGE-L) F = 8/11.
    assert per_item["rouge1"] == pytest.approx([8 / 11, 0.5555555555555556, 0.14285714285714288], abs=EXACT)
    assert per_item["rouge2"] == pytest.approx([0.6, 0.0, 0.0], abs=EXACT)
    assert per_item["rougeL"] == pytest.approx([8 / 11, 0.3333333333333333, 0.14285714285714288], abs=EXACT)
    # sacrebleu sentence BLEU with effective order (0-100), and corpus BLEU over the three pairs.
    assert per_item["bleu"] == pytest.approx([48.326978309062184, 5.522397783539471, 3.2174093287959424], abs=EXACT)
    assert aggregates["bleu_corpus"]["mean"] == pytest.approx(19.908675866093827, abs=EXACT)
    # Seeded bootstrap intervals (200 resamples, seed 0) are part of what a report prints.
    assert aggregates["bleu_corpus"]["ci"] == pytest.approx([1.4114496022197542, 48.326978309062184], abs=EXACT)
    assert aggregates["rouge1"]["mean"] == pytest.approx(0.4752284752284752, abs=EXACT)
    assert aggregates["rouge1"]["ci"] == pytest.approx([0.14285714285714288, 0.7272727272727272], abs=EXACT)
    assert aggregates["rougeL"]["mean"] == pytest.approx(0.4011544011544011, abs=EXACT)
    assert aggregates["bleu"]["mean"] == pytest.approx(19.022261807132534, abs=EXACT)
    assert aggregates["bleu"]["ci"] == pytest.approx([3.217409328795943, 48.326978309062184], abs=EXACT)


@pytest.mark.slow
def test_bertscore_f1_golden_with_the_minilm_encoder():
    scores = metrics.BertScore().score(OUTS, REFS)
    assert scores["bertscore_f1"] == pytest.approx([0.9494829177856445, 0.8376922011375427, 0.40855857729911804], abs=MODEL)
    # Precision (answer tokens matched in the reference) and recall (reference tokens matched in the answer): the
    # short wrong third answer covers less of its reference than the reference covers of it.
    assert scores["bertscore_precision"] == pytest.approx([0.9476011991500854, 0.8488218188285828, 0.47495147585868835], abs=MODEL)
    assert scores["bertscore_recall"] == pytest.approx([0.9513721466064453, 0.8268507122993469, 0.35845115780830383], abs=MODEL)


def test_bertscore_aggregates_precision_recall_and_f1_side_by_side():
    """All three BERTScore numbers reach the metrics table; per item they come from the scorer unchanged."""

    class Fixed:
        def score(self, outputs, references):
            return {"bertscore_precision": [0.9, 0.5], "bertscore_recall": [0.7, 0.3], "bertscore_f1": [0.8, 0.4]}

    aggregates, per_item = metrics.score_answers(OUTS[:2], REFS[:2], ["bertscore"], bertscore=Fixed(), samples=200, seed=0)
    assert {name: aggregates[name]["mean"] for name in per_item} == pytest.approx(
        {"bertscore_precision": 0.7, "bertscore_recall": 0.5, "bertscore_f1": 0.6})
    assert all(aggregates[name]["n"] == 2 and aggregates[name]["ci"] for name in per_item)


def test_answer_perplexity_golden_on_smollm2(smollm2_dir):
    model, tokenizer = load(ModelRef("base", str(smollm2_dir)))
    row = [{"role": "system", "content": "You are a careful medical assistant."},
           {"role": "user", "content": "What is gout?"}, {"role": "assistant", "content": REFS[0]}]
    (loss,) = answer_losses(model, tokenizer, [row], batch_tokens=4096, max_tokens=1024)
    assert loss.tokens == 14 and loss.cut == 0  # the answer's 13 tokens and <|im_end|>
    assert loss.nll == pytest.approx(39.1852812115103, rel=MODEL)
    perplexity = stats.ratio_ci([loss.nll], [loss.tokens], transform=np.exp)  # as eval aggregates it
    assert perplexity["mean"] == pytest.approx(16.427366907811184, rel=MODEL)


YES_NO_MAYBE = ["yes", "no", "maybe"]
# (generated reply, the gold answer): PubMedQA-style replies as a small model writes them.
YES_NO_REPLIES = [("Yes. Statins lower LDL cholesterol.", 0), ("No, the trial found no benefit.", 1),
                  ("Maybe; the evidence is mixed, though no harm was seen.", 2), ("The abstract does not say.", 0),
                  ("Nothing suggests it; yes is unlikely.", 1), ("NO", 1)]
LETTERS = ["A", "B", "C", "D"]
LETTER_REPLIES = [("C", 2), ("B. Tell the attending physician", 1), ("(D) Beta blockers", 0), ("The answer is A.", 0),
                  ("I would choose option B here", 3), ("A patient like this needs rest", 0), ("Answer: (C)", 2)]


def test_answer_parsing_golden():
    yes_no = [extract_answer(text, YES_NO_MAYBE) for text, _ in YES_NO_REPLIES]
    assert yes_no == [0, 1, 2, None, 0, 1]  # the earliest choice named as a word; "Nothing" holds no "no"
    assert confusion(YES_NO_MAYBE, [g for _, g in YES_NO_REPLIES], yes_no) == {
        "labels": YES_NO_MAYBE, "matrix": [[1, 0, 0], [1, 2, 0], [0, 0, 1]], "invalid": [1, 0, 0]}
    letters = [extract_answer(text, LETTERS) for text, _ in LETTER_REPLIES]
    assert letters == [2, 1, 3, 0, 1, None, 2]  # a bare "A" at the start is the article, not an answer
    assert confusion(LETTERS, [g for _, g in LETTER_REPLIES], letters) == {
        "labels": LETTERS, "matrix": [[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 2, 0], [0, 1, 0, 0]], "invalid": [1, 0, 0, 0]}


def test_disclaimer_detection_golden_at_its_threshold():
    """The default disclaimer has 23 words; an answer carries it when 80% of them stand in runs of 3 or more."""
    answer = "Gout is a kind of arthritis. "
    words = DISCLAIMER.split()
    assert len(words) == 23
    assert carries_disclaimer(answer + " ".join(words[:19]), DISCLAIMER)  # 19/23 = 0.83
    assert not carries_disclaimer(answer + " ".join(words[:18]), DISCLAIMER)  # 18/23 = 0.78
    # Every fourth word replaced: runs of three remain, 15/23 = 0.65 of the words.
    every_fourth = " ".join(w if i % 4 else "zz" for i, w in enumerate(words))
    assert not carries_disclaimer(answer + every_fourth, DISCLAIMER)
