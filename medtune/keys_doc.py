"""The recipe key reference, generated from the schema's field docstrings (its one source)."""
from __future__ import annotations

import re
import typing
from typing import Iterator

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from .recipe import Recipe
from .recipe_check import _model_class

# README sections generated from code; `python -m medtune.keys_doc` rewrites them, a test checks them.
SECTIONS = ("recipe-keys", "recipes")


def _type_name(annotation) -> str:
    text = repr(annotation) if typing.get_origin(annotation) else getattr(annotation, "__name__", repr(annotation))
    text = re.sub(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", text)  # drop module paths
    return text.replace("NoneType", "None")


def iter_keys(model: type[BaseModel] = Recipe, prefix: str = "") -> Iterator[tuple[str, str, str, str]]:
    """(key path, type, default, description) for every recipe key, depth first."""
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        sub = _model_class(field.annotation)
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
    rows = ["| key | type | default | what it does |", "| --- | --- | --- | --- |"]
    for path, kind, default, desc in iter_keys():
        cells = [f"`{path}`", kind, default, desc]
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows)


def recipes_table() -> str:
    """The shipped recipes with what each trains on and its memory estimate."""
    from . import models
    from .paths import RECIPES_DIR, REPO_ROOT
    from .plan import estimate_memory
    from .recipe_check import load

    rows = ["| recipe | model | method | hardware | est. memory / device | what it is |", "| --- | --- | --- | --- | --- | --- |"]
    for path in sorted(RECIPES_DIR.glob("**/*.yaml")):
        recipe, _ = load(path)
        about = path.read_text().splitlines()[1].lstrip("# ")
        launch = recipe.launch
        hardware = launch.device + (f" x{launch.gpus}" if launch.gpus > 1 else "")
        hardware += f", {launch.deepspeed}" if launch.deepspeed != "none" else ""
        facts = models.lookup(recipe.model)
        memory = f"{estimate_memory(recipe, facts).total_gib:.1f} GiB" if facts else "?"
        rel = path.relative_to(REPO_ROOT)
        rows.append(f"| `{rel}` | {recipe.model} | {recipe.method.name} | {hardware} | {memory} | {about} |")
    return "\n".join(rows)


def readme_with_sections(readme: str) -> str:
    """README text with every generated section replaced by its current content."""
    content = {"recipe-keys": markdown_table(), "recipes": recipes_table()}
    for name in SECTIONS:
        begin, end = f"<!-- {name}:begin (generated: python -m medtune.keys_doc) -->", f"<!-- {name}:end -->"
        head, sep, rest = readme.partition(begin)
        if not sep:
            raise ValueError(f"README.md lacks the marker {begin}")
        _, sep2, tail = rest.partition(end)
        if not sep2:
            raise ValueError(f"README.md lacks the marker {end}")
        readme = f"{head}{begin}\n{content[name]}\n{end}{tail}"
    return readme


if __name__ == "__main__":
    from .paths import REPO_ROOT

    path = REPO_ROOT / "README.md"
    path.write_text(readme_with_sections(path.read_text()))
    print(f"updated {path}")
