"""Where cells run: ``local`` (spawned workers on this machine), ``ray`` (one Ray task per cell on the cluster
``ray.init`` finds), ``slurm`` (a submitit job array). Every backend runs the same
``worker.run_cell`` and hands results back to the runner, which alone writes the run folder, so each
finished cell reaches it exactly once whatever the backend. Cells write sample images into the run
folder themselves: on a cluster it must be on a shared filesystem.
"""
from __future__ import annotations

import multiprocessing.connection
import socket
import time
from pathlib import Path
from typing import Iterator

from bench.plan.cells import Cell
from bench.plan.options import BackendOptions
from bench.run.worker import CellResult, RunningCell, device_name, run_cell
from bench.schema import Kind, failure


def execute(cells: list[Cell], run_dir: Path, plugins: tuple[str, ...], worker_options: dict,
            backend: BackendOptions, jobs: int = 1) -> Iterator[CellResult]:
    """Yield each cell's result as it finishes (in completion order where cells run concurrently)."""
    if not cells:
        return
    if backend.name == "local":
        yield from _local(cells, run_dir, plugins, worker_options, jobs)
    elif backend.name == "ray":
        yield from _ray(cells, run_dir, plugins, worker_options, backend)
    else:
        yield from _slurm(cells, run_dir, plugins, worker_options, backend)


def _local(cells, run_dir, plugins, worker_options, jobs: int) -> Iterator[CellResult]:
    """The cells that time (``Cell.runs_alone``) one at a time, alone on the machine; then the others ``jobs`` at a
    time. The first of those that trains fills the caches (the feature classifier) that the later ones read
    instead of each training its own: until it is done, only cost cells, which read none, run beside it."""
    for cell in [c for c in cells if c.runs_alone]:
        yield run_cell(cell, run_dir, plugins, worker_options)
    shared = [c for c in cells if not c.runs_alone]
    trained = [c for c in shared if c.kind != Kind.COST]
    waiting = trained[:1] + [c for c in shared if c.kind == Kind.COST] + trained[1:]
    filling, running = trained[:1], []

    def may_start(cell: Cell) -> bool:
        return cell.kind == Kind.COST or not filling or cell is filling[0]

    try:
        while waiting or running:
            while len(running) < jobs and (ready := next((c for c in waiting if may_start(c)), None)):
                waiting.remove(ready)
                running.append(RunningCell(ready, run_dir, plugins, worker_options))
            done_now = multiprocessing.connection.wait([r.sentinel for r in running])
            for done in [r for r in running if r.sentinel in done_now]:
                running.remove(done)
                if done.cell in filling:
                    filling.clear()
                yield done.result()
    finally:  # Ctrl-C, or the runner stopped reading: no worker goes on in the background
        for left in running:
            left.kill()


def _lost(cell: Cell, err: BaseException, started: float) -> CellResult:
    """A task whose worker never reported back: a row saying so, never a gap."""
    message = f"{type(err).__name__}: {' '.join(str(err).split())[:500]}"
    return CellResult(cell, [failure("cell", "error", message)], socket.gethostname(), device_name(cell.device),
                      time.perf_counter() - started)


def _ray(cells, run_dir, plugins, worker_options, backend) -> Iterator[CellResult]:
    import ray

    ray.init(address=backend.ray_address, ignore_reinit_error=True, log_to_driver=False)
    remote = ray.remote(run_cell)
    started = time.perf_counter()
    pending = {
        remote.options(num_cpus=cell.threads, num_gpus=1 if cell.device.startswith("cuda") else 0,
                       max_retries=0).remote(cell, run_dir, plugins, worker_options): cell
        for cell in cells
    }
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            cell = pending.pop(done[0])
            try:
                yield ray.get(done[0])
            except Exception as err:  # the Ray worker died or the task failed outside run_cell's own guard
                yield _lost(cell, err, started)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)


def _slurm(cells, run_dir, plugins, worker_options, backend) -> Iterator[CellResult]:
    import submitit

    executor = submitit.AutoExecutor(folder=run_dir / ".submitit", cluster=backend.slurm_cluster)
    gpus = max(backend.slurm_gpus, 1 if any(c.device.startswith("cuda") for c in cells) else 0)
    params = dict(timeout_min=backend.slurm_time_min, cpus_per_task=max(c.threads for c in cells),
                  name="unet-ablation-bench")
    if gpus:
        params["gpus_per_node"] = gpus
    if backend.slurm_partition:
        params["slurm_partition"] = backend.slurm_partition
    executor.update_parameters(**params)
    started = time.perf_counter()
    n = len(cells)
    jobs = executor.map_array(run_cell, cells, [run_dir] * n, [plugins] * n, [worker_options] * n)
    pending = dict(zip(jobs, cells))
    try:
        while pending:
            finished = [job for job in pending if job.done()]
            if not finished:
                time.sleep(1.0)
                continue
            for job in finished:
                cell = pending.pop(job)
                try:
                    yield job.result()
                except Exception as err:  # the job died: time limit, node failure, preemption, ...
                    yield _lost(cell, err, started)
    finally:
        for job in pending:
            job.cancel(check=False)
