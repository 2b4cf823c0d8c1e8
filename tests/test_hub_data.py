"""Hub datasets at pinned revisions, read offline from a Hugging Face cache the tests write in the Hub's own layout."""
from __future__ import annotations

import re

import pytest

from hub_cache import hub_cache, write_hub_dataset  # noqa: F401  (hub_cache is a fixture)
from medtune.core import hub_catalog
from medtune.core.hub import HubDataError, HubDataset, cached_files, hub_dataset_problem, load_hub_dataset

REV = "0123456789abcdef0123456789abcdef01234567"
TOY = HubDataset("someorg/toy-qa", REV, files={None: {"train": "data/train-00000-of-00001.parquet",
                                                     "test": "data/test-00000-of-00001.parquet"}},
                 columns=("question", "context.labels", "answer"))


def _rows(n: int, prefix: str) -> list[dict]:
    return [{"question": f"{prefix} {i}?", "context": {"texts": ["t"], "labels": ["L"]}, "answer": i % 3} for i in range(n)]


def test_the_written_cache_is_what_huggingface_hub_itself_sees(hub_cache):
    from huggingface_hub import scan_cache_dir, try_to_load_from_cache

    write_hub_dataset(hub_cache, TOY.repo_id, REV, {"data/train-00000-of-00001.parquet": _rows(3, "train")})
    (repo,) = scan_cache_dir(hub_cache).repos
    assert (repo.repo_id, repo.repo_type) == (TOY.repo_id, "dataset")
    (revision,) = repo.revisions
    assert revision.commit_hash == REV and revision.refs == {"main"}
    assert {f.file_name for f in revision.files} == {"train-00000-of-00001.parquet"}
    cached = try_to_load_from_cache(TOY.repo_id, "data/train-00000-of-00001.parquet", cache_dir=hub_cache,
                                    revision=REV, repo_type="dataset")
    assert isinstance(cached, str) and cached.endswith("snapshots/" + REV + "/data/train-00000-of-00001.parquet")


def test_splits_load_offline_at_the_pinned_revision_with_their_columns(hub_cache):
    write_hub_dataset(hub_cache, TOY.repo_id, REV, {"data/train-00000-of-00001.parquet": _rows(5, "train"),
                                                   "data/test-00000-of-00001.parquet": _rows(2, "test")})
    tables = load_hub_dataset(TOY)
    assert sorted(tables[None]) == ["test", "train"]
    assert tables[None]["test"]["question"] == ["test 0?", "test 1?"] and tables[None]["train"].num_rows == 5
    assert tables.commit == REV and tables.fingerprint == f"someorg/toy-qa@{REV}:None/test,None/train"
    only = load_hub_dataset(TOY, splits=["test"])
    assert list(only[None]) == ["test"]


def test_json_jsonl_and_csv_files_and_a_branch_revision(hub_cache):
    files = {None: {"train": "*.json", "test": "qa_test.jsonl", "validation": "extra/val.csv"}}
    toy = HubDataset("someorg/plain-files", "main", files=files, columns=("question", "answer"))
    rows = [{"question": "Q?", "answer": "A."}, {"question": "R?", "answer": "B."}]
    snapshot = write_hub_dataset(hub_cache, toy.repo_id, "main",
                                 {"medical.json": rows, "qa_test.jsonl": rows[:1], "extra/val.csv": rows})
    tables = load_hub_dataset(toy)
    assert tables.commit == snapshot.name and re.fullmatch(r"[0-9a-f]{40}", tables.commit)  # main resolved via refs/main
    assert tables[None]["train"]["answer"] == ["A.", "B."] and tables[None]["test"].num_rows == 1
    assert tables[None]["validation"]["question"] == ["Q?", "R?"]


def test_a_renamed_column_is_an_error_naming_it(hub_cache):
    renamed = [{"question": "Q?", "context": {"texts": ["t"], "labels": ["L"]}, "label": 1}]
    write_hub_dataset(hub_cache, TOY.repo_id, REV, {"data/train-00000-of-00001.parquet": renamed})
    with pytest.raises(HubDataError) as err:
        load_hub_dataset(TOY, splits=["train"])
    message = str(err.value)
    assert "no column 'answer'" in message and "someorg/toy-qa@0123456" in message and "label" in message
    no_labels = [{"question": "Q?", "context": {"texts": ["t"]}, "answer": 1}]  # a struct's field counts too
    write_hub_dataset(hub_cache, TOY.repo_id, REV, {"data/train-00000-of-00001.parquet": no_labels})
    with pytest.raises(HubDataError, match=r"no column 'context\.labels'"):
        load_hub_dataset(TOY, splits=["train"])


def test_offline_and_not_cached_says_so_and_preflight_names_it_without_fetching(hub_cache):
    with pytest.raises(HubDataError, match="not in the Hugging Face cache and HF_HUB_OFFLINE is set"):
        load_hub_dataset(TOY)
    problem = hub_dataset_problem(TOY)
    assert "someorg/toy-qa@0123456 is not in the Hugging Face cache" in problem and "HF_HUB_OFFLINE" in problem
    write_hub_dataset(hub_cache, TOY.repo_id, REV, {"data/train-00000-of-00001.parquet": _rows(1, "train")})
    assert cached_files(TOY) == (["data/train-00000-of-00001.parquet"], ["data/test-00000-of-00001.parquet"])
    assert hub_dataset_problem(TOY, splits=["train"]) is None
    assert "data/test-00000-of-00001.parquet missing" in hub_dataset_problem(TOY)


def test_online_and_not_cached_preflight_asks_the_hub_once(hub_cache, monkeypatch):
    from huggingface_hub import HfApi

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    asked = []

    def unreachable(self, repo_id, revision=None, **kwargs):
        asked.append((repo_id, revision))
        raise ConnectionError("no route to host")

    monkeypatch.setattr(HfApi, "dataset_info", unreachable)
    problem = hub_dataset_problem(TOY)
    assert asked == [(TOY.repo_id, REV)]
    assert "not cached and the Hub did not answer for it: ConnectionError: no route to host" in problem
    monkeypatch.setattr(HfApi, "dataset_info", lambda self, repo_id, revision=None, **kwargs: object())
    assert hub_dataset_problem(TOY) is None


def test_online_a_cached_pinned_commit_is_read_without_asking_the_hub(hub_cache, monkeypatch):
    from huggingface_hub import HfApi, constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    def no_network(self, *args, **kwargs):
        raise AssertionError("the Hub was asked for files already cached at a pinned commit")

    monkeypatch.setattr(HfApi, "repo_info", no_network)
    write_hub_dataset(hub_cache, TOY.repo_id, REV, {"data/train-00000-of-00001.parquet": _rows(2, "train")})
    assert load_hub_dataset(TOY, splits=["train"])[None]["train"].num_rows == 2
    with pytest.raises(HubDataError, match="could not download someorg/toy-qa@0123456"):  # not cached: the Hub is asked
        load_hub_dataset(TOY, splits=["test"])


def test_catalog_pins_commits_and_ships_the_official_pubmedqa_test_ids():
    pinned = [hub_catalog.MEDQA, hub_catalog.MEDMCQA, hub_catalog.MMLU, hub_catalog.PUBMEDQA, hub_catalog.MEDQUAD,
              hub_catalog.FLASHCARDS, hub_catalog.WIKIDOC]
    assert all(re.fullmatch(r"[0-9a-f]{40}", d.revision) for d in pinned)
    assert hub_catalog.WIKIDOC_PATIENT_INFORMATION.revision == "main"  # the one repository no commit was found for
    assert "-hf" not in hub_catalog.MEDQA.repo_id and "meta_info" in hub_catalog.MEDQA.columns
    ids = hub_catalog.pubmedqa_test_ids()
    assert len(ids) == len(set(ids)) == 500 and all(pmid.isdigit() for pmid in ids)
    assert hub_catalog.PUBMEDQA_TEST_IDS_FILE.read_text().startswith("# PubMedQA")


def test_shipped_pubmedqa_ids_are_the_publisher_test_split(shared_data):
    import json

    truth = json.loads((shared_data / "pubmedqa" / "test_ground_truth.json").read_text())
    assert hub_catalog.pubmedqa_test_ids() == list(truth)
