"""The README's generated sections (recipe keys, shipped recipes): `python -m medtune.tools.readme` rewrites
them from the code, and a test checks the README is current."""
from __future__ import annotations

from ..core.fmt import markdown_table
from ..core.paths import RECIPES_DIR, REPO_ROOT
from ..launch.plan import largest_estimate
from ..models import catalog as models
from ..recipe.keys_doc import markdown_table as keys_table
from ..recipe.loader import load

SECTIONS = ("recipe-keys", "recipes")


def recipes_table() -> str:
    """The shipped recipes with what each trains on and its memory estimate."""
    rows = []
    for path in sorted(RECIPES_DIR.glob("**/*.yaml")):
        recipe, _ = load(path)
        about = path.read_text().splitlines()[1].lstrip("# ")
        launch = recipe.launch
        hardware = launch.device + (f" x{launch.gpus}" if launch.gpus > 1 else "")
        hardware += f", {launch.deepspeed}" if launch.deepspeed != "none" else ""
        facts = models.lookup(recipe.model)
        memory = f"{largest_estimate(recipe, facts)[1].total_gib:.1f} GiB" if facts else "?"  # its largest training stage
        rel = path.relative_to(REPO_ROOT)
        rows.append([f"`{rel}`", recipe.model, recipe.method.name, hardware, memory, about])
    return markdown_table(["recipe", "model", "method", "hardware", "est. memory / device", "what it is"], rows)


def readme_with_sections(readme: str) -> str:
    """README text with every generated section replaced by its current content."""
    content = {"recipe-keys": keys_table(), "recipes": recipes_table()}
    for name in SECTIONS:
        begin, end = f"<!-- {name}:begin (generated: python -m medtune.tools.readme) -->", f"<!-- {name}:end -->"
        head, sep, rest = readme.partition(begin)
        if not sep:
            raise ValueError(f"README.md lacks the marker {begin}")
        _, sep2, tail = rest.partition(end)
        if not sep2:
            raise ValueError(f"README.md lacks the marker {end}")
        readme = f"{head}{begin}\n{content[name]}\n{end}{tail}"
    return readme


if __name__ == "__main__":
    path = REPO_ROOT / "README.md"
    path.write_text(readme_with_sections(path.read_text()))
    print(f"updated {path}")
