"""What a source module provides, and loading its Hugging Face Hub copy (pinned, columns checked) with a clear error."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from ...core.hub import HubDataError, HubDataset, HubTables, hub_offline, load_hub_dataset
from ..errors import PreprocessError
from ..records import Malformed, Record
from ..spec import SourceSpec

Rows = Iterator[Record | Malformed]
HubData = HubTables
"""Hub config name -> split name -> datasets.Dataset, and the commit they came from."""


@dataclass(frozen=True)
class Source:
    """One registry entry: how to find, read and describe a publisher's dataset."""

    name: str
    summary: str
    """One line for help and the README: what it is and which layouts are read."""
    licence: str
    """As the publisher states it."""
    files: Callable[[Path], list[Path]]
    """The publisher files below a path (file or folder) that `read` uses; PreprocessError if none."""
    read: Callable[[list[Path], SourceSpec], Rows]
    hub: HubDataset | None = None
    """The Hub copy read when the recipe gives no `path:` (medtune.core.hub_catalog: id, pinned revision, columns)."""
    read_hub: Callable[[HubData, SourceSpec], Rows] | None = None
    hub_splits: tuple[str, ...] | None = None
    """The Hub splits read (None: all the catalog lists), e.g. not MedMCQA's unlabelled test split."""
    aliases: tuple[str, ...] = ()
    qtypes: frozenset[str] | None = field(default=None)
    """Known question types, so a typo in `qtypes:` is reported instead of silently matching nothing."""
    documents: bool = False
    """Gives documents (title + text), not questions: read by the `text` format only (spec.TEXT_SOURCES)."""

    @property
    def hub_id(self) -> str | None:
        return self.hub.repo_id if self.hub is not None else None


def hub_available() -> bool:
    return not hub_offline()


def load_hub(source: Source) -> HubData:
    """The source's Hub copy at its pinned revision (the Hugging Face cache when offline), columns checked."""
    if source.hub is None or source.read_hub is None:
        raise PreprocessError(f"source '{source.name}' has no Hub copy", fix="give `path:` to the publisher's files on disk")
    try:
        return load_hub_dataset(source.hub, splits=source.hub_splits)
    except HubDataError as exc:
        offline = ", or unset HF_HUB_OFFLINE so the pinned revision is downloaded once" if hub_offline() else ""
        raise PreprocessError(str(exc), fix=f"give `path:` to the publisher's files on disk for source '{source.name}'{offline}") from exc


def hub_fingerprint(data: HubData) -> str:
    """Repository, commit and files read: a pinned commit's files never change."""
    return data.fingerprint


def split_from_name(name: str) -> str | None:
    """Our split for a publisher's file or Hub split name (train/dev/val/validation/test)."""
    low = name.lower()
    for needle, split in (("test", "test"), ("validation", "val"), ("valid", "val"), ("dev", "val"), ("val", "val"), ("train", "train")):
        if needle in low:
            return split
    return None


def walk_files(path: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Files below a folder with one of the suffixes, sorted (os.walk: 5x faster than rglob on 11k files)."""
    found = []
    for folder, dirs, names in os.walk(path):
        dirs.sort()
        found += [Path(folder, n) for n in sorted(names) if n.lower().endswith(suffixes)]
    return found


def need_files(found: list[Path], path: Path, what: str, where: str = "") -> list[Path]:
    if not found:
        raise PreprocessError(f"no {what} found in this folder", file=path, fix=f"point `path:` at {where or 'the folder holding them'}")
    return found
