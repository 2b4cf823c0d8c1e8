"""User-facing errors: every problem found, each with its key path, what was given and what is allowed."""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class Problem:
    path: str
    """Dotted key path in the recipe (`training.learning_rate`), or a file for file-level problems."""
    message: str
    given: object = None
    allowed: tuple[str, ...] = ()
    suggestion: str | None = None

    def render(self) -> str:
        text = f"{self.path}: {self.message}"
        if self.given is not None:
            text += f" (given: {self.given!r})"
        if self.allowed:
            shown = ", ".join(self.allowed[:12]) + (", ..." if len(self.allowed) > 12 else "")
            text += f"; allowed: {shown}"
        if self.suggestion:
            text += f". Did you mean '{self.suggestion}'?"
        return text


class MedtuneError(Exception):
    """An error the user can fix; the CLI prints it without a traceback and exits with `exit_code`."""

    exit_code = 2


class RecipeError(MedtuneError):
    def __init__(self, source: str, problems: Iterable[Problem]):
        self.source = source
        self.problems = list(problems)
        super().__init__(self.render())

    def render(self) -> str:
        count = len(self.problems)
        lines = [f"{self.source} is not a valid recipe ({count} problem{'s' if count != 1 else ''}):"]
        lines += [f"  - {p.render()}" for p in self.problems]
        return "\n".join(lines)


def did_you_mean(word: str, options: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.6)
    return matches[0] if matches else None
