"""Malformed input: a clear message naming file and row, or a counted drop with its reason; never a traceback."""
from __future__ import annotations

import argparse
import json

import pytest

import preprocess_fixtures as fx
from medtune.preprocess import cli
from medtune.preprocess.errors import PreprocessError
from medtune.preprocess.pipeline import prepare
from medtune.preprocess.registry import check_source, source_names
from medtune.preprocess.spec import DataSpec, SourceSpec


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDTUNE_CACHE", str(tmp_path / "cache"))


def run_one(tmp_path, **source) -> dict:
    return prepare(DataSpec(train=[source]), tmp_path / "out", base_dir=tmp_path)


# ---------------------------------------------------------------- whole-file problems stop with a message


def test_broken_xml_names_the_file_and_line(tmp_path):
    fx.write_medquad(tmp_path / "medquad")
    bad = tmp_path / "medquad" / "2_GARD_QA" / "0000009.xml"
    bad.write_text('<?xml version="1.0"?>\n<Document id="9">\n<QAPairs>\n<QAPair pid="1"><Question qid="9-1">Q?</Answer>\n</Document>\n')
    with pytest.raises(PreprocessError) as info:
        run_one(tmp_path, source="medquad", path="medquad")
    message = str(info.value)
    assert "0000009.xml" in message and "line 4" in message and "fix:" in message


def test_csv_missing_a_mapped_column_is_reported_with_a_suggestion(tmp_path):
    fx.write_custom_csv(tmp_path / "train.csv")
    src = {"source": "train.csv", "columns": {"question": "Questoin", "answer": "Answer"}}
    problems = check_source(SourceSpec(**src), tmp_path)
    assert len(problems) == 1 and "'Questoin'" in problems[0] and "did you mean 'Question'" in problems[0]
    with pytest.raises(PreprocessError) as info:
        run_one(tmp_path, **src)
    assert "Questoin" in str(info.value) and "data.train[0]" in str(info.value)


def test_non_utf8_byte_names_the_file_and_line(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_bytes("question,answer\nWhat is a fever?,A high temperature.\n".encode() + b"Caf\xe9 au lait spots?,Flat patches.\n")
    with pytest.raises(PreprocessError) as info:
        run_one(tmp_path, source="notes.csv")
    message = str(info.value)
    assert "notes.csv" in message and "0xE9" in message and "line 3" in message and "UTF-8" in message


@pytest.mark.parametrize("name", ["empty.csv", "empty.jsonl", "empty.xlsx"])
def test_empty_files_are_named(tmp_path, name):
    (tmp_path / name).write_text("")
    problems = check_source(SourceSpec(source=name), tmp_path)
    assert problems and name in problems[0] and "empty" in problems[0]


def test_a_damaged_spreadsheet_says_how_to_fix_it(tmp_path):
    (tmp_path / "VerifiedQ_A.xlsx").write_bytes(b"this is not a zip file at all")
    with pytest.raises(PreprocessError) as info:
        run_one(tmp_path, source="VerifiedQ_A.xlsx")
    assert "VerifiedQ_A.xlsx" in str(info.value) and "xlsx" in str(info.value).lower()


def test_a_source_with_no_usable_rows_says_why(tmp_path):
    (tmp_path / "pubmedqa").mkdir()
    (tmp_path / "pubmedqa" / "ori_pqal.json").write_text(json.dumps({"1": {"QUESTION": "Q?", "final_decision": ""}}))
    with pytest.raises(PreprocessError) as info:
        run_one(tmp_path, source="pubmedqa", path="pubmedqa")
    assert "no usable rows out of 1" in str(info.value) and "1 no_answer" in str(info.value)


# ---------------------------------------------------------------- bad rows are counted, with where and why


def test_bad_rows_are_dropped_as_malformed_with_their_location(tmp_path):
    rows = fx.medqa_rows(4)
    rows[1]["answer_idx"] = "E"
    lines = [json.dumps(r) for r in rows]
    lines.insert(2, '{"question": "truncated...')
    (tmp_path / "medqa.jsonl").write_text("\n".join(lines) + "\n")
    manifest = run_one(tmp_path, source="medqa", path="medqa.jsonl")
    assert manifest["dropped"]["malformed"] == 2 and sum(manifest["counts"].values()) == 3
    problems = "\n".join(manifest["problems"])
    assert "medqa.jsonl:2: answer key 'E' is not one of A, B, C, D" in problems
    assert "medqa.jsonl:3: not valid JSON" in problems


def test_csv_rows_with_the_wrong_number_of_fields_are_malformed(tmp_path):
    fx.write_mmlu(tmp_path / "mmlu")
    with (tmp_path / "mmlu" / "anatomy_test.csv").open("a") as fh:
        fh.write("a question without options,A\n")
    manifest = run_one(tmp_path, source="mmlu_medical", path="mmlu")
    assert manifest["dropped"]["malformed"] == 1
    assert "anatomy_test.csv:5: 2 fields" in manifest["problems"][0]


# ---------------------------------------------------------------- the recipe validator's checks


def test_check_source_accepts_good_entries(tmp_path):
    fx.write_medquad(tmp_path / "medquad")
    fx.write_custom_csv(tmp_path / "train.csv")
    assert check_source(SourceSpec(source="medquad", path="medquad", qtypes=["symptoms"]), tmp_path) == []
    assert check_source(SourceSpec(source="train.csv", qtypes=["vitals"], columns={"qtype": "Type"}), tmp_path) == []
    assert check_source(SourceSpec(source="pubmedqa"), tmp_path) == []  # the Hub copy: nothing to check offline


@pytest.mark.parametrize("src, expected", [
    ({"source": "medqad"}, "did you mean 'medquad'"),
    ({"source": "pubmed_qa"}, "did you mean 'pubmedqa'"),
    ({"source": "data.parquet"}, "files of type .parquet are not read"),
    ({"source": "missing.csv"}, "'missing.csv' does not exist"),
    ({"source": "medquad", "path": "nowhere"}, "'nowhere' does not exist"),
    ({"source": "medquad", "qtypes": ["symptom"]}, "did you mean 'symptoms'"),
    ({"source": "medqa", "columns": {"question": "q"}}, "columns: only applies to your own"),
    ({"source": "medqa", "qtypes": ["step 1"]}, "did you mean 'step1'"),
])
def test_check_source_reports_each_problem_in_words(tmp_path, src, expected):
    problems = check_source(SourceSpec(**src), tmp_path)
    assert any(expected in p for p in problems), problems


def test_check_source_reads_only_the_header(tmp_path):
    fx.write_custom_csv(tmp_path / "big.csv", rows=[(f"Question {i}?", "An answer long enough to fill the file." * 3, "t") for i in range(1000)])
    with (tmp_path / "big.csv").open("ab") as fh:
        fh.write(b"late row,with a bad byte \xff\n")  # a full read would fail; the validator must not read it
    assert check_source(SourceSpec(source="big.csv"), tmp_path) == []


def test_check_source_finds_an_empty_folder(tmp_path):
    (tmp_path / "medquad").mkdir()
    (problem,) = check_source(SourceSpec(source="medquad", path="medquad"), tmp_path)
    assert "no MedQuAD XML files found" in problem


def test_registry_names_every_source():
    assert {"medquad", "pubmedqa", "medqa", "medmcqa", "mmlu_medical", "flashcards", "medical_meadow"} <= set(source_names())


# ---------------------------------------------------------------- the CLI


def cli_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_cli_writes_outputs_and_prints_a_summary(tmp_path, capsys):
    fx.write_custom_csv(tmp_path / "qa.csv", rows=[(f"Q {i}?", f"A {i}.", "t") for i in range(20)])
    out = tmp_path / "out"
    code = cli.run(cli_args(str(tmp_path / "qa.csv"), "--out", str(out), "--split", "0.2,0.1", "--seed", "3",
                            "--columns", "question=Question,answer=Answer", "--disclaimer", "--system-prompt", "Be brief."))
    printed = capsys.readouterr().out
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 14, "val": 4, "test": 2}
    assert manifest["options"]["split"]["seed"] == 3 and manifest["options"]["disclaimer"]["enabled"] is True
    assert "train" in printed and "14" in printed and "no_answer" in printed and "leakage check: passed" in printed


@pytest.mark.parametrize("argv, expected", [
    (["medqad"], "did you mean 'medquad'"),
    (["medquad", "--split", "0.5"], "--split"),
    (["medquad", "--split", "0.6,0.6"], "must stay below 1"),
    (["medquad", "--limit", "0"], "limit"),
    (["x.csv", "--columns", "question"], "FIELD=COLUMN"),
    (["medquad", "--sequence-len", "64"], "--tokenizer"),
    (["medquad", "--tokenizer", "smollm2-135m-instruct"], "--sequence-len"),
])
def test_cli_bad_input_exits_2_with_a_message_and_no_traceback(tmp_path, capsys, monkeypatch, argv, expected):
    monkeypatch.chdir(tmp_path)
    code = cli.run(cli_args(*argv))
    err = capsys.readouterr().err
    assert code == 2 and expected in err and "Traceback" not in err
