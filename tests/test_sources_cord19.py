"""CORD-19: metadata.csv (and the full-text JSON parses it lists) -> `text` rows for continued pretraining, with
empty and repeated abstracts dropped and counted, and clear errors."""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from medtune.preprocess import cli
from medtune.preprocess.errors import PreprocessError
from medtune.preprocess.pipeline import prepare
from medtune.preprocess.registry import SOURCES
from medtune.preprocess.spec import TEXT_SOURCES, DataSpec

# metadata.csv's columns, as the CORD-19 releases ship them (2020-2022).
COLUMNS = ["cord_uid", "sha", "source_x", "title", "doi", "pmcid", "pubmed_id", "license", "abstract", "publish_time",
           "authors", "journal", "mag_id", "who_covidence_id", "arxiv_id", "pdf_json_files", "pmc_json_files", "url", "s2_id"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDTUNE_CACHE", str(tmp_path / "cache"))


def _parse(folder: Path, relative: str, paper_id: str, paragraphs: list[str]) -> None:
    """A full-text parse in the release's document_parses/ layout."""
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    body = [{"text": text, "cite_spans": [], "ref_spans": [], "section": "Introduction"} for text in paragraphs]
    path.write_text(json.dumps({"paper_id": paper_id, "metadata": {"title": "", "authors": []}, "abstract": [],
                                "body_text": body, "bib_entries": {}, "ref_entries": {}, "back_matter": []}))


def write_cord19(folder: Path, extra: int = 6) -> None:
    """metadata.csv with a re-listed paper, a repeated abstract, an empty abstract and an untitled row, plus the
    JSON parses two papers list."""
    rows = [
        {"cord_uid": "ug7v899j", "sha": "d1aafb70", "pmcid": "PMC35282", "title": "Clinical features of culture-proven Mycoplasma pneumoniae infections",
         "abstract": "OBJECTIVE: This retrospective chart review describes the epidemiology of M. pneumoniae infections.",
         "pdf_json_files": "document_parses/pdf_json/d1aafb70.json", "pmc_json_files": "document_parses/pmc_json/PMC35282.xml.json"},
        {"cord_uid": "02tnwd4m", "sha": "", "pmcid": "", "title": "Clinical features of culture-proven Mycoplasma pneumoniae infections",
         "abstract": "OBJECTIVE: This retrospective chart review describes the epidemiology of M. pneumoniae infections."},  # re-listed
        {"cord_uid": "ejv2xln0", "title": "Surfactant protein-D and pulmonary host defense",
         "abstract": "Surfactant protein-D (SP-D) participates in the innate response to inhaled microorganisms.",
         "pdf_json_files": "document_parses/pdf_json/06ced00a.json"},
        {"cord_uid": "2b73a28n", "title": "Role of endothelin-1 in lung disease (reprint)",
         "abstract": "Surfactant protein-D (SP-D) participates in the innate response to inhaled microorganisms."},  # same abstract
        {"cord_uid": "9785vg6d", "title": "Gene expression in epithelial cells in response to pneumovirus infection", "abstract": ""},
        {"cord_uid": "zjufx4fo", "title": "", "abstract": "An abstract without a title."},
    ]
    rows += [{"cord_uid": f"extra{i:03d}", "title": f"Coronavirus study {i}", "abstract": f"Findings of study {i} on SARS-CoV-2 spread."}
             for i in range(extra)]
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "metadata.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({column: row.get(column, "") for column in COLUMNS})
    _parse(folder, "document_parses/pmc_json/PMC35282.xml.json", "PMC35282", ["Mycoplasma pneumoniae is a common cause.", "We reviewed 59 charts."])
    _parse(folder, "document_parses/pdf_json/d1aafb70.json", "d1aafb70", ["(the PDF parse: not read where a PMC parse exists)"])
    _parse(folder, "document_parses/pdf_json/06ced00a.json", "06ced00a", ["SP-D binds to glycoconjugates."])


def text_data(**source) -> DataSpec:
    return DataSpec(format="text", train=[{"source": "cord19", "path": "cord19", **source}], split={"val": 0.1})


def _rows(folder: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (folder / f"{name}.jsonl").read_text().splitlines()]


def test_titles_and_abstracts_become_text_rows_with_empty_and_repeated_abstracts_counted(tmp_path):
    write_cord19(tmp_path / "cord19")
    out = tmp_path / "out"
    manifest = prepare(text_data(), out, base_dir=tmp_path)

    assert manifest["sources"][0]["read"] == 12
    assert manifest["dropped"] == {"no_answer": 1, "duplicate": 2, "too_long": 0, "malformed": 1, "filtered": 0}
    assert manifest["dedup"] == {"exact": 1, "normalized": 1}  # the re-listed paper; the abstract under a new title
    assert manifest["counts"] == {"train": 7, "val": 1, "test": 0}  # documents: no test questions
    assert any("no title" in p for p in manifest["problems"])

    rows = _rows(out, "train") + _rows(out, "val")
    assert all(set(row) == {"text", "id", "source", "qtype"} for row in rows)
    first = next(row for row in rows if row["id"] == "cord19:ug7v899j")
    assert first["text"] == ("Clinical features of culture-proven Mycoplasma pneumoniae infections\n\n"
                             "OBJECTIVE: This retrospective chart review describes the epidemiology of M. pneumoniae infections.")
    assert not any(row["id"] in ("cord19:02tnwd4m", "cord19:2b73a28n", "cord19:9785vg6d") for row in rows)


def test_full_text_appends_the_pmc_parse_else_the_pdf_parse(tmp_path):
    write_cord19(tmp_path / "cord19")
    out = tmp_path / "out"
    manifest = prepare(text_data(full_text=True), out, base_dir=tmp_path)
    texts = {row["id"]: row["text"] for row in _rows(out, "train") + _rows(out, "val")}
    assert texts["cord19:ug7v899j"].endswith("infections.\n\nMycoplasma pneumoniae is a common cause.\n\nWe reviewed 59 charts.")
    assert texts["cord19:ejv2xln0"].endswith("microorganisms.\n\nSP-D binds to glycoconjugates.")
    assert manifest["options"]["format"] == "text" and manifest["sources"][0]["options"]["full_text"] is True


def test_a_listed_parse_that_is_missing_is_a_counted_malformed_row(tmp_path):
    write_cord19(tmp_path / "cord19")
    (tmp_path / "cord19" / "document_parses" / "pdf_json" / "06ced00a.json").unlink()
    manifest = prepare(text_data(full_text=True), tmp_path / "out", base_dir=tmp_path)
    assert manifest["dropped"]["malformed"] == 2
    assert any("metadata.csv:4" in p and "06ced00a.json is not there" in p for p in manifest["problems"])


def test_a_metadata_file_without_the_abstract_column_is_refused_with_its_name(tmp_path):
    (tmp_path / "cord19").mkdir()
    (tmp_path / "cord19" / "metadata.csv").write_text("cord_uid,title,summary\nx1,A title,Some text\n")
    with pytest.raises(PreprocessError) as info:
        prepare(text_data(), tmp_path / "out", base_dir=tmp_path)
    message = str(info.value)
    assert "metadata.csv, row 1" in message and "no abstract column" in message and "fix:" in message


def test_a_folder_without_metadata_csv_is_named(tmp_path):
    (tmp_path / "cord19").mkdir()
    with pytest.raises(PreprocessError, match="no metadata.csv in this folder"):
        prepare(text_data(), tmp_path / "out", base_dir=tmp_path)


def test_documents_need_the_text_format_and_the_text_format_has_no_test_questions():
    with pytest.raises(ValidationError, match="cord19 gives documents, not questions: set `format: text`"):
        DataSpec(train=[{"source": "cord19", "path": "x"}])
    with pytest.raises(ValidationError, match="holds out no test rows"):
        DataSpec(format="text", train=[{"source": "cord19", "path": "x"}], split={"test": 0.1})
    with pytest.raises(ValidationError, match="full_text applies to cord19 only"):
        DataSpec(train=[{"source": "medquad", "full_text": True}])
    assert {s.name for s in SOURCES.values() if s.documents} == TEXT_SOURCES


def test_cli_exits_2_naming_the_format_to_use(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_cord19(tmp_path / "cord19")
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    code = cli.run(parser.parse_args(["cord19", "--path", "cord19"]))
    err = capsys.readouterr().err
    assert code == 2 and "set `format: text`" in err and "Traceback" not in err
    code = cli.run(parser.parse_args(["cord19", "--path", "cord19", "--format", "text", "--split", "0.1,0", "--out", "o"]))
    assert code == 0 and json.loads((tmp_path / "o" / "manifest.json").read_text())["counts"]["test"] == 0
