"""The rich consoles medtune prints to (stdout for results, stderr for problems) and shared tables."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def print_keys(markdown: bool = False) -> None:
    from .keys_doc import iter_keys, markdown_table

    if markdown:
        print(markdown_table())
        return
    table = Table(title="Recipe keys", show_lines=False)
    for col in ("key", "type", "default", "what it does"):
        table.add_column(col, overflow="fold")
    for row in iter_keys():
        table.add_row(*row)
    console.print(table)
