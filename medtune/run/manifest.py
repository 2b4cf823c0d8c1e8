"""The run manifest (manifest.json): how a run was made and how far it got, rewritten atomically after each change."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from ..core.paths import REPO_ROOT
from ..core.rundir import now, write_json_atomic

PACKAGES = ("medtune", "axolotl", "torch", "transformers", "peft", "trl", "accelerate", "datasets", "deepspeed",
            "bitsandbytes", "lm-eval", "rouge-score", "sacrebleu", "bert-score", "deepeval")
# Environment variables whose values never go into a manifest or a log we write.
SECRET_MARKERS = ("TOKEN", "KEY", "SECRET", "PASSWORD")


def package_versions() -> dict[str, str | None]:
    from .. import __version__

    versions: dict[str, str | None] = {"medtune": __version__}
    for name in PACKAGES[1:]:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(root: Path = REPO_ROOT) -> dict[str, Any]:
    """The commit of the checkout medtune runs from, and whether it has uncommitted changes; both null when
    medtune is installed rather than checked out (or git is missing).

    `root` must be the repository's top level, not merely inside one: a wheel installed into a virtualenv
    that lives in some repository (even this checkout's .venv) would otherwise record that one's commit.
    """
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != root.resolve():
        return {"commit": None, "dirty": None}
    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


class RunManifest:
    """manifest.json of one run directory. Every update is written at once, so a crash loses nothing."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / "manifest.json"
        self.data: dict[str, Any] = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def start(self, recipe_name: str, recipe_hash: str, seed: int, argv: list[str]) -> None:
        self.data.setdefault("created", now())
        self.data.update({
            "recipe": recipe_name,
            "recipe_sha256": recipe_hash,
            "seed": seed,
            "versions": package_versions(),
            "git": git_state(),
            "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
            "status": "running",
        })
        self.data.setdefault("invocations", []).append({"argv": argv, "at": now()})
        self.data.setdefault("stages", {})
        self.save()

    def stage(self, name: str) -> dict[str, Any]:
        return self.data.setdefault("stages", {}).setdefault(name, {})

    def stage_done(self, name: str, input_hash: str) -> bool:
        info = self.data.get("stages", {}).get(name, {})
        return info.get("status") == "done" and info.get("input_sha256") == input_hash

    def begin(self, name: str, input_hash: str, command: list[str] | None = None) -> float:
        info = self.stage(name)
        info.update({"status": "running", "input_sha256": input_hash, "started": now()})
        if command:
            info["command"] = command
        self.save()
        return time.monotonic()

    def finish(self, name: str, started: float, status: str = "done", **extra: Any) -> None:
        info = self.stage(name)
        info.update({"status": status, "seconds": round(time.monotonic() - started, 2), "ended": now(), **extra})
        self.save()

    def set_status(self, status: str, **extra: Any) -> None:
        self.data.update({"status": status, "updated": now(), **extra})
        for info in self.data.get("stages", {}).values():  # the stage that was running ends the same way
            if info.get("status") == "running":
                info["status"] = status
        self.save()

    def save(self) -> None:
        write_json_atomic(self.path, self.data)
