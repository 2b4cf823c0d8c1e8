"""The content-addressed cache of preprocessed data: cache_dir()/data/<key>/{train,val,test}.jsonl + manifest.json.

The key covers everything the output depends on (source contents, options, formatter version,
tokenizer), so a changed input gives a new entry and an entry is never stale. Entries are written
to a temporary folder and renamed into place, so a crash never leaves a half entry behind.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from ..core.paths import cache_dir
from ..core.hashing import sha256_file, sha256_text

OUTPUTS = ("train.jsonl", "val.jsonl", "test.jsonl")


def make_key(parts: dict) -> str:
    return sha256_text(json.dumps(parts, sort_keys=True, ensure_ascii=True))[:32]


def entry(key: str) -> Path:
    return cache_dir() / "data" / key


def _intact(folder: Path, manifest: dict) -> bool:
    """Whether the entry's files still have the hashes its manifest recorded (someone may have edited them)."""
    outputs = manifest.get("outputs", {})
    return all((folder / name).is_file() and sha256_file(folder / name) == outputs.get(name, {}).get("sha256") for name in OUTPUTS)


def lookup(key: str) -> dict | None:
    folder = entry(key)
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # a damaged entry is rebuilt, not trusted
    return manifest if _intact(folder, manifest) else None


def store(key: str, write: Callable[[Path], dict]) -> dict:
    """Runs `write(folder)` (which writes the outputs and returns the manifest) into a fresh entry."""
    final = entry(key)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{key}.", suffix=".tmp", dir=final.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is shared like the model cache beside it
        manifest = write(tmp)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        if final.exists() and lookup(key) is None:
            shutil.rmtree(final)  # a damaged entry (edited or half-deleted files) is replaced
        try:
            tmp.rename(final)
        except OSError:  # a concurrent run finished the same entry first; its contents are identical
            shutil.rmtree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def export(key: str, out_dir: Path, manifest: dict, status: str) -> dict:
    """Copies an entry into out_dir (copies, not links: editing a run's data must not alter the cache)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        shutil.copyfile(entry(key) / name, out_dir / name)
    manifest = {**manifest, "cache": status, "cache_key": key, "cache_entry": str(entry(key))}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest
