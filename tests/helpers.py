"""What many test files share: the repository's root, the small specs every variant is tested at, the shared smoke
run's options, the CLI in a subprocess or in this process, and a parameter count. Fixtures live in conftest.py."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from torch import nn

from variants import UNetSpec

ROOT = Path(__file__).resolve().parent.parent
# the CLI's environment in a subprocess: the repository and the tests' plugins (tests/plugins) importable
ENV = os.environ | {"PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests' / 'plugins'}"}

# Two small configurations every variant is tested at: 8x8 grey and 32x32 RGB.
SMALL_SPECS = {
    "8x8x1": UNetSpec(in_dim=8, in_ch=1, out_ch=1, ch=32, ch_mult=(1, 2), attn_resolutions=(8,), norm_groups=8),
    "32x32x3": UNetSpec(in_dim=32, in_ch=3, out_ch=3, ch=16, ch_mult=(1, 2, 2), attn_resolutions=(16,), norm_groups=8),
}

# Two cost cells of the tiny smoke base and their setting's timing cell: every code path of a run, seconds each.
# At batch size 1, the edge a new user meets first (tests/end_to_end/test_run_folder.py checks that it measures everything).
# conftest.smoke_run makes it once per session.
SMALL = ["--preset", "smoke", "--only", "cost", "--threads", "1", "--batch-size", "1", "--axis", "checkpoint=false"]


def bench(*args: str, check: bool = False, **kwargs) -> subprocess.CompletedProcess:
    """``python -m bench ARGS`` in a subprocess, from the repository's root, output captured as text."""
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          check=check, **kwargs)


def refused(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run the CLI in this process (bad options fail before any worker starts); return stderr."""
    from bench.cli import main

    assert main(list(args)) == 2
    return capsys.readouterr().err


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
