"""env.json: what a reader needs to trust or reproduce the numbers, and nothing more.

Declared fields only: versions, CPU model and core count, GPU name, cuDNN version and TF32 settings, threads,
machine load at the start and end, git revision, the command line. No host name, user, environment variables or absolute paths.
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from bench.measure.execution import tf32_settings

LIBRARIES = ("torch", "torchvision", "numpy", "pandas", "pyarrow", "fvcore", "seaborn", "matplotlib", "scikit-learn",
             "torchmetrics", "smalldiffusion", "mlxtend", "einops")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> dict[str, float]:
    one, five, fifteen = os.getloadavg()
    return {"1min": one, "5min": five, "15min": fifteen}


def git_revision() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def versions() -> dict[str, str]:
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def _without_machine_path(arg: str) -> str:
    """An absolute path names this machine's layout: keep only the part a reader needs, its last name."""
    return f"<path>/{Path(arg).name}" if os.path.isabs(arg) else arg


def describe(threads: int, argv: list[str]) -> dict[str, Any]:
    cuda = torch.cuda.is_available()
    return {
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "libraries": versions(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "gpu_name": torch.cuda.get_device_name(0) if cuda else None,
        "cuda_version": torch.version.cuda if cuda else None,
        "cudnn_version": torch.backends.cudnn.version() if cuda else None,
        # at the runner's start; each cell's worker sets its own from its dtype (bench.measure.execution)
        "tf32": tf32_settings() if cuda else None,
        "git_revision": git_revision(),
        "command": " ".join(["python -m bench", *map(_without_machine_path, argv)]),
        "load_start": load_average(),
        "python_executable": Path(sys.executable).name,
    }
