"""The rich consoles medtune prints to (stdout for results, stderr for problems)."""
from __future__ import annotations

from rich.console import Console

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

