"""medtune as an installed package: the wheel carries the code and the data it reads at run time, the `medtune`
command works from a virtualenv that cannot see the checkout, and pyproject's dependencies agree with the pins."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from medtune.cli import COMMANDS, main
from medtune.core.errors import MedtuneError
from medtune.core.paths import PACKAGE_DIR, require_importable_from

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "smollm2-135m-lora.yaml"


def _package_files() -> set[str]:
    """Every file of the source package, as a wheel names it (what an install must carry)."""
    return {path.relative_to(PACKAGE_DIR.parent).as_posix() for path in PACKAGE_DIR.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from the checkout's files, offline, with the venv's own setuptools.

    Built from a copy, because setuptools builds in the source folder: a build/ left in the checkout
    would put files deleted since into later wheels (and hide a package-data mistake).
    """
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    # pyproject.toml names README.md (long description) and the medtune packages; the build reads nothing else.
    shutil.copytree(PACKAGE_DIR, src / "medtune", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    out = root / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--check-build-dependencies", "-w", str(out), str(src)], check=True)
    (built,) = out.glob("medtune-*.whl")
    return built


def test_wheel_carries_the_package_data_and_the_command(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = next(zf.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    expected = _package_files()
    # The data the code reads at run time, named, so a glob that matched nothing cannot pass unnoticed.
    assert {"medtune/templates/axolotl.yaml.j2", "medtune/templates/models/smollm2-135m-instruct.yaml",
            "medtune/templates/methods/lora.yaml.j2", "medtune/data/medquad_demo.csv",
            "medtune/evaluate/tasks/medtune_pubmedqa.yaml", "medtune/evaluate/tasks/prompts.py"} <= expected
    assert sorted(expected - names) == [], "in the package but not in the wheel: add it to [tool.setuptools.package-data]"
    strays = sorted(n for n in names if not n.startswith(("medtune/", "medtune-")))
    assert strays == [], "the wheel carries files from outside the package"
    assert re.search(r"^medtune = medtune\.cli:main$", entry_points, re.M), entry_points


def _names(requirements: list[Requirement]) -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in requirements}


def test_pyproject_dependencies_agree_with_the_pins():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = _names([Requirement(r) for r in project["dependencies"]]
                      + [Requirement(r) for extra in project["optional-dependencies"].values() for r in extra])
    lines = [line.split("#", 1)[0].strip() for name in ("requirements.txt", "requirements-gpu.txt")  # gpu: the `gpu` extra
             for line in (REPO / name).read_text().splitlines()]
    pinned = _names([Requirement(line) for line in lines if line])
    # torch is pinned in the Makefile, installed first so the CPU wheel is the one resolved
    (torch_pin,) = re.findall(r"pip install .*\b(torch==[\w.+]+)", (REPO / "Makefile").read_text())
    pinned |= _names([Requirement(torch_pin)])
    assert sorted(pinned.keys() - declared.keys()) == [], "pinned in requirements.txt but not declared in pyproject.toml"
    assert sorted(declared.keys() - pinned.keys()) == [], "declared in pyproject.toml but pinned nowhere"
    for name, pin in pinned.items():
        (version,) = [spec.version for spec in pin.specifier if spec.operator == "=="]
        assert declared[name].specifier.contains(version), f"{name}: pinned {version}, pyproject allows {declared[name].specifier}"
        assert declared[name].extras == pin.extras, f"{name}: extras differ"


def test_training_processes_must_import_this_medtune(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    require_importable_from(tmp_path, env)  # `make setup` installed the checkout, editable
    shadow = tmp_path / "other" / "medtune"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text('__version__ = "0"\n')
    with pytest.raises(MedtuneError, match=r"imports medtune from .*other.*pip install --no-deps -e"):
        require_importable_from(tmp_path, {**env, "PYTHONPATH": str(shadow.parent)})


def _run(cmd: list, cwd: Path, env: dict) -> str:
    out = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"{cmd} exited {out.returncode}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


@pytest.mark.slow
def test_installed_wheel_works_outside_the_checkout(wheel, tmp_path):
    # The virtualenv lives inside a git repository with a commit: an installed medtune must not record
    # that repository's commit as its own.
    project = tmp_path / "project"
    project.mkdir()
    git = ["git", "-C", project, "-c", "user.name=t", "-c", "user.email=t@example.com"]
    _run([*git, "init", "-q"], tmp_path, dict(os.environ))
    _run([*git, "commit", "-q", "--allow-empty", "-m", "not medtune"], tmp_path, dict(os.environ))
    env_dir = project / "venv"
    venv.create(env_dir, with_pip=False)
    python, command = env_dir / "bin" / "python", env_dir / "bin" / "medtune"
    # The heavy dependencies come from this venv's site-packages through a plain path line: a path line
    # does not run the .pth files found there, so the checkout's editable install stays invisible.
    (site,) = (env_dir / "lib").glob("python3*/site-packages")
    (site / "medtune_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", "--no-index", wheel],
         tmp_path, dict(os.environ))

    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"COLUMNS": "200", "HF_HUB_OFFLINE": "1"}
    probe = ("import json, medtune; from medtune.core.paths import DATA_DIR, TEMPLATES_DIR; "
             "from medtune.run.manifest import git_state; print(json.dumps({'file': medtune.__file__, "
             "'templates': str(TEMPLATES_DIR), 'demo': (DATA_DIR / 'medquad_demo.csv').is_file(), 'git': git_state()}))")
    facts = json.loads(_run([python, "-c", probe], cwd, env).splitlines()[-1])
    assert Path(facts["file"]).is_relative_to(site) and not Path(facts["file"]).is_relative_to(REPO), facts
    assert Path(facts["templates"]).is_relative_to(site), facts
    assert facts["demo"] is True
    assert facts["git"] == {"commit": None, "dirty": None}

    help_text = _run([command, "--help"], cwd, env)
    assert help_text.startswith("usage: medtune ")
    assert all(re.search(rf"^\s+{name}\s", help_text, re.M) for name in COMMANDS), help_text
    assert "training.learning_rate" in _run([command, "validate", "--help-keys"], cwd, env)

    _run([command, "render", RECIPE, "--out", tmp_path / "installed"], cwd, env)
    assert main(["render", str(RECIPE), "--out", str(tmp_path / "checkout")]) == 0
    rendered = (tmp_path / "installed" / "axolotl.yaml").read_text()
    assert "medtune.launch.axolotl_plugin" in rendered
    assert rendered == (tmp_path / "checkout" / "axolotl.yaml").read_text()
