"""Memory of a training step and of inference.

- saved_tensor_bytes: bytes autograd keeps for backward in one training step (every tensor packed by
  ``saved_tensors_hooks``, which includes the block inputs non-reentrant checkpointing keeps for its recompute;
  parameters excluded; a storage shared by several saved tensors counted once). Exact and device-independent:
  this is what gradient checkpointing trades for recompute.
- CUDA: peak ``max_memory_allocated`` / ``max_memory_reserved`` of one step after resetting the peaks.
- CPU: peak resident set (``VmHWM`` after resetting it through ``/proc/self/clear_refs``) of one step in
  a fresh spawned process, net of that process's resident set just before the step. glibc is told to
  ``mmap`` every allocation over 64 KiB so freed tensors leave the resident set at once; without that,
  memory cached by ``malloc`` from the warm-up would hide the step's own peak.
"""
from __future__ import annotations

import gc
import importlib
import json
import os
from pathlib import Path

import torch

from bench.measure.processes import spawn_guarded
from bench.measure.workload import Workload, make_workload
from bench.models.sizes import saved_bytes
from bench.schema import (BOTH_TIMED_PHASES, INFERENCE, PEAK_ALLOCATED_BYTES, PEAK_RSS_BYTES, SAVED_TENSOR_BYTES,
                          TIMED_PHASES, TRAIN_STEP, Measurement, exception_failure)
from variants import AXES, UNetSpec

MMAP_THRESHOLD_BYTES = 65536
RSS_METHOD = "VmHWM-net-of-baseline"


def saved_tensor_bytes(workload: Workload) -> Measurement:
    model = workload.model.train()
    saved = saved_bytes(model, workload.x0, workload.sigma, workload.eps)
    return Measurement(TRAIN_STEP, SAVED_TENSOR_BYTES, float(saved), "bytes", "saved_tensors_hooks",
                       n=workload.batch_size)


def cuda_peak_memory(workload: Workload, warmup: int = 1) -> list[Measurement]:
    rows = []
    for phase in TIMED_PHASES:
        run = workload.phase(phase)
        for _ in range(warmup):
            run()
        torch.cuda.synchronize()
        gc.collect()
        torch.cuda.reset_peak_memory_stats()
        run()
        torch.cuda.synchronize()
        rows.append(Measurement(phase, PEAK_ALLOCATED_BYTES, float(torch.cuda.max_memory_allocated()), "bytes",
                                "torch.cuda.max_memory_allocated", n=workload.batch_size))
        rows.append(Measurement(phase, "peak_reserved_bytes", float(torch.cuda.max_memory_reserved()), "bytes",
                                "torch.cuda.max_memory_reserved", n=workload.batch_size))
    return rows


def cpu_peak_rss(spec: UNetSpec, batch_size: int, threads: int, scratch: Path) -> list[Measurement]:
    """Run the measurement in a fresh spawned process so nothing else this process did is counted."""
    out = scratch / f"rss-{spec.hash}-{os.getpid()}.json"
    proc = spawn_guarded("bench.measure.memory:_rss_worker", spec.to_json(), batch_size, threads, str(out),
                         _variant_modules(spec), MALLOC_MMAP_THRESHOLD_=str(MMAP_THRESHOLD_BYTES))
    proc.join()
    if proc.exitcode != 0 or not out.exists():
        raise RuntimeError(f"peak-RSS worker exited with code {proc.exitcode}")
    rows = [Measurement(**r) for r in json.loads(out.read_text())]
    out.unlink()
    return rows


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _variant_modules(spec: UNetSpec) -> tuple[str, ...]:
    """The modules that define the spec's variant classes and added axes: a spawned process must import a
    plugin's module (``--import``) again before its variants and axes are registered there."""
    modules = {axis.registry.get(getattr(spec, name)).__module__ for name, axis in AXES.items() if axis.registry}
    added = {AXES[name].configure.__module__ for name, _ in spec.extra_axes if AXES[name].configure is not None}
    return tuple(sorted(modules | added))


def _rss_worker(spec_json: str, batch_size: int, threads: int, out: str, modules: tuple[str, ...]) -> None:
    torch.set_num_threads(threads)
    for module in modules:
        importlib.import_module(module)
    try:
        rows = [r.as_dict() for r in _peak_rss_rows(UNetSpec.from_json(spec_json), batch_size)]
    except Exception as err:  # the parent keeps it as this measurement's failure row, status and place intact
        rows = [exception_failure(BOTH_TIMED_PHASES, err, PEAK_RSS_BYTES).as_dict()]
    Path(out).write_text(json.dumps(rows))


def _peak_rss_rows(spec: UNetSpec, batch_size: int) -> list[Measurement]:
    workload = make_workload(spec, batch_size)
    rows = []
    for phase in (INFERENCE, TRAIN_STEP):  # the smaller first: its peak cannot hide the larger
        run = workload.phase(phase)
        run()  # warm-up: lazy initialisation and AdamW state are not the step's own memory
        gc.collect()
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current VmRSS
        baseline = _status_kib("VmRSS")
        run()
        net = (_status_kib("VmHWM") - baseline) * 1024
        rows.append(_net_peak_row(phase, net, batch_size))
    return rows


def _net_peak_row(phase: str, net_bytes: int, batch_size: int) -> Measurement:
    """The step's peak over its baseline; none when the step did not lift the resident set above it. The resident
    set moves by pages as the interpreter itself allocates, so a step smaller than that reads zero or less, which is
    the limit of the method, not a size."""
    if net_bytes > 0:
        return Measurement(phase, PEAK_RSS_BYTES, float(net_bytes), "bytes", RSS_METHOD, n=batch_size)
    return Measurement(phase, PEAK_RSS_BYTES, float("nan"), "bytes", RSS_METHOD, n=batch_size, status="skipped",
                       message=f"below what the resident set resolves: the step's peak read {net_bytes / 1024:+.0f} "
                               "KiB from the resident set before it (a larger batch lifts it above)")
