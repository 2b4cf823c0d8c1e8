"""The source registry (name -> loader) and the checks the recipe validator runs before anything loads."""
from __future__ import annotations

import difflib
from pathlib import Path

from .errors import PreprocessError
from .spec import SourceSpec
from .sources import cord19, custom, mediqa, medmcqa, medqa, medquad, meadow, mmlu, pubmedqa
from .sources.base import Source

SOURCES: dict[str, Source] = {
    s.name: s
    for s in (medquad.SOURCE, pubmedqa.SOURCE, medqa.SOURCE, medmcqa.SOURCE, mmlu.SOURCE,
              meadow.FLASHCARDS, meadow.WIKIDOC, meadow.MEDICAL_MEADOW, mediqa.SOURCE, cord19.SOURCE)
}
ALIASES: dict[str, str] = {alias: s.name for s in SOURCES.values() for alias in s.aliases}


def source_names() -> list[str]:
    """Registry names a recipe's `source:` accepts (aliases included), besides a path to your own file."""
    return sorted([*SOURCES, *ALIASES])


def lookup(src: SourceSpec) -> Source:
    """The loader for a source entry; PreprocessError (with a did-you-mean) for an unknown name."""
    if custom.is_custom(src.source):
        return custom.SOURCE
    name = ALIASES.get(src.source.lower(), src.source.lower())
    if name in SOURCES:
        return SOURCES[name]
    raise PreprocessError(_unknown(src.source))


def _unknown(name: str) -> str:
    suffix = Path(name).suffix
    if suffix:
        return f"'{name}': files of type {suffix} are not read; use one of {', '.join(custom.EXTENSIONS)}"
    close = difflib.get_close_matches(name.lower(), source_names(), n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return (f"unknown dataset '{name}': {hint}known: {', '.join(source_names())}, "
            f"or the path of your own {'/'.join(e.lstrip('.') for e in custom.EXTENSIONS)} file")


def candidates(path: str, base_dir: Path | None) -> list[Path]:
    """Where a relative path may point: beside the recipe first, then the current directory."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return [p]
    found = [base_dir / p] if base_dir is not None else []
    return found + [Path.cwd() / p]


def resolve_path(path: str, base_dir: Path | None) -> Path:
    tried = candidates(path, base_dir)
    for candidate in tried:
        if candidate.exists():
            return candidate.resolve()
    raise PreprocessError(f"'{path}' does not exist (looked in {', '.join(str(t.parent) for t in tried)})",
                          fix="give a path relative to the recipe file, or an absolute one")


def data_path(src: SourceSpec, base_dir: Path | None) -> Path | None:
    """The file or folder a source reads, or None for a registry source taken from the Hub."""
    if custom.is_custom(src.source):
        return resolve_path(src.source, base_dir)
    return resolve_path(src.path, base_dir) if src.path else None


def check_source(src: SourceSpec, base_dir: Path | None) -> list[str]:
    """Problems with one `data:` entry, found without loading the data (names, paths, columns, qtypes)."""
    try:
        source = lookup(src)
    except PreprocessError as exc:
        return [exc.what]
    problems: list[str] = []
    is_custom = source is custom.SOURCE
    if is_custom and src.path:
        problems.append("path: is for named datasets; for your own file, `source:` is its path")
    if not is_custom and source.hub is None and not src.path:
        problems.append(f"'{source.name}' has no pinned Hub copy: give `path:` to the publisher's files on disk")
    if not is_custom and src.columns:
        problems.append(f"columns: only applies to your own CSV/XLSX/JSONL files, not to '{source.name}'")
    if source.qtypes is not None and src.qtypes:
        for qtype in src.qtypes:
            if qtype not in source.qtypes:
                close = difflib.get_close_matches(qtype, sorted(source.qtypes), n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                problems.append(f"qtypes: '{qtype}' is not a {source.name} question type; {hint}known: {', '.join(sorted(source.qtypes))}")
    try:
        path = data_path(src, base_dir)
        if path is not None:
            files = source.files(path)
            if is_custom:
                problems += custom.column_problems(src.columns, custom.header(files[0]), bool(src.qtypes))[1]
    except PreprocessError as exc:
        problems.append(str(exc).replace("\n  fix:", ";"))
    return problems
