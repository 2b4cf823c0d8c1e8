"""Preference data: a user's file read into canonical rows, every bad row named with file, row and fix before
any training, and the rows each preference method's Axolotl dataset type reads."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from medtune.core.errors import MedtuneError, RecipeError
from medtune.preprocess.errors import PreprocessError
from medtune.preprocess.preference import (PreferenceColumns, PreferenceDataSpec, axolotl_rows, check_canonical,
                                           read_preference_file, write_stage_data)
from medtune.recipe.loader import load

SYSTEM = "You are a careful medical assistant."
GOOD = [
    ("What is influenza?", "Influenza is a contagious viral infection of the airways.", "Influenza is a bacterium."),
    ("What causes a cold?", "Colds are caused by viruses, most often rhinoviruses.", "Cold weather causes colds."),
]


def write_csv(path: Path, rows: list[tuple[str, str, str]], header: str = "q,good,bad") -> Path:
    import csv

    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header.split(","))
        writer.writerows(rows)
    return path


MAPPED = PreferenceColumns(prompt="q", chosen="good", rejected="bad")


def spec(path: Path, **extra) -> PreferenceDataSpec:
    return PreferenceDataSpec(path=str(path), columns=MAPPED, **extra)


def test_csv_becomes_canonical_rows_with_the_recipes_system_prompt(tmp_path: Path):
    path = write_csv(tmp_path / "prefs.csv", GOOD)
    rows = read_preference_file(spec(path), tmp_path, SYSTEM)
    assert [r["messages"] for r in rows] == [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}]
                                             for q, _, _ in GOOD]
    assert [(r["chosen"], r["rejected"]) for r in rows] == [(c, r) for _, c, r in GOOD]
    assert rows[0]["id"] == "prefs-2"  # numbered as a spreadsheet shows the row
    assert len(read_preference_file(spec(path, limit=1), tmp_path, None)) == 1
    assert read_preference_file(spec(path), tmp_path, None)[0]["messages"] == [{"role": "user", "content": GOOD[0][0]}]


def test_xlsx_and_jsonl_read_the_same_pairs(tmp_path: Path):
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["q", "good", "bad"])
    for row in GOOD:
        sheet.append(list(row))
    book.save(tmp_path / "prefs.xlsx")
    jsonl = tmp_path / "prefs.jsonl"
    jsonl.write_text("".join(json.dumps({"q": q, "good": c, "bad": r}) + "\n" for q, c, r in GOOD))
    from_csv = read_preference_file(spec(write_csv(tmp_path / "prefs.csv", GOOD)), tmp_path, SYSTEM)
    for path in (tmp_path / "prefs.xlsx", jsonl):
        rows = read_preference_file(spec(path), tmp_path, SYSTEM)
        assert [(r["messages"], r["chosen"], r["rejected"]) for r in rows] == \
            [(r["messages"], r["chosen"], r["rejected"]) for r in from_csv]


def test_missing_column_names_the_file_the_header_and_the_mapping_fix(tmp_path: Path):
    path = write_csv(tmp_path / "prefs.csv", GOOD, header="q,good,worse")
    with pytest.raises(PreprocessError) as err:
        read_preference_file(spec(path), tmp_path, None)
    text = str(err.value)
    assert "prefs.csv, row 1" in text and "rejected column 'bad'" in text and "q, good, worse" in text
    assert "fix:" in text and "columns:" in text


@pytest.mark.parametrize("pair, expected", [
    (("What is gout?", "Gout is a form of arthritis.", "Gout is  a form of arthritis."), "chosen and rejected are the same text"),
    (("What is gout?", "Gout is a form of arthritis.", ""), "the rejected answer is empty"),
    (("What is gout?", "", "Gout is a virus."), "the chosen answer is empty"),
    (("", "Gout is a form of arthritis.", "Gout is a virus."), "the prompt is empty"),
])
def test_a_bad_row_is_named_by_its_row_number_with_the_fix(tmp_path: Path, pair, expected):
    path = write_csv(tmp_path / "prefs.csv", [GOOD[0], pair, GOOD[1]])
    with pytest.raises(PreprocessError) as err:
        read_preference_file(spec(path), tmp_path, None)
    text = str(err.value)
    assert "prefs.csv" in text and f"row 3: {expected}" in text and "fix:" in text


def test_every_bad_row_is_listed_at_once(tmp_path: Path):
    path = write_csv(tmp_path / "prefs.csv", [("q1", "same", "same"), GOOD[0], ("q2", "an answer", "")])
    with pytest.raises(PreprocessError) as err:
        read_preference_file(spec(path), tmp_path, None)
    assert "2 unusable preference rows" in str(err.value)
    assert "row 2:" in str(err.value) and "row 4:" in str(err.value)


def test_jsonl_row_without_a_key_is_named_by_line(tmp_path: Path):
    path = tmp_path / "prefs.jsonl"
    path.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n" + json.dumps({"prompt": "q", "chosen": "a"}) + "\n")
    with pytest.raises(PreprocessError, match=r"row 2: no key 'rejected'"):
        read_preference_file(PreferenceDataSpec(path=str(path)), tmp_path, None)


def recipe_with(tmp_path: Path, prefs: str) -> Path:
    demo = Path(__file__).resolve().parents[1] / "data" / "demo" / "medquad_demo.csv"
    path = tmp_path / "r.yaml"
    path.write_text(f"""name: prefs
model: smollm2-135m-instruct
data:
  train: [{{source: medquad, path: {demo}}}]
launch: {{device: cpu}}
stages:
  - name: dpo
    method: {{name: dpo}}
    data: {{preference: {{path: {prefs}, columns: {{prompt: q, chosen: good, rejected: bad}}}}}}
""")
    return path


def test_a_bad_file_stops_the_recipe_at_validation_with_file_row_and_fix(tmp_path: Path):
    write_csv(tmp_path / "prefs.csv", [GOOD[0], ("What is gout?", "Gout is arthritis.", "Gout is arthritis.")])
    with pytest.raises(RecipeError) as err:
        load(recipe_with(tmp_path, "prefs.csv"))
    assert isinstance(err.value, MedtuneError) and err.value.exit_code == 2
    (problem,) = err.value.problems
    assert problem.path == "stages[0].data.preference"
    assert "prefs.csv" in problem.message and "row 3" in problem.message and "fix:" in problem.message
    write_csv(tmp_path / "prefs.csv", GOOD)
    load(recipe_with(tmp_path, "prefs.csv"))  # the corrected file loads


def test_the_cli_refuses_a_bad_file_before_making_a_run_directory(tmp_path: Path, capsys):
    from medtune.cli import main

    write_csv(tmp_path / "prefs.csv", [("What is gout?", "Gout is arthritis.", "")])
    code = main(["run", str(recipe_with(tmp_path, "prefs.csv")), "--runs-dir", str(tmp_path / "runs")])
    assert code == 2 and not (tmp_path / "runs").exists()
    err = capsys.readouterr().err
    assert "row 2: the rejected answer is empty" in err and "Traceback" not in err


def test_generated_rows_obey_the_same_rules():
    row = {"id": "g1", "messages": [{"role": "user", "content": "q"}], "chosen": "a b", "rejected": "a  b"}
    with pytest.raises(PreprocessError, match="row 1: chosen and rejected are the same text"):
        check_canonical([row], "data/knowtuning")
    with pytest.raises(PreprocessError, match="no preference pairs"):
        check_canonical([], "data/knowtuning")
    check_canonical([{**row, "rejected": "b a"}], "data/knowtuning")


CANONICAL = [{"id": "p1", "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "What is gout?"}],
              "chosen": "Gout is arthritis from uric acid crystals.", "rejected": "Gout is a virus.", "kind": "revision"},
             {"id": "p2", "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "What is gout?"}],
              "chosen": "Gout is arthritis from uric acid crystals.", "rejected": "Crystals. Gout is arthritis.", "kind": "shuffle"}]


def test_rows_for_dpo_simpo_and_orpo_are_what_axolotls_types_read():
    for method in ("dpo", "simpo"):  # chat_template.default: messages + the assistant's texts
        rows = axolotl_rows(CANONICAL, method)
        assert rows[0] == {"id": "p1", "messages": CANONICAL[0]["messages"], "chosen": CANONICAL[0]["chosen"],
                           "rejected": CANONICAL[0]["rejected"]}
    orpo = axolotl_rows(CANONICAL, "orpo")[0]  # chat_template.argilla: user turn + answer, system beside
    assert orpo["system"] == SYSTEM
    assert orpo["chosen"] == [{"role": "user", "content": "What is gout?"}, {"role": "assistant", "content": CANONICAL[0]["chosen"]}]
    assert orpo["rejected"][1] == {"role": "assistant", "content": "Gout is a virus."}


def test_kto_rows_are_unpaired_labelled_and_rendered_with_the_models_template(tmp_path: Path, smollm2_dir: Path):
    path = tmp_path / "kto.jsonl"
    assert write_stage_data(path, CANONICAL, "kto", str(smollm2_dir)) == 3  # one chosen shared by two pairs
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["label"] for r in rows] == [True, False, False]
    assert rows[0]["prompt"].endswith("<|im_start|>assistant\n") and SYSTEM in rows[0]["prompt"]
    assert rows[0]["completion"].startswith("Gout is arthritis") and rows[0]["completion"].rstrip().endswith("<|im_end|>")
