"""`make gpu-wheels` and `make gpu-check` (scripts/gpu_wheels.py, scripts/gpu_check.py): which wheels are fetched
and which installed, and a rehearsal of the whole check on CPU (`--device cpu --smoke`, a short time limit): every
stage runs, the limit stops the run cleanly, and the results folder holds at most 8 files, the report of what
finished among them."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import subprocess
import sys
import tarfile
import time
import tomllib
import zipfile
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest
import torch

from bench.plan.options import SweepOptions
from bench.plan.planner import make_plan

ROOT = Path(__file__).resolve().parents[2]


def script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gpu_wheels, gpu_check = script("gpu_wheels"), script("gpu_check")


def test_the_wheel_list_pins_every_dependency_the_torch_image_lacks():
    binary, source = gpu_wheels.read_requirements(gpu_wheels.REQUIREMENTS)
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[^=\s]+", r) for r in binary + source), binary + source
    assert {r.split("==")[0] for r in source} == {"fvcore", "iopath"}  # sdists on the index: built into wheels
    listed = {gpu_wheels.normalise(r.split("==")[0]) for r in binary + source}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    torch_own = {gpu_wheels.normalise(re.split(r"[ ;<>=!~\[(]", r, maxsplit=1)[0])
                 for r in importlib.metadata.requires("torch") or [] if "extra ==" not in r}
    needed = {gpu_wheels.normalise(re.split(r"[ ;<>=!~\[(]", r, maxsplit=1)[0])
              for r in project["dependencies"] + project["optional-dependencies"]["peers"] + ["pytest", "pytest-benchmark"]}
    # torchvision must match the machine's torch: fetched with --extra, never from the list
    assert needed - torch_own - {"torch", "torchvision"} <= listed, needed - torch_own - {"torch", "torchvision"} - listed


def test_what_the_machine_has_is_not_fetched(tmp_path):
    have = tmp_path / "have.txt"
    have.write_text("numpy==2.1.0\nPyYAML @ file:///x\nscikit_learn>=1\n# comment\n\ntorch\n")
    assert gpu_wheels.read_have(have) == {"numpy", "pyyaml", "scikit-learn", "torch"}


def wheel(folder: Path, name: str, *modules: str, top_level: bool = True) -> Path:
    path = folder / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for module in modules:
            archive.writestr(f"{module}/__init__.py", "")
        if top_level:
            archive.writestr(f"{name}-1.0.dist-info/top_level.txt", "\n".join(modules))
    return path


def test_only_what_the_machine_lacks_is_installed_and_never_its_gpu_stack(tmp_path):
    wheels = [wheel(tmp_path, "torch", "torch"), wheel(tmp_path, "torchvision", "torchvision"),
              wheel(tmp_path, "nvidia_cudnn_cu13", "nvidia"), wheel(tmp_path, "numpy", "numpy"),
              wheel(tmp_path, "PyYAML", "yaml", "_yaml", top_level=False), wheel(tmp_path, "fvcore", "fvcore")]
    # the machine has torch and numpy installed, and PyYAML's modules under another distribution name
    todo, kept = gpu_check.split_wheels(wheels, {"torch", "numpy"}, {"torch", "numpy", "yaml", "_yaml"})
    assert [gpu_check.wheel_name(w) for w in todo] == ["torchvision", "fvcore"]
    assert kept == ["torch", "nvidia-cudnn-cu13", "numpy", "pyyaml"]


@pytest.mark.parametrize("flag", ["--time-limit", "--run-limit"])
def test_a_bad_time_limit_is_refused_before_any_work(tmp_path, flag):
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), flag, "0",
                             "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 2 and f"{flag} 0 is invalid" in result.stderr
    assert not (tmp_path / "out").exists()


def test_the_gpu_preset_plans_the_cifar_shape_costs_every_setting_and_the_mnist5k_quality(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # planning only: no cell runs
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda *_: type("H200", (), {"total_memory": 139 << 30}))
    plan = make_plan(SweepOptions(preset="gpu", out=tmp_path / "run"))
    cells = [c for c in plan.cells if c.kind == "cost" and c.base_config == "cifar32"]
    assert {c.device for c in plan.cells} == {"cuda"} and {c.batch_size for c in cells} == {128}
    ours = [c for c in cells if not c.peer]
    assert len({c.spec for c in ours if c.dtype == "bfloat16" and not c.compile and c.memory_format == "contiguous"}) == 16
    assert {c.peer for c in cells} == {"", "smalldiffusion", "diffusers", "lucidrains"}
    settings = {(c.dtype, c.memory_format, c.compile, c.cuda_graphs) for c in ours}
    assert settings == {("bfloat16", "contiguous", False, False), ("float32", "contiguous", False, False),
                        ("tf32", "contiguous", False, False), ("bfloat16", "channels_last", False, False),
                        ("bfloat16", "contiguous", True, False), ("bfloat16", "contiguous", True, True)}
    quality = [c for c in plan.cells if c.kind == "quality"]
    assert {(c.dataset, c.spec.in_dim, c.spec.in_ch) for c in quality} == {("mnist5k", 28, 1)}
    assert len({c.spec for c in quality}) == 8 and {c.seed for c in quality} == {0, 1, 2}
    assert not any(c.spec.checkpoint for c in quality)  # the 8 functional variants: checkpointing changes no output
    measured = {c.spec for c in plan.cells if c.kind == "cost" and c.base_config == "fmnist28"}
    assert {c.spec for c in quality} <= measured and plan.jobs == 4


# The run's 15 s clock stops the smoke preset after none, one or a few of its cells, as the machine's speed has it:
# the test asserts what holds however many finished. The overall limit is loose because the stages before the run
# vary with the suite's load (by how much: docs/gpu.md, the rehearsal on a CPU).
TIME_LIMIT_S, RUN_LIMIT_S, REPORT_S = 400, 15, 40


@pytest.mark.slow
def test_the_rehearsal_on_cpu_stops_in_time_and_keeps_the_report_of_what_finished(tmp_path):
    out, empty = tmp_path / "gpu-check", tmp_path / "wheels"
    empty.mkdir()
    # its pytest stages run pytests of their own: not xdist workers, whose variables would disable pytest-benchmark
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    start = time.monotonic()
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--device", "cpu", "--smoke",
                             "--threads", "1", "--time-limit", str(TIME_LIMIT_S), "--run-limit", str(RUN_LIMIT_S),
                             "--report-seconds", str(REPORT_S),
                             "--wheels", str(empty), "--site", str(tmp_path / "site"), "--out", str(out)],
                            capture_output=True, text=True, timeout=TIME_LIMIT_S + 60, env=env)
    seconds = time.monotonic() - start
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert seconds < TIME_LIMIT_S + 10
    assert sorted(p.name for p in out.iterdir()) == ["environment.json", "gpu-check.log", "report.md",
                                                     "run.tar.gz", "summary.json"]
    stages = {s["stage"]: s for s in json.loads((out / "summary.json").read_text())["stages"]}
    assert list(stages) == ["install", "imports", "environment", "tests", "benchmarks", "run", "report"]
    assert all(s["status"] == "ok" for s in stages.values()), stages
    assert stages["run"]["exit_code"] in (0, 124), stages["run"]  # finished, or stopped by its limit
    environment = json.loads((out / "environment.json").read_text())
    assert environment["torch"] and environment["cuda_available"] is False and "matmul" in environment["tf32_at_start"]
    with tarfile.open(out / "run.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    table = pd.read_parquet(tmp_path / "run" / "metrics.parquet")
    assert (table["device"] == "cpu").all()  # every row that finished, none or many
    planned = json.loads((tmp_path / "run" / "run.json").read_text())["planned_cells"]
    finished = table["cell_id"].nunique()
    assert finished <= len(planned) and (finished == len(planned)) == (stages["run"]["exit_code"] == 0)
    assert "# " in (out / "report.md").read_text()
    assert "every stage ok" in (out / "gpu-check.log").read_text().splitlines()[-1]
