"""Same cells whatever runs them: local workers, a local Ray instance, submitit's local executor, shards."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from helpers import ENV, SMALL, bench, refused

pytestmark = pytest.mark.slow


def cells_of(folder):
    table = pd.read_parquet(folder / "metrics.parquet")
    # at batch size 1 a step may not lift the resident set, whatever runs the cell: it says so (test_run_folder.py)
    not_ok = table[table["status"] != "ok"]
    assert ((not_ok["metric"] == "peak_rss_bytes") & (not_ok["status"] == "skipped")
            & not_ok["message"].str.startswith("below what the resident set resolves")).all(), not_ok["message"]
    # each cell exactly once: one total-parameter row per cell
    params = table[(table["metric"] == "params") & (table["block"] == "total")]
    assert params["cell_id"].is_unique
    return set(table["cell_id"]), table


@pytest.fixture
def local_run(smoke_run):
    """The cells local workers give: the session's shared smoke run, made with SMALL's options."""
    return smoke_run


def test_shards_run_by_ray_and_submitit_give_the_local_cells_once_merged(local_run, tmp_path):
    """One sweep in two shards, the first on a local Ray instance, the second as a submitit job array on this machine:
    each backend gives the cells local workers give, and the merge holds each cell once. (One sweep for the three
    features: apart, each re-measured the same cells.)"""
    pytest.importorskip("ray", reason="the ray extra is not installed")
    pytest.importorskip("submitit", reason="the slurm extra is not installed")
    # --shard k/2 takes the ids that are k-1 modulo 2 (the planner slices, whatever backend runs the slice)
    local_cells = cells_of(local_run)[0]
    slices = [{c for c in local_cells if int(c, 16) % 2 == k - 1} for k in (1, 2)]
    assert all(slices), f"the smoke sweep's cell ids {sorted(local_cells)} fall in one slice of 2: pick other shards"
    ray = shutil.which("ray", path=str(Path(sys.executable).parent))
    subprocess.run([ray, "start", "--head", "--num-cpus=2", "--disable-usage-stats", "--include-dashboard=false"],
                   env=ENV, check=True, capture_output=True, timeout=300)
    shards = [tmp_path / "ray", tmp_path / "slurm"]
    try:
        # Ray's own processes share the cores, hence the loose timeout (what a cell took: docs/cli.md, Ray)
        ray_run = bench("run", "--out", str(shards[0]), *SMALL, "--shard", "1/2", "--backend", "ray",
                        "--ray-address", "auto", timeout=1500)
    finally:
        subprocess.run([ray, "stop", "--force"], env=ENV, capture_output=True, timeout=300)
    assert ray_run.returncode == 0, ray_run.stderr
    slurm_run = bench("run", "--out", str(shards[1]), *SMALL, "--shard", "2/2", "--backend", "slurm",
                      "--slurm-cluster", "local", timeout=600)
    assert slurm_run.returncode == 0, slurm_run.stderr
    for (cells, table), expected in zip(map(cells_of, shards), slices):
        assert cells == expected
        assert (table["host"] != "").all() and (table["device_name"] != "").all()
    merged = tmp_path / "merged"
    result = bench("merge", *map(str, shards), "--out", str(merged), check=True)
    assert "3 cells" in result.stdout  # two cost cells and their setting's timing cell
    merged_cells, table = cells_of(merged)
    assert merged_cells == local_cells
    # merging a folder twice still keeps each cell once
    again = tmp_path / "again"
    bench("merge", *map(str, shards), str(shards[0]), "--out", str(again), check=True)
    assert len(pd.read_parquet(again / "metrics.parquet")) == len(table)


def test_merge_refuses_different_sweeps_and_schemas(local_run, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(local_run, other)
    run = json.loads((other / "run.json").read_text())
    run["config"]["batch_size"] = 7
    (other / "run.json").write_text(json.dumps(run))
    err = refused(capsys, "merge", str(local_run), str(other), "--out", str(tmp_path / "m1"))
    assert "are different sweeps (batch_size: 1 vs 7)" in err
    run["config"]["batch_size"] = None
    run["schema_version"] = 99
    (other / "run.json").write_text(json.dumps(run))
    assert "has table schema 99" in refused(capsys, "merge", str(local_run), str(other), "--out", str(tmp_path / "m2"))


@pytest.mark.parametrize("args,message", [
    (["--shard", "3/2"], "--shard '3/2' is invalid; valid: K/N with 1 <= K <= N"),
    (["--backend", "kubernetes"], "--backend 'kubernetes' is invalid; valid: local, ray, slurm"),
])
def test_bad_backend_options_fail_before_any_work(tmp_path, capsys, args, message):
    assert message in refused(capsys, "run", "--out", str(tmp_path / "run"), *SMALL, *args)
    assert not (tmp_path / "run").exists()


def test_a_missing_extra_fails_at_once_with_the_install_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    err = refused(capsys, "run", "--out", str(tmp_path / "run"), *SMALL, "--backend", "ray")
    assert "--backend ray needs the ray package" in err and "pip install" in err


class FakeRunningCell:
    """Stands in for a worker process: its sentinel is a pipe that is ready at once."""

    alive = 0
    most_alive = 0
    started: list[str] = []
    running: list[str] = []     # the kinds of the cells running now
    beside: list[tuple] = []    # per start: the cell's kind, and the kinds running beside it

    def __init__(self, cell, run_dir, plugins, options):
        import os

        self.cell = cell
        read, write = os.pipe()
        os.close(write)  # end of file on the read end: 'exited'
        self.sentinel = read
        FakeRunningCell.alive += 1
        FakeRunningCell.most_alive = max(FakeRunningCell.most_alive, FakeRunningCell.alive)
        FakeRunningCell.started.append(cell.kind + (" compiled" if cell.compile else ""))
        FakeRunningCell.beside.append((cell.kind, tuple(FakeRunningCell.running)))
        FakeRunningCell.running.append(cell.kind)

    def result(self):
        import os

        from bench.run.worker import CellResult

        os.close(self.sentinel)
        FakeRunningCell.alive -= 1
        FakeRunningCell.running.remove(self.cell.kind)
        return CellResult(self.cell, [], "host", "cpu", 0.0)

    def kill(self):
        pass


def test_local_backend_runs_the_cells_that_time_alone_then_the_rest_jobs_at_a_time(monkeypatch, tmp_path):
    import bench.run.backends as backends
    from bench.plan.cells import Cell
    from bench.plan.options import BackendOptions
    from bench.run.backends import execute
    from variants import BASES

    def run_alone(cell, run_dir, plugins, options):
        assert FakeRunningCell.alive == 0, "a cell ran while others were running"
        running = FakeRunningCell(cell, run_dir, plugins, options)
        return running.result()

    monkeypatch.setattr(backends, "RunningCell", FakeRunningCell)
    monkeypatch.setattr(backends, "run_cell", run_alone)
    for name in ("started", "running", "beside"):
        monkeypatch.setattr(FakeRunningCell, name, [])
    spec = BASES["digits8"]
    cells = [Cell("cost", spec, "cpu", batch_size=b) for b in (1, 2)]
    cells += [Cell("cost", spec, "cpu", batch_size=b, compile=True) for b in (1, 2)]  # they time the compiler
    cells += [Cell("floor", None, "cpu", seed=0)] + [Cell("quality", spec, "cpu", seed=s) for s in range(5)]
    results = list(execute(cells, tmp_path, (), {}, BackendOptions(), jobs=4))
    assert sorted(r.cell.id for r in results) == sorted(c.id for c in cells)  # each cell once
    # the compiled ones alone; the floor fills the caches with only the cost cells beside it (a free job waits);
    # then the quality cells four at a time
    assert FakeRunningCell.started == ["cost compiled", "cost compiled", "floor", "cost", "cost", *["quality"] * 5]
    assert FakeRunningCell.beside[:5] == [("cost", ()), ("cost", ()), ("floor", ()), ("cost", ("floor",)),
                                          ("cost", ("floor", "cost"))]
    assert all("floor" not in kinds for kind, kinds in FakeRunningCell.beside if kind == "quality")
    assert FakeRunningCell.most_alive == 4 and FakeRunningCell.alive == 0


def test_a_cell_beside_others_starts_with_sleeping_waiters_and_one_that_times_with_the_default(monkeypatch, tmp_path):
    import multiprocessing
    import os

    from bench.plan.cells import Cell
    from bench.run.worker import RunningCell
    from variants import BASES

    seen = []

    class Starting:  # a worker process: what its environment is as it starts
        def __init__(self, **_) -> None:
            pass

        def start(self) -> None:
            seen.append(os.environ.get("OMP_WAIT_POLICY"))

    monkeypatch.setattr(multiprocessing.get_context("spawn"), "Process", Starting)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    for compiled in (False, True):  # a compiled cost cell times its compiler: it runs alone
        RunningCell(Cell("cost", BASES["digits8"], "cpu", compile=compiled), tmp_path, (), {})
    assert seen == ["PASSIVE", None] and "OMP_WAIT_POLICY" not in os.environ  # ours is restored


def test_untimed_cells_share_the_threads_and_each_lands_once(tmp_path):
    out = tmp_path / "run"
    result = bench("run", "--out", str(out), "--preset", "smoke", "--only", "quality", "--threads", "2",
                   "--jobs", "2", timeout=600)
    assert result.returncode == 0, result.stderr
    table = pd.read_parquet(out / "metrics.parquet")
    assert (table["status"] == "ok").all()
    assert set(table["kind"]) == {"floor", "quality", "check"} and set(table["threads"]) == {1}
    finished = [line for line in result.stdout.splitlines() if line.startswith("[")]
    assert len(finished) == table["cell_id"].nunique() == 4  # 2 variants x 1 seed, the floor, the check
