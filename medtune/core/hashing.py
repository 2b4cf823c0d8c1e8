"""Content hashes for source files and outputs (sha256); a whole folder hashes to one digest."""
from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint_files(files: list[Path], root: Path) -> str:
    """One digest over the files' names (relative to root) and contents.

    Names take part because some loaders read meaning from them (`*_test.csv` is MMLU's test split).
    MedQuAD's 11k files hash in about 0.2 s, so there is no stat-based shortcut to go stale.
    """
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()
