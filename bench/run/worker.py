"""Runs one cell in a fresh, spawned worker process and returns its rows.

Spawn, not fork: a forked child would inherit torch's thread pool and allocator state. The worker
writes its rows to a file as JSON; if it dies (segfault, OOM killer), the parent records why.
"""
from __future__ import annotations

import contextlib
import json
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from bench.atomic import atomic_write_text
from bench.measure.processes import how_it_ended, spawn_guarded
from bench.plan.cells import Cell
from bench.schema import KINDS, Kind, Measurement, exception_failure, failure
from bench.store.folder import RunStore


@dataclass
class CellResult:
    cell: Cell
    rows: list[Measurement]
    host: str          # where the worker ran: on a cluster, each cell can run elsewhere
    device_name: str   # the worker's CPU model or GPU name
    seconds: float


class RunningCell:
    """A cell's worker process, started; ``result()`` once it has exited (``sentinel`` says when)."""

    def __init__(self, cell: Cell, run_dir: Path, plugins: tuple[str, ...], options: dict) -> None:
        self.cell = cell
        self.started = time.perf_counter()
        scratch = RunStore(run_dir).scratch
        scratch.mkdir(parents=True, exist_ok=True)
        self.out = scratch / f"{cell.id}.json"
        self.out.unlink(missing_ok=True)
        # A cell beside others waits for work asleep: libgomp's waiting threads spin by default, taking the core
        # a neighbour needs (what that cost, measured: docs/cli.md, on cells run --jobs at a time).
        # A cell that times keeps the default it is timed under.
        waiting = {} if cell.runs_alone else {"OMP_WAIT_POLICY": "PASSIVE"}
        with _sigint_held():
            self.proc = spawn_guarded("bench.run.worker:_main", cell.to_json(), str(run_dir), str(self.out), plugins,
                                      options, name=f"bench-cell-{cell.id}", **waiting)

    @property
    def sentinel(self) -> int:
        return self.proc.sentinel

    def kill(self) -> None:
        """Ctrl-C or an error in the runner: do not leave a worker measuring in the background."""
        self.proc.kill()
        self.proc.join()

    def result(self) -> CellResult:
        self.proc.join()
        report = {"rows": [], "device_name": device_name(self.cell.device)}
        if self.out.exists():
            report = json.loads(self.out.read_text())
            self.out.unlink()
        rows = [Measurement(**r) for r in report["rows"]]
        code = self.proc.exitcode
        if code != 0:
            rows.append(failure("cell", "error", f"worker process died with {how_it_ended(code)}"))
        return CellResult(self.cell, rows, socket.gethostname(), report["device_name"],
                          time.perf_counter() - self.started)


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """Start a worker with Ctrl-C blocked: the terminal sends SIGINT to the runner and its workers alike, and the
    runner alone answers it (stopping its workers, keeping what finished, one line), so no worker may print a
    KeyboardInterrupt traceback. The worker inherits the blocked signal, holds one that arrives while it starts
    and drops it once it ignores SIGINT (``_ignore_sigint``); here a Ctrl-C that lands while the worker starts
    waits until it has started, and is answered then rather than lost."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _ignore_sigint() -> None:
    """In a worker, first thing: ignore Ctrl-C, then unblock it (``_sigint_held``), dropping one held so far."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def run_cell(cell: Cell, run_dir: Path, plugins: tuple[str, ...], options: dict) -> CellResult:
    """Run one cell in a fresh worker process and wait for it."""
    running = RunningCell(cell, run_dir, plugins, options)
    try:
        return running.result()
    except BaseException:
        running.kill()
        raise


def device_name(device: str) -> str:
    import torch

    from bench.run.envinfo import cpu_model

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return cpu_model()


def _main(cell_json: str, run_dir: str, out: str, plugins: tuple[str, ...], options: dict) -> None:
    _ignore_sigint()
    from bench.measure.execution import enter_cell

    cell = enter_cell(cell_json, plugins)
    rows: list[Measurement] = []
    try:
        _run(cell, Path(run_dir), rows, plugins, options)
    except Exception as err:  # one cell's failure is a row, and the sweep goes on
        rows.append(exception_failure("cell", err))
    report = {"rows": [r.as_dict() for r in rows], "device_name": device_name(cell.device)}
    atomic_write_text(Path(out), json.dumps(report))


def _run(cell: Cell, run_dir: Path, rows: list[Measurement], plugins: tuple[str, ...], options: dict) -> None:
    # Each kind's measurement code is imported only by the cells that need it: a worker starts fast.
    if cell.kind == Kind.COST:
        from bench.measure.cost_cell import measure_cost

        measure_cost(cell, rows, RunStore(run_dir).scratch)
        return
    if cell.kind == Kind.TIMING:
        from bench.measure.timing_cell import time_in_rounds
        from bench.plan.sweep import RoundsBudget

        time_in_rounds(cell, RoundsBudget(**options["rounds"]), rows, plugins)
        return
    from bench.measure import quality

    config = cell.config  # the quality preset with the cell's recipe
    cache = Path(options["cache_dir"])
    if cell.kind in (Kind.QUALITY, Kind.TUNE):
        rows += quality.run_quality_seeds(cell.spec, config, cell.seeds or (cell.seed,), cell.device, run_dir, cache,
                                          tuning=cell.kind == Kind.TUNE)
    elif cell.kind == Kind.FLOOR:
        rows += quality.real_floor(config, cell.seed, run_dir, cache)
    elif cell.kind == Kind.CHECK:
        rows += quality.checkpoint_equivalence(cell.spec, config, cell.seed)
    else:
        raise ValueError(f"cell kind {cell.kind!r} is unknown; valid: {', '.join(KINDS)}")
