"""Opening each `data:` entry: checking it, finding its files (or its Hub copy) and fingerprinting the content."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import PreprocessError
from ..core.hashing import fingerprint_files
from .registry import check_source, data_path, lookup
from .sources import custom
from .sources.base import HubData, Rows, Source, hub_fingerprint, load_hub
from .spec import SourceSpec


@dataclass
class Input:
    role: str
    """train or eval."""
    index: int
    spec: SourceSpec
    source: Source
    path: Path | None
    files: list[Path]
    fingerprint: str
    """sha256 over the files' names and contents, or the Hub datasets' fingerprints."""
    hub: HubData | None = None

    @property
    def label(self) -> str:
        return f"data.{self.role}[{self.index}] ({self.spec.source})"

    @property
    def name(self) -> str:
        return self.path.name if self.source is custom.SOURCE else self.source.name

    def rows(self) -> Rows:
        if self.hub is not None:
            return self.source.read_hub(self.hub, self.spec)
        return self.source.read(self.files, self.spec)

    def key_part(self) -> dict:
        """What of this input the cache key depends on: content and options, never where it lies."""
        return {"role": self.role, "source": self.name, "columns": self.spec.columns, "qtypes": self.spec.qtypes,
                "limit": self.spec.limit, "full_text": self.spec.full_text, "content": self.fingerprint}

    def describe(self) -> dict:
        where = {"path": str(self.path)} if self.path is not None else {"hub_id": self.source.hub_id}
        return {"role": self.role, "source": self.name, **where, "files": len(self.files), "sha256": self.fingerprint}


def open_input(role: str, index: int, spec: SourceSpec, base_dir: Path | None) -> Input:
    problems = check_source(spec, base_dir)
    if problems:
        label = f"data.{role}[{index}] ({spec.source})"
        raise PreprocessError(f"{label}: " + "; ".join(problems))
    source = lookup(spec)
    path = data_path(spec, base_dir)
    if path is None:
        hub = load_hub(source)
        return Input(role, index, spec, source, None, [], hub_fingerprint(hub), hub)
    files = source.files(path)
    root = path if path.is_dir() else path.parent
    return Input(role, index, spec, source, path, files, fingerprint_files(files, root))
