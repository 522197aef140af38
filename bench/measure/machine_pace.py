"""How fast this machine runs today, against the machine the estimate's priors were measured on.

The probe times what most of a run's time goes to, the way it runs: training steps of the quick quality preset's
network (digits8_ch16, batch 64), ``jobs`` at once on the threads the run shares between its untimed cells. Its
median seconds per step over the priors' reading of the same probe is the pace every prior is scaled by: on a
shared machine running at half its quiet speed, a run is estimated twice as long. Running the probe as the cells
run matters on a busy machine: beside one busy process, a lone 1-thread step reads no slower than on a quiet
machine and a 2-thread step 2.5x slower (one of its threads waits on the other at every barrier), while two 1-thread
steps side by side read the 1.5x the quality cells then take. A shared host's speed also swings within seconds
(two-second probes a few seconds apart read 0.86x to 1.34x), so the probe takes the median of its blocks over about
five seconds, which a burst shorter than half of that does not move. It reads the machine at the start only; the
progress lines go on calibrating on the cells that finish (bench/run/runner.py).
"""
from __future__ import annotations

import statistics
import threading

import torch

from bench.measure.speed import BlockTimer
from bench.measure.workload import make_workload
from bench.plan.estimate import PRIORS
from variants import BASES

PROBE_NETWORK, PROBE_BATCH = "digits8_ch16", 64
PROBE_WARMUP, PROBE_BLOCKS, PROBE_STEPS = 3, 27, 4  # untimed steps, then blocks of steps: about 5 s on 2 cores


def probe_seconds(threads: int, jobs: int = 1) -> float:
    """Median seconds per training step of the probe network, timed in ``jobs`` concurrent workers that share
    ``threads`` as the run's untimed cells do (torch ops release the GIL, so the workers' steps overlap)."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, threads // jobs))
    blocks: list[float] = []

    def worker() -> None:
        step = make_workload(BASES[PROBE_NETWORK], PROBE_BATCH).phase("train_step")
        timer = BlockTimer(step, "cpu", warmup=PROBE_WARMUP, block_seconds=0.0, number=PROBE_STEPS)
        blocks.extend(timer()[0] for _ in range(PROBE_BLOCKS))  # list.extend is atomic under the GIL

    try:
        workers = [threading.Thread(target=worker) for _ in range(jobs)]
        for each in workers:
            each.start()
        for each in workers:
            each.join()
        return statistics.median(blocks)
    finally:
        torch.set_num_threads(before)


def machine_pace(threads: int, jobs: int) -> float:
    """This machine's time for the probe over the priors' machine's (>1: slower today)."""
    return probe_seconds(threads, jobs) / PRIORS["pace"]["probe_seconds"]
