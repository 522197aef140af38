"""Timing in randomized rounds: the timed phases of every model of one setting, in one process.

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
of ``max_seconds``), the last runs on until the rule below stops it. Rows record their ``process``; the report's model resamples processes, then
rounds within them, so its intervals include the variation between processes. With ``processes`` 1 the rounds run
in the cell's own worker.

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
import functools
import math
import multiprocessing
import os
import signal
import time
from typing import Sequence

import numpy as np
import psutil
import torch

from bench.measure.attention_kernels import sdpa_rows
from bench.measure.execution import compile_model, enter_cell, prepare, torch_dtype
from bench.measure.flops import timed_phase_flops
from bench.measure.processes import guarded, how_it_ended
from bench.measure.speed import CPU_TIME_METHOD, WALL_METHOD, BlockTimer, MatmulPeak
from bench.measure.workload import Workload, make_workload
from bench.models.peers import PeerUnavailable, model_builder
from bench.models.sizes import STATE_METHOD, planned_state_bytes
from bench.plan.cells import Cell
from bench.plan.execution import Execution
from bench.plan.groups import MEMORY_SHARE, memory_budget
from bench.plan.sweep import RoundsBudget
from bench.report.compute.frames import references
from bench.report.compute.rounds_model import MIN_ROUNDS_TO_TEST, timing_effects, widest_half_width
from bench.schema import (BOTH_TIMED_PHASES, CPU_SECONDS_PER_ITER, SECONDS_PER_ITER, TIMED_PHASES, Measurement,
                          exception_failure, failure, measure_into)
from bench.store.folder import rows_frame
from variants import AXES

PRECISION_METHOD = ("widest 95% interval half-width, in percentage points, of the main effects on wall time "
                    "(rounds_model, this cell's rounds); message: why the rounds stopped (precision, cap, or every "
                    "member failed)")


def round_order(size: int, seed: int, round_index: int) -> list[int]:
    """The order in which round ``round_index`` times ``size`` models: a permutation, the same for the same
    seed and round on every machine."""
    return np.random.default_rng([seed, round_index]).permutation(size).tolist()


@dataclasses.dataclass(frozen=True)
class Counted:
    """What a member's first process measured once for every process: model FLOPs per call and calls per block,
    by phase."""

    flops: dict[str, float]
    calls_per_block: dict[str, int]


class _Model:
    """One member, built and warmed up: a block timer per phase, its model FLOPs per call, and the attention
    kernels one eager call of each phase ran (recorded before compilation: attention_kernels.py says why)."""

    def __init__(self, member: Cell, budget: RoundsBudget, original: _Model | None = None,
                 counted: Counted | None = None) -> None:
        """``original``: the model this member is a second instance of (the A/A control), whose FLOPs and attention
        kernels it shares: the same spec, shapes and dtype make the same counts and the same kernel choices.
        ``counted``: what an earlier process, which also recorded the member's kernels, measured of it."""
        workload = make_workload(member.spec, member.batch_size, member.device, build_model=model_builder(member.peer))
        self.flops = (counted.flops if counted else original.flops if original
                      else timed_phase_flops(workload.model, workload.x0, workload.sigma))
        self.workload = prepare(workload, Execution.of(member))
        self.attention_rows: list[Measurement] = []  # a failure here is a row; the member is still timed
        if original:
            self.attention_rows = list(original.attention_rows)
        elif not counted:
            measure_into(self.attention_rows, BOTH_TIMED_PHASES, "sdpa_calls", lambda: sdpa_rows(self.workload))
        compile_model(self.workload)
        self.timers = {phase: BlockTimer(functools.partial(_call, self.workload, phase), member.device, budget.warmup,
                                         budget.block_seconds, counted.calls_per_block[phase] if counted else None)
                       for phase in TIMED_PHASES}

    @property
    def counted(self) -> Counted:
        return Counted(self.flops, {phase: timer.number for phase, timer in self.timers.items()})

    def state_bytes(self) -> int:
        tensors = [t for p in self.workload.model.parameters() for t in (p, p.grad) if t is not None]
        tensors += [t for state in self.workload.optimizer.state.values() for t in state.values()
                    if isinstance(t, torch.Tensor)]
        return sum(t.numel() * t.element_size() for t in tensors)


def _call(workload: Workload, phase: str) -> None:
    workload.phase(phase)()  # sets the model's mode each call: the phases of one model alternate


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


class RoundTimer:
    """Every live member of a setting, built and warmed up in this process, timed one round at a time. The first
    process also records what holding them takes and which attention kernels they run; later ones reuse what it
    counted (``counted``, by member)."""

    def __init__(self, cell: Cell, budget: RoundsBudget, members: list[int], counted: dict[int, Counted] | None,
                 process: int) -> None:
        self.cell, self.seed, self.process = cell, budget.seed, process
        self.models: dict[int, _Model] = {}
        self.setup_rows: list[Measurement] = []
        for index in members:
            member = cell.members[index]
            try:
                self.models[index] = _Model(member, budget, self.models.get(0) if member.replica else None,
                                            counted[index] if counted else None)
            except PeerUnavailable as err:
                self.setup_rows.append(dataclasses.replace(failure("cell", "skipped", str(err)), member=index))
            except Exception as err:  # one member's failure is a row; the others are still timed
                self.setup_rows.append(dataclasses.replace(exception_failure("cell", err), member=index))
        if counted is None:
            self.setup_rows += _memory_rows(cell, self.models)
            self.setup_rows += [dataclasses.replace(row, member=index) for index, model in self.models.items()
                                for row in model.attention_rows]
        self.setup_rows = [dataclasses.replace(row, process=process) for row in self.setup_rows]
        self.peak = MatmulPeak(cell.device, torch_dtype(cell.dtype))

    @property
    def members(self) -> list[int]:
        return list(self.models)

    @property
    def counted(self) -> dict[int, Counted]:
        return {index: model.counted for index, model in self.models.items()}

    def round(self, round_index: int) -> list[Measurement]:
        rows = _round(self.cell, self.models, self.seed, round_index, self.peak)
        return [dataclasses.replace(row, process=self.process) for row in rows]

    def close(self) -> None:
        self.models.clear()


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
        context = multiprocessing.get_context("spawn")
        self.connection, child_end = context.Pipe()
        self.child = context.Process(
            target=guarded, name=f"bench-timing-{cell.id}-{process}",
            args=(os.getpid(), "bench.measure.timing_cell:_serve_rounds", child_end, cell.to_json(),
                  dataclasses.asdict(budget), members, counted, process, tuple(plugins)))
        self.child.start()
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


def _serve_rounds(connection, cell_json: str, budget: dict, members: list[int], counted: dict[int, Counted] | None,
                  process: int, plugins: tuple[str, ...]) -> None:
    """A spawned timing process: build and warm up, then time the round each message names, until None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runner alone answers Ctrl-C (bench/run/worker.py)
    cell = enter_cell(cell_json, plugins)
    timer = RoundTimer(cell, RoundsBudget(**budget), members, counted, process)
    connection.send((timer.setup_rows, timer.counted, timer.members))
    while (round_index := connection.recv()) is not None:
        rows = timer.round(round_index)
        connection.send((rows, timer.members))


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


def _round(cell: Cell, models: dict[int, _Model], seed: int, round_index: int, peak: MatmulPeak) -> list[Measurement]:
    blocks = []
    failures = []
    flops = {index: model.flops for index, model in models.items()}  # kept for a member that fails mid-round
    order = [i for i in round_order(len(cell.members), seed, round_index) if i in models]
    for position, index in enumerate(order):
        for phase in TIMED_PHASES:
            try:
                wall, cpu = models[index].timers[phase]()
            except Exception as err:
                failures.append(dataclasses.replace(exception_failure(phase, err), member=index))
                del models[index]
                break
            blocks.append((index, phase, position, wall, cpu))
    peak_flop_per_s, calibration = peak.measure(round_index)
    # the machine's load over the round, so a report can tell rounds timed beside a busy neighbour
    load = Measurement("env", "loadavg_1min", os.getloadavg()[0], "processes", "os.getloadavg, after the round",
                       repeat=round_index)
    rows = [*failures, *calibration, load]
    for index, phase, position, wall, cpu in blocks:
        batch = cell.members[index].batch_size
        achieved = flops[index][phase] / wall
        common = dict(repeat=round_index, position=position, n=batch, member=index)
        rows += [
            Measurement(phase, SECONDS_PER_ITER, wall, "s", WALL_METHOD, **common),
            Measurement(phase, CPU_SECONDS_PER_ITER, cpu, "s", CPU_TIME_METHOD, **common),
            Measurement(phase, "images_per_s", batch / wall, "images/s", WALL_METHOD, **common),
            Measurement(phase, "achieved_flop_per_s", achieved, "FLOP/s", WALL_METHOD, **common),
            Measurement(phase, "fraction_of_peak", achieved / peak_flop_per_s, "ratio", WALL_METHOD, **common),
        ]
    return rows


def _memory_rows(cell: Cell, models: dict[int, _Model]) -> list[Measurement]:
    """What holding every model at once was planned to take, took, and was allowed to take."""
    planned = sum(planned_state_bytes(m.spec) for m in cell.members)
    held = sum(m.state_bytes() for m in models.values())
    if cell.device.startswith("cuda"):
        resident, how = torch.cuda.memory_allocated(torch.device(cell.device)), "torch.cuda.memory_allocated"
    else:
        resident, how = psutil.Process(os.getpid()).memory_info().rss, "psutil RSS of the timing process"
    n = len(cell.members)
    return [
        Measurement("group", "planned_state_bytes", float(planned), "bytes",
                    f"{STATE_METHOD}; peers planned as the spec they approximate", n=n),
        Measurement("group", "state_bytes", float(held), "bytes", "nbytes of weights, gradients and optimizer "
                    "state after warm-up", n=len(models)),
        Measurement("group", "resident_bytes", float(resident), "bytes", f"{how}, after warm-up", n=len(models)),
        Measurement("group", "memory_budget_bytes", float(memory_budget(cell.device)), "bytes",
                    f"{MEMORY_SHARE:g} of the device's total memory", n=n),
    ]
