"""prepare(): split, dedup, leakage, manifest and cache, on tiny files the tests write."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import preprocess_fixtures as fx
from medtune.preprocess.pipeline import prepare
from medtune.preprocess.spec import DataSpec
from medtune.preprocess.split import leakage

ROW_KEYS = {"messages", "id", "source", "qtype", "answer_key", "choices"}


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDTUNE_CACHE", str(tmp_path / "cache"))


def read_rows(folder: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in (folder / f"{split}.jsonl").read_text().splitlines()]


def questions(folder: Path, split: str) -> list[str]:
    return [next(m["content"] for m in row["messages"] if m["role"] == "user") for row in read_rows(folder, split)]


def many_rows(n: int, prefix: str = "Question") -> list[tuple[str, str, str]]:
    return [(f"{prefix} number {i}?", f"Answer number {i}.", "even" if i % 2 == 0 else "odd") for i in range(n)]


def spec(*train, eval=(), **options) -> DataSpec:
    return DataSpec(train=list(train), eval=list(eval), **options)


def test_medquad_tree_to_jsonl_and_manifest(tmp_path):
    expected = fx.write_medquad(tmp_path / "medquad")
    out = tmp_path / "out"
    manifest = prepare(spec({"source": "medquad", "path": "medquad"}), out, base_dir=tmp_path)

    kept = expected["answered"] - expected["duplicates"]
    assert sum(manifest["counts"].values()) == kept
    assert manifest["dropped"] == {"no_answer": 2, "duplicate": 1, "too_long": 0, "malformed": 0, "filtered": 0}
    assert manifest["dedup"] == {"exact": 1, "normalized": 0}
    assert manifest["leakage"] == {"train_val": 0, "train_test": 0, "val_test": 0, "moved_to_held_out": 0, "passed": True}
    (source,) = manifest["sources"]
    assert source["read"] == expected["pairs"] and source["files"] == expected["files"] and len(source["sha256"]) == 64
    for split in ("train", "val", "test"):
        data = (out / f"{split}.jsonl").read_bytes()
        assert manifest["outputs"][f"{split}.jsonl"] == {"rows": manifest["counts"][split], "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        for row in read_rows(out, split):
            assert set(row) == ROW_KEYS and row["source"] == "medquad" and row["id"].startswith("medquad:")
            assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert manifest["cache"] == "miss" and manifest["options"]["formatter_version"] >= 1


def test_split_is_80_10_10_seeded_and_reproducible(tmp_path):
    fx.write_custom_csv(tmp_path / "qa.csv", rows=many_rows(200))
    a = prepare(spec({"source": str(tmp_path / "qa.csv")}), tmp_path / "a")
    b = prepare(spec({"source": str(tmp_path / "qa.csv")}), tmp_path / "b")
    c = prepare(spec({"source": str(tmp_path / "qa.csv")}, split={"seed": 7}), tmp_path / "c")
    assert a["counts"] == {"train": 160, "val": 20, "test": 20}
    assert (tmp_path / "a" / "test.jsonl").read_bytes() == (tmp_path / "b" / "test.jsonl").read_bytes()
    assert set(questions(tmp_path / "a", "test")) != set(questions(tmp_path / "c", "test"))
    ids = [row["id"] for split in ("train", "val", "test") for row in read_rows(tmp_path / "a", split)]
    assert len(ids) == len(set(ids)) == 200


def test_a_small_share_of_few_rows_still_holds_out_one_and_zero_holds_out_none(tmp_path):
    # 2% of 25 rounds to 0: an empty validation file would stop training, so one row is held out.
    fx.write_custom_csv(tmp_path / "qa.csv", rows=many_rows(25))
    few = prepare(spec({"source": str(tmp_path / "qa.csv")}, split={"val": 0.02, "test": 0.0}), tmp_path / "few")
    assert few["counts"] == {"train": 24, "val": 1, "test": 0}
    none = prepare(spec({"source": str(tmp_path / "qa.csv")}, split={"val": 0.0, "test": 0.0}), tmp_path / "none")
    assert none["counts"] == {"train": 25, "val": 0, "test": 0}


def test_normalized_duplicates_are_dropped_and_variants_never_straddle_splits(tmp_path):
    rows = many_rows(60)
    rows += [("QUESTION NUMBER 3", "answer number 3", "odd")]  # same after normalization: dropped
    rows += [(f"question number {i}!!", f"A different answer {i}.", "x") for i in range(0, 60, 3)]  # same question, new answer: kept
    fx.write_custom_csv(tmp_path / "qa.csv", rows=rows)
    manifest = prepare(spec({"source": str(tmp_path / "qa.csv")}, split={"val": 0.2, "test": 0.2}), tmp_path / "out")
    assert manifest["dedup"] == {"exact": 0, "normalized": 1}
    assert sum(manifest["counts"].values()) == 80
    where = {}
    for split in ("train", "val", "test"):
        for q in questions(tmp_path / "out", split):
            key = "".join(ch for ch in q.lower() if ch.isalnum())
            where.setdefault(key, set()).add(split)
    assert all(len(splits) == 1 for splits in where.values())


def test_eval_sources_go_entirely_to_test_and_keep_their_shared_questions(tmp_path):
    fx.write_custom_csv(tmp_path / "train.csv", rows=many_rows(40))
    shared_same = ("Question number 5?", "Answer number 5.", "odd")  # identical to a training row
    shared_new = ("question number 6", "Another answer entirely.", "even")  # same question, other answer
    fx.write_custom_csv(tmp_path / "exam.csv", rows=[shared_same, shared_new, ("Only in the exam?", "Yes.", "odd")])
    manifest = prepare(spec({"source": "train.csv"}, eval=[{"source": "exam.csv"}]), tmp_path / "out", base_dir=tmp_path)

    test_questions = questions(tmp_path / "out", "test")
    train_questions = questions(tmp_path / "out", "train") + questions(tmp_path / "out", "val")
    assert {"Question number 5?", "question number 6", "Only in the exam?"} <= set(test_questions)
    assert "Question number 5?" not in train_questions and "Question number 6?" not in train_questions
    assert manifest["sources"][0]["dropped"]["duplicate"] == 1  # the training copy, not the exam's
    assert manifest["leakage"]["passed"] and manifest["leakage"]["train_test"] == 0
    exam_rows = [r for r in read_rows(tmp_path / "out", "test") if r["source"] == "exam"]
    assert len(exam_rows) == 3


def test_pubmedqa_official_test_split_is_kept_unless_turned_off(tmp_path):
    truth = fx.write_pubmedqa(tmp_path / "pubmedqa", n=30, test_ids=10)
    manifest = prepare(spec({"source": "pubmedqa", "path": str(tmp_path / "pubmedqa")}), tmp_path / "out")
    assert manifest["counts"] == {"train": 18, "val": 2, "test": 10}
    assert {r["id"] for r in read_rows(tmp_path / "out", "test")} == {f"pubmedqa:{pmid}" for pmid in truth}
    assert manifest["sources"][0]["official_split"] is True
    shares = prepare(spec({"source": "pubmedqa", "path": str(tmp_path / "pubmedqa")}, split={"official": False}), tmp_path / "shares")
    assert shares["counts"] == {"train": 24, "val": 3, "test": 3} and shares["sources"][0]["official_split"] is False


def test_qtype_filter_and_limit_are_counted_as_filtered(tmp_path):
    fx.write_custom_csv(tmp_path / "qa.csv", rows=many_rows(50))
    manifest = prepare(spec({"source": str(tmp_path / "qa.csv"), "qtypes": ["even"], "columns": {"qtype": "Type"}, "limit": 20}), tmp_path / "out")
    assert sum(manifest["counts"].values()) == 20
    assert manifest["dropped"]["filtered"] == 25 + 5
    assert {r["qtype"] for s in ("train", "val", "test") for r in read_rows(tmp_path / "out", s)} == {"even"}


def test_system_prompt_and_disclaimer_reach_every_row(tmp_path):
    fx.write_custom_csv(tmp_path / "qa.csv")
    prepare(spec({"source": str(tmp_path / "qa.csv")}, system_prompt="Be careful.", disclaimer={"enabled": True, "text": "See a doctor."}), tmp_path / "out")
    rows = [r for s in ("train", "val", "test") for r in read_rows(tmp_path / "out", s)]
    assert rows and all(r["messages"][0] == {"role": "system", "content": "Be careful."} for r in rows)
    assert all(r["messages"][-1]["content"].endswith("\n\nSee a doctor.") for r in rows)


def test_cache_hit_reuses_output_and_any_change_makes_a_new_entry(tmp_path):
    fx.write_custom_csv(tmp_path / "qa.csv", rows=many_rows(30))
    data = spec({"source": str(tmp_path / "qa.csv")})
    first = prepare(data, tmp_path / "one")
    again = prepare(data, tmp_path / "two")
    assert (first["cache"], again["cache"]) == ("miss", "hit") and again["cache_key"] == first["cache_key"]
    assert (tmp_path / "two" / "train.jsonl").read_bytes() == (tmp_path / "one" / "train.jsonl").read_bytes()

    changed_option = prepare(spec({"source": str(tmp_path / "qa.csv")}, split={"seed": 1}), tmp_path / "three")
    assert changed_option["cache"] == "miss" and changed_option["cache_key"] != first["cache_key"]

    fx.write_custom_csv(tmp_path / "qa.csv", rows=many_rows(31))
    changed_input = prepare(data, tmp_path / "four")
    assert changed_input["cache"] == "miss" and sum(changed_input["counts"].values()) == 31


def test_a_tampered_cache_entry_is_rebuilt_not_served(tmp_path):
    fx.write_custom_csv(tmp_path / "qa.csv", rows=many_rows(30))
    data = spec({"source": str(tmp_path / "qa.csv")})
    first = prepare(data, tmp_path / "one")
    (Path(first["cache_entry"]) / "train.jsonl").write_text("{}\n")
    again = prepare(data, tmp_path / "two")
    assert again["cache"] == "miss"
    assert (tmp_path / "two" / "train.jsonl").read_bytes() == (tmp_path / "one" / "train.jsonl").read_bytes()


def test_relative_paths_try_the_recipe_folder_then_the_current_dir(tmp_path, monkeypatch):
    (tmp_path / "recipes").mkdir()
    fx.write_custom_csv(tmp_path / "qa.csv")
    monkeypatch.chdir(tmp_path)
    manifest = prepare(spec({"source": "qa.csv"}), tmp_path / "out", base_dir=tmp_path / "recipes")
    assert manifest["sources"][0]["path"] == str(tmp_path / "qa.csv")


def test_leakage_check_counts_questions_shared_between_written_splits():
    def row(question):
        return {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": question}, {"role": "assistant", "content": "a"}]}

    rows = {"train": [row("What is X?"), row("What is Z?")], "val": [row("what is  x")], "test": [row("What is Y?"), row("WHAT IS Z")]}
    assert leakage(rows) == {"train_val": 1, "train_test": 1, "val_test": 0}
