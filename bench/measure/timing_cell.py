"""Timing in randomized rounds: the timed phases of every model of one setting, and when the rounds stop. This
module drives the rounds; bench/measure/rounds.py builds the models and times each round, in a timing process.

Cells timed minutes apart see a different machine (on a shared VM the same model's speed moved by up to 30%
from one cell to the next), so per-cell medians cannot resolve effects of a few percent. Here every model of
a setting is built once, in one process, and timed in rounds: each round times every model once (one block of
calls per phase), in a fresh random order drawn from ``(seed, round)``. Drift then hits every model of a round
alike, and the report's factorial model, with the round as a block, takes it out (bench/report/compute/rounds_model.py).
Each block is a row: ``repeat`` is the round, ``position`` the model's place in that round's order.

A group's first two members are the baseline and a second, separately built instance of it (``replica`` 1):
their difference is the run's A/A control, whose true effect is zero. The matmul peak is measured once per
round, after its last block, and that round's ``fraction_of_peak`` rows are against it. Each member also records
which attention kernels its phases ran (``sdpa_calls*`` rows, bench/measure/attention_kernels.py).

A process's memory layout and library state can shift its timings in a way no number of rounds inside it reveals
(Kalibera and Jones 2013 treat executions as a level of their own), so the rounds are spread over
``budget.processes`` fresh processes, one after another, each building and warming up every member anew (the first
also counts each member's FLOPs and sets its calls per block; the later ones reuse both, so every process times
blocks of the same length): the first ``processes - 1`` take an equal share of the rounds (of ``min_rounds`` and
of ``max_seconds``), the last runs on until the rule below stops it. Rows record their ``process``; the report's
model resamples processes, then rounds within them, so its intervals include the variation between processes. With
``processes`` 1 the rounds run in the cell's own worker.

Rounds go on until the report's own model, fitted to this cell's rounds so far, gives every primary time effect
(each axis's main effect on each phase's wall time) a 95% interval within ``budget.precision`` percentage points
either side, or until ``budget.max_seconds``, and never fewer than ``budget.min_rounds``. The rule looks at the
intervals' widths alone, never at an estimate or its sign: a width is a function of the residual scatter, which
(for roughly normal log-times) is independent of the estimates, so stopping on it leaves the estimates unbiased and
the intervals covering as often as at a fixed number of rounds (Chow and Robbins 1965's fixed-width sequential
interval; tests/test_time_precision.py checks both on synthetic rounds with known effects). The
``group / time_precision`` row records the width reached, the rounds used (``n``) and why the rounds stopped.
"""
from __future__ import annotations

import dataclasses
import math
import multiprocessing
import time
from typing import Sequence

import numpy as np

from bench.measure.processes import how_it_ended, spawn_guarded
from bench.measure.rounds import Counted, RoundTimer, plain_counts
from bench.plan.cells import Cell
from bench.plan.sweep import RoundsBudget
from bench.report.compute.frames import references
from bench.report.compute.rounds_model import MIN_ROUNDS_TO_TEST, timing_effects, widest_half_width
from bench.schema import SECONDS_PER_ITER, Measurement, failure
from bench.store.folder import rows_frame
from variants import AXES

PRECISION_METHOD = ("widest 95% interval half-width, in percentage points, of the main effects on wall time "
                    "(rounds_model, this cell's rounds); message: why the rounds stopped (precision, cap, or every "
                    "member failed)")


def time_in_rounds(cell: Cell, budget: RoundsBudget, rows: list[Measurement], plugins: Sequence[str] = ()) -> None:
    """Append the group's rows to ``rows`` as they are measured: memory of holding every model, then per round
    and block the seconds per call (wall and CPU), images/s, achieved FLOP/s and its fraction of the round's
    matmul peak. A member that fails to build or run leaves a row saying why and drops out; the rest go on.
    ``plugins``: the user's variant modules, imported by every timing process."""
    # the model gives no interval before MIN_ROUNDS_TO_TEST rounds: no fit before then
    check_from = max(budget.min_rounds, MIN_ROUNDS_TO_TEST)
    share_rounds, share_seconds = math.ceil(budget.min_rounds / budget.processes), budget.max_seconds / budget.processes
    members, counted = list(range(len(cell.members))), None
    round_index, seconds, reached, why = 0, 0.0, float("nan"), None
    for process in range(budget.processes):
        last = process == budget.processes - 1
        try:
            timer = (RoundTimer(cell, budget, members, counted, process) if budget.processes == 1
                     else SpawnedRoundTimer(cell, budget, members, counted, process, plugins))
        except TimingProcessDied as died:
            rows.append(died.row)
            break
        rows += timer.setup_rows
        counted = counted or timer.counted
        start, own_rounds = time.perf_counter(), 0
        try:
            while timer.members:
                rows += timer.round(round_index)
                round_index, own_rounds = round_index + 1, own_rounds + 1
                own_seconds = time.perf_counter() - start
                if not last:
                    if own_rounds >= share_rounds and own_seconds >= share_seconds:
                        break
                    continue
                reached = precision_so_far(cell, rows) if round_index >= check_from else float("nan")
                why = stop_reason(budget, round_index, seconds + own_seconds, reached)
                if why:
                    break
        except TimingProcessDied as died:
            rows.append(died.row)
            break
        finally:
            timer.close()
        seconds += time.perf_counter() - start
        members = timer.members
        if not members:
            break
    rows += _stop_rows(reached, why, round_index, budget.precision)


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


def stop_reason(budget: RoundsBudget, rounds: int, seconds: float, reached: float) -> str | None:
    """Why the rounds stop after ``rounds`` of them, ``seconds`` in: ``precision`` (every primary effect within
    the target: ``reached``, NaN while an interval is missing) or ``cap``; None to go on."""
    if rounds < budget.min_rounds:
        return None
    if reached <= budget.precision:
        return "precision"
    return "cap" if seconds >= budget.max_seconds else None


def precision_so_far(cell: Cell, rows: list[Measurement]) -> float:
    """The widest interval half-width (percentage points) of the primary time effects in ``rows``: the report's
    model (rounds_model.timing_effects) on this cell's wall-time blocks so far. NaN while an interval is missing."""
    timed = [r for r in rows if r.metric == SECONDS_PER_ITER]
    if not timed:
        return float("nan")
    table = rows_frame("", cell, timed).assign(setting=cell.device)  # the table's rows; one cell is one setting
    return widest_half_width(timing_effects(table, tuple(AXES), references()))


def _stop_rows(reached: float, why: str | None, rounds: int, target: float) -> list[Measurement]:
    """The target and the rounds used; and, where the model gave every interval (10 rounds or more), the precision
    reached and why the rounds stopped. A smoke run's few rounds have no precision, which is no failure."""
    asked = Measurement("group", "time_precision_target", target, "%", "--precision (or the sweep's rounds.precision)",
                        n=rounds)
    if np.isnan(reached):
        return [asked]
    return [asked, Measurement("group", "time_precision", reached, "%", PRECISION_METHOD, n=rounds,
                               message=why or "every member failed")]


