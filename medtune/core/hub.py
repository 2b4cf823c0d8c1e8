"""The Hugging Face Hub as medtune sees it: whether it may be contacted, and datasets read at pinned revisions.

Every Hub dataset medtune reads (training sources and benchmark suites alike) goes through
`load_hub_dataset`: huggingface_hub fetches the dataset's files at the pinned commit into its own
cache (or finds them there when HF_HUB_OFFLINE is set), datasets' packaged builders read them, and
every file is checked for the columns its reader needs, so a Hub copy that changed its layout is an
error naming the column instead of rows silently dropped. `hub_dataset_problem` answers the same
question for pre-flight without downloading anything.
"""
from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .errors import MedtuneError

HUB_TIMEOUT_S = 10
"""Seconds pre-flight waits for one Hub metadata answer."""

_TRUE = ("1", "true", "yes", "on")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE asks for no Hub access (1/true/yes/on, any case), as huggingface_hub reads it."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def hub_cache_dir() -> str | None:
    """The Hub cache to use, read now: HF_HUB_CACHE, else HF_HOME/hub; None leaves huggingface_hub its default.

    huggingface_hub reads these variables once, when it is imported; reading them per call lets a
    process that set them later (a test, a rehearsal) point medtune at another cache.
    """
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


class HubDataError(MedtuneError):
    """A Hub dataset that cannot be read: not cached while offline, unreachable, a file or a column missing."""


@dataclass(frozen=True)
class HubDataset:
    """One dataset repository on the Hub, as medtune reads it."""

    repo_id: str
    """Spelled exactly as published (the cache folder name is case-sensitive)."""
    revision: str
    """The commit the readers were written against (40 hex digits); a branch name only where no commit was pinned."""
    files: dict[str | None, dict[str, str]]
    """Configuration (None: the repository's only one) -> split -> file path in the repository, or a glob."""
    columns: tuple[str, ...]
    """Columns every file must have; `a.b` names field b of struct column a."""

    def label(self, config: str | None = None) -> str:
        rev = self.revision[:7] if _COMMIT.match(self.revision) else self.revision
        return f"{self.repo_id}@{rev}" + (f" ({config})" if config else "")

    def selected(self, configs: Iterable[str | None] | None, splits: Iterable[str] | None) -> dict[str | None, dict[str, str]]:
        """The files of the given configurations and splits (None: all), config -> split -> pattern."""
        chosen = {}
        splits = None if splits is None else set(splits)
        for config in self.files if configs is None else configs:
            if config not in self.files:
                raise ValueError(f"{self.repo_id} has no configuration {config!r}; known: {list(self.files)}")
            by_split = self.files[config]
            chosen[config] = {s: p for s, p in by_split.items() if splits is None or s in splits}
        return chosen


class HubTables(dict):
    """config -> split -> datasets.Dataset, and the commit the files came from (their fingerprint)."""

    def __init__(self, dataset: HubDataset, commit: str, tables: dict[str | None, dict[str, Any]]):
        super().__init__(tables)
        self.dataset = dataset
        self.commit = commit

    @property
    def fingerprint(self) -> str:
        """Identifies the content: a commit's files never change, so repo, commit and file names suffice."""
        files = ",".join(f"{config}/{split}" for config, splits in self.items() for split in sorted(splits))
        return f"{self.dataset.repo_id}@{self.commit}:{files}"


def _cache_snapshot(dataset: HubDataset) -> Path | None:
    """Where the revision's files lie in the local Hub cache (a branch resolved through refs/), if known there."""
    from huggingface_hub import constants

    root = Path(hub_cache_dir() or constants.HF_HUB_CACHE) / ("datasets--" + dataset.repo_id.replace("/", "--"))
    commit = dataset.revision
    if not _COMMIT.match(commit):
        ref = root / "refs" / commit
        commit = ref.read_text().strip() if ref.is_file() else ""
    return root / "snapshots" / commit if commit else None


def _snapshot(dataset: HubDataset, patterns: list[str]) -> Path:
    """The local folder holding the files at the dataset's revision, fetched unless offline or already cached."""
    from huggingface_hub import snapshot_download

    # A pinned commit's files never change: once all are cached, the Hub need not be asked again.
    cached = _COMMIT.match(dataset.revision) and not _uncached(dataset, patterns)
    try:
        folder = snapshot_download(dataset.repo_id, repo_type="dataset", revision=dataset.revision,
                                   allow_patterns=patterns, cache_dir=hub_cache_dir(),
                                   local_files_only=hub_offline() or bool(cached))
    except Exception as exc:  # huggingface_hub raises network, auth, not-found and cache errors of many types
        if hub_offline():
            raise HubDataError(f"{dataset.label()} is not in the Hugging Face cache and HF_HUB_OFFLINE is set") from exc
        raise HubDataError(f"could not download {dataset.label()} from the Hugging Face Hub: "
                           f"{type(exc).__name__}: {exc}") from exc
    return Path(folder)


def _uncached(dataset: HubDataset, patterns: list[str]) -> list[str]:
    folder = _cache_snapshot(dataset)
    return [p for p in patterns if folder is None or not folder.is_dir() or not _matches(folder, p)]


def _matches(folder: Path, pattern: str) -> list[Path]:
    if not any(ch in pattern for ch in "*?["):
        return [folder / pattern] if (folder / pattern).is_file() else []
    found = (p for p in folder.rglob("*") if p.is_file())
    return sorted(p for p in found if fnmatch.fnmatchcase(p.relative_to(folder).as_posix(), pattern))


def _missing_columns(features: dict, wanted: tuple[str, ...]) -> list[str]:
    missing = []
    for name in wanted:
        head, _, field = name.partition(".")
        if head not in features or (field and (not isinstance(features[head], dict) or field not in features[head])):
            missing.append(name)
    return missing


def load_hub_dataset(dataset: HubDataset, *, configs: Iterable[str | None] | None = None,
                     splits: Iterable[str] | None = None) -> HubTables:
    """The chosen configurations and splits of a Hub dataset at its revision (download unless offline,
    else the local Hugging Face cache), each split checked for the dataset's columns.

    Raises HubDataError naming the dataset, the file and what is missing; callers add how to fix it.
    """
    import datasets

    chosen = dataset.selected(configs, splits)
    folder = _snapshot(dataset, sorted({p for by_split in chosen.values() for p in by_split.values()}))
    tables: dict[str | None, dict[str, Any]] = {}
    for config, by_split in chosen.items():
        tables[config] = {}
        for split, pattern in by_split.items():
            paths = _matches(folder, pattern)
            if not paths and hub_offline():
                raise HubDataError(f"{dataset.label(config)}: {pattern} is not in the Hugging Face cache and "
                                   "HF_HUB_OFFLINE is set")
            if not paths:
                raise HubDataError(f"{dataset.label(config)} has no file {pattern} for split {split!r}")
            builder = _BUILDERS[Path(paths[0]).suffix.lower()]
            loaded = datasets.load_dataset(builder, data_files={split: [str(p) for p in paths]}, split=split,
                                           cache_dir=os.environ.get("HF_DATASETS_CACHE") or None)
            missing = _missing_columns(loaded.features, dataset.columns)
            if missing:
                raise HubDataError(
                    f"{dataset.label(config)}, file {pattern}: no column {', '.join(repr(m) for m in missing)} "
                    f"(its columns: {', '.join(loaded.column_names)}); the Hub copy is not in the layout medtune reads")
            tables[config][split] = loaded
    return HubTables(dataset, folder.name, tables)


def cached_files(dataset: HubDataset, configs: Iterable[str | None] | None = None,
                 splits: Iterable[str] | None = None) -> tuple[list[str], list[str]]:
    """(cached, missing) file patterns of the chosen splits in the local Hugging Face cache; nothing is fetched."""
    patterns = sorted({p for by_split in dataset.selected(configs, splits).values() for p in by_split.values()})
    missing = _uncached(dataset, patterns)
    return [p for p in patterns if p not in missing], missing


def hub_dataset_problem(dataset: HubDataset, configs: Iterable[str | None] | None = None,
                        splits: Iterable[str] | None = None) -> str | None:
    """Why the chosen splits could not be read now, or None: all cached, or the Hub answers for the revision.

    For pre-flight: nothing is downloaded; online and not cached, one metadata call asks the Hub.
    """
    configs = None if configs is None else list(configs)
    splits = None if splits is None else list(splits)
    _, missing = cached_files(dataset, configs, splits)
    if not missing:
        return None
    shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
    if hub_offline():
        return f"{dataset.label()} is not in the Hugging Face cache ({shown} missing) and HF_HUB_OFFLINE is set"
    from huggingface_hub import HfApi

    try:
        # A timeout, so a stalled network makes pre-flight report, not hang.
        HfApi().dataset_info(dataset.repo_id, revision=dataset.revision, timeout=HUB_TIMEOUT_S)
    except Exception as exc:  # network, auth, not-found and revision errors all mean the same here: not readable
        return f"{dataset.label()} is not cached and the Hub did not answer for it: {type(exc).__name__}: {exc}"
    return None
