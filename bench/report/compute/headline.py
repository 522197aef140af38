"""The headline measurements: the verdict's columns, the axis figures' key measurements, the printed summary's
cost columns. One table, so that "training FLOPs" means the same everywhere."""
from __future__ import annotations

from dataclasses import dataclass

from bench.schema import (FD, FINAL_STEP, FLOPS, FORWARD, FRACTION_OF_PEAK, HELDOUT_LOSS, IMAGES_PER_S, INFERENCE,
                          KID, MODEL, PARAMS, PEAK_ALLOCATED_BYTES, PEAK_RSS_BYTES, SAMPLE, SAVED_TENSOR_BYTES,
                          SECONDS_PER_ITER, TRAIN_STEP)


@dataclass(frozen=True)
class Cost:
    """A cost measurement, read by the summary `bench run` prints (its median, in a column titled ``printed``, the
    value times ``scale``; None: not printed) and by the verdict (its % change, in a column named ``column``;
    None: not in the verdict). ``method`` picks a counter where two count the same metric."""

    printed: str | None
    column: str | None
    phase: str
    metric: str
    scale: float = 1.0
    method: str | None = None
    verdict_rank: int | None = None  # the verdict's columns in this order, a column's metrics in order of preference


# In the printed summary's order.
HEADLINE_COSTS = (
    Cost("params [M]", "parameters", MODEL, PARAMS, 1e-6, verdict_rank=0),
    Cost("fwd [GMAC]", None, FORWARD, FLOPS, 1e-9, "fvcore"),
    Cost("train [GFLOP]", "training FLOPs", TRAIN_STEP, FLOPS, 1e-9, "torch.utils.flop_counter",
         verdict_rank=1),
    Cost("saved [MB]", "saved activations", TRAIN_STEP, SAVED_TENSOR_BYTES, 1e-6, verdict_rank=6),
    # peak memory: the GPU allocator's where one was measured, else the process's RSS
    Cost("train RSS [MB]", "peak memory", TRAIN_STEP, PEAK_RSS_BYTES, 1e-6, verdict_rank=5),
    Cost("train alloc [MB]", "peak memory", TRAIN_STEP, PEAK_ALLOCATED_BYTES, 1e-6, verdict_rank=4),
    # time: the verdict reads seconds per iteration, the summary prints throughput
    Cost(None, "training step", TRAIN_STEP, SECONDS_PER_ITER, verdict_rank=2),
    Cost(None, "inference", INFERENCE, SECONDS_PER_ITER, verdict_rank=3),
    Cost("train [img/s]", None, TRAIN_STEP, IMAGES_PER_S),
    Cost("infer [img/s]", None, INFERENCE, IMAGES_PER_S),
    Cost("train/peak", None, TRAIN_STEP, FRACTION_OF_PEAK),
)
# The timed phases by name, as the verdict's time readings and the peer comparison write them.
TIMED_PHASE_NAMES = tuple((cost.phase, cost.column) for cost in HEADLINE_COSTS if cost.metric == SECONDS_PER_ITER)


def _verdict_costs() -> dict[str, tuple[str, tuple[str, ...]]]:
    columns: dict[str, tuple[str, tuple[str, ...]]] = {}
    for cost in sorted((c for c in HEADLINE_COSTS if c.column), key=lambda c: c.verdict_rank):
        phase, metrics = columns.get(cost.column, (cost.phase, ()))
        columns[cost.column] = (phase, (*metrics, cost.metric))
    return columns


# The verdict's cost columns, in order: column -> (phase, metrics in order of preference).
VERDICT_COSTS = _verdict_costs()


# (column, phase, metric): quality as differences (lower is better for both)
HEADLINE_QUALITY = (("FD", SAMPLE, FD), ("held-out loss", FINAL_STEP, HELDOUT_LOSS))
# Read beside PRIMARY_QUALITY in the verdict, exploratory (compute/second_metric.py): KID, unbiased at small N
# where FD is biased by N.
SECOND_QUALITY = (SAMPLE, KID)
# What an axis figure shows (the rest is in its table).
KEY_MEASUREMENTS = {(phase, metric) for phase, metrics in VERDICT_COSTS.values() for metric in metrics} | {
    (phase, metric) for _, phase, metric in HEADLINE_QUALITY}
