"""Runs a plan's cells in worker processes (the cells that time one at a time, the rest ``jobs`` at a time), with
progress and resume."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import statistics
import sys
import time
from typing import TYPE_CHECKING, Iterator

from bench.atomic import atomic_write_text
from bench.measure.machine_pace import machine_pace
from bench.measure.quality import InceptionUnavailable, require_inception
from bench.measure.rows import rows_frame
from bench.plan.bracket import extension_cells
from bench.plan.cells import Cell
from bench.plan.estimate import LONG_RUN_SECONDS, PROBE_ABOVE_SECONDS, cell_seconds, clock, estimate, wall_seconds
from bench.plan.options import SweepOptions
from bench.plan.planner import Plan, make_plan
from bench.plan.quality_presets import QUALITY_PRESETS
from bench.plan.sweep import RoundsBudget
from bench.plan.tuning import UNIT, choices, tuned_cells
from bench.run import envinfo
from bench.run.backends import execute
from bench.schema import FAILED_STATUSES, Kind
from bench.store.folder import RunStore, read_json
from bench.store.lock import hold_run_folder

if TYPE_CHECKING:  # the tables come from bench.store: `import bench.cli` needs no pandas
    import pandas as pd


class Stopped(KeyboardInterrupt):
    """The run was asked to stop by a signal (Ctrl-C's SIGINT, or SIGTERM): it keeps what finished and exits
    with 128 + the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """SIGTERM stops the run the way Ctrl-C does: workers killed, finished cells kept, the lock released."""
    def stop(signum: int, frame: object) -> None:
        raise Stopped(signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class TimeLimitReached(BaseException):
    """The run's ``--time-limit`` passed. Raised by a timer signal wherever the runner is, like Ctrl-C (so no
    ``except Exception`` on the way swallows it); every backend's clean-up then stops the cells still running."""

    EXIT_CODE = 124  # as timeout(1)'s


@contextlib.contextmanager
def time_limit(seconds: float | None, limit: float | None = None) -> Iterator[None]:
    """Raise TimeLimitReached in the main thread once ``seconds`` have passed inside the block; None: no limit.
    ``limit``: the whole limit the message names, when the block has only what is left of it."""
    if seconds is None:
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise TimeLimitReached(f"time limit of {limit if limit is not None else seconds:g} s reached")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_sweep(options: SweepOptions, argv: list[str]) -> pd.DataFrame:
    """Plan (checking every option), then run the plan holding the folder's lock: one writer per run folder.
    With ``options.time_limit``, counted from here, raise TimeLimitReached once the folder holds what finished."""
    deadline = None if options.time_limit is None else time.monotonic() + options.time_limit
    plan = make_plan(options)
    _check_measurable(plan)
    with hold_run_folder(options.out), _stop_on_sigterm():
        return _execute(plan, argv, deadline)


def _check_measurable(plan: Plan) -> None:
    """What the plan needs and only a measurement can tell is missing: say so now, not after hours of training."""
    for quality in plan.sweep.quality if "quality" in plan.options.parts else ():
        if QUALITY_PRESETS[quality].inception_fid:
            try:
                require_inception()  # offline or without torch-fidelity
            except InceptionUnavailable as err:
                raise ValueError(f"--quality {quality}: {err}") from err


def _execute(plan: Plan, argv: list[str], deadline: float | None = None) -> pd.DataFrame:
    options, sweep, cells = plan.options, plan.sweep, plan.cells
    store = RunStore(options.out)
    run_id = store.open(plan.config(), options.resume, run_id=f"{sweep.name}-{time.strftime('%Y%m%d-%H%M%S')}",
                        planned=[{"id": c.id, "kind": c.kind, "label": " ".join(c.label.split())} for c in cells])
    env = envinfo.describe(options.threads, argv)
    env_file = options.out / "env.json"
    if options.resume and env_file.exists():
        _note_earlier_revisions(env, read_json(env_file, "restore it from a copy, or delete it: this run writes a "
                                                         "new one, without the revisions of earlier cells"))
    atomic_write_text(env_file, _json(env))
    todo = [c for c in cells if not store.is_finished(c)]
    print(f"{run_id}: {len(cells)} cells, {len(cells) - len(todo)} already finished, {len(todo)} to run "
          f"-> {options.out}", flush=True)
    for notice in plan.notices:
        print(f"notice: {notice}", flush=True)
    worker_options = {"rounds": dataclasses.asdict(sweep.rounds), "cache_dir": str(options.cache_dir.resolve())}
    stopped = None
    try:
        with time_limit(None if deadline is None else deadline - time.monotonic(), options.time_limit):
            pace = probed_pace(plan, todo)
            _announce(plan, store, todo, pace)
            failed = _run_cells(plan, todo, store, run_id, worker_options, pace)
            if plan.sweep.tune:  # each choice at an edge of its grid extends it, then each variant trains at its choice
                failed += _extend_grids(plan, store, run_id, worker_options, pace)
                failed += _run_cells(plan, _chosen_cells(plan, store), store, run_id, worker_options, pace)
    except TimeLimitReached as err:
        stopped = err
        print(f"\n{err}: the cells that finished are kept in {options.out}, the cells still running were stopped; "
              "rerun with --resume to finish", file=sys.stderr)
    except KeyboardInterrupt as stop:
        signum = stop.signum if isinstance(stop, Stopped) else signal.SIGINT
        print(f"{chr(10) if signum == signal.SIGINT else ''}interrupted by {signal.Signals(signum).name}: every "
              f"finished cell is kept in {options.out}; rerun with --resume to finish", file=sys.stderr)
        raise Stopped(signum) from None
    finally:
        env["load_end"] = envinfo.load_average()
        atomic_write_text(env_file, _json(env))
        if store.scratch.exists() and not any(store.scratch.iterdir()):
            store.scratch.rmdir()
    table = store.consolidate()
    if stopped is not None:
        raise stopped
    if failed:
        print(f"{failed} cell(s) did not finish cleanly; see the status and message columns", file=sys.stderr)
    return table


def _announce(plan: Plan, store: RunStore, todo: list[Cell], pace: float | None) -> None:
    """Say how long a long run will take, before its first cell starts."""
    rounds, jobs = plan.sweep.rounds, plan.jobs
    remaining = estimate(todo, rounds, jobs, pace)
    after = [c for c in plan.after_tuning() if not store.is_finished(c)]
    then = f"; then up to {len(after)} after tuning: {estimate(after, rounds, jobs, pace).describe()}" if after else ""
    if remaining.seconds > LONG_RUN_SECONDS or remaining.unknown:
        print(f"{len(todo)} cells to run: {remaining.describe()}{then}; Ctrl-C stops it, --resume finishes it",
              flush=True)


def probed_pace(plan: Plan, cells: list[Cell]) -> float | None:
    """This machine's pace against the priors' (bench/measure/machine_pace.py) when ``cells`` take over
    PROBE_ABOVE_SECONDS at the priors' pace and run here; None, the priors' pace, for a shorter run or one whose
    cells run on other machines (ray, slurm)."""
    if plan.options.backend.name != "local":
        return None
    if estimate(cells, plan.sweep.rounds, plan.jobs).seconds <= PROBE_ABOVE_SECONDS:
        return None
    return machine_pace()


def _run_cells(plan: Plan, todo: list[Cell], store: RunStore, run_id: str, worker_options: dict,
               pace: float | None) -> int:
    """Run ``todo``, writing each finished cell's rows as it finishes; returns how many did not finish cleanly."""
    options = plan.options
    progress = Progress(todo, plan.sweep.rounds, plan.jobs if options.backend.name == "local" else 1, pace)
    failed = 0
    results = execute(todo, options.out.resolve(), options.plugins, worker_options, options.backend, plan.jobs)
    with contextlib.closing(results):  # a Ctrl-C or SIGTERM here stops the workers; _execute says what was kept
        for result in results:
            frame = rows_frame(run_id, result.cell, result.rows, device_name=result.device_name, host=result.host)
            store.write_cell(frame, result.cell)
            store.consolidate()
            failed += bool(frame["status"].isin(FAILED_STATUSES).any())
            progress.done(result.cell, result.seconds, cell_outcome(frame))
    return failed


def _extend_grids(plan: Plan, store: RunStore, run_id: str, worker_options: dict, pace: float | None) -> int:
    """Run the tuning cells beyond each choice at an edge of its grid, choosing again after each step, until every
    choice is interior or stopped (bench/plan/bracket.py); returns how many cells did not finish cleanly. A cell
    that failed here is not tried again in this run (``--resume`` retries it), so the loop ends."""
    failed, tried = 0, set()
    while True:
        todo = [c for c in extension_cells(plan.cells, store.table(), plan.sweep.tune)
                if c not in tried and not store.is_finished(c)]
        if not todo:
            return failed
        print(f"tuning: {len(todo)} cell(s) beyond the edge of the grid where a choice sits", flush=True)
        tried.update(todo)
        failed += _run_cells(plan, todo, store, run_id, worker_options, pace)


def _chosen_cells(plan: Plan, store: RunStore) -> list[Cell]:
    """The quality cells of every tuned variant at its chosen recipe that the folder does not hold yet, chosen
    from the tuning cells' rows (bench/plan/tuning.py); a variant none of whose tuning cells finished is named."""
    table = store.table()
    chosen = tuned_cells(plan.cells, table)
    tuned = {(c.quality, c.base_config, c.variant, c.rung) for c in plan.cells if c.kind == Kind.TUNE}
    have = set(map(tuple, choices(table)[UNIT].itertuples(index=False)))
    for quality, _, variant, rung in sorted(tuned - have):
        print(f"notice: no tuning cell of {variant}{f' (rung {rung})' if rung else ''} at --quality {quality} "
              "finished with a score: it has no tuned reading", file=sys.stderr)
    todo = [c for c in chosen if not store.is_finished(c)]
    if chosen:
        print(f"tuning chose {len(chosen)} quality cell(s) at other recipes than their preset's, {len(todo)} to run",
              flush=True)
    return todo


def _note_earlier_revisions(env: dict, earlier_env: dict) -> None:
    """Cells finished before a resume keep the numbers of the code that measured them: say so when the
    code has changed since, and keep every revision that contributed in env.json."""
    earlier = set(earlier_env.get("earlier_revisions", [])) | {earlier_env.get("git_revision")}
    earlier -= {None, env.get("git_revision")}
    if earlier:
        env["earlier_revisions"] = sorted(earlier)
        print(f"warning: cells already finished in this folder were measured at git revision(s) "
              f"{', '.join(sorted(earlier))}, not {env.get('git_revision')}; they are kept as they are",
              file=sys.stderr)


def cell_outcome(frame: pd.DataFrame) -> str:
    """One line for a finished cell: ``error`` or ``oom`` if the cell itself failed (a ``cell`` row: its model
    did not build, its worker died), ``skipped`` if the whole cell was (a peer whose package is missing),
    ``partial`` naming the measurements that failed while the others were kept, else ``ok``, noting
    measurements that do not apply to it (a peer's or a non-default execution's peak RSS), which are rows of
    their own, not failures."""
    cell_rows = frame[frame["phase"] == "cell"]
    for status in (*FAILED_STATUSES, "skipped"):
        if (cell_rows["status"] == status).any():
            return status
    failed = frame[frame["status"].isin(FAILED_STATUSES)]
    if len(failed):
        names = ", ".join(f"{p} {m} ({s})" for p, m, s in failed[["phase", "metric", "status"]].itertuples(index=False))
        return f"partial: {names} failed, the other measurements are kept"
    skipped = int((frame["status"] == "skipped").sum())
    return f"ok ({skipped} measurement(s) not applicable, status skipped)" if skipped else "ok"


class Progress:
    """Prints one line per cell with the time left: each remaining cell's prior (bench/plan/estimate.py) at the
    probed ``pace``, times how much slower or faster than that this machine has run the cells of that kind so far;
    the cells that time nothing run ``jobs`` at a time."""

    def __init__(self, todo: list[Cell], rounds: RoundsBudget, jobs: int = 1, pace: float | None = None) -> None:
        self.prior = {cell: cell_seconds(cell, rounds, pace) for cell in todo}
        self.remaining = list(todo)
        self.jobs = jobs
        self.drift: dict[str, list[float]] = {}  # per kind: seconds taken over the (paced) prior
        self.spent: dict[str, list[float]] = {}  # per kind: seconds taken, for cells without a prior
        self.total, self.count, self.start = len(todo), 0, time.perf_counter()

    def done(self, cell: Cell, seconds: float, status: str) -> None:
        self.count += 1
        self.remaining.remove(cell)
        self.spent.setdefault(cell.kind, []).append(seconds)
        if self.prior[cell]:
            self.drift.setdefault(cell.kind, []).append(seconds / self.prior[cell])
        left = sum(wall_seconds(c, self._seconds(c), self.jobs) for c in self.remaining)
        elapsed = time.perf_counter() - self.start
        print(f"[{self.count}/{self.total}] {cell.label}: {status}, {seconds:.1f} s "
              f"(elapsed {clock(elapsed)}, about {clock(left)} left)", flush=True)

    def _seconds(self, cell: Cell) -> float:
        drift, spent = self.drift.get(cell.kind), self.spent.get(cell.kind)
        if self.prior[cell]:
            return self.prior[cell] * (statistics.median(drift) if drift else 1.0)
        return statistics.median(spent) if spent else 0.0


def _json(data: dict) -> str:
    return json.dumps(data, indent=2, sort_keys=True)
