"""Prompt formats (data.format): each plain-text layout trains only on the answer and its EOS (through Axolotl's own
input_output tokenization on a real tokenizer), eval's prompt is token for token the training row's prefix, and
the rendered Axolotl config, base-model catalog entries and recipe checks agree."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

import preprocess_fixtures as fx
from medtune.core.errors import RecipeError
from medtune.evaluate.generate import request_for, request_ids, scored_conversation
from medtune.evaluate.perplexity import answer_span
from medtune.models import catalog as models
from medtune.preprocess.format import plain_prompt
from medtune.preprocess.layouts import specials
from medtune.preprocess.pipeline import prepare
from medtune.preprocess.records import Record
from medtune.preprocess.spec import DataSpec

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "smollm2-135m-lora.yaml"
IGNORE = -100

# The studies' layouts, as their write-ups print them (../shared/studies 001 and 004).
PUBMEDQA_PROMPT = ("### Instruction:\nAnswer the following medical question concisely.\n\n"
                   "Question: Do statins reduce mortality in sepsis?\n\n### Response:\n")
SYMPTOMS_PROMPT = "### Question Type:\nsymptoms\n\n### Question:\nWhat are the symptoms of Gout?\n\n### Answer:\n"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDTUNE_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def smollm2(smollm2_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_dir)


@pytest.fixture(params=["no_bos", "bos"])
def tokenizer(request, smollm2):
    """SmolLM2's real tokenizer as shipped (it adds no BOS), and a copy that starts every text with BOS the way
    Llama and Mistral tokenizers do, so both framings are checked."""
    if request.param == "no_bos":
        return smollm2
    with_bos = copy.deepcopy(smollm2)
    with_bos.add_bos_token = True
    assert with_bos("a")["input_ids"][0] == with_bos.bos_token_id
    return with_bos


def test_the_studies_layouts_render_exactly():
    pubmedqa = Record(id="1", question="Do statins reduce mortality in sepsis?", answer="No.", source="x")
    assert plain_prompt(pubmedqa, "instruction", None) == PUBMEDQA_PROMPT
    symptoms = Record(id="2", question="What are the symptoms of Gout?", answer="Pain.", source="x", qtype="symptoms")
    assert plain_prompt(symptoms, "completion", None) == SYMPTOMS_PROMPT
    # A system prompt replaces the instruction line; options and the answer-format line stay in the prompt.
    mc = Record(id="3", question="Which vitamin?", answer="C", source="x", options=["A", "C"], answer_key="B")
    assert plain_prompt(mc, "instruction", "Be brief.") == (
        "### Instruction:\nBe brief. Answer with the letter of the correct option.\n\n"
        "Question: Which vitamin?\n\nA. A\nB. C\n\n### Response:\n")


def _axolotl_input_output(tokenizer, row: dict) -> dict:
    from axolotl.prompt_strategies.input_output import load
    from axolotl.utils.dict import DictDefault

    strategy = load(tokenizer, DictDefault({"train_on_inputs": False, "sequence_len": 2048}))
    return strategy.tokenize_prompt({"segments": row["segments"]})


def _prepared(tmp_path: Path, tokenizer, fmt: str) -> Path:
    fx.write_custom_csv(tmp_path / "qa.csv", rows=[(f"What are the symptoms of disease {i}?", f"Fever and rash ({i}).", "symptoms")
                                                   for i in range(10)])
    data = DataSpec(format=fmt, train=[{"source": str(tmp_path / "qa.csv"), "columns": {"qtype": "Type"}}],
                    split={"val": 0.1, "test": 0.2})
    prepare(data, tmp_path / "out", tokenizer=tokenizer)
    return tmp_path / "out"


@pytest.mark.parametrize("fmt", ["instruction", "completion"])
def test_only_the_answer_and_eos_train_and_eval_prompts_with_the_training_prefix(tmp_path, tokenizer, fmt):
    out = _prepared(tmp_path, tokenizer, fmt)
    stops = [tokenizer.eos_token_id]
    for split in ("train", "test"):
        for line in (out / f"{split}.jsonl").read_text().splitlines():
            row = json.loads(line)
            answer = row["messages"][-1]["content"]
            trained = _axolotl_input_output(tokenizer, row)
            ids, labels = trained["input_ids"], trained["labels"]
            start = next(i for i, label in enumerate(labels) if label != IGNORE)

            # Trained: exactly the answer's tokens and the EOS that ends it; nothing of the prompt.
            assert labels[start:] == ids[start:]
            assert all(label == IGNORE for label in labels[:start])
            assert ids[start:] == tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]

            # Eval generates from exactly the untrained prefix, with no chat template, and scores the same span.
            prompt = request_ids(tokenizer, request_for(row))
            assert prompt == ids[:start]
            assert tokenizer.decode(prompt) == specials(tokenizer).bos + plain_prompt(_record(row), fmt, None)
            assert answer_span(tokenizer, scored_conversation(row), stops) == (ids, start)


def _record(row: dict) -> Record:
    question = row["messages"][-2]["content"]
    return Record(id=row["id"], question=question, answer="", source="x", qtype=row["qtype"])


def test_chat_rows_are_unchanged_and_prompt_through_the_chat_template(tmp_path, smollm2):
    out = _prepared(tmp_path, smollm2, "chat")
    row = json.loads((out / "test.jsonl").read_text().splitlines()[0])
    assert "segments" not in row and request_for(row).segments is None
    assert request_ids(smollm2, request_for(row)) == list(
        smollm2.apply_chat_template(row["messages"][:-1], add_generation_prompt=True, return_dict=False))


def test_text_rows_train_every_token_through_axolotls_completion_type(tmp_path, smollm2):
    from axolotl.prompt_strategies.completion import load
    from axolotl.utils.dict import DictDefault

    fx.write_custom_csv(tmp_path / "qa.csv", rows=[(f"Question {i}?", f"Answer {i}.", "t") for i in range(10)])
    data = DataSpec(format="text", train=[{"source": str(tmp_path / "qa.csv")}], split={"val": 0.1})
    manifest = prepare(data, tmp_path / "out", tokenizer=smollm2, sequence_len=64)
    assert manifest["counts"]["test"] == 0
    row = json.loads((tmp_path / "out" / "train.jsonl").read_text().splitlines()[0])
    assert set(row) == {"text", "id", "source", "qtype"}
    strategy = load(smollm2, DictDefault({"train_on_inputs": False, "sequence_len": 64}), {"field": "text"})
    trained = strategy.tokenize_prompt({"text": [row["text"]]})
    assert trained["labels"][0] == trained["input_ids"][0]
    assert trained["input_ids"][0][-1] == smollm2.eos_token_id


def test_rows_need_the_models_tokenizer_and_its_bos_eos_are_in_the_cache_key(tmp_path, smollm2):
    fx.write_custom_csv(tmp_path / "qa.csv")
    data = DataSpec(format="instruction", train=[{"source": str(tmp_path / "qa.csv")}])
    with pytest.raises(Exception, match="needs the model's tokenizer"):
        prepare(data, tmp_path / "a")
    first = prepare(data, tmp_path / "b", tokenizer=smollm2)
    with_bos = copy.deepcopy(smollm2)
    with_bos.add_bos_token = True
    assert prepare(data, tmp_path / "c", tokenizer=with_bos)["cache_key"] != first["cache_key"]


def test_base_models_render_without_a_chat_template_and_refuse_the_chat_format():
    from medtune.launch.render import render
    from medtune.recipe.loader import load

    for key in ("mistral-7b-v0.3", "llama-3.2-1b", "llama-3.2-3b"):
        assert not models.catalog()[key].has_chat_template
        with pytest.raises(RecipeError, match="base model without a chat template: set data.format"):
            load(RECIPE, [f"model={key}"])

    recipe, _ = load(RECIPE, ["model=llama-3.2-1b", "data.format=instruction"])
    cfg = render(recipe).axolotl  # Axolotl's own validation runs inside render
    assert "chat_template" not in cfg and cfg["special_tokens"]["eos_token"] == "<|end_of_text|>"
    assert cfg["datasets"] == [{"path": "data/train.jsonl", "ds_type": "json", "type": "input_output"}]
    assert cfg["test_datasets"][0]["type"] == "input_output"

    chat, _ = load(RECIPE)
    assert render(chat).axolotl["datasets"][0]["type"] == "chat_template"

    text, _ = load(RECIPE, ["data.format=text", "data.system_prompt=null", "data.disclaimer.enabled=false",
                            "data.split.test=0", "eval.metrics=[]", "eval.suites=[pubmedqa]"])
    assert render(text).axolotl["datasets"] == [{"path": "data/train.jsonl", "ds_type": "json", "type": "completion",
                                                 "field": "text"}]
    with pytest.raises(RecipeError, match="holds out no test questions: set eval.metrics"):
        load(RECIPE, ["data.format=text", "data.system_prompt=null", "data.disclaimer.enabled=false", "data.split.test=0"])
    with pytest.raises(RecipeError, match="format completion has no place for system_prompt"):
        load(RECIPE, ["data.format=completion"])


def test_chat_tool_prompts_a_question_as_eval_does(tmp_path, smollm2):
    from medtune.tools.chat import ChatRun, prompt_for

    out = _prepared(tmp_path, smollm2, "instruction")
    row = json.loads((out / "test.jsonl").read_text().splitlines()[0])
    run = ChatRun("x", None, "m", "instruction")
    question = row["messages"][-2]["content"]
    assert prompt_for(run, smollm2, [], question) == request_ids(smollm2, request_for(row))


def test_suite_questions_are_prompted_in_the_recipes_format(smollm2):
    from medtune.evaluate.suite_scores import generation_requests
    from medtune.evaluate.suites import SuiteItem

    item = SuiteItem(task="pubmedqa", doc_id=3, prompt="Abstract: ...\nQuestion: Is it safe?\nAnswer:",
                     choices=["yes", "no", "maybe"], gold=0, loglik_pred=0, correct=True)
    chat, = generation_requests([item], None)
    assert chat.segments is None and chat.messages == [{"role": "user", "content": item.prompt}]
    plain, = generation_requests([item], None, "instruction", smollm2)
    assert smollm2.decode(request_ids(smollm2, plain)) == (
        "### Instruction:\nAnswer the following medical question concisely.\n\n"
        f"Question: {item.prompt}\n\n### Response:\n")
