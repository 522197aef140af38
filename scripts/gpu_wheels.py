"""`make gpu-wheels`: on a machine with the package registries, fetch the wheels an offline GPU machine needs.

Every package of scripts/gpu-requirements.txt (the project's needs beyond torch, pinned), for that machine's
Python and platform (CPython on manylinux x86_64), less those it already has (``--have``: a file of distribution
names, one per line or as ``pip freeze`` writes them), plus ``--extra`` ones (torchvision matching its torch).
Binary wheels are downloaded; the packages the index has only as source (marked ``# sdist``) are built into wheels
here (they are pure Python). `make gpu-check` installs them there.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "scripts" / "gpu-requirements.txt"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_requirements(path: Path) -> tuple[list[str], list[str]]:
    """(requirements with wheels, requirements to build from source), each ``name==version``."""
    binary, source = [], []
    for line in path.read_text().splitlines():
        requirement, _, comment = line.partition("#")
        if requirement.strip():
            (source if comment.strip() == "sdist" else binary).append(requirement.strip())
    return binary, source


def read_have(path: Path | None) -> set[str]:
    if path is None:
        return set()
    names = (re.split(r"[=<>!~ @]", line.strip(), maxsplit=1)[0] for line in path.read_text().splitlines())
    return {normalise(n) for n in names if n and not n.startswith("#")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / ".whl")
    parser.add_argument("--python-version", default="3.12", help="the GPU machine's Python (default 3.12)")
    parser.add_argument("--have", type=Path, help="distributions the GPU machine has: not fetched")
    parser.add_argument("--extra", action="append", default=[], metavar="NAME==VERSION",
                        help="also fetch this (e.g. torchvision==0.26.0 where the machine lacks it); repeatable")
    args = parser.parse_args(argv)
    binary, source = read_requirements(REQUIREMENTS)
    have = read_have(args.have)
    binary = [r for r in binary + args.extra if normalise(r.split("==")[0]) not in have]
    source = [r for r in source if normalise(r.split("==")[0]) not in have]
    args.out.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip"]
    if binary:
        platforms = [flag for platform in PLATFORMS for flag in ("--platform", platform)]
        subprocess.run([*pip, "download", "--no-deps", "--only-binary=:all:", "--python-version", args.python_version,
                        "--implementation", "cp", *platforms, "-d", str(args.out), *binary], check=True)
    if source:
        subprocess.run([*pip, "wheel", "--no-deps", "-w", str(args.out), *source], check=True)
    wheels = sorted(args.out.glob("*.whl"))
    size = sum(w.stat().st_size for w in wheels)
    print(f"{len(wheels)} wheels, {size / 2**20:.1f} MiB in {args.out} ({len(binary)} downloaded, {len(source)} built, "
          f"{len(have)} names the machine has)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
