"""Block timers and the matmul peak that achieved FLOP/s is compared against.

A timed block is a run of calls between two ``time.perf_counter`` readings, CUDA synchronised at both ends,
after warm-up calls made once per function. ``time.process_time`` is read beside it: the process's CPU time
over the same block, so a block slowed by a busy neighbour (wall time up, CPU time not) can be told from a
slower model (both up). ``torch.utils.benchmark.Timer.timeit`` would make two untimed calls before every
block; torch's thread count is pinned by the caller (every cell's worker pins it for the whole process).
"""
from __future__ import annotations

import math
import time
from typing import Callable

import torch
import torch.nn.functional as F

from bench.schema import Measurement

WALL_METHOD = "time.perf_counter blocks, CUDA-synchronised"
CPU_TIME_METHOD = "time.process_time blocks (all threads of the process)"
MATMULS = ("torch.mm", "1x1 conv, channels_last")


class BlockTimer:
    """Seconds per call of ``fn``, one block of calls at a time; ``warmup`` untimed calls first, then as many
    calls per block as make a block last at least ``block_seconds`` (one timed call decides), or ``number``
    calls where the caller already knows how many."""

    def __init__(self, fn: Callable[[], object], device: torch.device | str, warmup: int,
                 block_seconds: float, number: int | None = None) -> None:
        self.fn, self.device, self.number = fn, torch.device(device), 1
        for _ in range(warmup):
            fn()
        self.number = number or max(1, math.ceil(block_seconds / self()[0]))

    def __call__(self) -> tuple[float, float]:
        """(wall seconds, CPU seconds) per call over one block."""
        self._synchronize()
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(self.number):
            self.fn()
        self._synchronize()
        return (time.perf_counter() - start) / self.number, (time.process_time() - cpu_start) / self.number

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
    cuDNN). Convolutions run on the second library, which can be the faster one (as measured: docs/columns.md,
    ``matmul_peak_flop_per_s``); the peak is the faster of the two."""

    def __init__(self, device: str, dtype: torch.dtype, size: int = 2048) -> None:
        a = torch.randn(size, size, device=device, dtype=dtype)
        b = torch.randn(size, size, device=device, dtype=dtype)
        x, w = matmul_as_conv(a, b)
        products = {MATMULS[0]: lambda: torch.mm(a, b), MATMULS[1]: lambda: F.conv2d(x, w)}
        self.size, self.flop = size, 2 * size**3
        self.timers = {how: BlockTimer(product, a.device, warmup=1, block_seconds=0.02)
                       for how, product in products.items()}

    def measure(self, repeat: int) -> tuple[float, list[Measurement]]:
        """One timed block of each implementation: the peak FLOP/s now, and a calibration row for each."""
        rows = []
        for how, timer in self.timers.items():
            flop_per_s = self.flop / timer()[0]
            rows.append(Measurement("calibration", "matmul_peak_flop_per_s", flop_per_s, "FLOP/s",
                                    f"{WALL_METHOD}, {how}",
                                    repeat=repeat, n=self.size))
        return max(r.value for r in rows), rows
