"""The one error the preprocess stage raises: it names the file, the row, what is wrong and how to fix it."""
from __future__ import annotations

from pathlib import Path

from ..core.errors import MedtuneError


class PreprocessError(MedtuneError):
    """Input the stage cannot use; the CLI prints it on stderr (no traceback) and exits with code 2."""

    def __init__(self, what: str, *, file: str | Path | None = None, row: int | str | None = None, fix: str | None = None):
        self.what = what
        self.file = str(file) if file is not None else None
        self.row = row
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        where = self.file or ""
        if self.row is not None:
            where += f", row {self.row}" if where else f"row {self.row}"
        text = f"{where}: {self.what}" if where else self.what
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text
