"""A cost cell: parameters, FLOPs and memory of one variant on one device (its speed is timed in rounds with
the other variants of its setting: bench/measure/timing_cell.py)."""
from __future__ import annotations

import os
from pathlib import Path

from bench.measure.execution import ExecutedWorkload, apply, compile_seconds
from bench.measure.flops import count_flops, total_flop_rows
from bench.measure.memory import RSS_METHOD, cpu_peak_rss, cuda_peak_memory, saved_tensor_bytes
from bench.measure.params import count_params
from bench.measure.workload import Workload, make_workload
from bench.models.peers import PeerUnavailable, model_builder
from bench.plan.cells import Cell
from bench.plan.execution import Execution
from bench.schema import (BOTH_COUNTED_PHASES, BOTH_TIMED_PHASES, FLOPS, MODEL, PARAMS, PEAK_ALLOCATED_BYTES,
                          PEAK_RSS_BYTES, SAVED_TENSOR_BYTES, TIMED_PHASES, TRAIN_STEP, Measurement, failure,
                          measure_into)


def measure_cost(cell: Cell, rows: list[Measurement], scratch: Path) -> None:
    """Append rows as each measurement finishes. Each measurement fails on its own (a row with its phase,
    metric, status and message) and the others are still taken; only a model that cannot be built fails
    the cell.

    FLOPs and parameters are counted on the fp32 eager model (no execution option changes them); memory
    and compilation time under the cell's execution option (memory format, autocast dtype, compilation).
    """
    assert cell.spec is not None
    rows.append(Measurement("env", "loadavg_1min", os.getloadavg()[0], "processes", "os.getloadavg"))
    try:
        workload = _workload(cell)
    except PeerUnavailable as err:
        rows.append(failure("cell", "skipped", str(err)))
        return
    measure_into(rows, MODEL, PARAMS, lambda: _params(cell, workload))
    measure_into(rows, BOTH_COUNTED_PHASES, FLOPS, lambda: _flops(cell, workload))
    execution = Execution.of(cell)
    executed = apply(workload, execution)
    if execution.compiled:
        measure_into(rows, BOTH_TIMED_PHASES, "compile_seconds", lambda: compile_seconds(executed))
    measure_into(rows, TRAIN_STEP, SAVED_TENSOR_BYTES, lambda: _saved_tensors(executed))
    peak_metric = PEAK_ALLOCATED_BYTES if cell.device.startswith("cuda") else PEAK_RSS_BYTES
    measure_into(rows, BOTH_TIMED_PHASES, peak_metric, lambda: _peak_memory(cell, executed, scratch))


def _workload(cell: Cell) -> Workload:
    return make_workload(cell.spec, cell.batch_size, cell.device, build_model=model_builder(cell.peer))


def _params(cell: Cell, workload: Workload) -> list[Measurement]:
    if cell.peer:  # a peer has none of our block types: totals only
        return [Measurement(MODEL, PARAMS, float(sum(p.numel() for p in workload.model.parameters())),
                            "count", "numel")]
    return count_params(workload.model)


def _flops(cell: Cell, workload: Workload) -> list[Measurement]:
    count = total_flop_rows if cell.peer else count_flops
    return count(workload.model, workload.x0, workload.sigma)


def _saved_tensors(workload: ExecutedWorkload) -> Measurement:
    if workload.execution.compiled:
        return _skipped(TRAIN_STEP, SAVED_TENSOR_BYTES, "bytes", "saved_tensors_hooks",
                        "a compiled step's saved tensors are chosen by its compiler, out of the hooks' sight")
    with workload.autocast():
        return saved_tensor_bytes(workload)


def _peak_memory(cell: Cell, workload: ExecutedWorkload, scratch: Path) -> list[Measurement]:
    if cell.device.startswith("cuda"):
        return cuda_peak_memory(workload)
    if cell.peer or not workload.execution.is_default:
        return [_skipped(phase, PEAK_RSS_BYTES, "bytes", RSS_METHOD,
                         "the peak-RSS worker rebuilds our U-Net in fp32 eager contiguous only")
                for phase in TIMED_PHASES]
    return cpu_peak_rss(cell.spec, cell.batch_size, cell.threads, scratch)


def _skipped(phase: str, metric: str, unit: str, method: str, why: str) -> Measurement:
    return Measurement(phase, metric, float("nan"), unit, method, status="skipped", message=why)

