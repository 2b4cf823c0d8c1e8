"""KnowTuning data: facts from medical answers, hardest facts by perplexity, negatives, files, the LLM generator
(a local OpenAI-compatible server) and the judge's KnowTuning criteria."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from pydantic import ValidationError

from medtune.augment import knowtuning as kt
from medtune.augment import writer as writer_module
from medtune.augment.errors import AugmentError
from medtune.augment.facts import join_facts, plain, split_facts
from medtune.augment.negatives import Donor, revise_facts, topic
from medtune.augment.spec import GeneratorSpec, KnowTuningSpec
from medtune.core.errors import MedtuneError
from medtune.evaluate import judge, run as run_module
from medtune.evaluate.run import ModelOutputs, _paired_deltas, _score_test_set
from medtune.evaluate.spec import EvalSpec, JudgeSpec
from fake_llm import chat_reply, fake_endpoint

SYSTEM = "You are a careful medical assistant."
QA = [  # (qtype, question, answer): MedQuAD-like, with doses, abbreviations and lists
    ("treatment", "What are the treatments for Gout ?",
     "Gout attacks are treated with NSAIDs, e.g. naproxen 500 mg twice daily, or colchicine 0.6 mg. Dr. Lee notes "
     "that steroids help when NSAIDs cannot be used; allopurinol lowers uric acid over months. Treatment includes:\n"
     "- Resting the joint.\n- Ice packs for 20 minutes."),
    ("treatment", "What are the treatments for High Blood Pressure ?",
     "Lifestyle changes come first, i.e. less salt and more exercise. Most people with high blood pressure need "
     "2 or more medicines. Diuretics, ACE inhibitors and calcium channel blockers are common choices."),
    ("treatment", "What are the treatments for Asthma ?",
     "Inhaled corticosteroids control asthma over the long term. Quick-relief inhalers open the airways in an attack."),
    ("symptoms", "What are the symptoms of Gout ?",
     "Gout causes sudden, severe pain in a joint, often the big toe. The joint is red, hot and swollen."),
    ("symptoms", "What are the symptoms of Anemia ?",
     "Anemia makes people tired and weak. Some have pale skin, a fast heartbeat or shortness of breath."),
    ("information", "What is (are) Hiccups ?", "Hiccups are sudden contractions of the diaphragm."),
]


def _rows(qa=QA) -> list[dict]:
    rows = [{"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q},
                          {"role": "assistant", "content": a}],
             "id": f"q{i}", "source": "medquad", "qtype": t, "answer_key": None, "choices": None}
            for i, (t, q, a) in enumerate(qa)]
    rows.append({"messages": [{"role": "user", "content": "Which drug? A. x B. y"},
                              {"role": "assistant", "content": "Answer: B. y"}],
                 "id": "mc0", "source": "medqa", "qtype": None, "answer_key": "B", "choices": ["x", "y"]})
    return rows


def _length_perplexity(model_path, conversations, **kwargs):
    """Stands in for the base model: a longer fact is 'harder'. Records what it was asked."""
    _length_perplexity.asked = conversations
    return [float(len(c[-1]["content"])) for c in conversations]


@pytest.fixture
def fake_scores(monkeypatch):
    monkeypatch.setattr(kt, "fact_perplexities", _length_perplexity)


def _build(tmp_path: Path, rows=None, name="out", **spec) -> kt.KnowTuningData:
    return kt.build_knowtuning_data(rows if rows is not None else _rows(), KnowTuningSpec(**spec), model_path="base",
                                    out_dir=tmp_path / name, system_prompt=SYSTEM)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ---------------------------------------------------------------- facts


def test_facts_of_a_medical_answer_survive_abbreviations_doses_and_lists():
    facts = split_facts(QA[0][2])
    assert facts == [
        "Gout attacks are treated with NSAIDs, e.g. naproxen 500 mg twice daily, or colchicine 0.6 mg.",
        "Dr. Lee notes that steroids help when NSAIDs cannot be used;",
        "allopurinol lowers uric acid over months.",
        "Treatment includes:",
        "- Resting the joint.",
        "- Ice packs for 20 minutes.",
    ]
    assert join_facts(facts) == QA[0][2]  # the layout comes back: lists on their own lines
    numbered = split_facts("Steps: 1. Stop the drug. 2. Call the U.S. poison line vs. waiting.\nVitamin B12 is 2.4 mcg "
                           "a day; adults over 50 years need it from food or pills. Hepatitis B. The end")
    assert numbered == ["Steps:", "1. Stop the drug.", "2. Call the U.S. poison line vs. waiting.",
                        "Vitamin B12 is 2.4 mcg a day;", "adults over 50 years need it from food or pills.",
                        "Hepatitis B.", "The end"]
    assert join_facts(numbered[:3]) == "Steps:\n1. Stop the drug.\n2. Call the U.S. poison line vs. waiting."
    # A short list after a semicolon is one fact, not three fragments.
    assert split_facts("Signs are fever; cough; rash.") == ["Signs are fever; cough; rash."]
    assert plain("- Ice packs for 20 minutes.") == "Ice packs for 20 minutes."


def test_topic_is_what_one_question_asks_that_another_of_its_type_does_not():
    assert topic(QA[1][1], QA[0][1]) == "High Blood Pressure"
    assert topic("What is (are) Asthma ?", "What is (are) Gout ?") == "Asthma"


# ---------------------------------------------------------------- the data


def test_hardest_facts_become_extra_pairs_and_files_say_what_was_taught(tmp_path, fake_scores):
    data = _build(tmp_path)
    out = tmp_path / "out"
    facts = {r["id"]: r for r in _jsonl(out / kt.FACTS_FILE)}
    assert set(facts) == {f"q{i}" for i in range(len(QA))}  # the multiple-choice row has no long answer
    gout = facts["q0"]["facts"]
    # Headings are never scored; of the 5 scored facts, ceil(0.5 x 5) = 3 longest ("hardest" here) are picked.
    assert gout[3] == {"text": "Treatment includes:", "perplexity": None, "hardest": False,
                       "not_scored": "heading (states no fact)"}
    scored = sorted((f["perplexity"], i) for i, f in enumerate(gout) if f["perplexity"] is not None)
    assert {i for i, f in enumerate(gout) if f["hardest"]} == {i for _, i in scored[-3:]}
    # Perplexity was asked of each fact as the answer to its question, with the recipe's system prompt.
    asked = [c for c in _length_perplexity.asked if c[1]["content"] == QA[0][1]]
    assert [c[-1]["content"] for c in asked] == [plain(f["text"]) for f in gout if f["perplexity"] is not None]
    assert all(c[0] == {"role": "system", "content": SYSTEM} for c in asked)

    augmented = _jsonl(out / kt.AUGMENTED_FILE)
    assert data.sft_rows[:len(_rows())] == _rows()  # the originals first, unchanged
    assert [{k: v for k, v in r.items() if k != "detail"} for r in augmented] == data.sft_rows[len(_rows()):]
    assert len(augmented) == data.counts["hardest_picked"] == sum(f["hardest"] for r in facts.values() for f in r["facts"])
    first = augmented[0]
    assert first["messages"][0] == {"role": "system", "content": SYSTEM}
    assert first["messages"][1]["content"].startswith(QA[0][1]) and first["messages"][1]["content"] != QA[0][1]
    assert first["messages"][2]["content"] == plain(gout[first["detail"]["fact_index"]]["text"])
    assert set(first) == {"messages", "id", "source", "qtype", "answer_key", "choices", "detail"}
    # The one-fact answer gets no extra pair (it would repeat its row) and no deletion or shuffle.
    assert not any(r["detail"]["from_id"] == "q5" for r in augmented)
    assert data.counts["hardest_skipped"] == {"one-fact answer (its pair would repeat the row)": 1}
    assert data.counts["pairs_skipped"]["deletion"] == {"fewer than 2 facts": 1}
    assert data.counts["pairs_skipped"]["shuffle"] == {"fewer than 2 facts": 1}
    assert data.counts["skipped_rows"] == {"has an answer key (multiple choice or yes/no): no long-form answer": 1}
    assert len(data.counts["offline_simplifications"]) == 4
    assert all("simplification" in s for s in data.counts["offline_simplifications"])

    summary = json.loads((out / kt.SUMMARY_FILE).read_text())
    assert summary == json.loads(json.dumps(data.counts))
    assert sorted(p.name for p in out.iterdir()) == sorted([kt.SUMMARY_FILE, *summary["files"]])


def test_without_augmentation_stage_one_is_the_original_rows_and_no_model_is_asked(tmp_path, monkeypatch):
    """augment: false is the paper's ablation (SFT, then preference training on the negatives): no fact is scored."""
    def must_not_score(*args, **kwargs):
        raise AssertionError("augment: false scored facts with the base model")
    monkeypatch.setattr(kt, "fact_perplexities", must_not_score)
    data = _build(tmp_path, augment=False)
    assert data.sft_rows == _rows() and _jsonl(tmp_path / "out" / kt.AUGMENTED_FILE) == []
    assert data.counts["augment"] is False and data.counts["hardest_picked"] == 0
    assert data.counts["augmented_pairs"] == 0 and data.counts["hardest_skipped"] == {}
    facts = _jsonl(tmp_path / "out" / kt.FACTS_FILE)
    assert all(f["not_scored"] == "augment: false" and not f["hardest"] for r in facts for f in r["facts"])
    # The negatives do not depend on the scores: the same pairs as with augmentation.
    monkeypatch.setattr(kt, "fact_perplexities", _length_perplexity)
    assert _build(tmp_path, name="aug").preference_rows == data.preference_rows


def test_negatives_are_well_formed_and_differ_from_chosen(tmp_path, fake_scores):
    data = _build(tmp_path)
    prefs = data.preference_rows
    assert _jsonl(tmp_path / "out" / kt.PREFERENCES_FILE)[0]["detail"]["from_id"] == prefs[0]["id"].split("#")[0]
    assert Counter(r["kind"] for r in prefs) == data.counts["pairs"] == {"deletion": 5, "revision": 5, "shuffle": 5}
    by_id = {r["id"]: r for r in _rows()}
    for pair, written in zip(prefs, _jsonl(tmp_path / "out" / kt.PREFERENCES_FILE)):
        assert set(pair) == {"id", "messages", "chosen", "rejected", "kind", "source", "qtype"}
        assert written == {**pair, "detail": written["detail"]}
        source = by_id[pair["id"].split("#")[0]]
        facts = split_facts(source["messages"][-1]["content"])
        assert pair["messages"] == [{"role": "system", "content": SYSTEM}, source["messages"][1]]
        assert pair["chosen"] == join_facts(facts)
        assert pair["rejected"].strip() and pair["rejected"] != pair["chosen"]
        assert pair["qtype"] == source["qtype"] and pair["source"] == "medquad"
        detail = written["detail"]
        if pair["kind"] == "deletion":  # ceil(0.5 x facts) dropped, the rest in order
            assert len(detail["deleted"]) == -(-len(facts) // 2)
            assert pair["rejected"] == join_facts([f for i, f in enumerate(facts) if i not in detail["deleted"]])
        elif pair["kind"] == "shuffle":  # every fact once, in another order
            assert sorted(detail["order"]) == list(range(len(facts))) and detail["order"] != sorted(detail["order"])
            assert all(plain(f) in pair["rejected"] for f in facts) and len(pair["rejected"]) == len(pair["chosen"])
        else:  # the picked facts changed in place, the others kept
            changed = {c["index"] for c in detail["revised"]}
            assert changed and all(facts[c["index"]] == c["from"] != c["to"] for c in detail["revised"])
            assert pair["rejected"] == join_facts([next(c["to"] for c in detail["revised"] if c["index"] == i)
                                                   if i in changed else f for i, f in enumerate(facts)])


def test_revision_borrows_from_another_answer_of_the_same_qtype(tmp_path, fake_scores):
    _build(tmp_path, revise_share=1.0)
    qtype = {f"q{i}": t for i, (t, _, _) in enumerate(QA)}
    revisions = [r for r in _jsonl(tmp_path / "out" / kt.PREFERENCES_FILE) if r["kind"] == "revision"]
    hows = Counter()
    for pair in revisions:
        for change in pair["detail"]["revised"]:
            assert qtype[change["donor"]] == pair["qtype"] and change["donor"] != pair["detail"]["from_id"]
            assert change["from"] != change["to"]
            hows[change["how"]] += 1
    assert {"entity", "fact"} <= set(hows) <= {"number", "entity", "fact"}
    # The one-line answer ("information") has no other answer of its qtype: counted, not made up.
    assert _build(tmp_path, name="again").counts["pairs_skipped"]["revision"] == {
        "no other answer of the same qtype to swap with": 1}
    donor = Donor("d", QA[1][1], tuple(split_facts(QA[1][2])))
    import random

    number = revise_facts(["Take 500 mg twice daily."], QA[0][1], 1.0, random.Random(0), donor)
    assert number.facts == ["Take 2 mg twice daily."] and number.detail["revised"][0]["how"] == "number"
    entity = revise_facts(["Gout flares need an NSAID."], QA[0][1], 1.0, random.Random(0), donor)
    assert entity.facts == ["High Blood Pressure flares need an NSAID."]


def test_same_seed_same_data_in_any_row_order_and_another_seed_differs(tmp_path, fake_scores):
    first, again = _build(tmp_path, name="a"), _build(tmp_path, rows=list(reversed(_rows())), name="b")
    key = lambda rows: sorted(json.dumps(r, sort_keys=True) for r in rows)  # noqa: E731
    assert key(first.preference_rows) == key(again.preference_rows)
    assert key(first.sft_rows) == key(again.sft_rows)
    _build(tmp_path, name="c")
    for name in (kt.FACTS_FILE, kt.AUGMENTED_FILE, kt.PREFERENCES_FILE, kt.SUMMARY_FILE):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "c" / name).read_bytes(), name
    other = _build(tmp_path, name="d", seed=1)
    assert key(other.preference_rows) != key(first.preference_rows)


def test_data_knowtuning_cannot_use_stops_with_the_reason(tmp_path, fake_scores):
    with pytest.raises(AugmentError, match="none of the 1 training rows has a free-text answer"):
        _build(tmp_path, rows=_rows()[-1:])
    with pytest.raises(AugmentError, match="no preference pair could be built"):
        _build(tmp_path, rows=_rows([QA[-1]]))  # one answer of one fact: nothing to delete, shuffle or swap with


def test_spec_is_strict():
    with pytest.raises(ValidationError, match="once"):
        KnowTuningSpec(negatives=["deletion", "deletion"])
    with pytest.raises(ValidationError, match="extra"):
        KnowTuningSpec(hard_shar=0.3)
    with pytest.raises(ValidationError):
        KnowTuningSpec(delete_share=1.0)  # deleting every fact leaves no answer
    assert KnowTuningSpec(generator={"kind": "openai", "model": "m"}).generator == GeneratorSpec(kind="openai", model="m")


# ---------------------------------------------------------------- the LLM generator


def _llm_answer(seen: list):
    """An OpenAI-compatible endpoint answering KnowTuning's three prompts as a model would."""

    def answer(path: str, authorization: str, body: dict) -> tuple[int, dict]:
        prompt = body["messages"][0]["content"]
        seen.append((authorization, body["model"], prompt))
        if prompt.startswith("Break the answer"):
            answer_text = prompt.split("Answer: ", 1)[1]
            content = "Here are the facts:\n" + "\n".join(f"- {plain(f)}" for f in split_facts(answer_text))
        elif prompt.startswith("Here is a question"):
            fact = prompt.split("Fact: ", 1)[1]
            content = f'Question: "Which fact starts with {fact.split()[0]}?"'
        elif "Fact: Resting" in prompt:
            content = "Resting the joint."  # unchanged: unusable, the offline swap takes over
        else:
            content = "REVISED " + prompt.split("Fact: ", 1)[1]
        return 200, chat_reply(body["model"], content)

    return answer


def test_llm_generator_writes_facts_questions_and_revisions(tmp_path, fake_scores, monkeypatch):
    seen: list = []
    with fake_endpoint(_llm_answer(seen)) as url:
        monkeypatch.setenv(writer_module.BASE_URL_ENV, url)
        monkeypatch.setenv("MEDTUNE_TEST_GEN_KEY", "sk-gen-123")
        generator = {"kind": "openai", "model": "gen-model", "api_key_env": "MEDTUNE_TEST_GEN_KEY"}
        data = _build(tmp_path, rows=_rows(QA[:3]), generator=generator, revise_share=1.0)
    assert {(key, model) for key, model, _ in seen} == {("Bearer sk-gen-123", "gen-model")}
    counts = data.counts
    assert counts["generator"] == f"gen-model @ {url}"
    assert counts["facts_split_by"] == {"generator": 3} and set(counts["questions_by"]) == {"generator"}
    facts = _jsonl(tmp_path / "out" / kt.FACTS_FILE)
    assert facts[0]["split_by"] == "generator" and facts[0]["facts"][0]["text"] == plain(split_facts(QA[0][2])[0])
    augmented = _jsonl(tmp_path / "out" / kt.AUGMENTED_FILE)
    assert augmented[0]["messages"][1]["content"].startswith("Which fact starts with ")
    swaps = sum(n for how, n in counts["revisions_by"].items() if how != "generator")
    assert counts["revisions_by"]["generator"] > 0 and swaps == 1  # the one unusable reply fell back to a swap
    revision = next(r for r in data.preference_rows if r["kind"] == "revision")
    assert "REVISED " in revision["rejected"]
    # Only the offline parts still in use are labelled simplifications.
    assert not any("facts are sentences" in s for s in counts["offline_simplifications"])
    everything = "".join(p.read_text() for p in (tmp_path / "out").iterdir())
    assert "sk-gen-123" not in everything


def test_an_endpoint_that_refuses_is_a_user_error_naming_it(tmp_path, fake_scores, monkeypatch):
    refusal = {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}
    monkeypatch.setenv("MEDTUNE_TEST_GEN_KEY", "sk-wrong")
    with fake_endpoint(lambda path, authorization, body: (401, refusal)) as url:
        with pytest.raises(MedtuneError, match=rf"knowtuning.generator gen-model @ {url} failed: .*401.*check the "):
            _build(tmp_path, generator={"kind": "openai", "model": "gen-model", "base_url": url,
                                        "api_key_env": "MEDTUNE_TEST_GEN_KEY"})


def test_generator_key_must_be_in_the_environment(tmp_path, fake_scores, monkeypatch):
    monkeypatch.delenv("MEDTUNE_TEST_GEN_KEY", raising=False)
    with pytest.raises(MedtuneError, match="knowtuning.generator kind openai needs its API key .*MEDTUNE_TEST_GEN_KEY"):
        _build(tmp_path, generator={"kind": "openai", "model": "m", "api_key_env": "MEDTUNE_TEST_GEN_KEY"})


# ---------------------------------------------------------------- the judge's criteria


def _criteria_judge(prompts: list[str]):
    from deepeval.models import DeepEvalBaseLLM

    scores = {step[0]: score for step, score in ((judge.CRITERIA_STEPS["correctness"], 8),
                                                 (judge.CRITERIA_STEPS["completeness"], 6),
                                                 (judge.CRITERIA_STEPS["factuality"], 9),
                                                 (judge.CRITERIA_STEPS["logicality"], 4))}

    class CriteriaJudge(DeepEvalBaseLLM):
        """Scores by which rubric it was sent; 'tuned' answers one point higher; 'GARBAGE' gets no JSON."""

        def load_model(self):
            return None

        def generate(self, prompt: str) -> str:
            prompts.append(prompt)
            if "GARBAGE" in prompt:
                return "no verdict"
            score = next(s for step, s in scores.items() if step in prompt) + ("tuned answer" in prompt)
            return json.dumps({"reason": "ok", "score": score})

        async def a_generate(self, prompt: str) -> str:
            return self.generate(prompt)

        def get_model_name(self) -> str:
            return "criteria"

    return CriteriaJudge()


def test_judge_criteria_land_in_metrics_per_item_and_deltas(monkeypatch):
    prompts: list[str] = []
    monkeypatch.setattr(run_module, "make_judge", lambda spec: _criteria_judge(prompts))
    criteria = ["correctness", "completeness", "factuality", "logicality"]
    spec = EvalSpec(metrics=["rouge", "judge"], judge=JudgeSpec(kind="hf", model="j", criteria=criteria),
                    bootstrap_samples=100)
    rows = [{"id": f"q{i}", "messages": [{"role": "user", "content": f"question {i}"},
                                         {"role": "assistant", "content": f"reference {i}"}]} for i in range(3)]
    outputs = {label: ModelOutputs(generations={
        f"q{i}": {"output": "GARBAGE" if (label, i) == ("base", 2) else f"{label} answer {i}", "stopped_at_eos": True}
        for i in range(3)}) for label in ("base", "tuned")}
    metrics = {"models": {}, "references": {}, "skipped": {}}
    per_item: dict = {"base": [], "tuned": []}
    _score_test_set(rows, outputs, spec, None, metrics, per_item)

    assert len(prompts) == 2 * 3 * 4  # one call per model, answer and criterion
    for criterion, expected in zip(criteria, (0.8, 0.6, 0.9, 0.4)):
        name = judge.metric_name(criterion)
        assert metrics["models"]["base"][name]["mean"] == pytest.approx(expected)
        assert metrics["models"]["tuned"][name]["mean"] == pytest.approx(expected + 0.1)
        assert per_item["base"][2][name] is None and per_item["tuned"][0][f"{name}_reason"] == "ok"
    assert judge.metric_name("completeness") == "judge_completeness" and judge.metric_name("correctness") == "judge"
    assert metrics["judge"]["base"] == {"judged": 2, "unparsable": 1, "judge_model": "criteria",
                                        **{c: {"judged": 2, "unparsable": 1} for c in criteria[1:]}}
    deltas = _paired_deltas(per_item, spec)
    for name in ("judge", "judge_completeness", "judge_factuality", "judge_logicality"):
        assert deltas[name]["mean"] == pytest.approx(0.1) and deltas[name]["n"] == 2


def test_judge_criteria_are_validated():
    assert JudgeSpec(kind="hf", model="j").criteria == ["correctness"]
    with pytest.raises(ValidationError, match="once"):
        JudgeSpec(kind="hf", model="j", criteria=["factuality", "factuality"])
    with pytest.raises(ValidationError, match="literal"):
        JudgeSpec(kind="hf", model="j", criteria=["fluency"])


# ---------------------------------------------------------------- the real model


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_hardest_facts_are_the_highest_perplexity_under_the_real_model(tmp_path, smollm2_dir):
    gibberish = "Zorblax quintofen vrell 7.3 mm of plinth glorbs."
    qa = [("information", "What is (are) Asthma ?",
           f"Asthma is a lung disease. {gibberish} Asthma can make breathing hard."),
          ("information", "What is (are) Gout ?", "Gout is a kind of arthritis. It often starts in the big toe.")]
    spec = KnowTuningSpec(hard_share=0.3)
    data = kt.build_knowtuning_data(_rows(qa), spec, model_path=str(smollm2_dir), out_dir=tmp_path, system_prompt=SYSTEM)
    asthma, gout = _jsonl(tmp_path / kt.FACTS_FILE)
    assert [f["text"] for f in asthma["facts"] if f["hardest"]] == [gibberish]
    for record in (asthma, gout):
        perplexities = [f["perplexity"] for f in record["facts"]]
        assert all(p is not None and p > 1.0 for p in perplexities)
        top = max(range(len(perplexities)), key=perplexities.__getitem__)
        assert [i for i, f in enumerate(record["facts"]) if f["hardest"]] == [top]
    assert data.counts["hardest_picked"] == 2 and data.counts["augmented_pairs"] == 2


# ---------------------------------------------------------------- the cache


def _model_folder(folder: Path, fill: float) -> str:
    """A local model folder as weights_identity reads it: config, tokenizer file and safetensors weights."""
    import numpy as np
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"hidden_size": 4}))
    (folder / "tokenizer.json").write_text("{}")
    save_file({"w": np.full((4, 4), fill, np.float32)}, str(folder / "model.safetensors"))
    return str(folder)


def test_a_second_run_on_the_same_rows_and_model_reuses_the_augmentation(tmp_path, monkeypatch):
    """A sweep's points and seeds (and a rerun) get the first run's files back without scoring a fact again; other
    weights, options or rows are a new augmentation; a model that is not on this machine yet is not cached."""
    from medtune.augment.cache import knowtuning_data

    monkeypatch.setenv("MEDTUNE_CACHE", str(tmp_path / "cache"))
    scored = []
    monkeypatch.setattr(kt, "fact_perplexities", lambda *a, **k: scored.append(1) or _length_perplexity(*a, **k))
    model = _model_folder(tmp_path / "model", 0.5)

    def run(name, rows=None, model_path=model, **spec):
        out = tmp_path / name
        data, status = knowtuning_data(rows or _rows(), KnowTuningSpec(**spec), model_path=model_path, out_dir=out,
                                       system_prompt=SYSTEM)
        return data, status, {f.name: f.read_bytes() for f in sorted(out.iterdir())}

    first, status, files = run("first")
    assert status == "miss" and len(scored) == 1 and set(files) == {"facts.jsonl", "augmented.jsonl", "preferences.jsonl",
                                                                    "knowtuning.json"}
    again, status, files_again = run("again")
    assert status == "hit" and len(scored) == 1  # no fact scored
    assert (again.sft_rows, again.preference_rows, again.counts) == (first.sft_rows, first.preference_rows, first.counts)
    assert files_again == files

    assert run("other-seed", seed=1)[1] == "miss"
    assert run("fewer-rows", rows=_rows()[1:])[1] == "miss"
    _model_folder(tmp_path / "model", 0.25)  # retrained in place: other weights
    assert run("new-weights")[1] == "miss" and len(scored) == 4
    assert [run(f"not-here-{i}", model_path="org/not-downloaded")[1] for i in range(2)] == ["miss", "miss"]
    # Without augmentation no fact is scored: the model does not matter.
    assert [run(f"plain-{i}", model_path=m, augment=False)[1] for i, m in enumerate((model, "org/x"))] == ["miss", "hit"]
