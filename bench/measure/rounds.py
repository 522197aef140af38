"""The timing process's side of a timing cell: every live member of a setting built and warmed up in one process,
then timed one round at a time, each round in its own random order (bench/measure/timing_cell.py says why and when
the rounds stop). A spawned timing process imports this module alone, not the model that decides the stopping."""
from __future__ import annotations

import dataclasses
import functools
import os
import signal

import numpy as np
import psutil
import torch

from bench.measure.attention_kernels import sdpa_rows
from bench.measure.execution import compile_model, enter_cell, prepare, torch_dtype
from bench.measure.flops import timed_phase_flops
from bench.measure.speed import CPU_TIME_METHOD, WALL_METHOD, BlockTimer, MatmulPeak
from bench.measure.workload import Workload, make_workload
from bench.models.peers import PeerUnavailable, model_builder
from bench.models.sizes import STATE_METHOD, planned_state_bytes
from bench.plan.cells import Cell
from bench.plan.execution import Execution
from bench.plan.groups import MEMORY_SHARE, memory_budget
from bench.plan.sweep import RoundsBudget
from bench.schema import (BOTH_TIMED_PHASES, CPU_SECONDS_PER_ITER, FRACTION_OF_PEAK, IMAGES_PER_S,
                          SECONDS_PER_ITER, TIMED_PHASES, Measurement, exception_failure, failure, measure_into)


def round_order(size: int, seed: int, round_index: int) -> list[int]:
    """The order in which round ``round_index`` times ``size`` models: a permutation, the same for the same
    seed and round on every machine."""
    return np.random.default_rng([seed, round_index]).permutation(size).tolist()


def build_order(cell: Cell, members: list[int], seed: int, process: int, first: bool) -> list[int]:
    """The order in which a process builds its members: drawn from ``(seed, process)``, so whatever the order does
    to a model's speed (where its memory lands) differs from process to process and enters the process level of
    every interval, instead of biasing every process alike. In the ``first`` process the A/A copy comes after its
    original, whose counts it shares."""
    order = np.random.default_rng([seed, process, len(cell.members)]).permutation(members).tolist()
    if first and 0 in order:
        copy = next((i for i in order[:order.index(0)] if cell.members[i].replica), None)
        if copy is not None:
            a, b = order.index(copy), order.index(0)
            order[a], order[b] = order[b], order[a]
    return order


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
                 counted: Counted | None = None, known_flops: dict | None = None) -> None:
        """``original``: the model this member is a second instance of (the A/A control), whose attention kernels it
        shares: the same spec, shapes and dtype make the same kernel choices. ``known_flops``: the counts of the
        members built before it in this process, by checkpoint-free spec, batch and peer.
        ``counted``: what an earlier process, which also recorded the member's kernels, measured of it."""
        workload = make_workload(member.spec, member.batch_size, member.device, build_model=model_builder(member.peer))
        if counted:
            self.flops = counted.flops
        else:  # checkpointing changes no model FLOP (timed_phase_flops), so its twins share one count
            known = {} if known_flops is None else known_flops
            twin = (member.spec.replace(checkpoint=False), member.batch_size, member.peer)
            if twin not in known:
                known[twin] = timed_phase_flops(workload.model, workload.x0, workload.sigma)
            self.flops = known[twin]
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


class RoundTimer:
    """Every live member of a setting, built and warmed up in this process, timed one round at a time. The first
    process also records what holding them takes and which attention kernels they run; later ones reuse what it
    counted (``counted``, by member)."""

    def __init__(self, cell: Cell, budget: RoundsBudget, members: list[int], counted: dict[int, Counted] | None,
                 process: int) -> None:
        self.cell, self.seed, self.process = cell, budget.seed, process
        self.models: dict[int, _Model] = {}
        self.setup_rows: list[Measurement] = []
        known_flops: dict = {}
        for index in build_order(cell, members, budget.seed, process, first=counted is None):
            member = cell.members[index]
            try:
                self.models[index] = _Model(member, budget, self.models.get(0) if member.replica else None,
                                            counted[index] if counted else None, known_flops)
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
        return sorted(self.models)

    @property
    def counted(self) -> dict[int, Counted]:
        return {index: model.counted for index, model in self.models.items()}

    def round(self, round_index: int) -> list[Measurement]:
        rows = _round(self.cell, self.models, self.seed, round_index, self.peak)
        return [dataclasses.replace(row, process=self.process) for row in rows]

    def close(self) -> None:
        self.models.clear()


def plain_counts(counted: dict[int, Counted] | None) -> dict[int, dict] | None:
    """Counted as plain dicts, the form serve_rounds takes them in."""
    return {index: dataclasses.asdict(c) for index, c in counted.items()} if counted else None


def serve_rounds(connection, cell_json: str, budget: dict, members: list[int], counted: dict[int, dict] | None,
                 process: int, plugins: tuple[str, ...]) -> None:
    """A spawned timing process: build and warm up, then time the round each message names, until None.
    ``counted``: each member's Counted as a plain dict, so unpickling the arguments imports nothing heavy before
    the process has asked to die with its parent (bench/measure/processes.py)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runner alone answers Ctrl-C (bench/run/worker.py)
    cell = enter_cell(cell_json, plugins)
    timer = RoundTimer(cell, RoundsBudget(**budget), members,
                       {index: Counted(**fields) for index, fields in counted.items()} if counted else None, process)
    connection.send((timer.setup_rows, timer.counted, timer.members))
    while (round_index := connection.recv()) is not None:
        rows = timer.round(round_index)
        connection.send((rows, timer.members))


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
            Measurement(phase, IMAGES_PER_S, batch / wall, "images/s", WALL_METHOD, **common),
            Measurement(phase, "achieved_flop_per_s", achieved, "FLOP/s", WALL_METHOD, **common),
            Measurement(phase, FRACTION_OF_PEAK, achieved / peak_flop_per_s, "ratio", WALL_METHOD, **common),
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
