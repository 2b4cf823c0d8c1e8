"""Generation for evaluation: the training chat template, batched = one-at-a-time, and resume after a kill."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from medtune.evaluate import generate as gen
from medtune.models.loader import ModelRef, load
from medtune.evaluate.perplexity import answer_span
from medtune.evaluate.store import GenerationStore

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = ["What is gout?", "Which vitamin deficiency causes scurvy, and how is it treated?",
             "Name one symptom of anemia.", "What does an MRI scan measure in the brain of a patient with stroke?",
             "Is aspirin an anticoagulant?", "What organ produces insulin?"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")



@pytest.fixture(scope="module")
def smollm2(smollm2_dir):
    return load(ModelRef("base", str(smollm2_dir)))


@pytest.fixture(scope="module")
def tokenizer(smollm2_dir):
    """The tokenizer alone, for the tests that run no model (the fast set loads no weights)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_dir)


def _conversations():
    system = {"role": "system", "content": "You are a careful medical assistant."}
    yield [system, {"role": "user", "content": "What is gout?"}, {"role": "assistant", "content": "A form of arthritis."}]
    yield [{"role": "user", "content": "Define anemia."}, {"role": "assistant", "content": "Too few red blood cells."}]
    yield [system, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
           {"role": "user", "content": "What is a fever?"}, {"role": "assistant", "content": "A raised body temperature."}]


def test_inference_prompt_tokens_are_a_prefix_of_the_training_rendering(tokenizer):
    stops = [tokenizer.eos_token_id]
    for messages in _conversations():
        prompt = gen.prompt_ids(tokenizer, messages[:-1])
        full = gen.training_ids(tokenizer, messages)
        assert full[: len(prompt)] == prompt
        # What follows the prompt is the answer and the end-of-turn token: what generation must produce.
        tokens, start = answer_span(tokenizer, messages, stops)
        assert start == len(prompt)
        assert tokens[-1] == tokenizer.eos_token_id == tokenizer.convert_tokens_to_ids("<|im_end|>")
        assert tokenizer.decode(tokens[start:-1]) == messages[-1]["content"]


@pytest.mark.slow
def test_batched_left_padded_generation_equals_one_question_at_a_time(smollm2):
    model, tokenizer = smollm2
    prompts = [gen.prompt_ids(tokenizer, [{"role": "user", "content": q}]) for q in QUESTIONS[:4]]
    assert len({len(p) for p in prompts}) > 1  # different lengths, so the batch really is padded
    batched = gen.generate_batch(model, tokenizer, prompts, max_new_tokens=10)
    single = [gen.generate_one(model, tokenizer, p, max_new_tokens=10) for p in prompts]
    assert batched == single  # token ids, not just text
    for ids, stopped in batched:
        assert tokenizer.eos_token_id not in ids and (stopped or len(ids) == 10)


@pytest.mark.slow
def test_cpu_grouped_query_attention_gives_stock_sdpa_answers(smollm2):
    """The attention that skips sdpa's KV-cache copy (models.attention) is the one eval loads, and changes nothing."""
    import torch

    from medtune.models import attention

    model, tokenizer = smollm2
    assert model.config._attn_implementation == attention.NAME
    assert model.config.num_key_value_heads < model.config.num_attention_heads  # SmolLM2 really is grouped
    prompts = [gen.prompt_ids(tokenizer, [{"role": "user", "content": q}]) for q in QUESTIONS]
    ids, mask = gen.left_padded(prompts, tokenizer.pad_token_id)

    def logits_and_answers():
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits
        return logits[mask.bool()], gen.generate_batch(model, tokenizer, prompts, max_new_tokens=12)

    grouped_logits, grouped_answers = logits_and_answers()
    model.set_attn_implementation("sdpa")
    try:
        stock_logits, stock_answers = logits_and_answers()
    finally:
        model.set_attn_implementation(attention.NAME)
    assert grouped_answers == stock_answers
    assert torch.allclose(grouped_logits, stock_logits, rtol=0, atol=1e-5)


def test_store_cuts_a_half_written_line_and_keys_by_fingerprint(tmp_path):
    path = tmp_path / "generations.jsonl"
    good = {"model": "base", "set": "test", "id": "a", "fingerprint": "f1", "output": "x"}
    path.write_text(json.dumps(good) + "\n" + '{"model": "base", "set": "te')  # killed mid-write
    store = GenerationStore(path)
    assert path.read_text() == json.dumps(good) + "\n"
    assert store.get("base", "test", "a", "f1")["output"] == "x"
    assert store.get("base", "test", "a", "f2") is None  # other prompt or weights: generate again
    store.append([{**good, "id": "b"}])
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["a", "b"]


_CHILD = """
import sys, time
from pathlib import Path
from medtune.evaluate.generate import Request, generate_missing
from medtune.models.loader import ModelRef, load
from medtune.evaluate.store import GenerationStore
questions = {questions!r}
model, tokenizer = load(ModelRef("base", {model!r}))
requests = [Request(f"q{{i}}", [{{"role": "user", "content": q}}]) for i, q in enumerate(questions)]
generate_missing(model, tokenizer, requests, GenerationStore(Path({path!r})), model_label="base", set_name="test",
                 identity="smollm2", max_new_tokens=6, batch_size=1, show_progress=False,
                 on_batch=lambda records: time.sleep(1.0))  # slow enough to be killed halfway
"""


@pytest.mark.slow
def test_killed_generation_resumes_without_regenerating(smollm2, smollm2_dir, tmp_path, monkeypatch):
    path = tmp_path / "eval" / "generations.jsonl"
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(_CHILD.format(
        questions=QUESTIONS, model=str(smollm2_dir), path=str(path)))], cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        if path.exists() and path.read_text().count("\n") >= 2:
            break
        time.sleep(0.05)
    assert child.poll() is None, f"child ended before it could be killed: {child.stderr.read().decode()[-2000:]}"
    child.send_signal(signal.SIGKILL)
    child.wait()
    done_before = {json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()}
    assert 2 <= len(done_before) < len(QUESTIONS)

    generated = []
    real = gen.generate_batch

    def spy(model, tokenizer, prompts, max_new_tokens):
        generated.extend(prompts)
        return real(model, tokenizer, prompts, max_new_tokens)

    monkeypatch.setattr(gen, "generate_batch", spy)
    model, tokenizer = smollm2
    requests = [gen.Request(f"q{i}", [{"role": "user", "content": q}]) for i, q in enumerate(QUESTIONS)]
    records = gen.generate_missing(model, tokenizer, requests, GenerationStore(path), model_label="base", set_name="test",
                                   identity="smollm2", max_new_tokens=6, batch_size=4, show_progress=False)
    assert len(generated) == len(QUESTIONS) - len(done_before)  # nothing already on disk was generated again
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted(r["id"] for r in lines) == sorted(records) == [f"q{i}" for i in range(len(QUESTIONS))]
    # The resumed batch (4 at a time) continues the killed run (1 at a time) with the same greedy answers.
    expected = gen.generate_one(model, tokenizer, gen.prompt_ids(tokenizer, requests[0].messages), 6)[0]
    assert records["q0"]["output_ids"] == expected
    # Each new answer says how it was computed (batched half-precision decoding is not batch-invariant).
    fresh = [r for r in lines if r["id"] not in done_before]
    assert fresh and all(r["dtype"] == "float32" and r["device"] == "cpu" and 1 <= r["batch_rows"] <= 4 for r in fresh)
