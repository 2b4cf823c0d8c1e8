"""CORD-19 (COVID-19 Open Research Dataset): the release's metadata.csv, and optionally its full-text JSON parses.

A record is one paper: its title, and its abstract as the text (with `full_text: true`, the body text of its
pmc_json parse, else its pdf_json parse, appended; the files metadata.csv lists in `pmc_json_files` /
`pdf_json_files`, relative to the folder holding metadata.csv). The `text` format trains on all of it.
Hygiene: a paper without an abstract (or body text) is counted as no_answer; one whose abstract (and text)
repeats an earlier paper's is a duplicate, so CORD-19's many re-listed papers are trained on once.
The cache key covers metadata.csv's content and the full_text option, not the (hundreds of thousands of) parse
files: a release's parses do not change without its metadata.csv changing too.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Iterator

from ..errors import PreprocessError
from ..readers import show
from ..records import Malformed, Record
from ..spec import SourceSpec
from ..text import clean, normalize
from .base import Rows, Source

METADATA = "metadata.csv"
REQUIRED = ("cord_uid", "title", "abstract")
_FIX = "point `path:` at the CORD-19 release folder (holding metadata.csv and document_parses/) or at metadata.csv"


def files(path: Path) -> list[Path]:
    if path.is_dir():
        path = path / METADATA
        if not path.is_file():
            raise PreprocessError(f"no {METADATA} in this folder", file=path.parent, fix=_FIX)
    return [path]


def _rows(path: Path) -> Iterator[tuple[int, dict]]:
    """metadata.csv rows as dicts, streamed (the full release is over a gigabyte), numbered as a spreadsheet shows them."""
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 27))
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise PreprocessError(f"no {', '.join(missing)} column (header: {', '.join(reader.fieldnames or [])})",
                                      file=show(path), row=1, fix=_FIX)
            for row in reader:
                yield reader.line_num, row
    except UnicodeDecodeError as exc:
        raise PreprocessError(f"not UTF-8 ({exc.reason})", file=show(path), fix="download metadata.csv again") from exc
    except csv.Error as exc:
        raise PreprocessError(f"unreadable CSV: {exc}", file=show(path), fix="download metadata.csv again (a cut-off file ends in an open quote)") from exc


def _body(folder: Path, row: dict) -> tuple[str, str | None]:
    """(the paper's body text, or "", and why it could not be read, or None) from its first listed JSON parse."""
    listed = [p.strip() for key in ("pmc_json_files", "pdf_json_files") for p in (row.get(key) or "").split(";") if p.strip()]
    if not listed:
        return "", None  # no parse: the abstract alone
    path = folder / listed[0]
    try:
        parse = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "", f"full-text file {listed[0]} is not there (download document_parses/, or drop full_text)"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return "", f"full-text file {listed[0]} is unreadable ({exc})"
    paragraphs = parse.get("body_text") if isinstance(parse, dict) else None
    if not isinstance(paragraphs, list):
        return "", f"full-text file {listed[0]} has no body_text list"
    return "\n\n".join(t for t in (clean(p.get("text")) for p in paragraphs if isinstance(p, dict)) if t), None


def read(paths: list[Path], src: SourceSpec) -> Rows:
    path = paths[0]
    folder = path.parent
    for line, row in _rows(path):
        origin = f"{show(path)}:{line}"
        title, abstract = clean(row.get("title")), clean(row.get("abstract"))
        if not title:
            yield Malformed(origin, "no title")
            continue
        text = abstract
        if src.full_text:
            body, problem = _body(folder, row)
            if problem:
                yield Malformed(origin, problem)
                continue
            text = "\n\n".join(part for part in (abstract, body) if part)
        record = Record(id=clean(row.get("cord_uid")) or f"row{line}", question=title, answer=text, source="cord19",
                        origin=origin)
        record.group = f"cord19\x1f{normalize(abstract) or normalize(title)}"  # one split per abstract
        yield record


SOURCE = Source(
    name="cord19",
    summary="CORD-19: COVID-19 papers from metadata.csv (title + abstract, optional full text) for continued pretraining (format text)",
    licence="per paper, as metadata.csv's license column states (CORD-19 terms of use)",
    files=files,
    read=read,
    aliases=("cord_19",),
    documents=True,
)
