"""Throughput of a training step and of inference, and the matmul peak it is compared against.

``torch.utils.benchmark.Timer`` pins the thread count and synchronises CUDA around each block; each
repeat is one row, so medians and IQRs are computed from raw observations downstream.
"""
from __future__ import annotations

import logging
import math
import statistics
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# Importing torch.utils.benchmark loads cpp_extension, which warns on every CPU-only machine that it
# found no CUDA runtime; that warning is about compiling extensions, which we never do.
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
import torch.utils.benchmark as tbench  # noqa: E402

from bench.schema import Measurement

from .workload import PHASES, Workload

METHOD = "torch.utils.benchmark"
INTERLEAVED = "interleaved A/B blocks, torch.utils.benchmark"


@dataclass(frozen=True)
class TimingBudget:
    warmup: int = 2            # untimed calls first: allocator, oneDNN/cuDNN algorithm choice
    min_repeats: int = 5       # enough for a median and an IQR
    min_run_time: float = 2.0  # seconds of timed work per phase, at least
    max_run_time: float = 8.0  # stop adding repeats after this, even if still noisy

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.min_repeats < 3 or not 0 < self.min_run_time <= self.max_run_time:
            raise ValueError(f"timing budget {self} is invalid; valid: warmup >= 0, min_repeats >= 3, "
                             "0 < min_run_time <= max_run_time")


def time_repeats(fn, threads: int, budget: TimingBudget, label: str) -> list[float]:
    """Seconds per call, one entry per timed block; at least ``min_repeats`` blocks."""
    for _ in range(budget.warmup):
        fn()
    timer = tbench.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads, label=label)
    measured = timer.adaptive_autorange(threshold=0.05, min_run_time=budget.min_run_time,
                                        max_run_time=budget.max_run_time)
    times = list(measured.times)
    while len(times) < budget.min_repeats:
        times.extend(timer.timeit(number=measured.number_per_run).times)
    return times


def throughput(workload: Workload, threads: int, budget: TimingBudget, flops: dict[str, float],
               peak_flop_per_s: float) -> list[Measurement]:
    """Per phase and repeat: seconds per iteration, images/s, achieved FLOP/s and its fraction of the peak.

    ``flops`` maps a phase to its FLOPs per iteration (torch.utils.flop_counter, 2 per multiply-add).
    """
    rows = []
    for phase in PHASES:
        times = time_repeats(workload.phase(phase), threads, budget, label=phase)
        for repeat, seconds in enumerate(times):
            common = dict(method=METHOD, repeat=repeat, n=workload.batch_size)
            achieved = flops[phase] / seconds
            rows += [
                Measurement(phase, "seconds_per_iter", seconds, "s", **common),
                Measurement(phase, "images_per_s", workload.batch_size / seconds, "images/s", **common),
                Measurement(phase, "achieved_flop_per_s", achieved, "FLOP/s", **common),
                Measurement(phase, "fraction_of_peak", achieved / peak_flop_per_s, "ratio", **common),
            ]
    return rows


def interleaved_speedup(ours: Workload, peer: Workload, threads: int, budget: TimingBudget) -> list[Measurement]:
    """Our throughput over a peer's, per phase, from alternating timed blocks of the two models in this one
    process: one row per round (peer time / our time; above 1, ours is faster).

    Cells run minutes apart on a shared machine can see it at different speeds; within a round both models
    see the same machine, so that drift cancels out of the round's ratio. The order alternates between
    rounds (ABBA), so a steady trend favours neither.
    """
    rows = []
    for phase in PHASES:
        calls = {"ours": ours.phase(phase), "peer": peer.phase(phase)}
        for call in calls.values():
            for _ in range(max(1, budget.warmup)):
                call()
        timers = {name: tbench.Timer(stmt="fn()", globals={"fn": call}, num_threads=threads, label=name)
                  for name, call in calls.items()}
        once = timers["peer"].timeit(number=1).mean
        number = max(1, math.ceil(0.1 / once))  # blocks of at least ~0.1 s, so timer overhead is negligible
        rounds = max(budget.min_repeats, math.ceil(budget.min_run_time / (2 * number * once)))
        for repeat in range(rounds):
            order = ("ours", "peer") if repeat % 2 else ("peer", "ours")
            seconds = {name: timers[name].timeit(number=number).mean for name in order}
            rows.append(Measurement(phase, "ours_speedup", seconds["peer"] / seconds["ours"], "ratio", INTERLEAVED,
                                    repeat=repeat, n=ours.batch_size))
    return rows


MATMULS = ("torch.mm", "1x1 conv, channels_last")


def matmul_peak(device: str, dtype: torch.dtype, threads: int, budget: TimingBudget,
                size: int = 2048) -> list[Measurement]:
    """FLOP/s of a square matmul of the cell's dtype on the cell's device, one row per repeat, computed two
    ways: ``torch.mm`` (MKL or cuBLAS) and the same product as a 1x1 convolution over channels_last inputs
    (oneDNN or cuDNN). Convolutions run on the second library, which can be the faster one (on a 2-core AMD
    EPYC oneDNN reached ~205 GFLOP/s where MKL's sgemm reached ~185): the peak is the faster median."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    x, w = matmul_as_conv(a, b)
    products = {MATMULS[0]: lambda: torch.mm(a, b), MATMULS[1]: lambda: F.conv2d(x, w)}
    flop = 2 * size**3
    rows = []
    for how, product in products.items():
        times = time_repeats(product, threads, budget, label=f"matmul_peak {how}")
        rows += [Measurement("calibration", "matmul_peak_flop_per_s", flop / t, "FLOP/s", f"{METHOD}, {how}",
                             repeat=r, n=size) for r, t in enumerate(times)]
    return rows


def matmul_as_conv(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Input (1, K, M, 1) and weight (N, K, 1, 1), channels_last, whose 1x1 convolution is ``(a @ b).t()``
    laid out as (1, N, M, 1): out[n, m] = sum_k b[k, n] a[m, k]."""
    (m, k), (_, n) = a.shape, b.shape
    x = a.t().reshape(1, k, m, 1).contiguous(memory_format=torch.channels_last)
    w = b.t().reshape(n, k, 1, 1).contiguous(memory_format=torch.channels_last)
    return x, w


def peak_flop_per_s(rows: list[Measurement]) -> float:
    """The machine's measured peak: the faster of the matmul implementations' medians."""
    by_method: dict[str, list[float]] = {}
    for row in rows:
        by_method.setdefault(row.method, []).append(row.value)
    return max(statistics.median(values) for values in by_method.values())
