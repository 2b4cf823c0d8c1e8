"""The README's generated sections (recipe keys, shipped recipes) match the code they come from."""
from __future__ import annotations

from pathlib import Path

from medtune.recipe.keys_doc import iter_keys
from medtune.tools.readme import readme_with_sections

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_generated_sections_are_current():
    text = README.read_text()
    assert readme_with_sections(text) == text, "README is stale: run `python -m medtune.tools.readme`"


def test_every_recipe_key_is_documented():
    undocumented = [path for path, _kind, _default, desc in iter_keys() if not desc]
    assert undocumented == []


def test_quickstart_is_two_commands():
    text = README.read_text()
    assert "make demo" in text and "make test" in text
