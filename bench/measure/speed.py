"""Throughput of a training step and of inference, and the matmul peak it is compared against.

Timing is by blocks of calls between two ``time.perf_counter`` readings, CUDA synchronised at both ends,
after warm-up calls made once per function. ``torch.utils.benchmark.Timer.timeit`` would make two untimed
calls before every block, tripling the cost of the interleaved repeats below; torch's thread count is
pinned by the caller (every cell's worker pins it for the whole process). Each repeat is one row, so
medians and IQRs are computed from raw observations downstream.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from bench.schema import Measurement

from .workload import PHASES, Workload

METHOD = "time.perf_counter blocks, CUDA-synchronised"
INTERLEAVED = f"interleaved A/B {METHOD}"
MATMULS = ("torch.mm", "1x1 conv, channels_last")


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

    def done(self, times: list[float], number: int) -> bool:
        """Enough blocks of ``number`` calls, ``times`` seconds per call each: ``min_repeats`` blocks and
        ``min_run_time`` of timed work, then an IQR within 5% of the median or ``max_run_time`` spent."""
        spent = number * sum(times)
        if len(times) < self.min_repeats or spent < self.min_run_time:
            return False
        q1, _, q3 = statistics.quantiles(times, n=4)
        return q3 - q1 <= 0.05 * statistics.median(times) or spent >= self.max_run_time


class BlockTimer:
    """Seconds per call of ``fn``, one block of calls at a time; ``warmup`` untimed calls first, then as many
    calls per block as make a block last at least ``block_seconds`` (one timed call decides)."""

    def __init__(self, fn: Callable[[], object], device: torch.device, warmup: int, block_seconds: float) -> None:
        self.fn, self.device, self.number = fn, torch.device(device), 1
        for _ in range(warmup):
            fn()
        self.number = max(1, math.ceil(block_seconds / self()))

    def __call__(self) -> float:
        self._synchronize()
        start = time.perf_counter()
        for _ in range(self.number):
            self.fn()
        self._synchronize()
        return (time.perf_counter() - start) / self.number

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def matmul_as_conv(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Input (1, K, M, 1) and weight (N, K, 1, 1), channels_last, whose 1x1 convolution is ``(a @ b).t()``
    laid out as (1, N, M, 1): out[n, m] = sum_k b[k, n] a[m, k]."""
    (m, k), (_, n) = a.shape, b.shape
    x = a.t().reshape(1, k, m, 1).contiguous(memory_format=torch.channels_last)
    w = b.t().reshape(n, k, 1, 1).contiguous(memory_format=torch.channels_last)
    return x, w


class MatmulPeak:
    """The yardstick of achieved FLOP/s: a square matmul of the cell's dtype on the cell's device, computed
    two ways, ``torch.mm`` (MKL, cuBLAS) and the same product as a channels_last 1x1 convolution (oneDNN,
    cuDNN). Convolutions run on the second library, which can be the faster one (on a 2-core AMD EPYC
    oneDNN reached ~205 GFLOP/s where MKL's sgemm reached ~185); the peak is the faster of the two."""

    def __init__(self, device: str, dtype: torch.dtype, size: int = 2048) -> None:
        a = torch.randn(size, size, device=device, dtype=dtype)
        b = torch.randn(size, size, device=device, dtype=dtype)
        x, w = matmul_as_conv(a, b)
        products = {MATMULS[0]: lambda: torch.mm(a, b), MATMULS[1]: lambda: F.conv2d(x, w)}
        self.size, self.flop, self.repeat = size, 2 * size**3, 0
        self.timers = {how: BlockTimer(product, a.device, warmup=1, block_seconds=0.02)
                       for how, product in products.items()}

    def measure(self) -> tuple[float, list[Measurement]]:
        """One timed block of each implementation: the peak FLOP/s now, and a calibration row for each."""
        rows = []
        for how, timer in self.timers.items():
            flop_per_s = self.flop / timer()
            rows.append(Measurement("calibration", "matmul_peak_flop_per_s", flop_per_s, "FLOP/s", f"{METHOD}, {how}",
                                    repeat=self.repeat, n=self.size))
        self.repeat += 1
        return max(r.value for r in rows), rows


def throughput(workload: Workload, budget: TimingBudget, flops: dict[str, float],
               peak: MatmulPeak) -> list[Measurement]:
    """Per phase and repeat: seconds per iteration, images/s, achieved FLOP/s, and its fraction of the
    matmul peak measured right after that repeat (whose calibration rows are kept too).

    A shared machine's speed changes within seconds: a peak taken once per cell compared one spell with
    another, and gave the same model fractions from 0.5 to 1.4. Side by side, both see the same machine.
    ``flops`` maps a phase to its FLOPs per iteration (torch.utils.flop_counter, 2 per multiply-add).
    """
    rows = []
    for phase in PHASES:
        timer = BlockTimer(workload.phase(phase), workload.x0.device, budget.warmup, block_seconds=0.1)
        times: list[float] = []
        while not budget.done(times, timer.number):
            seconds = timer()
            peak_flop_per_s, calibration = peak.measure()
            times.append(seconds)
            achieved = flops[phase] / seconds
            common = dict(method=METHOD, repeat=len(times) - 1, n=workload.batch_size)
            rows += [
                Measurement(phase, "seconds_per_iter", seconds, "s", **common),
                Measurement(phase, "images_per_s", workload.batch_size / seconds, "images/s", **common),
                Measurement(phase, "achieved_flop_per_s", achieved, "FLOP/s", **common),
                Measurement(phase, "fraction_of_peak", achieved / peak_flop_per_s, "ratio", **common),
                *calibration,
            ]
    return rows


def interleaved_speedup(ours: Workload, peer: Workload, budget: TimingBudget) -> list[Measurement]:
    """Our throughput over a peer's, per phase, from alternating timed blocks of the two models in this one
    process: one row per round (peer time / our time; above 1, ours is faster).

    Cells run minutes apart on a shared machine can see it at different speeds; within a round both models
    see the same machine, so that drift cancels out of the round's ratio. The order alternates between
    rounds (ABBA), so a steady trend favours neither.
    """
    rows = []
    for phase in PHASES:
        warmup = max(1, budget.warmup)
        timers = {name: BlockTimer(workload.phase(phase), workload.x0.device, warmup, block_seconds=0.1)
                  for name, workload in (("ours", ours), ("peer", peer))}
        seconds: dict[str, list[float]] = {"ours": [], "peer": []}
        while not budget.done(seconds["peer"], 2 * timers["peer"].number):
            order = ("ours", "peer") if len(seconds["peer"]) % 2 else ("peer", "ours")
            for name in order:
                seconds[name].append(timers[name]())
            rows.append(Measurement(phase, "ours_speedup", seconds["peer"][-1] / seconds["ours"][-1], "ratio",
                                    INTERLEAVED, repeat=len(seconds["peer"]) - 1, n=ours.batch_size))
    return rows
