"""Your own CSV, TSV, XLSX, JSON or JSONL file, with `columns:` saying which column holds what.

Without `columns:` the usual names are tried (question/answer, input/output, ...), case-insensitively.
"""
from __future__ import annotations

import difflib
import json
from pathlib import Path

from ..errors import PreprocessError
from ..readers import iter_json_objects, iter_table, read_head, show
from ..records import Malformed, Record
from ..spec import SourceSpec
from ..text import clean, clean_question
from .base import Rows, Source

EXTENSIONS = (".csv", ".tsv", ".xlsx", ".jsonl", ".json")
FIELDS = ("question", "answer", "context", "qtype", "id")
REQUIRED = ("question", "answer")
_GUESSES = {
    "question": ("question", "questions", "q", "input", "prompt"),
    "answer": ("answer", "answers", "a", "output", "response", "completion"),
    "context": ("context",),
    "qtype": ("qtype", "question_type", "type", "category"),
    "id": ("id",),
}


def is_custom(source: str) -> bool:
    return Path(source).suffix.lower() in EXTENSIONS


def files(path: Path) -> list[Path]:
    return [path]


def header(path: Path) -> list[str]:
    """The column names, reading only the first row (or first JSON object) of a large file."""
    if path.suffix.lower() in (".jsonl", ".json"):
        head = read_head(path).lstrip()
        if head.startswith("["):  # a JSON list: only a full parse finds its first object
            first = next((row for _, row in iter_json_objects(path) if isinstance(row, dict)), None)
        else:
            try:
                first = json.loads(head.split("\n", 1)[0])
            except json.JSONDecodeError as exc:
                raise PreprocessError(f"the first line is not valid JSON ({exc.msg})", file=show(path), row=1,
                                      fix='one object per line: {"question": ..., "answer": ...}') from exc
        if not isinstance(first, dict):
            raise PreprocessError("no JSON object found", file=show(path), fix='one object per line: {"question": ..., "answer": ...}')
        return list(first)
    for _, row in iter_table(path, head_only=True):
        return [cell.strip() for cell in row]
    raise PreprocessError("the file has no rows", file=show(path))


def column_problems(columns: dict[str, str] | None, names: list[str], qtypes: bool) -> tuple[dict[str, str], list[str]]:
    """Resolve which column holds each field; returns (field -> column, problems).

    A field named in `columns:` must exist (case-insensitively); fields not named are guessed.
    """
    columns = columns or {}
    problems: list[str] = []
    lower = {n.lower(): n for n in names}
    mapping: dict[str, str] = {}
    for key, column in columns.items():
        if key not in FIELDS:
            close = difflib.get_close_matches(key, FIELDS, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            problems.append(f"columns: unknown field '{key}' (fields: {', '.join(FIELDS)}){hint}")
        elif column.lower() in lower:
            mapping[key] = lower[column.lower()]
        else:
            close = difflib.get_close_matches(column, names, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            problems.append(f"columns: {key} is mapped to '{column}', which is not a column of the file (columns: {', '.join(names)}){hint}")
    for key, guesses in _GUESSES.items():
        found = next((lower[g] for g in guesses if g in lower), None)
        if key not in columns and found:
            mapping[key] = found
    for key in REQUIRED:
        if key not in columns and key not in mapping:
            problems.append(f"no {key} column found (columns: {', '.join(names)}); map it with `columns: {{{key}: <column name>}}`")
    if qtypes and "qtype" not in columns and "qtype" not in mapping:
        problems.append("qtypes: needs a question-type column; map it with `columns: {qtype: <column name>}`")
    return mapping, problems


def _mapping(path: Path, src: SourceSpec) -> dict[str, str]:
    mapping, problems = column_problems(src.columns, header(path), bool(src.qtypes))
    if problems:
        raise PreprocessError("; ".join(problems), file=show(path), row=1, fix="fix `columns:` (CLI: --columns question=Q,answer=A)")
    return mapping


def _record(values: dict, mapping: dict[str, str], name: str, rid: str, origin: str) -> Record:
    def get(key: str) -> object:
        return values.get(mapping[key]) if key in mapping else None

    return Record(
        id=clean(get("id")) or rid, question=clean_question(get("question")), answer=clean(get("answer")),
        source=name, qtype=clean(get("qtype")) or None, context=clean(get("context")) or None, origin=origin,
    )


def read(paths: list[Path], src: SourceSpec) -> Rows:
    path = paths[0]
    mapping = _mapping(path, src)
    name = path.stem
    if path.suffix.lower() in (".jsonl", ".json"):
        for row_no, row in iter_json_objects(path):
            yield row if isinstance(row, Malformed) else _record(row, mapping, name, f"row{row_no}", f"{show(path)}:{row_no}")
        return
    rows = iter_table(path)
    _, head = next(rows)
    head = [c.strip() for c in head]
    strict_width = path.suffix.lower() != ".xlsx"  # Excel trims trailing empty cells; CSV rows must match
    for row_no, row in rows:
        origin = f"{show(path)}:{row_no}"
        if strict_width and len(row) != len(head):
            yield Malformed(origin, f"{len(row)} fields where the header has {len(head)} (check quoting and separators)")
            continue
        yield _record(dict(zip(head, row)), mapping, name, f"row{row_no}", origin)


SOURCE = Source(
    name="custom",
    summary="your own file: .csv/.tsv/.xlsx/.json/.jsonl with question and answer columns (map others with `columns:`)",
    licence="yours",
    files=files,
    read=read,
)
