#!/usr/bin/env python
"""medtune's one entry point: `python launch.py RECIPE` or `python launch.py COMMAND ...`."""
import sys

from medtune.cli import main

if __name__ == "__main__":
    sys.exit(main())
