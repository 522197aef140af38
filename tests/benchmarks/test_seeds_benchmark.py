"""Seed-trainings per CPU-minute: K one-seed quality cells against one cell training the K seeds together
(bench/measure/quality/packed.py), side by side in one run, each cell in its own spawned worker process exactly
as a sweep runs it (process start, data, classifier from the cache, training, held-out evaluations, sampling,
scoring, sample grids), on one thread, in ABBA order.

    BENCH_SEEDS=4 BENCH_SEED_STEPS=1500 flock /tmp/cpu.lock python -m pytest --benchmark-only \
        tests/benchmarks/test_seeds_benchmark.py -s

prints the CPU seconds per seed of both and their ratio (also in the benchmark's extra_info); by default at 300
steps (seed_presets.py). A benchmark, not a test: it asserts nothing about speed.
"""
from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

import pytest

from bench.plan.cells import Cell
from bench.run.worker import run_cell
from bench.store.importer import COMPARISON

SEEDS = int(os.environ.get("BENCH_SEEDS", "4"))
REPEATS = int(os.environ.get("BENCH_SEED_REPEATS", "1"))  # each an A B B A block


@pytest.fixture(autouse=True)
def only_when_benchmarking(request):
    if not request.config.getoption("benchmark_only"):
        pytest.skip("a timing benchmark: run it with `pytest --benchmark-only`")


def _cpu_seconds(cells: list[Cell], run_dir: Path, cache: Path) -> float:
    """CPU seconds (user + system) of the worker processes that run ``cells`` one after the other."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for cell in cells:
        result = run_cell(cell, run_dir, ("seed_presets",), {"cache_dir": str(cache), "rounds": {}})
        assert all(r.status == "ok" for r in result.rows), [r.message for r in result.rows if r.status != "ok"]
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def test_seed_trainings_per_cpu_minute(benchmark, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # the workers import the plugin from here too
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parent), *sys.path]))
    import seed_presets

    from bench.plan.quality_presets import QUALITY_PRESETS

    config = QUALITY_PRESETS[seed_presets.PRESET]
    common = dict(device="cpu", threads=1, quality=seed_presets.PRESET, dataset=config.dataset,
                  base_config="digits8_ch16")
    seeds = tuple(range(SEEDS))
    one_by_one = [Cell("quality", config.base, seed=s, **common) for s in seeds]
    together = [Cell("quality", config.base, seed=seeds[0], seeds=seeds, **common)]
    cache = tmp_path / "cache"
    _cpu_seconds([Cell("floor", None, seed=0, **common)], tmp_path, cache)  # trains and caches the classifier
    spent = {"one by one": [], "together": []}

    def measure() -> None:
        for _ in range(REPEATS):
            for name, cells in (("one by one", one_by_one), ("together", together), ("together", together),
                                ("one by one", one_by_one)):
                spent[name].append(_cpu_seconds(cells, tmp_path, cache) / SEEDS)

    benchmark.pedantic(measure, rounds=1, iterations=1)
    serial, packed = (sum(v) / len(v) for v in (spent["one by one"], spent["together"]))
    benchmark.extra_info.update(kind=COMPARISON, seeds=SEEDS, train_steps=config.train_steps, repeats=REPEATS,
                                cpu_seconds_per_seed=spent, ratio=serial / packed)
    print(f"\n{SEEDS} seeds x {config.train_steps} steps, CPU seconds per seed: one by one "
          f"{[round(v, 1) for v in spent['one by one']]}, together {[round(v, 1) for v in spent['together']]}; "
          f"seed-trainings per CPU-minute: {60 / serial:.2f} one by one, {60 / packed:.2f} together, "
          f"ratio x{serial / packed:.2f}")
