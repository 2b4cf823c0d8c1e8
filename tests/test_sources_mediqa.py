"""MEDIQA 2019 QA (task 3): the publisher's XML layout, correct answers (ReferenceScore 3-4) as references,
official splits from the file names, counts in the manifest, and clear errors."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from medtune.preprocess import cli
from medtune.preprocess.errors import PreprocessError
from medtune.preprocess.pipeline import prepare
from medtune.preprocess.registry import check_source, lookup
from medtune.preprocess.spec import DataSpec, SourceSpec


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDTUNE_CACHE", str(tmp_path / "cache"))


def _answer(aid: str, rank: int, score: int | None, text: str) -> str:
    graded = f' ReferenceRank="{rank}" ReferenceScore="{score}"' if score is not None else ""
    return (f'\t\t\t<Answer AID="{aid}" SystemRank="{rank}"{graded}>\n'
            f"\t\t\t\t<AnswerURL>https://example.org/{aid}</AnswerURL>\n"
            f"\t\t\t\t<AnswerText>{text}</AnswerText>\n\t\t\t</Answer>\n")


def write_mediqa_file(path: Path, questions: list[tuple[str, str, list[tuple[int | None, str]]]]) -> None:
    """One file in the layout of github.com/abachaa/MEDIQA2019 MEDIQA_Task3_QA/*.xml (root named after the set)."""
    body = ""
    for qid, text, answers in questions:
        listed = "".join(_answer(f"{qid}_Answer{i}", i, score, answer) for i, (score, answer) in enumerate(answers, 1))
        body += (f'\t<Question QID="{qid}">\n\t\t<QuestionText>{text}</QuestionText>\n'
                 f"\t\t<AnswerList>\n{listed}\t\t</AnswerList>\n\t</Question>\n")
    root = path.stem.removesuffix("-wLabels")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'<?xml version="1.0" encoding="UTF-8"?>\n<{root}>\n{body}</{root}>\n')


def write_mediqa(folder: Path) -> None:
    """Training, validation and labelled test files, and the unlabelled test file the release ships beside it."""
    write_mediqa_file(folder / "MEDIQA2019-Task3-QA-TrainingSet1-LiveQAMed.xml", [
        ("1", "about uveitis. IS THE UVEITIS, AN AUTOIMMUNE DISEASE?", [
            (4, "Uveitis is a form of eye inflammation; autoimmune disease is one cause."),
            (2, "Autoimmune diseases: your immune system attacks healthy cells."),
            (3, "Uveitis is a group of inflammatory diseases of the eye."),
            (1, "Autoimmune Addison disease affects the adrenal glands."),
        ]),
        ("2", "what are the side effects of ibuprofen", [
            (1, "Ibuprofen is sold over the counter."),
            (2, "Pain relievers are common medicines."),
        ]),  # no correct answer: the question is not used
    ])
    write_mediqa_file(folder / "MEDIQA2019-Task3-QA-TrainingSet2-Alexa.xml", [
        ("3", "What is diabetes?", [(4, "Diabetes is a disease in which blood sugar is too high."), (1, "Sugar is sweet.")]),
        ("4", "What causes asthma?", [(3, "Asthma is caused by inflamed airways; triggers include allergens."),
                                     (3, "Asthma is caused by inflamed airways; triggers include allergens.")]),  # repeat
    ])
    write_mediqa_file(folder / "MEDIQA2019-Task3-QA-ValidationSet.xml", [
        ("5", "How is malaria spread?", [(4, "Malaria spreads through the bites of infected mosquitoes."), (2, "Mosquitoes bite.")]),
    ])
    write_mediqa_file(folder / "MEDIQA2019-Task3-QA-TestSet-wLabels.xml", [
        ("6", "Is gout hereditary?", [(3, "Gout runs in families in part."), (4, "Genes and diet both raise the risk of gout.")]),
    ])
    write_mediqa_file(folder / "MEDIQA2019-Task3-QA-TestSet.xml", [
        ("6", "Is gout hereditary?", [(None, "Gout runs in families in part."), (None, "Genes and diet both raise the risk of gout.")]),
    ])


def _rows(folder: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (folder / f"{name}.jsonl").read_text().splitlines()]


def test_correct_answers_become_references_in_the_publisher_splits(tmp_path):
    write_mediqa(tmp_path / "MEDIQA_Task3_QA")
    out = tmp_path / "out"
    manifest = prepare(DataSpec(train=[{"source": "mediqa", "path": "MEDIQA_Task3_QA"}]), out, base_dir=tmp_path)

    source = manifest["sources"][0]
    assert source["files"] == 4  # the unlabelled TestSet.xml is skipped beside its -wLabels twin
    assert source["read"] == 14  # every candidate answer
    # Graded 1-2: 6 incorrect answers filtered; the repeated correct answer is a duplicate.
    assert source["dropped"] == {"no_answer": 0, "duplicate": 1, "too_long": 0, "malformed": 0, "filtered": 6}
    assert source["official_split"] is True
    assert manifest["counts"] == {"train": 4, "val": 1, "test": 2}

    train = _rows(out, "train")
    references = {row["messages"][-1]["content"] for row in train}
    assert references == {"Uveitis is a form of eye inflammation; autoimmune disease is one cause.",
                          "Uveitis is a group of inflammatory diseases of the eye.",
                          "Diabetes is a disease in which blood sugar is too high.",
                          "Asthma is caused by inflamed airways; triggers include allergens."}
    assert not any("ibuprofen" in row["messages"][0]["content"] for row in train)
    assert [row["id"] for row in _rows(out, "val")] == ["mediqa:5_Answer1"]
    test = _rows(out, "test")
    assert {row["messages"][0]["content"] for row in test} == {"Is gout hereditary?"}
    assert sorted(row["messages"][-1]["content"] for row in test) == [
        "Genes and diet both raise the risk of gout.", "Gout runs in families in part."]


def test_an_unlabelled_file_counts_its_answers_as_malformed(tmp_path):
    write_mediqa(tmp_path / "q")
    only = tmp_path / "q" / "MEDIQA2019-Task3-QA-TrainingSet2-Alexa.xml"
    text = only.read_text().replace(' ReferenceRank="1" ReferenceScore="4"', "")
    only.write_text(text)
    manifest = prepare(DataSpec(train=[{"source": "mediqa", "path": str(only)}], split={"val": 0, "test": 0.25}),
                       tmp_path / "out", base_dir=tmp_path)
    assert manifest["dropped"]["malformed"] == 1
    assert any("ReferenceScore None" in p and "3_Answer1" in p for p in manifest["problems"])


def test_broken_xml_and_a_foreign_file_stop_with_the_file_named(tmp_path):
    bad = tmp_path / "MEDIQA2019-Task3-QA-ValidationSet.xml"
    bad.write_text('<?xml version="1.0"?>\n<Set>\n<Question QID="1"><QuestionText>Q?</Answer>\n</Set>\n')
    with pytest.raises(PreprocessError) as info:
        prepare(DataSpec(train=[{"source": "mediqa", "path": str(bad)}]), tmp_path / "out")
    assert "MEDIQA2019-Task3-QA-ValidationSet.xml" in str(info.value) and "line 3" in str(info.value)
    assert "fix:" in str(info.value)

    other = tmp_path / "other.xml"
    other.write_text('<?xml version="1.0"?>\n<Document><QAPairs/></Document>\n')
    with pytest.raises(PreprocessError, match="no <Question> elements"):
        prepare(DataSpec(train=[{"source": "mediqa", "path": str(other)}]), tmp_path / "out2")


def test_without_a_path_the_recipe_check_says_to_give_one(tmp_path):
    assert lookup(SourceSpec(source="mediqa2019")).name == "mediqa"
    problems = check_source(SourceSpec(source="mediqa"), tmp_path)
    assert problems == ["'mediqa' has no pinned Hub copy: give `path:` to the publisher's files on disk"]


def test_cli_exits_2_on_an_empty_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    code = cli.run(parser.parse_args(["mediqa", "--path", "empty"]))
    err = capsys.readouterr().err
    assert code == 2 and "no MEDIQA 2019 QA XML files found" in err and "MEDIQA_Task3_QA" in err
    assert "Traceback" not in err
