"""The package's layers (README "How it works"): a module imports only from its own layer or the layers below
it, and nothing imports in a circle. Read from the source, so a lazy import inside a function counts too."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "medtune"

# Bottom to top. A stage's package (preprocess, evaluate) sits below the recipe, whose schema composes their specs.
LAYERS = ("core", "models", "preprocess", "evaluate", "augment", "recipe", "launch", "report", "run", "tools", "cli")


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """medtune modules that `name` imports at run time, wherever in the file the import stands."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and ast.unparse(block.test).endswith("TYPE_CHECKING")
                   for stmt in block.body for n in ast.walk(stmt)}
    targets = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:  # annotations only; never imported at run time
            continue
        if isinstance(node, ast.Import):
            targets |= {a.name for a in node.names if a.name.startswith("medtune")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("medtune"):
                base = node.module
            else:
                continue
            # `from . import x` names a module when x is one
            subs = {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules}
            targets |= subs or {base}
    return {t for t in targets if t in modules and t != name}


def _layer(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else None  # `medtune` itself (the version) belongs to no layer


def test_modules_import_only_their_own_layer_or_below():
    modules = _modules()
    wrong = []
    for name, path in modules.items():
        layer = _layer(name)
        assert layer is None or layer in LAYERS, f"{name}: its folder is no layer; add it to LAYERS and the README"
        for target in _imports(name, path, modules):
            target_layer = _layer(target)
            if layer and target_layer and LAYERS.index(target_layer) > LAYERS.index(layer):
                wrong.append(f"{name} ({layer}) imports {target} ({target_layer})")
    assert not wrong, "upward imports:\n" + "\n".join(wrong)


def test_no_import_cycles():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [node, nxt]) if nxt in stack else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, stack + [node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.slow  # a fresh interpreter importing the whole ML stack (Axolotl, DeepSpeed, lm-eval, Gradio)
def test_every_module_imports_in_a_fresh_interpreter():
    names = sorted(_modules())
    code = "import importlib, sys\nfor n in sys.argv[1:]:\n    importlib.import_module(n)\nprint('ok', len(sys.argv) - 1)"
    done = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, timeout=600,
                          cwd=PACKAGE.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-1] == str(len(names))
