"""The headline measurements: the verdict's columns, the axis figures' key measurements, the printed summary's
cost columns. One list, so that "training FLOPs" means the same everywhere."""
from __future__ import annotations

from bench.schema import FINAL_STEP, PRIMARY_QUALITY, PRIMARY_TIME, SECONDS_PER_ITER  # noqa: F401 (re-exported)

# Training FLOPs are the work a step does, checkpointing's recompute included (``model_flops`` leaves it out).
TRAINING_FLOPS = "flops"
# (column, phase, metrics in order of preference): costs as % change.
HEADLINE_COSTS = (
    ("parameters", "model", ("params",)),
    ("training FLOPs", "train_step", (TRAINING_FLOPS,)),
    ("training step", "train_step", (SECONDS_PER_ITER,)),
    ("inference", "inference", (SECONDS_PER_ITER,)),
    ("peak memory", "train_step", ("peak_allocated_bytes", "peak_rss_bytes")),
    ("saved activations", "train_step", ("saved_tensor_bytes",)),
)
# (column, phase, metric): quality as differences (lower is better for both)
HEADLINE_QUALITY = (("FD", "sample", "fd"), ("held-out loss", FINAL_STEP, "heldout_loss"))
# What an axis figure shows (the rest is in its table).
KEY_MEASUREMENTS = {(phase, metric) for _, phase, metrics in HEADLINE_COSTS for metric in metrics} | {
    (phase, metric) for _, phase, metric in HEADLINE_QUALITY}
