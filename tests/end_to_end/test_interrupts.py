"""Stopping a sweep: Ctrl-C, SIGTERM, a lost worker and SIGKILL, each with real signals. Every finished cell is
kept, the message is one line with the right exit code, no worker prints a traceback, and --resume finishes."""
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import psutil
import pytest

from bench.plan.cells import Cell
from bench.run.worker import RunningCell
from variants import BASES

from helpers import ENV, ROOT, SMALL, bench


def as_a_terminal_has_it() -> None:
    """Ctrl-C as a terminal's foreground job meets it: handled by default and not blocked, whatever this test
    process was left with (a job that inherits an ignored SIGINT keeps ignoring it, as Python does)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


# SMALL with both checkpoint levels: 5 cells (an axis is given once, so the level list replaces SMALL's)
FIVE_CELLS = [*SMALL[:-2], "--axis", "checkpoint=false,true"]
assert SMALL[-2:] == ["--axis", "checkpoint=false"]


def start(out, args: list[str] = SMALL) -> subprocess.Popen:
    """``bench run`` in a process group of its own, as a shell starts a foreground job."""
    return subprocess.Popen([sys.executable, "-m", "bench", "run", "--out", str(out), *args], cwd=ROOT,
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=as_a_terminal_has_it)


def unfinished_copy(smoke_run, out, cost_cells: int, timing: bool = False) -> None:
    """The shared smoke run copied to ``out`` less its last ``cost_cells`` cost cells and, unless ``timing``, its
    timing cell: a sweep stopped midway, which ``bench run --resume`` with SMALL finishes. Tests start there rather
    than measure the cells before the moment they interrupt, and keep the timing cell where they need not time."""
    shutil.copytree(smoke_run, out)
    table = pd.read_parquet(out / "metrics.parquet")
    cost = sorted(table.loc[table["kind"] == "cost", "cell_id"].unique())
    timed = [] if timing else list(table.loc[table["kind"] == "timing", "cell_id"].unique())
    for cell_id in timed + cost[len(cost) - cost_cells:]:
        (out / "cells" / f"{cell_id}.parquet").unlink()


def command_line(process: psutil.Process) -> str:
    """The process's command line, or "" once it has ended: the runner's short-lived children (a probe of the
    machine, a worker just done) can exit, and turn zombie, between listing and reading."""
    try:
        return " ".join(process.cmdline())
    except psutil.NoSuchProcess:  # ZombieProcess is one
        return ""


def a_worker(proc: subprocess.Popen, timeout: float = 300) -> psutil.Process:
    """The first cell's worker process, once it is running."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        children = [c for c in psutil.Process(proc.pid).children() if "spawn_main" in command_line(c)]
        if children:
            return children[0]
        time.sleep(0.1)
    raise AssertionError("no worker started")


def test_ctrl_c_stops_the_runner_and_its_workers_in_one_line_with_exit_130(tmp_path):
    out = tmp_path / "run"
    proc = start(out, args=FIVE_CELLS)  # 5 cells: after the first, time left to interrupt
    deadline = time.time() + 300
    while not list((out / "cells").glob("*.parquet")) and time.time() < deadline:
        time.sleep(0.1)
    worker = a_worker(proc)
    # a worker 4 s old is in Python, measuring: an unguarded one would print its traceback
    time.sleep(max(0.0, worker.create_time() + 4.0 - time.time()))
    assert proc.poll() is None and worker.is_running(), "the run ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends its foreground job on Ctrl-C
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted by SIGINT: every finished cell is kept in"), err
    assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE


def test_a_ctrl_c_that_lands_while_a_worker_starts_is_answered_not_lost(tmp_path, monkeypatch):
    class Starting:  # a worker process whose start the terminal's Ctrl-C interrupts
        def __init__(self, **_) -> None:
            pass

        def start(self) -> None:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(multiprocessing.get_context("spawn"), "Process", Starting)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as Python starts in a terminal
    try:
        with pytest.raises(KeyboardInterrupt):
            RunningCell(Cell("cost", BASES["digits8_ch16"], "cpu"), tmp_path, (), {})
    finally:
        signal.signal(signal.SIGINT, previous)


def test_sigterm_stops_the_run_in_one_line_with_exit_143_and_resume_finishes(tmp_path, smoke_run):
    out = tmp_path / "run"
    unfinished_copy(smoke_run, out, cost_cells=1)  # the timing cell runs first: the signal meets its processes
    proc = start(out, ["--resume", *SMALL])
    a_worker(proc)
    time.sleep(1.0)
    assert proc.poll() is None, "the run ended before it could be stopped"
    proc.terminate()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted by SIGTERM"), err
    assert not (out / ".lock.json").exists()  # the lock was released by its holder
    result = bench("run", "--out", str(out), "--resume", *SMALL, timeout=600)
    assert result.returncode == 0, result.stderr


def test_a_lost_worker_is_a_row_and_the_run_goes_on_without_a_traceback(tmp_path, smoke_run):
    out = tmp_path / "run"
    unfinished_copy(smoke_run, out, cost_cells=1)
    proc = start(out, ["--resume", *SMALL])
    a_worker(proc).kill()  # as the kernel's OOM killer would
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 1
    assert "Traceback" not in err and err.strip().endswith("see the status and message columns"), err
    table = pd.read_parquet(out / "metrics.parquet")
    lost = table[(table["phase"] == "cell") & (table["status"] == "error")]
    assert len(lost) == 1 and lost["message"].iloc[0] == "worker process died with signal SIGKILL"
    assert table["cell_id"].nunique() == 3  # the copied cell, the lost timing cell (it runs first), the other cost cell


def test_sigkill_mid_sweep_then_resume_ends_with_every_cell_exactly_once(tmp_path, smoke_run):
    out = tmp_path / "run"
    unfinished_copy(smoke_run, out, cost_cells=2, timing=True)  # two cost cells to run: one lands, then the kill
    args = [sys.executable, "-m", "bench", "run", "--out", str(out), "--resume", *SMALL]
    proc = subprocess.Popen(args, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300
    while len(list((out / "cells").glob("*.parquet"))) < 2 and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and its worker, mid-sweep: just after a cell landed
    proc.wait()
    first = {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.parquet")}
    assert len(first) == 2  # the copied timing cell and the cost cell this run finished

    result = bench("run", "--out", str(out), "--resume", *SMALL, timeout=600)
    assert result.returncode == 0, result.stderr
    assert f"{len(first)} already finished" in result.stdout
    table = pd.read_parquet(out / "metrics.parquet")
    assert table["cell_id"].nunique() == 3  # 2 cost cells and the timing cell of their setting
    rows_per_cell = table[(table["metric"] == "params") & (table["block"] == "total")].groupby("cell_id").size()
    assert (rows_per_cell == 1).all()
    for name, mtime in first.items():  # finished cells were not run again
        assert (out / "cells" / name).stat().st_mtime_ns == mtime
    assert not list(out.glob("**/*.tmp"))


def test_a_kill_during_the_timing_cell_leaves_no_rounds_and_resume_times_them_once(tmp_path, smoke_run):
    out = tmp_path / "run"
    unfinished_copy(smoke_run, out, cost_cells=0)  # both cost cells finished: resuming runs the timing cell alone
    args = [sys.executable, "-m", "bench", "run", "--out", str(out), "--resume", *SMALL]
    proc = subprocess.Popen(args, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    worker = a_worker(proc)
    time.sleep(max(0.0, worker.create_time() + 4.0 - time.time()))  # the timing cell's worker, in its rounds
    assert proc.poll() is None, "the timing cell ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(list((out / "cells").glob("*.parquet"))) == 2  # a timing cell lands whole or not at all

    result = bench("run", "--out", str(out), "--resume", *SMALL, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "3 cells, 2 already finished, 1 to run" in result.stdout
    timed = pd.read_parquet(out / "metrics.parquet").query("metric == 'seconds_per_iter'")
    assert set(timed["kind"]) == {"timing"} and timed["repeat"].nunique() >= 3
    assert not timed.duplicated(["cell_id", "variant", "replica", "phase", "repeat"]).any()
