"""What a source module provides, and loading its Hugging Face Hub copy with a clear error offline."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from ...core.hub import hub_offline
from ..errors import PreprocessError
from ..records import Malformed, Record
from ..spec import SourceSpec

Rows = Iterator[Record | Malformed]
HubData = dict[str | None, dict[str, Any]]
"""Hub config name -> split name -> datasets.Dataset."""


@dataclass(frozen=True)
class Source:
    """One registry entry: how to find, read and describe a publisher's dataset."""

    name: str
    summary: str
    """One line for help and the README: what it is and which layouts are read."""
    licence: str
    """As the publisher states it (see ../shared/data/README.md)."""
    files: Callable[[Path], list[Path]]
    """The publisher files below a path (file or folder) that `read` uses; PreprocessError if none."""
    read: Callable[[list[Path], SourceSpec], Rows]
    hub_id: str | None = None
    read_hub: Callable[[HubData, SourceSpec], Rows] | None = None
    hub_configs: tuple[str | None, ...] = (None,)
    """Hub configurations loaded and read together (MMLU: one per subject)."""
    aliases: tuple[str, ...] = ()
    qtypes: frozenset[str] | None = field(default=None)
    """Known question types, so a typo in `qtypes:` is reported instead of silently matching nothing."""


def hub_available() -> bool:
    return not hub_offline()


def load_hub(source: Source) -> HubData:
    """Every config and split of the source's Hub copy (datasets keeps its own download cache)."""
    import datasets

    data: HubData = {}
    for config in source.hub_configs:
        label = f"{source.hub_id}" + (f" ({config})" if config else "")
        try:
            loaded = datasets.load_dataset(source.hub_id, config)
        except Exception as exc:  # datasets raises network, auth and not-found errors of many types
            offline = "" if hub_available() else " (HF_HUB_OFFLINE is set)"
            raise PreprocessError(
                f"could not load {label} from the Hugging Face Hub{offline}: {type(exc).__name__}: {exc}",
                fix=f"give `path:` to the publisher's files on disk for source '{source.name}', or allow Hub access",
            ) from exc
        data[config] = dict(loaded)
    return data


def hub_fingerprint(data: HubData) -> str:
    """The datasets library's own fingerprints: they change when the Hub revision's files change."""
    parts = [f"{config}/{split}={ds._fingerprint}" for config, splits in data.items() for split, ds in sorted(splits.items())]
    return "|".join(parts)


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
