"""Timing in randomized rounds: the timed phases of every model of one setting, and when the rounds stop. This
module drives the rounds; bench/measure/rounds.py builds the models and times each round, in a timing process.

Cells timed minutes apart see a different machine (on a shared VM the same model's speed moved by up to 30%
from one cell to the next), so per-cell medians cannot resolve effects of a few percent. Here every model of
a setting is built once, in one process, and timed in rounds: each round times every model once (one block of
calls per phase), in a fresh random order drawn from ``(seed, round)``. Drift then hits every model of a round
alike, and the report's factorial model, with the round as a block, takes it out (bench/statistics/rounds_model.py).
Each block is a row: ``repeat`` is the round, ``position`` the model's place in that round's order.

A group's first two members are the baseline and a second, separately built instance of it (``replica`` 1):
their difference is the run's A/A control, whose true effect is zero. The matmul peak is measured once per
round, after its last block, and that round's ``fraction_of_peak`` rows are against it. Each member also records
which attention kernels its phases ran (``sdpa_calls*`` rows, bench/measure/attention_kernels.py).

A process's memory layout and library state can shift its timings in a way no number of rounds inside it reveals
(Kalibera and Jones 2013 treat executions as a level of their own), so the rounds are spread over
``budget.processes`` fresh processes, one after another, each building and warming up every member anew, in an order
of its own (bench/measure/rounds.build_order; the first also counts each member's FLOPs and sets its calls per
block; the later ones reuse both, so every process times blocks of the same length): the first ``processes - 1``
take an equal share of the rounds (of ``min_rounds`` and of ``max_seconds``), the last runs on until the cap. Rows
record their ``process``; from three processes on the report's model takes the process as the unit of its
intervals, so they include the variation between processes. With ``processes`` 1 the rounds run in the cell's own
worker.

Rounds go on until the report's own model, fitted to this cell's rounds so far, gives every primary time effect
(each axis's main effect on each phase's wall time) a 95% interval within ``budget.precision`` % either side (on the
model's log scale: beta +- log(1 + precision / 100)), or until ``budget.max_seconds``, and never fewer than
``budget.min_rounds``. The rule is checked after every round of every process once the model gives intervals (from
the third process on, when the process is the interval's unit), so a setting that reaches its target early stops
early, in whichever process. It reads the widths alone, never an estimate or its sign, and, because stopping when
a width happens to read narrow would leave the intervals short, it stops on an 80% upper confidence bound of each
width (the standard error's chi-square bound on its degrees of freedom, as Stein's two-stage rule guards its first
stage): docs/statistics.md gives the coverage measured with it (bench/calibration/timing.py). The
``group / time_precision`` row records the width reached, the rounds used (``n``) and why the rounds stopped.
"""
from __future__ import annotations

import dataclasses
import math
import multiprocessing
import time
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from bench.measure.processes import how_it_ended, spawn_guarded
from bench.measure.rounds import Counted, RoundTimer, plain_counts
from bench.measure.rows import rows_frame
from bench.plan.cells import Cell
from bench.plan.sweep import RoundsBudget
from bench.schema import SECONDS_PER_ITER, Measurement, failure, references
from bench.statistics.rounds_model import (MIN_PROCESSES, percent, primary_wall_effects, timing_effects,
                                           widest_half_width)
from variants import AXES

PRECISION_METHOD = ("widest 95% interval half-width of the main effects on wall time, on the log scale as % "
                    "(rounds_model, this cell's rounds); message: why the rounds stopped (precision, cap, or every "
                    "member failed)")
# The stop reads an upper confidence bound of each half-width at this level (the module's docstring).
GUARD_LEVEL = 0.8


def time_in_rounds(cell: Cell, budget: RoundsBudget, rows: list[Measurement], plugins: Sequence[str] = (),
                   start_timer: Callable[..., RoundTimer | SpawnedRoundTimer] | None = None,
                   clock: Callable[[], float] = time.perf_counter) -> None:
    """Append the group's rows to ``rows`` as they are measured: memory of holding every model, then per round
    and block the seconds per call (wall and CPU), images/s, achieved FLOP/s and its fraction of the round's
    matmul peak. A member that fails to build or run leaves a row saying why and drops out; the rest go on.
    ``plugins``: the user's variant modules, imported by every timing process. ``start_timer`` and ``clock``: what
    builds a process's timer (by default in this process for one process, else a spawned one) and tells the seconds
    in rounds; a calibration replaces both with simulated ones."""
    start_timer = start_timer or start_round_timer
    share_rounds, share_seconds = math.ceil(budget.min_rounds / budget.processes), budget.max_seconds / budget.processes
    members, counted = list(range(len(cell.members))), None
    round_index, seconds, reached, why = 0, 0.0, float("nan"), None
    precision = PrecisionSoFar(cell, budget.processes)
    for process in range(budget.processes):
        last = process == budget.processes - 1
        try:
            timer = start_timer(cell, budget, members, counted, process, plugins)
        except TimingProcessDied as died:
            rows.append(died.row)
            break
        rows += timer.setup_rows
        counted = counted or timer.counted
        start, own_rounds = clock(), 0
        try:
            while timer.members:
                rows += timer.round(round_index)
                round_index, own_rounds = round_index + 1, own_rounds + 1
                own_seconds = clock() - start
                reached, guarded = precision.so_far(rows)
                why = stop_reason(budget, round_index, seconds + own_seconds, guarded)
                if why == "precision" or (last and why):
                    break
                if not last and own_rounds >= share_rounds and own_seconds >= share_seconds:
                    break
        except TimingProcessDied as died:
            rows.append(died.row)
            break
        finally:
            timer.close()
        seconds += clock() - start
        members = timer.members
        if not members or why == "precision":
            break
    rows += _stop_rows(reached, why, round_index, budget.precision)


def start_round_timer(cell: Cell, budget: RoundsBudget, members: list[int], counted: dict[int, Counted] | None,
                      process: int, plugins: Sequence[str]) -> RoundTimer | SpawnedRoundTimer:
    """A process's timer: with one process, in the cell's own worker (which imported the plugins already)."""
    if budget.processes == 1:
        return RoundTimer(cell, budget, members, counted, process)
    return SpawnedRoundTimer(cell, budget, members, counted, process, plugins)


class TimingProcessDied(Exception):
    """A spawned timing process ended without answering (a segfault, the OOM killer); ``row`` says how."""

    def __init__(self, process: int, code: int | None) -> None:
        self.row = failure("cell", "error", f"timing process {process} died with {how_it_ended(code)}")
        super().__init__(self.row.message)


class SpawnedRoundTimer:
    """A RoundTimer in a fresh spawned process, driven round by round over a pipe: this process decides when the
    rounds stop, the child times them. The child dies with this process (bench/measure/processes.py)."""

    def __init__(self, cell: Cell, budget: RoundsBudget, members: list[int], counted: dict[int, Counted] | None,
                 process: int, plugins: Sequence[str]) -> None:
        self.process = process
        self.connection, child_end = multiprocessing.Pipe()
        self.child = spawn_guarded("bench.measure.rounds:serve_rounds", child_end, cell.to_json(),
                                   dataclasses.asdict(budget), members, plain_counts(counted), process, tuple(plugins),
                                   name=f"bench-timing-{cell.id}-{process}")
        child_end.close()
        self.setup_rows, self.counted, self.members = self._answer()

    def round(self, round_index: int) -> list[Measurement]:
        self.connection.send(round_index)
        rows, self.members = self._answer()
        return rows

    def close(self) -> None:
        if self.child.is_alive():
            try:
                self.connection.send(None)
            except OSError:  # it ended between the check and the send
                pass
        self.child.join()
        self.connection.close()

    def _answer(self) -> tuple:
        try:
            return self.connection.recv()
        except EOFError:
            self.child.join()
            raise TimingProcessDied(self.process, self.child.exitcode) from None


def stop_reason(budget: RoundsBudget, rounds: int, seconds: float, guarded: float) -> str | None:
    """Why the rounds stop after ``rounds`` of them, ``seconds`` in: ``precision`` (the guarded half-width, in %,
    within the target; NaN while an interval is missing) or ``cap``; None to go on."""
    if rounds < budget.min_rounds:
        return None
    if guarded <= budget.precision:
        return "precision"
    return "cap" if seconds >= budget.max_seconds else None


class PrecisionSoFar:
    """The widest 95% half-width of the primary time effects in a cell's rows so far (in % on the log scale: the
    report's model, rounds_model.timing_effects, on the wall-time blocks), and the same at its upper confidence
    bound, which the stop reads. NaN while an interval is missing, and while fewer processes ran than the planned
    design's intervals need: a cell planned over processes never stops on an interval over rounds alone. Each call
    turns only the rows new since the last into table rows."""

    def __init__(self, cell: Cell, planned_processes: int) -> None:
        self.cell, self.processes_needed = cell, min(planned_processes, MIN_PROCESSES)
        self.frames: list[pd.DataFrame] = []
        self.seen = 0

    def so_far(self, rows: list[Measurement]) -> tuple[float, float]:
        timed = [r for r in rows[self.seen:] if r.metric == SECONDS_PER_ITER]
        self.seen = len(rows)
        if timed:  # the table's rows; one cell is one setting
            self.frames.append(rows_frame("", self.cell, timed).assign(setting=self.cell.device))
        if not self.frames:
            return float("nan"), float("nan")
        table = pd.concat(self.frames, ignore_index=True)
        self.frames = [table]
        if table["process"].nunique() < self.processes_needed:
            return float("nan"), float("nan")
        effects = timing_effects(table, tuple(AXES), references(), primary_only=True)
        return widest_half_width(effects), widest_guarded_half_width(effects)


def widest_guarded_half_width(effects: pd.DataFrame) -> float:
    """The widest half-width of the primary time effects at an upper confidence bound (``GUARD_LEVEL``) of its
    standard error: t * se * sqrt(df / chi2(1 - level, df)), as % on the log scale."""
    primary = primary_wall_effects(effects)
    if primary.empty or primary["low"].isna().any():
        return float("nan")
    df = primary["df"].to_numpy(dtype=float)
    bound = np.sqrt(df / stats.chi2.ppf(1 - GUARD_LEVEL, df))
    half = (primary["high"] - primary["low"]).to_numpy(dtype=float) / 2 * bound
    return float(percent(half.max()))


def _stop_rows(reached: float, why: str | None, rounds: int, target: float) -> list[Measurement]:
    """The target and the rounds used; and, where the model gave every interval (10 rounds or more), the precision
    reached and why the rounds stopped. A smoke run's few rounds have no precision, which is no failure."""
    asked = Measurement("group", "time_precision_target", target, "%", "--precision (or the sweep's rounds.precision)",
                        n=rounds)
    if np.isnan(reached):
        return [asked]
    return [asked, Measurement("group", "time_precision", reached, "%", PRECISION_METHOD, n=rounds,
                               message=why or "every member failed")]


