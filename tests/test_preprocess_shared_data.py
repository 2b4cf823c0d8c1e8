"""Integration: the real publisher files in ../shared/data load with their known totals."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from medtune.preprocess.pipeline import prepare
from medtune.preprocess.records import Record
from medtune.preprocess.registry import lookup
from medtune.preprocess.spec import DataSpec, SourceSpec

DATA = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data").resolve()

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data folder {DATA} is missing (see DESIGN.md: ../shared/data)")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDTUNE_CACHE", str(tmp_path / "cache"))


def load(name: str, path: Path) -> list[Record]:
    src = SourceSpec(source=name, path=str(path))
    source = lookup(src)
    items = list(source.read(source.files(path), src))
    assert all(isinstance(r, Record) for r in items), "no row of the published files is malformed"
    return items


def test_medquad_full_tree(tmp_path):
    manifest = prepare(DataSpec(train=[{"source": "medquad", "path": str(DATA / "medquad")}]), tmp_path / "out")
    (source,) = manifest["sources"]
    assert source["files"] == 11274 and source["read"] == 47457
    assert source["read"] - manifest["dropped"]["no_answer"] == 16423  # QA pairs with an answer, before dedup
    assert manifest["dropped"]["malformed"] == 0
    assert manifest["dedup"]["exact"] > 0 and manifest["dropped"]["duplicate"] == sum(manifest["dedup"].values())
    assert sum(manifest["counts"].values()) == 16423 - manifest["dropped"]["duplicate"]
    assert manifest["leakage"]["passed"] and manifest["leakage"]["train_test"] == manifest["leakage"]["val_test"] == 0
    first = json.loads((tmp_path / "out" / "train.jsonl").read_text().split("\n", 1)[0])
    assert "  " not in first["messages"][1]["content"] and not first["messages"][0]["content"].endswith(" ?")


def test_pubmedqa_official_test_split(tmp_path):
    manifest = prepare(DataSpec(train=[{"source": "pubmedqa", "path": str(DATA / "pubmedqa")}]), tmp_path / "out")
    assert manifest["counts"]["test"] == 500 and manifest["counts"]["train"] + manifest["counts"]["val"] == 500
    rows = [json.loads(line) for line in (tmp_path / "out" / "test.jsonl").read_text().splitlines()]
    assert Counter(r["answer_key"] for r in rows) == {"yes": 276, "no": 169, "maybe": 55}
    truth = json.loads((DATA / "pubmedqa" / "test_ground_truth.json").read_text())
    assert {r["id"].removeprefix("pubmedqa:"): r["answer_key"] for r in rows} == truth


def test_medqa_test_file(tmp_path):
    items = load("medqa", DATA / "medqa" / "us_4options_test.jsonl")
    assert len(items) == 1273 and {r.split for r in items} == {"test"}
    assert set(Counter(r.qtype for r in items)) == {"step1", "step2&3"}
    assert Counter(r.answer_key for r in items)["A"] / 1273 == pytest.approx(0.277, abs=0.001)  # the README's always-"A" baseline


def test_medmcqa_dev_file():
    items = load("medmcqa", DATA / "medmcqa" / "dev.json")
    assert len(items) == 4183 and all(r.answer_key for r in items)
    assert Counter(r.answer_key for r in items)["A"] / 4183 == pytest.approx(0.322, abs=0.001)  # 1-based cop read right


def test_mmlu_six_medical_test_files():
    items = load("mmlu_medical", DATA / "mmlu")
    test = [r for r in items if r.split == "test"]
    assert len(test) == 1089
    assert set(r.qtype for r in test) == {"anatomy", "clinical_knowledge", "college_biology", "college_medicine", "medical_genetics", "professional_medicine"}


def test_medical_meadow_file():
    items = load("medical_meadow", DATA / "medical_meadow" / "medical_meadow_small.json")
    assert len(items) == 5942 and all(r.question and r.answer for r in items)
