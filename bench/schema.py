"""The tidy results table: one observation per row.

Measurement code returns ``Measurement``s (what was measured); the runner adds the cell's identity
columns (which variant, where, how) and appends them to the table. README.md documents every column.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

STATUSES = ("ok", "oom", "error", "skipped")

# Identity of the cell a row belongs to, filled in by the runner.
CELL_COLUMNS = (
    "run_id", "cell_id", "kind", "variant", "spec_hash", "upsample", "time_injection", "attn_heads", "checkpoint",
    "attention", "base_config", "dataset", "device", "device_name", "host", "dtype", "threads", "batch_size",
    "peer", "memory_format", "compile", "replica",
)
# What was measured, filled in by the measurement code.
MEASUREMENT_COLUMNS = (
    "phase", "block", "metric", "value", "unit", "method", "repeat", "position", "seed", "step", "n", "status",
    "message",
)
COLUMNS = CELL_COLUMNS + MEASUREMENT_COLUMNS


@dataclass(frozen=True)
class Measurement:
    """One observation.

    phase:  what was running: ``forward``, ``train_step``, ``inference``, ``model``, ``train``, ``sample``, ...
    block:  ``total``, or the block type a breakdown row covers (``conv_in``, ``resnet``, ``attention``, ...)
    metric: what was observed (``flops``, ``params``, ``images_per_s``, ``fd``, ...)
    unit:   ``MAC``, ``FLOP``, ``bytes``, ``images/s``, ``s``, ``count``, ``nats``, ... (never implied)
    method: how it was measured (``fvcore``, ``torch.utils.flop_counter``, ``time.perf_counter blocks``, ...)
    repeat: index of a repeated measurement; repeats are rows, never pre-averaged (a timing round's index)
    position: where in its round's random order a timed block ran (0 = first)
    seed:   training / sampling seed, where one applies
    step:   training step a learning-curve row was taken at
    n:      sample size behind a statistic (images scored, tokens timed, ...)
    member: for a timing group's rows, which member model the row belongs to (an index into the group's
            members); not a column: the runner turns it into that member's identity columns
    """

    phase: str
    metric: str
    value: float
    unit: str
    method: str
    block: str = "total"
    repeat: int = 0
    position: int | None = None
    seed: int | None = None
    step: int | None = None
    n: int | None = None
    status: str = "ok"
    message: str = ""
    member: int | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status={self.status!r} is invalid; valid: {', '.join(STATUSES)}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def failure(phase: str, status: str, message: str) -> Measurement:
    """The row a failed or skipped measurement leaves behind: never a silent gap."""
    return Measurement(phase=phase, metric="failure", value=float("nan"), unit="", method="", status=status,
                       message=message)
