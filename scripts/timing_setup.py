"""What a timing process pays before its first round, step by step, and how many calls a model needs to reach its
steady time (docs/timing.md, "What a process pays before its first round").

    .venv/bin/python scripts/timing_setup.py [--preset quick] [--base fmnist28] [--threads 2] [--calls 7]

``steps``: a first process (it counts FLOPs, records attention kernels, warms up and sizes the blocks) and a later
one (given the first's counts), each in a fresh interpreter, running the real RoundTimer with each of its steps
wrapped in a clock, then one round. ``calls``: in a fresh interpreter, every member built, then ``--calls`` rounds
with no warm-up, one call per phase and member in the rounds' order, each call timed: call k against the median of
the calls from the fourth on. Seconds are wall time on this machine; run it alone.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where a probe runs: the parent process only spawns and prints
    from bench.plan.cells import Cell
    from bench.plan.sweep import RoundsBudget

ROOT = Path(__file__).resolve().parent.parent
STEPS = {"make_workload": "build", "timed_phase_flops": "count FLOPs", "sdpa_rows": "attention kernels",
         "_memory_rows": "memory of holding them", "MatmulPeak": "matmul peak"}


def timing_cell(preset: str, base: str) -> tuple[Cell, RoundsBudget]:
    from bench.plan.options import SweepOptions
    from bench.plan.planner import make_plan
    from bench.schema import Kind

    plan = make_plan(SweepOptions(preset=preset, out=Path("unused"), devices=("cpu",)))
    cell = next(c for c in plan.cells if c.kind == Kind.TIMING and c.base_config == base and not c.compile)
    return cell, plan.sweep.rounds


def one_process(preset: str, base: str, threads: int, counted_json: str, started: float) -> None:
    """A timing process's set-up, its steps timed (prints one JSON line)."""
    import collections
    import functools

    spent: dict[str, float] = collections.defaultdict(float)
    spent["spawn and imports"] = -started
    import torch

    from bench.measure import rounds
    spent["spawn and imports"] += time.time()
    torch.set_num_threads(threads)

    def clocked(name, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - start
        return wrapper

    for attribute, name in STEPS.items():
        setattr(rounds, attribute, clocked(name, getattr(rounds, attribute)))

    class ClockedBlockTimer(rounds.BlockTimer):
        """BlockTimer's own set-up, each call it makes on a clock: the first ``warmup`` warm up, a further one
        sizes the blocks (none where ``number`` is given)."""

        def __init__(self, fn, device, warmup, block_seconds, number=None):
            made = itertools.count()

            def each_call():
                start = time.perf_counter()
                fn()
                spent["warm-up" if next(made) < warmup else "block sizing"] += time.perf_counter() - start

            super().__init__(each_call, device, warmup, block_seconds, number)
            self.fn = fn  # the rounds' calls go unclocked

    rounds.BlockTimer = ClockedBlockTimer
    cell, budget = timing_cell(preset, base)
    counted = json.loads(counted_json)
    counted = {int(k): rounds.Counted(**v) for k, v in counted.items()} if counted else None
    start = time.perf_counter()
    timer = rounds.RoundTimer(cell, budget, list(range(len(cell.members))), counted, 0 if counted is None else 1)
    spent["set-up, in all"] = time.perf_counter() - start
    start = time.perf_counter()
    timer.round(0)
    spent["one round"] = time.perf_counter() - start
    print("JSON" + json.dumps({"spent": spent, "members": len(cell.members), "warmup": budget.warmup,
                               "counted": rounds.plain_counts(timer.counted)}))


def steps(preset: str, base: str, threads: int) -> None:
    counted = "null"  # JSON: the first process counts
    for process in ("first", "later"):
        started = time.time()
        code = (f"import sys; sys.path.insert(0, {str(ROOT / 'scripts')!r}); import timing_setup as t; "
                f"t.one_process({preset!r}, {base!r}, {threads}, {counted!r}, {started!r})")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                                env=os.environ | {"PYTHONPATH": str(ROOT)})
        line = next((x for x in result.stdout.splitlines() if x.startswith("JSON")), None)
        if line is None:
            sys.exit(result.stderr[-3000:])
        data = json.loads(line[4:])
        counted = json.dumps(data["counted"])
        wall = time.time() - started
        print(f"{process} process, {data['members']} members, warmup {data['warmup']}, wall {wall:.1f} s:")
        for name, seconds in data["spent"].items():
            print(f"  {name:28s} {seconds:7.2f} s")


def calls(preset: str, base: str, threads: int, count: int) -> None:
    import numpy as np
    import torch

    from bench.measure.execution import prepare
    from bench.measure.rounds import round_order
    from bench.measure.workload import make_workload
    from bench.plan.execution import Execution
    from bench.schema import TIMED_PHASES

    torch.set_num_threads(threads)
    cell, _ = timing_cell(preset, base)
    models = [prepare(make_workload(m.spec, m.batch_size, m.device), Execution.of(m)) for m in cell.members]
    seconds = np.zeros((count, len(models), len(TIMED_PHASES)))
    for r in range(count):
        for i in round_order(len(models), 0, r):
            for j, phase in enumerate(TIMED_PHASES):
                call = models[i].phase(phase)
                start = time.perf_counter()
                call()
                seconds[r, i, j] = time.perf_counter() - start
    relative = seconds / np.median(seconds[3:], axis=0)
    for j, phase in enumerate(TIMED_PHASES):
        print(f"{phase}: call k / the member's median of calls 4-{count}, median [min, max] over {len(models)} members")
        for r in range(count):
            print(f"  call {r + 1}: {np.median(relative[r, :, j]):.3f} [{relative[r, :, j].min():.3f}, "
                  f"{relative[r, :, j].max():.3f}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--base", default="fmnist28", help="the network whose timing cell is probed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calls", type=int, default=7, help="calls per phase in the steadiness probe (at least 5)")
    args = parser.parse_args()
    if args.calls < 5:
        parser.error(f"--calls {args.calls} is invalid; valid: at least 5 (calls 4 on are the steady reference)")
    steps(args.preset, args.base, args.threads)
    calls(args.preset, args.base, args.threads, args.calls)


if __name__ == "__main__":
    main()
