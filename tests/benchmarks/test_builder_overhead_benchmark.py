"""Does the builder's indirection cost speed? Our baseline against smalldiffusion's ``Unet`` at the identical
architecture (the FashionMNIST shape, ``fmnist28``): the CPU training step at batch 32, both models in one
process, in alternating rounds (ours first in even rounds, theirs first in odd ones) so drift hits both alike.

    flock /tmp/cpu.lock python -m pytest --benchmark-only tests/benchmarks/test_builder_overhead_benchmark.py -s

prints each model's median milliseconds per step and the per-round ratio theirs / ours (above 1: ours is
faster) as a median with its interquartile range, also kept in the benchmark's extra_info. ``BENCH_VS_ROUNDS``
(default 12) and ``BENCH_VS_THREADS`` (default 2) set the size. A benchmark, not a test: it asserts only that
the two networks are the same size, never a speed.
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch

from bench.measure.workload import make_workload
from bench.models.peers import get_peer
from bench.store.importer import COMPARISON
from variants import BASES

ROUNDS = int(os.environ.get("BENCH_VS_ROUNDS", "12"))
THREADS = int(os.environ.get("BENCH_VS_THREADS", "2"))
STEPS_PER_ROUND, WARMUP_STEPS, BATCH = 3, 2, 32


@pytest.fixture(autouse=True)
def only_when_benchmarking(request):
    if not request.config.getoption("benchmark_only"):
        pytest.skip("a timing benchmark: run it with `pytest --benchmark-only`")


def _seconds_per_step(step) -> float:
    start = time.perf_counter()
    for _ in range(STEPS_PER_ROUND):
        step()
    return (time.perf_counter() - start) / STEPS_PER_ROUND


def test_our_training_step_against_smalldiffusion(benchmark):
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    spec = BASES["fmnist28"]
    peer = get_peer("smalldiffusion").build
    models = {"ours": make_workload(spec, BATCH), "smalldiffusion": make_workload(spec, BATCH, build_model=peer)}
    params = {name: sum(p.numel() for p in w.model.parameters()) for name, w in models.items()}
    assert params["ours"] == params["smalldiffusion"], params  # the same architecture, or the ratio means nothing
    steps = {name: w.phase("train_step") for name, w in models.items()}
    seconds: dict[str, list[float]] = {name: [] for name in models}

    def measure() -> None:
        for step in steps.values():
            for _ in range(WARMUP_STEPS):
                step()
        for r in range(ROUNDS):
            for name in (list(steps) if r % 2 == 0 else list(steps)[::-1]):
                seconds[name].append(_seconds_per_step(steps[name]))

    try:
        benchmark.pedantic(measure, rounds=1, iterations=1)
    finally:
        torch.set_num_threads(threads)
    ratios = np.array(seconds["smalldiffusion"]) / np.array(seconds["ours"])
    q1, median, q3 = np.percentile(ratios, [25, 50, 75])
    benchmark.extra_info.update(kind=COMPARISON, base="fmnist28", batch_size=BATCH, torch_threads=THREADS,
                                rounds=ROUNDS, steps_per_round=STEPS_PER_ROUND, seconds_per_step=seconds,
                                params=params["ours"], ratio_median=median, ratio_q1=q1, ratio_q3=q3,
                                load_average=os.getloadavg()[0])
    print(f"\nCPU training step, fmnist28, batch {BATCH}, {THREADS} threads, {ROUNDS} alternating rounds of "
          f"{STEPS_PER_ROUND} steps: ours {np.median(seconds['ours']) * 1e3:.1f} ms, smalldiffusion "
          f"{np.median(seconds['smalldiffusion']) * 1e3:.1f} ms (medians); smalldiffusion / ours {median:.3f} "
          f"(IQR {q1:.3f}-{q3:.3f}); load average {os.getloadavg()[0]:.2f}")
