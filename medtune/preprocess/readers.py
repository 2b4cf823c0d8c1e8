"""Reading publisher and user files with errors that name the file and the row, never a traceback."""
from __future__ import annotations

import csv
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Iterator

from .errors import PreprocessError
from .records import Malformed

_UTF8_FIX = "save the file as UTF-8 (in Excel: File > Save As > 'CSV UTF-8'), or fix the byte shown"


def show(path: Path) -> str:
    """A path as short as it can be while still findable: relative when under the current dir, else absolute."""
    absolute = os.path.abspath(path)
    cwd = os.getcwd()
    return os.path.relpath(absolute, cwd) if absolute.startswith(cwd + os.sep) else absolute


def read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PreprocessError(f"cannot read the file ({exc.strerror})", file=show(path)) from exc
    if not data.strip():
        raise PreprocessError("the file is empty", file=show(path), fix="point the source at a file with data in it")
    return data


def decode(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise PreprocessError(
            f"byte 0x{data[exc.start]:02X} (line {line}) is not valid UTF-8", file=show(path), row=None, fix=_UTF8_FIX
        ) from exc


def read_text(path: Path) -> str:
    return decode(read_bytes(path), path)


def load_json(path: Path) -> Any:
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PreprocessError(
            f"not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", file=show(path),
            fix="repair the file (a truncated download is the usual cause) or download it again",
        ) from exc


def iter_json_objects(path: Path) -> Iterator[tuple[int, dict | Malformed]]:
    """Rows of a JSON-lines file, or of a JSON list of objects; yields (row number, object or Malformed)."""
    text = read_text(path)
    if text.lstrip().startswith("["):
        rows = load_json(path)
        for i, obj in enumerate(rows, start=1):
            yield i, obj if isinstance(obj, dict) else Malformed(f"{show(path)}:{i}", "item is not a JSON object")
        return
    for i, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield i, Malformed(f"{show(path)}:{i}", f"not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        yield i, obj if isinstance(obj, dict) else Malformed(f"{show(path)}:{i}", "line is not a JSON object")


def _delimiter(text: str, path: Path) -> str:
    """Comma unless the header line shows tabs or semicolons (European Excel) instead.

    Decided from the header alone: csv.Sniffer guesses wrong on medical prose full of ; and ,.
    """
    if path.suffix.lower() == ".tsv":
        return "\t"
    header = text.split("\n", 1)[0]
    if "," in header:
        return ","
    return next((d for d in ("\t", ";") if d in header), ",")


def read_head(path: Path, size: int = 1 << 16) -> str:
    """The first whole lines of a file (up to `size` bytes), for header checks that must not load everything."""
    with path.open("rb") as fh:
        data = fh.read(size)
        more = bool(fh.read(1))
    if not data.strip():
        raise PreprocessError("the file is empty", file=show(path), fix="point the source at a file with data in it")
    if more and b"\n" in data:
        data = data[: data.rindex(b"\n") + 1]
    return decode(data, path)


def iter_csv(path: Path, text: str | None = None) -> Iterator[tuple[int, list[str]]]:
    """Rows of a CSV file as lists of strings, numbered like a spreadsheet (the first line is row 1)."""
    text = read_text(path) if text is None else text
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 27))  # the default 128 kB cap is below some answers
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text, path))
    row_no = 0
    try:
        for row_no, row in enumerate(reader, start=1):
            if any(cell.strip() for cell in row):
                yield row_no, row
    except csv.Error as exc:
        raise PreprocessError(
            f"unreadable CSV near line {reader.line_num}: {exc}", file=show(path), row=row_no + 1,
            fix="check the quoting on that line (an unclosed quote swallows the rest of the file)",
        ) from exc


def iter_xlsx(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Rows of the first worksheet as strings (empty cells as ""), numbered as Excel shows them."""
    import openpyxl  # only needed for spreadsheets

    read_bytes(path)  # the empty-file check, with the same message as every other format
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, OSError, KeyError, ValueError) as exc:
        raise PreprocessError(
            f"not a readable .xlsx workbook ({exc})", file=show(path),
            fix="open it in Excel or LibreOffice and save it again as .xlsx (or export CSV)",
        ) from exc
    try:
        sheet = book.worksheets[0]
        for row_no, row in enumerate(sheet.iter_rows(values_only=True), start=1):
            cells = ["" if v is None else str(v) for v in row]
            if any(c.strip() for c in cells):
                yield row_no, cells
    finally:
        book.close()


def iter_table(path: Path, head_only: bool = False) -> Iterator[tuple[int, list[str]]]:
    if path.suffix.lower() == ".xlsx":
        return iter_xlsx(path)
    return iter_csv(path, read_head(path) if head_only else None)
