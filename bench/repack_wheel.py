#!/usr/bin/env python
"""Rewrite a wheel in place without the files matching --drop globs, its RECORD updated to match.

bench/gpu_wheels.sh uses it to leave out binaries a lent GPU machine never loads (bitsandbytes' builds for other
CUDA versions, wandb's service executables), so the wheels fit in what a `run` call carries.

    python bench/repack_wheel.py .whl/bitsandbytes-*.whl --drop 'bitsandbytes/libbitsandbytes_rocm*.so'
"""
from __future__ import annotations

import argparse
import fnmatch
import os
import sys
import tempfile
import zipfile
from pathlib import Path


def repack(wheel: Path, drop: list[str]) -> list[str]:
    """Remove the matching members from wheel (and their RECORD lines); return the removed names."""
    with zipfile.ZipFile(wheel) as source:
        members = source.infolist()
        dropped = [m.filename for m in members if any(fnmatch.fnmatch(m.filename, pattern) for pattern in drop)]
        if not dropped:
            raise SystemExit(f"{wheel}: nothing matches {drop}; the wheel's layout changed, so check the patterns")
        record = next((m.filename for m in members if m.filename.endswith(".dist-info/RECORD")), None)
        if record is None:
            raise SystemExit(f"{wheel}: no .dist-info/RECORD, so not a wheel")
        gone = set(dropped)
        fd, tmp = tempfile.mkstemp(suffix=".whl", dir=wheel.parent)
        os.close(fd)
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as target:
            for member in members:
                if member.filename in gone:
                    continue
                data = source.read(member)
                if member.filename == record:
                    # RECORD lines are "path,hash,size"; a path with a comma is quoted, which no dropped file is here.
                    lines = data.decode().splitlines()
                    data = ("\n".join(line for line in lines if line.split(",")[0] not in gone) + "\n").encode()
                target.writestr(member, data, compress_type=zipfile.ZIP_DEFLATED)
    os.replace(tmp, wheel)
    return dropped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("wheels", nargs="+", type=Path)
    parser.add_argument("--drop", action="append", required=True, metavar="GLOB", help="member paths to leave out")
    args = parser.parse_args()
    for wheel in args.wheels:
        before = wheel.stat().st_size
        dropped = repack(wheel, args.drop)
        print(f"{wheel.name}: left out {len(dropped)} files, {before / 2**20:.1f} -> {wheel.stat().st_size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
