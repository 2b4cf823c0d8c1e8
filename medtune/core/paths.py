"""Where medtune's files live: the repository's templates and recipes, and the one cache outside runs."""
from __future__ import annotations

import os
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATES_DIR = REPO_ROOT / "templates"
RECIPES_DIR = REPO_ROOT / "recipes"


def cache_dir() -> Path:
    """The content-addressed cache (converted models, preprocessed data); MEDTUNE_CACHE overrides."""
    root = os.environ.get("MEDTUNE_CACHE") or Path.home() / ".cache" / "medtune"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def safe_name(text: str) -> str:
    """`text` as a file name: every run of characters other than letters, digits, `.`, `_` and `-` becomes `_`."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)
