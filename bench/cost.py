"""A cost cell: parameters, FLOPs, memory and throughput of one variant on one device."""
from __future__ import annotations

import dataclasses
import functools
import math
import os
from pathlib import Path

import torch

from .cells import Cell
from .measure.execution import Execution, ExecutedWorkload, apply, compile_seconds
from .measure.flops import count_flops
from .measure.memory import cpu_peak_rss, cuda_peak_memory, saved_tensor_bytes
from .measure.params import count_params
from .measure.speed import MatmulPeak, TimingBudget, interleaved_speedup, throughput
from .measure.workload import BOTH_PHASES, PHASES, Workload, make_workload
from .peers import PeerUnavailable, build_peer, peer_flops
from .schema import Measurement, failure, measure_into

FLOP_RATES = ("achieved_flop_per_s", "fraction_of_peak")  # throughput rows that need the FLOP counts


def measure_cost(cell: Cell, rows: list[Measurement], scratch: Path, budget: TimingBudget) -> None:
    """Append rows as each measurement finishes. Each measurement fails on its own (a row with its phase,
    metric, status and message) and the others are still taken; only a model that cannot be built fails
    the cell.

    FLOPs and parameters are counted on the fp32 eager model (no execution option changes them); memory
    and throughput under the cell's execution option (memory format, autocast dtype, compilation).
    """
    assert cell.spec is not None
    rows.append(Measurement("env", "loadavg_1min", os.getloadavg()[0], "processes", "os.getloadavg"))
    try:
        workload = _workload(cell)
    except PeerUnavailable as err:
        rows.append(failure("cell", "skipped", str(err)))
        return
    measure_into(rows, "model", "params", lambda: _params(cell, workload))
    flop_rows = measure_into(rows, "forward,train_step", "flops", lambda: _flops(cell, workload))
    execution = Execution(cell.memory_format, cell.dtype, cell.compile)
    executed = apply(workload, execution)
    if execution.compile:
        measure_into(rows, BOTH_PHASES, "compile_seconds", lambda: compile_seconds(executed))
    measure_into(rows, "train_step", "saved_tensor_bytes", lambda: _saved_tensors(executed))
    peak_metric = "peak_allocated_bytes" if cell.device.startswith("cuda") else "peak_rss_bytes"
    measure_into(rows, BOTH_PHASES, peak_metric, lambda: _peak_memory(cell, executed, scratch))
    measure_into(rows, BOTH_PHASES, "seconds_per_iter", lambda: _throughput(cell, executed, budget, flop_rows))
    if cell.peer:
        measure_into(rows, BOTH_PHASES, "ours_speedup", lambda: _ours_speedup(cell, executed, budget))


def _workload(cell: Cell) -> Workload:
    if cell.peer:
        return make_workload(cell.spec, cell.batch_size, cell.device, build_model=functools.partial(build_peer, cell.peer))
    return make_workload(cell.spec, cell.batch_size, cell.device)


def _params(cell: Cell, workload: Workload) -> list[Measurement]:
    if cell.peer:  # a peer has none of our block types: totals only
        return [Measurement("model", "params", float(sum(p.numel() for p in workload.model.parameters())),
                            "count", "numel")]
    return count_params(workload.model)


def _flops(cell: Cell, workload: Workload) -> list[Measurement]:
    count = peer_flops if cell.peer else count_flops
    return count(workload.model, workload.x0, workload.sigma)


def _saved_tensors(workload: ExecutedWorkload) -> Measurement:
    if workload.execution.compile:
        return _skipped("train_step", "saved_tensor_bytes", "bytes", "saved_tensors_hooks",
                        "a compiled step's saved tensors are chosen by its compiler, out of the hooks' sight")
    with workload.autocast():
        return saved_tensor_bytes(workload)


def _peak_memory(cell: Cell, workload: ExecutedWorkload, scratch: Path) -> list[Measurement]:
    if cell.device.startswith("cuda"):
        return cuda_peak_memory(workload)
    if cell.peer or not workload.execution.is_default:
        return [_skipped(phase, "peak_rss_bytes", "bytes", "VmHWM-net-of-baseline",
                         "the peak-RSS worker rebuilds our U-Net in fp32 eager contiguous only") for phase in PHASES]
    return cpu_peak_rss(cell.spec, cell.batch_size, cell.threads, scratch)


def _throughput(cell: Cell, workload: ExecutedWorkload, budget: TimingBudget,
                flop_rows: list[Measurement]) -> list[Measurement]:
    """Timed even when the FLOPs could not be counted; then the FLOP/s rows say why they are missing."""
    flops = model_flops(flop_rows)
    rows = throughput(workload, budget, flops, MatmulPeak(cell.device, getattr(torch, cell.dtype)))
    if all(map(math.isfinite, flops.values())):
        return rows
    why = "no FLOP count: its measurement failed (see the flops row of status error)"
    return [dataclasses.replace(r, value=float("nan"), status="skipped", message=why) if r.metric in FLOP_RATES else r
            for r in rows]


def _ours_speedup(cell: Cell, peer: ExecutedWorkload, budget: TimingBudget) -> list[Measurement]:
    """Our U-Net at the spec this peer approximates, under the same execution option, timed against it."""
    ours = apply(make_workload(cell.spec, cell.batch_size, cell.device), peer.execution)
    return interleaved_speedup(ours, peer, budget)


def _skipped(phase: str, metric: str, unit: str, method: str, why: str) -> Measurement:
    return Measurement(phase, metric, float("nan"), unit, method, status="skipped", message=why)


def model_flops(flop_rows: list[Measurement]) -> dict[str, float]:
    """FLOPs per iteration of each timed phase (2 per multiply-add), for achieved FLOP/s; NaN where they
    were not counted.

    Model FLOPs, not hardware FLOPs: checkpointing's recompute is overhead, so it lowers utilisation.
    """
    totals = {(r.phase, r.metric): r.value for r in flop_rows
              if r.block == "total" and r.unit == "FLOP" and r.method == "torch.utils.flop_counter"}
    return {"inference": totals.get(("forward", "flops"), math.nan),
            "train_step": totals.get(("train_step", "model_flops"), math.nan)}
