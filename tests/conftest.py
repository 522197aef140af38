import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Torch's OpenMP threads spin while they wait for work (libgomp's default). Beside the other xdist worker on a
# 2-core machine that spinning takes the core the other needs (what it cost, measured: docs/cli.md, under `make
# test`). Sleeping waiters change no result. Set before torch loads libgomp, here and in every child.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402
from filelock import FileLock

from helpers import ROOT, SMALL

# The files that run for minutes (real sweeps and signals, a cold compiler, the GPU-check rehearsal), in the order
# pytest-xdist hands them out under `--dist loadfile --no-loadscope-reorder` (make test): started first, they run
# beside the short files instead of last and alone. The first does not need the shared smoke run at once and the
# second makes it, so no worker starts by waiting for the other.
LONG_FIRST = ("test_interrupts.py", "test_backends.py", "test_docs.py", "test_gpu_check.py", "test_execution.py",
              "test_axes.py", "test_run_folder.py", "test_runner.py")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--pace-probe", action="store_true",
                     help="after the tests, probe this machine's pace (about 5 s) and print it beside the durations")


@pytest.hookimpl(trylast=True)  # after --durations' table, which a builtin hook prints
def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """`make test` ends with the pace probe's reading (bench/measure/machine_pace.py), taken once the tests are done
    and the machine is as quiet as it gets, so that a slow day shows beside the slowest tests in every CI log. Only
    the controller probes (xdist's workers have finished); a probe that fails says why and fails no test."""
    if not config.getoption("--pace-probe") or hasattr(config, "workerinput") \
            or exitstatus == pytest.ExitCode.INTERRUPTED:
        return
    try:
        from bench.measure.machine_pace import probe_seconds
        from bench.plan.estimate import PRIORS

        seconds, reference = probe_seconds(), PRIORS["pace"]["probe_seconds"]
        line = (f"pace probe: {seconds * 1e3:.1f} ms per step, {seconds / reference:.2f}x the priors' "
                f"{reference * 1e3:g} ms")
    except Exception as err:  # noqa: BLE001 -- the reading is a note: it must never fail the suite
        line = f"pace probe: no reading ({type(err).__name__}: {' '.join(str(err).split())})"
    terminalreporter.write_line(line)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    missing = [name for name in LONG_FIRST if not any((ROOT / "tests").rglob(name))]
    assert not missing, f"conftest.LONG_FIRST names files that do not exist: {missing}"
    rank = {name: i for i, name in enumerate(LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FIRST)))  # stable: the rest keep their order


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    # Tests use tiny models that gain nothing from a second thread; on a shared, busy 2-core machine two
    # spinning threads per process only contend (what that cost: docs/cli.md, under `make test`). Benchmarks pin
    # their own count.
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)



@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, worker_id) -> Path:
    """A finished ``bench run`` of helpers.SMALL, made once per test session however many pytest-xdist workers ask:
    the first makes it under a lock, the others wait for it and read it. Shared: copy it before changing it."""
    base = tmp_path_factory.getbasetemp()
    shared = base if worker_id == "master" else base.parent  # the folder every worker's own base sits in
    out = shared / "smoke-run"
    with FileLock(str(shared / "smoke-run.lock")):
        if not (out / "metrics.parquet").exists():
            shutil.rmtree(out, ignore_errors=True)  # what a worker that died making it left
            subprocess.run([sys.executable, "-m", "bench", "run", "--out", str(out), *SMALL], cwd=ROOT,
                           env=os.environ | {"PYTHONPATH": str(ROOT)}, check=True, capture_output=True, timeout=600)
    return out
