"""A corpus of broken recipes: each fails validation with exit code 2, names the key path, no traceback."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from medtune.cli import main

REPO = Path(__file__).resolve().parents[1]
BAD = sorted((REPO / "tests" / "bad_recipes").glob("*.yaml"))


def _expectations(path: Path) -> list[str]:
    return [line.split("# expect:", 1)[1].strip() for line in path.read_text().splitlines() if line.startswith("# expect:")]


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_recipe_is_rejected_with_every_problem_named(path: Path, capsys):
    expected = _expectations(path)
    assert expected, f"{path.name} needs '# expect:' lines"
    code = main(["validate", str(path)])
    out = capsys.readouterr()
    text = out.out + out.err
    assert code == 2
    for needle in expected:
        assert needle in text, f"{path.name}: expected {needle!r} in:\n{text}"
    assert "Traceback" not in text


def test_cli_exit_code_and_no_traceback_end_to_end():
    """The real entry point, as a user runs it: all bad recipes at once."""
    proc = subprocess.run(
        [sys.executable, "launch.py", "validate", *map(str, BAD)], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    for path in BAD:
        assert str(path) in proc.stdout + proc.stderr


def test_run_refuses_a_bad_recipe_before_anything_starts(tmp_path):
    proc = subprocess.run(
        [sys.executable, "launch.py", str(REPO / "tests/bad_recipes/qlora_zero3.yaml"), "--runs-dir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2 and "QLoRA with ZeRO-3" in proc.stderr
    assert list(tmp_path.iterdir()) == []  # no run directory was made


def test_good_recipes_exit_zero():
    assert main(["validate", str(REPO / "recipes/smollm2-135m-lora.yaml"), str(REPO / "recipes/llama3b-qlora.yaml")]) == 0


def test_set_indexes_a_list_and_names_a_bad_index():
    from medtune.recipe.loader import apply_overrides

    raw = {"data": {"train": [{"source": "medquad", "path": "a.csv"}, {"source": "pubmedqa"}]}}
    assert apply_overrides(raw, ["data.train.1.path=/data/pubmedqa", "data.train.0.limit=50"]) == []
    assert raw["data"]["train"] == [{"source": "medquad", "path": "a.csv", "limit": 50},
                                    {"source": "pubmedqa", "path": "/data/pubmedqa"}]
    (bad,) = apply_overrides(raw, ["data.train.2.path=x"])
    assert "data.train is a list of 2: index it with a number from 0 to 1" in bad.render()
    (bad,) = apply_overrides(raw, ["data.train.path=x"])
    assert "data.train is a list of 2" in bad.render()
    assert raw["data"]["train"][1] == {"source": "pubmedqa", "path": "/data/pubmedqa"}  # nothing half-applied
