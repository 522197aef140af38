"""A cost cell: parameters, FLOPs and memory of one variant on one device (its speed is timed in rounds with
the other variants of its setting: bench/measure/rounds.py)."""
from __future__ import annotations

import functools
import os
from pathlib import Path

from .cells import Cell
from .measure.execution import Execution, apply, compile_seconds
from .measure.flops import count_flops
from .measure.memory import cpu_peak_rss, cuda_peak_memory, saved_tensor_bytes
from .measure.params import count_params
from .measure.workload import PHASES, make_workload
from .peers import PeerUnavailable, build_peer, peer_flops
from .schema import Measurement, failure


def measure_cost(cell: Cell, rows: list[Measurement], scratch: Path) -> None:
    """Append rows as each measurement finishes, so a failure keeps what came before it.

    FLOPs and parameters are counted on the fp32 eager model (no execution option changes them); memory
    and compilation time under the cell's execution option (memory format, autocast dtype, compilation).
    """
    assert cell.spec is not None
    rows.append(Measurement("env", "loadavg_1min", os.getloadavg()[0], "processes", "os.getloadavg"))
    if cell.peer:
        try:
            workload = make_workload(cell.spec, cell.batch_size, cell.device,
                                     build_model=functools.partial(build_peer, cell.peer))
        except PeerUnavailable as err:
            rows.append(failure("cell", "skipped", str(err)))
            return
        # A peer has none of our block types: totals only.
        rows.append(Measurement("model", "params", float(sum(p.numel() for p in workload.model.parameters())),
                                "count", "numel"))
        rows += peer_flops(workload.model, workload.x0, workload.sigma)
    else:
        workload = make_workload(cell.spec, cell.batch_size, cell.device)
        rows += count_params(workload.model)
        rows += count_flops(workload.model, workload.x0, workload.sigma)
    execution = Execution(cell.memory_format, cell.dtype, cell.compile)
    workload = apply(workload, execution)
    if execution.compile:
        rows += compile_seconds(workload)
        rows.append(_skipped("train_step", "saved_tensor_bytes", "bytes", "saved_tensors_hooks",
                             "a compiled step's saved tensors are chosen by its compiler, out of the hooks' sight"))
    else:
        with workload.autocast():
            rows.append(saved_tensor_bytes(workload))
    if cell.device.startswith("cuda"):
        rows += cuda_peak_memory(workload)
    elif cell.peer or not execution.is_default:
        for phase in PHASES:
            rows.append(_skipped(phase, "peak_rss_bytes", "bytes", "VmHWM-net-of-baseline",
                                 "the peak-RSS worker rebuilds our U-Net in fp32 eager contiguous only"))
    else:
        rows += cpu_peak_rss(cell.spec, cell.batch_size, cell.threads, scratch)


def _skipped(phase: str, metric: str, unit: str, method: str, why: str) -> Measurement:
    return Measurement(phase, metric, float("nan"), unit, method, status="skipped", message=why)

