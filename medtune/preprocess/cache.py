"""Content-addressed caches: cache_dir()/<namespace>/<key>/ holding a fixed set of files + manifest.json.

The key covers everything the output depends on (source contents, options, formatter version,
tokenizer), so a changed input gives a new entry and an entry is never stale. Entries are written
to a temporary folder and renamed into place, so a crash never leaves a half entry behind; an entry
whose files no longer have the hashes its manifest recorded (someone edited them) is rebuilt.

DATA holds preprocessed data ({train,val,test}.jsonl); KnowTuning's augmentation keeps its own store
(medtune/augment/cache.py).
"""
from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..core.paths import cache_dir
from ..core.hashing import sha256_file, sha256_text

OUTPUTS = ("train.jsonl", "val.jsonl", "test.jsonl")


def make_key(parts: dict) -> str:
    return sha256_text(json.dumps(parts, sort_keys=True, ensure_ascii=True))[:32]


def output_hashes(folder: Path, names: tuple[str, ...]) -> dict[str, dict]:
    """The manifest's "outputs": each file's sha256, which lookup() checks the entry against."""
    return {name: {"sha256": sha256_file(folder / name)} for name in names}


@dataclass(frozen=True)
class Store:
    namespace: str
    """The folder under cache_dir() its entries live in."""
    outputs: tuple[str, ...]
    """The files every entry holds, besides manifest.json (whose "outputs" records their hashes)."""

    def entry(self, key: str) -> Path:
        return cache_dir() / self.namespace / key

    def _intact(self, folder: Path, manifest: dict) -> bool:
        outputs = manifest.get("outputs", {})
        return all((folder / name).is_file() and sha256_file(folder / name) == outputs.get(name, {}).get("sha256")
                   for name in self.outputs)

    def lookup(self, key: str) -> dict | None:
        """The entry's manifest, or None when there is no intact entry for the key."""
        folder = self.entry(key)
        manifest_path = folder / "manifest.json"
        if not manifest_path.is_file():
            return None
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, json.JSONDecodeError):
            return None  # a damaged entry is rebuilt, not trusted
        return manifest if self._intact(folder, manifest) else None

    def store(self, key: str, write: Callable[[Path], dict]) -> dict:
        """Runs `write(folder)` (which writes the outputs and returns the manifest) into a fresh entry."""
        final = self.entry(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{key}.", suffix=".tmp", dir=final.parent))
        try:
            tmp.chmod(0o755)  # mkdtemp makes it private; the cache is shared like the model cache beside it
            manifest = write(tmp)
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
            if final.exists() and self.lookup(key) is None:
                shutil.rmtree(final)  # a damaged entry (edited or half-deleted files) is replaced
            try:
                tmp.rename(final)
            except OSError:  # a concurrent run finished the same entry first; its contents are identical
                shutil.rmtree(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return manifest

    def copy_out(self, key: str, out_dir: Path) -> None:
        """Copies the entry's files into out_dir (copies, not links: editing a run's files must not alter the cache)."""
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in self.outputs:
            shutil.copyfile(self.entry(key) / name, out_dir / name)


DATA = Store("data", OUTPUTS)


def export(key: str, out_dir: Path, manifest: dict, status: str) -> dict:
    """Copies a data entry into out_dir, with its manifest saying whether it was a cache hit."""
    DATA.copy_out(key, out_dir)
    manifest = {**manifest, "cache": status, "cache_key": key, "cache_entry": str(DATA.entry(key))}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest
