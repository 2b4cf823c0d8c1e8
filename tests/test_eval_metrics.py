"""Scores: ROUGE/BLEU/BERTScore offline, seeded bootstrap intervals, answer-only loss, disclaimer share, answer reading."""
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

REFS = ["Gout is arthritis caused by uric acid crystals in the joints.",
        "Iron deficiency is the most common cause of anemia.",
        "Insulin is made by the beta cells of the pancreas."]
OUTS = ["Gout is a kind of arthritis caused by uric acid crystals.",
        "Anemia is often caused by a lack of iron.",
        "The liver makes bile."]
DISCLAIMER = ("This information is for general education and is not a substitute for professional medical advice. "
              "Consult a healthcare professional about your own situation.")


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
    batched = answer_losses(model, tokenizer, conversations, batch_size=2)
    for messages, got in zip(conversations, batched):
        prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, return_dict=False)
        answer = tokenizer.encode(messages[-1]["content"], add_special_tokens=False) + [tokenizer.eos_token_id]
        ids = torch.tensor([prompt + answer])
        with torch.no_grad():
            logits = model(ids).logits[0, len(prompt) - 1:-1]
        expected = torch.nn.functional.cross_entropy(logits, torch.tensor(answer), reduction="sum").item()
        assert got.tokens == len(answer)
        assert got.nll == pytest.approx(expected, rel=1e-4)
