"""Where medtune's files live: the repository's templates and recipes, and the one cache outside runs."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = REPO_ROOT / "templates"
RECIPES_DIR = REPO_ROOT / "recipes"


def cache_dir() -> Path:
    """The content-addressed cache (converted models, preprocessed data); MEDTUNE_CACHE overrides."""
    root = os.environ.get("MEDTUNE_CACHE") or Path.home() / ".cache" / "medtune"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path
