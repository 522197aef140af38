"""How fast this machine runs today, against the machine the estimate's priors were measured on.

The probe times what most of a run's time goes to, the way the priors' machine ran it: training steps of the quick
quality preset's network (digits8_ch16, batch 64) in two workers side by side, one thread each, as the quick
preset's untimed cells run. Its median seconds per step over the priors' reading of the same probe is the pace every
prior is scaled by: on a shared machine running at half its quiet speed, a run is estimated twice as long.

Side by side matters on a busy machine: beside one busy process, a lone 1-thread step reads no slower than on a quiet
machine and a lone 2-thread step much slower (one of its threads waits on the other at every barrier), while two
1-thread steps side by side slow down as the quality cells then do. A run whose cells use more threads each can slow
down more than that on a busy machine; the progress lines correct it from the cells that finish
(bench/run/runner.py). A shared host's speed also swings within seconds, so the probe takes the median of many
short blocks, which a burst shorter than half of the probe does not move. What was measured, when and where:
docs/cli.md, under `bench run` ("Why the probe runs that way").
"""
from __future__ import annotations

import statistics
import threading

import torch

from bench.measure.speed import BlockTimer
from bench.measure.workload import make_workload
from bench.plan.estimate import PRIORS
from bench.schema import TRAIN_STEP
from variants import BASES

PROBE_NETWORK, PROBE_BATCH, PROBE_WORKERS = "digits8_ch16", 64, 2
PROBE_WARMUP, PROBE_BLOCKS, PROBE_STEPS = 3, 27, 4  # untimed steps, then blocks of steps (how long: docs/cli.md)


def probe_seconds() -> float:
    """Median seconds per training step of the probe network in PROBE_WORKERS concurrent 1-thread workers (torch ops
    release the GIL, so the workers' steps overlap)."""
    blocks: list[float] = []
    failures: list[BaseException] = []
    stop = threading.Event()
    finished = [threading.Event() for _ in range(PROBE_WORKERS)]

    def worker(done: threading.Event) -> None:
        try:
            step = make_workload(BASES[PROBE_NETWORK], PROBE_BATCH).phase(TRAIN_STEP)
            timer = BlockTimer(step, "cpu", warmup=PROBE_WARMUP, block_seconds=0.0, number=PROBE_STEPS)
            for _ in range(PROBE_BLOCKS):
                if stop.is_set():
                    return
                blocks.append(timer()[0])
        except BaseException as err:  # re-raised in the caller: a probe missing a worker would under-read
            failures.append(err)
        finally:
            done.set()

    workers = [threading.Thread(target=worker, args=(done,)) for done in finished]
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # process-wide: every worker's steps run on one thread
    try:
        for each in workers:
            each.start()
        for done in finished:
            done.wait()
    finally:
        # on a Ctrl-C or the time limit the workers stop after their block: a thread still inside torch when the
        # interpreter exits can abort the process. Not Thread.join: interrupted once, it reports a running thread
        # as stopped (Python 3.11)
        stop.set()
        for each, done in zip(workers, finished):
            if each.ident is not None:
                done.wait()
        torch.set_num_threads(before)
    if failures:
        raise failures[0]
    return statistics.median(blocks)


def machine_pace() -> float:
    """This machine's time for the probe over the priors' machine's (>1: slower today)."""
    return probe_seconds() / PRIORS["pace"]["probe_seconds"]
