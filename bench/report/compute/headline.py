"""The headline measurements: the verdict's columns, the axis figures' key measurements, the printed summary's
cost columns. One list, so that "training FLOPs" means the same everywhere."""
from __future__ import annotations

from bench.schema import (FINAL_STEP, INFERENCE, PRIMARY_QUALITY, PRIMARY_TIME,  # noqa: F401 (re-exported)
                          SECONDS_PER_ITER, TRAIN_STEP)

# Training FLOPs are the work a step does, checkpointing's recompute included (``model_flops`` leaves it out).
TRAINING_FLOPS = "flops"
# (column, phase, metrics in order of preference): costs as % change.
HEADLINE_COSTS = (
    ("parameters", "model", ("params",)),
    ("training FLOPs", TRAIN_STEP, (TRAINING_FLOPS,)),
    ("training step", TRAIN_STEP, (SECONDS_PER_ITER,)),
    ("inference", INFERENCE, (SECONDS_PER_ITER,)),
    ("peak memory", TRAIN_STEP, ("peak_allocated_bytes", "peak_rss_bytes")),
    ("saved activations", TRAIN_STEP, ("saved_tensor_bytes",)),
)
# (column, phase, metric): quality as differences (lower is better for both)
HEADLINE_QUALITY = (("FD", "sample", "fd"), ("held-out loss", FINAL_STEP, "heldout_loss"))
# Read beside PRIMARY_QUALITY in the verdict, exploratory (compute/second_metric.py): KID, unbiased at small N
# where FD is biased by N.
SECOND_QUALITY = ("sample", "kid")
# What an axis figure shows (the rest is in its table).
KEY_MEASUREMENTS = {(phase, metric) for _, phase, metrics in HEADLINE_COSTS for metric in metrics} | {
    (phase, metric) for _, phase, metric in HEADLINE_QUALITY}
