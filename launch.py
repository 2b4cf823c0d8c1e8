#!/usr/bin/env python
"""medtune's entry point in a checkout: `python launch.py RECIPE` or `python launch.py COMMAND ...`.

The installed package's `medtune` command runs the same CLI (pyproject.toml, [project.scripts])."""
import sys

from medtune.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python launch.py"))
