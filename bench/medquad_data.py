"""The MedQuAD the benchmarks read: `--data` when given (the publisher's folder of XML files, or a CSV in the Hub
layout qtype, Question, Answer), else its Hub copy when the Hub may be contacted, else the project's own demo rows.

The README's figures were measured on the publisher's full folder, given with --data. Also: running a bench
recipe's stages through the real CLI (`launch`), which the training benchmarks share.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from medtune.core.hub import hub_offline

REPO = Path(__file__).resolve().parents[1]
DEMO_RECIPE = REPO / "recipes" / "smollm2-135m-lora.yaml"
DATA_HELP = ("MedQuAD to read: the publisher's folder of XML files, or a CSV (qtype, Question, Answer); default: its "
             "Hub copy when the Hub is allowed (HF_HUB_OFFLINE unset or 0), else the project's demo rows (the ones "
             "recipes/smollm2-135m-lora.yaml trains on)")


def demo_rows() -> Path:
    """The demo recipe's MedQuAD file, resolved as the recipe sees it: the rows `make demo` trains on."""
    entry = yaml.safe_load(DEMO_RECIPE.read_text())["data"]["train"][0]
    return (DEMO_RECIPE.parent / entry["path"]).resolve()


def medquad_path(data: Path | None) -> Path | None:
    """The file or folder to read, or None for the Hub copy."""
    if data is not None:
        return data.resolve()
    return demo_rows() if hub_offline() else None


def medquad_entry(data: Path | None) -> dict:
    """The `data.train` entry of a recipe (or DataSpec) reading it."""
    path = medquad_path(data)
    return {"source": "medquad", **({"path": str(path)} if path is not None else {})}


def describe(data: Path | None) -> str:
    """What was read, for a benchmark's results file."""
    from medtune.preprocess.registry import SOURCES

    path = medquad_path(data)
    return str(path) if path is not None else f"hub:{SOURCES['medquad'].hub_id}"


def answered_questions(data: Path | None) -> list[str]:
    """Every question with an answer, as medtune's MedQuAD reader yields it (any layout, or the Hub copy)."""
    from medtune.preprocess.records import Record
    from medtune.preprocess.registry import SOURCES
    from medtune.preprocess.sources.base import load_hub
    from medtune.preprocess.spec import SourceSpec

    source, path = SOURCES["medquad"], medquad_path(data)
    spec = SourceSpec(**medquad_entry(data))
    rows = source.read(source.files(path), spec) if path is not None else source.read_hub(load_hub(source), spec)
    return [row.question for row in rows if isinstance(row, Record) and row.answer]


def launch(recipe: Path, runs: Path, stages: str) -> Path:
    """Run stages of the recipe through the real CLI; returns the run directory (runs/<recipe name>/<time>)."""
    proc = subprocess.run([sys.executable, "launch.py", str(recipe), "--stages", stages, "--runs-dir", str(runs)],
                          cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"medtune {stages} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return next(runs.glob(f"{yaml.safe_load(recipe.read_text())['name']}/*"))
