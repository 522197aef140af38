"""Timing in randomized rounds: the timed phases of every model of one setting, in one process.

Cells timed minutes apart see a different machine (on a shared VM the same model's speed moved by up to 30%
from one cell to the next), so per-cell medians cannot resolve effects of a few percent. Here every model of
a setting is built once, in one process, and timed in rounds: each round times every model once (one block of
calls per phase), in a fresh random order drawn from ``(seed, round)``. Drift then hits every model of a round
alike, and the report's factorial model, with the round as a block, takes it out (bench/report/timing.py).
Each block is a row: ``repeat`` is the round, ``position`` the model's place in that round's order.

A group's first two members are the baseline and a second, separately built instance of it (``replica`` 1):
their difference is the run's A/A control, whose true effect is zero. The matmul peak is measured once per
round, after its last block, and that round's ``fraction_of_peak`` rows are against it.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import time
from dataclasses import dataclass

import numpy as np
import psutil
import torch

from bench.cells import Cell
from bench.schema import Measurement, exception_failure, failure
from variants import AXES, UNetSpec, build

from .execution import Execution, apply
from .flops import timed_phase_flops
from .speed import CPU_METHOD, METHOD, BlockTimer, MatmulPeak
from .workload import PHASES, Workload, make_workload

# What holding one model ready for both phases costs: fp32 weights, their gradients and AdamW's two moments.
STATE_BYTES_PER_PARAM = 16
STATE_METHOD = f"{STATE_BYTES_PER_PARAM} bytes per parameter (fp32 weights, gradients, AdamW's two moments)"
# The models' states may take this share of the device's memory; the rest is for one step's activations.
MEMORY_SHARE = 0.5


@dataclass(frozen=True)
class RoundsBudget:
    warmup: int = 2              # untimed calls per model and phase before the first round
    block_seconds: float = 0.2   # a block repeats the call until it lasts this long (one timed call decides)
    min_rounds: int = 10
    max_seconds: float = 300.0   # no new round starts after this much time in rounds (min_rounds first)
    seed: int = 0                # round r's order is drawn from (seed, r)

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.min_rounds < 2 or self.block_seconds <= 0 or self.max_seconds < 0:
            raise ValueError(f"rounds budget {self} is invalid; valid: warmup >= 0, min_rounds >= 2, "
                             "block_seconds > 0, max_seconds >= 0")


def round_order(size: int, seed: int, round_index: int) -> list[int]:
    """The order in which round ``round_index`` times ``size`` models: a permutation, the same for the same
    seed and round on every machine."""
    return np.random.default_rng([seed, round_index]).permutation(size).tolist()


@functools.lru_cache(maxsize=None)
def planned_state_bytes(spec: UNetSpec) -> int:
    """Bytes of one of our models' state (weights, gradients, optimizer moments), from a meta-device build."""
    with torch.device("meta"):
        params = sum(p.numel() for p in build(spec).parameters())
    return STATE_BYTES_PER_PARAM * params


def memory_budget(device: str) -> int:
    """Bytes the models of one timing group may hold: a share of the device's total (not free) memory, so the
    plan, and with it every cell id, is the same from one run to the next on one machine."""
    if device.startswith("cuda"):
        total = torch.cuda.get_device_properties(torch.device(device)).total_memory
    else:
        total = psutil.virtual_memory().total
    return int(MEMORY_SHARE * total)


class _Model:
    """One member, built and warmed up: a block timer per phase and its model FLOPs per call."""

    def __init__(self, member: Cell, budget: RoundsBudget) -> None:
        from bench.peers import model_builder

        workload = make_workload(member.spec, member.batch_size, member.device, build_model=model_builder(member.peer))
        self.flops = timed_phase_flops(workload.model, workload.x0, workload.sigma)
        self.workload = apply(workload, Execution(member.memory_format, member.dtype, member.compile))
        self.timers = {phase: BlockTimer(functools.partial(_call, self.workload, phase), member.device, budget.warmup,
                                         budget.block_seconds) for phase in PHASES}

    def state_bytes(self) -> int:
        tensors = [t for p in self.workload.model.parameters() for t in (p, p.grad) if t is not None]
        tensors += [t for state in self.workload.optimizer.state.values() for t in state.values()
                    if isinstance(t, torch.Tensor)]
        return sum(t.numel() * t.element_size() for t in tensors)


def _call(workload: Workload, phase: str) -> None:
    workload.phase(phase)()  # sets the model's mode each call: the phases of one model alternate


def time_in_rounds(cell: Cell, budget: RoundsBudget, rows: list[Measurement]) -> None:
    """Append the group's rows to ``rows`` as they are measured: memory of holding every model, then per round
    and block the seconds per call (wall and CPU), images/s, achieved FLOP/s and its fraction of the round's
    matmul peak. A member that fails to build or run leaves a row saying why and drops out; the rest go on."""
    from bench.peers import PeerUnavailable

    models: dict[int, _Model] = {}
    for index, member in enumerate(cell.members):
        try:
            models[index] = _Model(member, budget)
        except PeerUnavailable as err:
            rows.append(dataclasses.replace(failure("cell", "skipped", str(err)), member=index))
        except Exception as err:  # one member's failure is a row; the others are still timed
            rows.append(dataclasses.replace(exception_failure("cell", err), member=index))
    rows += _memory_rows(cell, models)
    peak = MatmulPeak(cell.device, getattr(torch, cell.dtype))
    start, round_index = time.perf_counter(), 0
    while models and (round_index < budget.min_rounds or time.perf_counter() - start < budget.max_seconds):
        rows += _round(cell, models, budget.seed, round_index, peak)
        round_index += 1


def _round(cell: Cell, models: dict[int, _Model], seed: int, round_index: int, peak: MatmulPeak) -> list[Measurement]:
    blocks = []
    failures = []
    flops = {index: model.flops for index, model in models.items()}  # kept for a member that fails mid-round
    order = [i for i in round_order(len(cell.members), seed, round_index) if i in models]
    for position, index in enumerate(order):
        for phase in PHASES:
            try:
                wall, cpu = models[index].timers[phase]()
            except Exception as err:
                failures.append(dataclasses.replace(exception_failure(phase, err), member=index))
                del models[index]
                break
            blocks.append((index, phase, position, wall, cpu))
    peak_flop_per_s, calibration = peak.measure(round_index)
    rows = [*failures, *calibration]
    for index, phase, position, wall, cpu in blocks:
        batch = cell.members[index].batch_size
        achieved = flops[index][phase] / wall
        common = dict(repeat=round_index, position=position, n=batch, member=index)
        rows += [
            Measurement(phase, "seconds_per_iter", wall, "s", METHOD, **common),
            Measurement(phase, "cpu_seconds_per_iter", cpu, "s", CPU_METHOD, **common),
            Measurement(phase, "images_per_s", batch / wall, "images/s", METHOD, **common),
            Measurement(phase, "achieved_flop_per_s", achieved, "FLOP/s", METHOD, **common),
            Measurement(phase, "fraction_of_peak", achieved / peak_flop_per_s, "ratio", METHOD, **common),
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



def timing_cells(costs: list[Cell], budget_bytes: int) -> list[Cell]:
    """The timing cells of one setting's cost cells: one, whose members are the baseline, its A/A copy and
    every other model, when all their states fit in ``budget_bytes``; otherwise several, each holding the
    baseline and its copy (so every group is tied to the others through them) and as many others as fit.

    The baseline is our U-Net with the most axes at their reference level (the first such model of the sweep).
    """
    if not costs:
        return []
    ours = [c for c in costs if not c.peer]
    baseline = min(ours, key=lambda c: _levels_off_reference(c.spec)) if ours else costs[0]
    members = [dataclasses.replace(c, kind="timing") for c in costs if c is not baseline]
    anchor = [dataclasses.replace(baseline, kind="timing"), dataclasses.replace(baseline, kind="timing", replica=1)]
    room = budget_bytes - sum(planned_state_bytes(m.spec) for m in anchor)
    groups: list[list[Cell]] = [[]]
    for member in members:
        size = planned_state_bytes(member.spec)
        if groups[-1] and sum(planned_state_bytes(m.spec) for m in groups[-1]) + size > room:
            groups.append([])
        groups[-1].append(member)
    first = costs[0]
    return [dataclasses.replace(first, kind="timing", spec=None, peer="", replica=0, members=tuple(anchor + group))
            for group in groups]


def _levels_off_reference(spec: UNetSpec) -> int:
    return sum(getattr(spec, name) != axis.default for name, axis in AXES.items())
