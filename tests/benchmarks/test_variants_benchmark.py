"""pytest-benchmark timings of every variant: a training step and an inference forward, per device.

Run with ``pytest --benchmark-only`` (add ``--benchmark-json=FILE --benchmark-save-data`` to keep every
round, then ``python -m bench import FILE``). Skipped in every other run, ``--benchmark-skip`` included.
The size is small on purpose. ``BENCH_THREADS`` pins torch's CPU threads (default 1: on a shared
2-core machine 2 threads made this inference much slower and noisier; by how much: docs/cli.md, pytest-benchmark).
"""
from __future__ import annotations

import os
from functools import cache

import pytest
import torch

from bench.measure.flops import flop_counter_flops
from bench.measure.memory import saved_tensor_bytes
from bench.measure.params import count_params
from bench.measure.workload import make_workload
from bench.plan.designs import grid
from bench.schema import TIMED_PHASES
from variants import UNetSpec

BASE = UNetSpec(in_dim=8, in_ch=1, out_ch=1, ch=32, ch_mult=(1, 2), attn_resolutions=(8,), norm_groups=8)
BATCH = 4
ROUNDS, WARMUP_ROUNDS = 10, 2
THREADS = int(os.environ.get("BENCH_THREADS", "1"))
VARIANTS = list(grid(BASE))
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"))]


@pytest.fixture(autouse=True)
def only_when_benchmarking(request):
    if not request.config.getoption("benchmark_only"):
        pytest.skip("a timing benchmark: run it with `pytest --benchmark-only`")


@pytest.fixture
def pinned_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield THREADS
    torch.set_num_threads(threads)


@cache
def flop_counts(spec: UNetSpec, phase: str) -> dict[str, int]:
    """FlopCounterMode FLOPs per iteration (meta device, so the same on every device)."""
    workload = make_workload(spec, BATCH)
    x, sigma = workload.x0, workload.sigma
    if phase == "inference":
        return {"flops": flop_counter_flops(workload.model, x, sigma, "forward")[0]}
    counts = {"flops": flop_counter_flops(workload.model, x, sigma, "train_step")[0]}
    plain = make_workload(spec.replace(checkpoint=False), BATCH).model
    counts["model_flops"] = flop_counter_flops(plain, x, sigma, "train_step")[0]
    return counts


@pytest.mark.parametrize("spec", VARIANTS, ids=[s.name for s in VARIANTS])
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("phase", TIMED_PHASES)
def test_variant(benchmark, pinned_threads, phase, device, spec):
    workload = make_workload(spec, BATCH, device)
    benchmark.group = f"{phase}-{device}"
    benchmark.extra_info.update(
        spec=spec.to_json(), variant=spec.name, phase=phase, device=device, dtype="float32", batch_size=BATCH,
        device_name=torch.cuda.get_device_name(device) if device == "cuda" else "cpu", torch_threads=pinned_threads,
        params=next(r.value for r in count_params(workload.model) if r.block == "total"), **flop_counts(spec, phase),
    )
    if phase == "train_step":
        benchmark.extra_info["saved_tensor_bytes"] = saved_tensor_bytes(workload).value

    run = workload.phase(phase)

    def timed() -> None:
        run()
        if device == "cuda":
            torch.cuda.synchronize()  # pytest-benchmark's clock does not wait for the GPU

    benchmark.pedantic(timed, rounds=ROUNDS, warmup_rounds=WARMUP_ROUNDS, iterations=1)
