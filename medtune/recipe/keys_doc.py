"""The recipe key reference, generated from the schema's field docstrings (its one source)."""
from __future__ import annotations

import re
import typing
from typing import Iterator

from pydantic import BaseModel
from pydantic_core import PydanticUndefined
from rich.table import Table

from ..core.console import console
from ..core.fmt import markdown_table as _markdown
from ..core.schema import model_class
from .schema import Recipe


def _type_name(annotation) -> str:
    text = repr(annotation) if typing.get_origin(annotation) else getattr(annotation, "__name__", repr(annotation))
    text = re.sub(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", text)  # drop module paths
    return text.replace("NoneType", "None")


def iter_keys(model: type[BaseModel] = Recipe, prefix: str = "") -> Iterator[tuple[str, str, str, str]]:
    """(key path, type, default, description) for every recipe key, depth first."""
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        sub = model_class(field.annotation)
        if field.default is PydanticUndefined:
            default = "required"
        elif isinstance(field.default, BaseModel):
            default = ""
        else:
            default = repr(field.default)
        is_list = typing.get_origin(field.annotation) is list
        kind = "section" if sub and not is_list else _type_name(field.annotation)
        yield path, kind, default, " ".join((field.description or "").split())
        if sub is not None:
            yield from iter_keys(sub, path + ("[]." if is_list else "."))


def markdown_table() -> str:
    return _markdown(["key", "type", "default", "what it does"],
                     [[f"`{path}`", kind, default, desc] for path, kind, default, desc in iter_keys()])


def print_keys(markdown: bool = False) -> None:
    """`launch.py validate --help-keys`: every key as a console table, or as the README's Markdown table."""
    if markdown:
        print(markdown_table())
        return
    table = Table(title="Recipe keys", show_lines=False)
    for col in ("key", "type", "default", "what it does"):
        table.add_column(col, overflow="fold")
    for row in iter_keys():
        table.add_row(*row)
    console.print(table)
