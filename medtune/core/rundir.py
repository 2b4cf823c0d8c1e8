"""The run directory: one experiment's folder and the contract between its stages.

    runs/<recipe-name>/<timestamp>/
      recipe.yaml, recipe.resolved.yaml, manifest.json
      axolotl.yaml, accelerate.yaml, deepspeed.json (with ZeRO)
      data/ train/ eval/ report/            (data/knowtuning/: what KnowTuning generated, where a recipe asks)
      axolotl-<stage>.yaml, train-<stage>/     each later training stage of a multi-stage recipe (`stages:`),
                                               train-<stage>/start/ the merged weights it started from

Every module names these files through `RunDir`, so the layout is written down once. A folder counts as a
run directory when it holds `recipe.resolved.yaml`: the first file a run writes, and the one every stage reads.
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from .errors import MedtuneError


def write_json_atomic(path: Path, data: Any, **dumps: Any) -> None:
    """Write JSON through a temporary file and a rename, so a reader (or a crash) never sees half a file.

    `dumps` overrides json.dumps options (default: indent=2, default=str).
    """
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, **{"indent": 2, "default": str, **dumps}) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunDir:
    """One run directory: where each stage's files are, how it is created, recognised and found again."""

    # the run's own files
    RECIPE = "recipe.yaml"
    RESOLVED = "recipe.resolved.yaml"
    MANIFEST = "manifest.json"
    AXOLOTL = "axolotl.yaml"
    ACCELERATE = "accelerate.yaml"
    DEEPSPEED = "deepspeed.json"
    # the stages' folders and the files other stages read from them
    DATA, TRAIN, EVAL, REPORT = "data", "train", "eval", "report"
    SPLITS = ("train", "val", "test")
    DATA_MANIFEST = "manifest.json"
    HISTORY = "history.json"
    TRAIN_LOG = "train.log"
    GENERATIONS = "generations.jsonl"
    METRICS = "metrics.json"
    PER_ITEM = "per_item.jsonl"
    # later training stages (a recipe's `stages:`), relative to the run directory as their configs name them
    STAGE_CONFIG = "axolotl-{}.yaml"
    STAGE_TRAIN = "train-{}"
    STAGE_START = "start"
    PREFERENCE = "preference-{}.jsonl"
    KNOWTUNING = "knowtuning"

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunDir) and self.path == other.path

    def __hash__(self) -> int:
        return hash(self.path)

    # ------------------------------------------------------------ creation and recognition

    @classmethod
    def create(cls, runs_dir: Path, name: str) -> "RunDir":
        """A new, empty folder runs_dir/name/<timestamp>[-n]/."""
        base = Path(runs_dir) / name
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        path, n = base / stamp, 1
        while path.exists():
            n += 1
            path = base / f"{stamp}-{n}"
        path.mkdir(parents=True)
        return cls(path)

    def is_run(self) -> bool:
        return (self.path / self.RESOLVED).is_file()

    @classmethod
    def open(cls, path: Path | str, purpose: str = "") -> "RunDir":
        """An existing run directory, or the one error that says what is wrong with `path`."""
        run = cls(path)
        if not run.path.is_dir():
            raise MedtuneError(f"{run.path}: no such run directory{_for(purpose)}")
        if not run.is_run():
            raise MedtuneError(f"{run.path}: not a run directory (no {cls.RESOLVED}; `python launch.py RECIPE` makes one){_for(purpose)}")
        return run

    @classmethod
    def latest(cls, runs_dir: Path, name: str) -> "RunDir":
        """The newest run directory of the recipe called `name` under runs_dir."""
        folder = Path(runs_dir) / name
        candidates = sorted(p.parent for p in folder.glob(f"*/{cls.RESOLVED}"))
        if not candidates:
            raise MedtuneError(f"no earlier run of '{name}' under {folder}")
        return cls(candidates[-1])

    # ------------------------------------------------------------ places

    @property
    def recipe(self) -> Path:
        return self.path / self.RECIPE

    @property
    def resolved(self) -> Path:
        return self.path / self.RESOLVED

    @property
    def manifest(self) -> Path:
        return self.path / self.MANIFEST

    @property
    def data(self) -> Path:
        return self.path / self.DATA

    @property
    def train(self) -> Path:
        return self.path / self.TRAIN

    @property
    def eval(self) -> Path:
        return self.path / self.EVAL

    @property
    def report(self) -> Path:
        return self.path / self.REPORT

    def split(self, name: str) -> Path:
        """data/<name>.jsonl for name in train, val, test."""
        if name not in self.SPLITS:
            raise ValueError(f"unknown split {name!r}; one of {self.SPLITS}")
        return self.data / f"{name}.jsonl"

    @property
    def data_manifest(self) -> Path:
        return self.data / self.DATA_MANIFEST

    @property
    def history(self) -> Path:
        return self.train / self.HISTORY

    @property
    def train_log(self) -> Path:
        return self.train / self.TRAIN_LOG

    @property
    def generations(self) -> Path:
        return self.eval / self.GENERATIONS

    @property
    def metrics(self) -> Path:
        return self.eval / self.METRICS

    @property
    def per_item(self) -> Path:
        return self.eval / self.PER_ITEM

    def stage_config(self, stage: str) -> Path:
        return self.path / self.STAGE_CONFIG.format(stage)

    def stage_train(self, stage: str) -> Path:
        """A later stage's Axolotl output_dir."""
        return self.path / self.STAGE_TRAIN.format(stage)

    def stage_start(self, stage: str) -> Path:
        """The weights a later stage starts from: the stage before's adapter merged into its base."""
        return self.stage_train(stage) / self.STAGE_START

    @property
    def knowtuning(self) -> Path:
        """data/knowtuning/: every file KnowTuning's augmentation generated (facts, augmented pairs, preferences)."""
        return self.data / self.KNOWTUNING

    def preference_data(self, stage: str) -> Path:
        return self.data / self.PREFERENCE.format(stage)

    # ------------------------------------------------------------ contents

    def resolved_recipe(self) -> dict:
        """recipe.resolved.yaml as a mapping (every default filled in when the run started)."""
        try:
            recipe = yaml.safe_load(self.resolved.read_text())
        except OSError:
            raise MedtuneError(f"{self.path}: not a run directory (no {self.RESOLVED})") from None
        except yaml.YAMLError as exc:
            raise MedtuneError(f"{self.resolved}: not valid YAML ({exc})") from None
        if not isinstance(recipe, dict):
            raise MedtuneError(f"{self.resolved}: not a recipe mapping")
        return recipe

    def manifest_data(self) -> dict:
        return json.loads(self.manifest.read_text()) if self.manifest.is_file() else {}

    def recipe_dir(self) -> Path | None:
        """The folder of the recipe file the run was made from, where its relative paths start."""
        source = self.manifest_data().get("recipe_source")
        return Path(source).parent if source else None

    def training_history(self, stage: str | None = None) -> list[dict]:
        """The loss curve of the first training stage, or of the later stage named: the newest checkpoint's trainer
        log (it survives a resume), else the stage's history.json."""
        folder = self.train if stage is None else self.stage_train(stage)
        states = sorted(folder.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[-1]))
        if states:
            history = json.loads(states[-1].read_text()).get("log_history", [])
            if history:
                return history
        saved = folder / self.HISTORY
        return json.loads(saved.read_text()) if saved.is_file() else []

    def stage_names(self) -> list[str]:
        """The names of the later training stages the run's recipe chains after the first (`stages:`)."""
        return [stage["name"] for stage in self.resolved_recipe().get("stages") or []]

    def final_train(self) -> Path:
        """The output folder of the run's last training stage: what eval, chat and export use."""
        stages = self.stage_names()
        return self.stage_train(stages[-1]) if stages else self.train

    def trained_weights(self) -> tuple[Path, str] | None:
        """(folder, "adapter" | "full") for what the last training stage left, or None before it has finished."""
        return weights_in(self.final_train())


def loss_summary(history: list[dict]) -> dict:
    """What a training stage's logged losses come to: steps logged, first and last loss (None when none)."""
    losses = [h["loss"] for h in history if "loss" in h]
    return {"steps_logged": len(losses), "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None}


def weights_in(folder: Path) -> tuple[Path, str] | None:
    """(folder, "adapter" | "full") for the PEFT adapter or full weights a training stage saved there, else None."""
    if (folder / "adapter_config.json").is_file():
        return folder, "adapter"
    if (folder / "config.json").is_file() and (any(folder.glob("*.safetensors")) or any(folder.glob("*.bin"))):
        return folder, "full"
    return None


def _for(purpose: str) -> str:
    return f" ({purpose})" if purpose else ""
