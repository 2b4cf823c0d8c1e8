"""Where medtune's files live: the package's own data (templates, data files), the checkout's recipes, and the
one cache outside runs."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from .errors import MedtuneError

# Data the code needs at run time ships inside the package (pyproject's package-data), so an installed
# medtune finds it wherever pip put it.
PACKAGE_DIR = Path(__file__).resolve().parents[1]
TEMPLATES_DIR = PACKAGE_DIR / "templates"
DATA_DIR = PACKAGE_DIR / "data"  # data files the code reads (not user data: that is named in recipes)
# The folder above the package: the checkout when medtune runs from one (launch.py, `pip install -e .`),
# site-packages when it is installed from a wheel. Only what is about the checkout itself uses it: its
# recipes, its README, its git commit (run/manifest.py checks it is a repository's top level).
REPO_ROOT = PACKAGE_DIR.parent
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


def require_importable_from(cwd: Path, env: dict[str, str]) -> None:
    """Stop, naming the fix, unless a Python started in `cwd` with `env` imports this very medtune.

    Training's processes start in the run directory and import medtune's Axolotl plugin and rank modules
    from the environment, not from the checkout `launch.py` runs in: medtune must be installed there
    (`make setup` installs the checkout in editable mode). Without this check a missing or stale install
    shows up as a ModuleNotFoundError deep in the training log, or as another copy's code running.
    """
    probe = "import medtune, sys; sys.stdout.write(medtune.__file__ or '')"
    out = subprocess.run([sys.executable, "-c", probe], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    found = Path(out.stdout).resolve().parent if out.returncode == 0 and out.stdout else None
    if found == PACKAGE_DIR:
        return
    where = f"imports medtune from {found}" if found else "cannot import medtune"
    checkout = (REPO_ROOT / "pyproject.toml").is_file()
    fix = (f"run `make setup` in {REPO_ROOT}, or `{sys.executable} -m pip install --no-deps -e {REPO_ROOT}`" if checkout
           else f"reinstall medtune into {sys.prefix}, and leave PYTHONPATH without another copy")
    raise MedtuneError(f"training's processes start in {cwd} and {where}, not from {PACKAGE_DIR}: this medtune "
                       f"is not the one installed in the Python environment {sys.prefix}. Fix: {fix}")
