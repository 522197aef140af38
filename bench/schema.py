"""The tidy results table: one observation per row, and every concept the table's readers share.

Measurement code returns ``Measurement``s (what was measured); the runner adds the cell's identity
columns (which variant, where, how) and appends them to the table. docs/columns.md documents every column.
Everything that names a kind of cell, a phase, a default or a known fact about the table is defined here once.
"""
from __future__ import annotations

import traceback
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from variants import AXES

if TYPE_CHECKING:  # pandas is imported by what reads or writes tables, not by `import bench.cli`
    import pandas as pd

STATUSES = ("ok", "oom", "error", "skipped")
FAILED_STATUSES = ("error", "oom")  # of a measurement or cell that did not finish cleanly


class Kind(StrEnum):
    """A kind of cell: what one worker process does (bench/plan/cells.py). Equal to its text, as the table holds it."""

    COST = "cost"
    TIMING = "timing"
    QUALITY = "quality"
    FLOOR = "floor"
    CHECK = "check"
    TUNE = "tune"


KINDS = tuple(Kind)
# The kinds whose rows are a variant's costs: counts, memory and (timing cells) time.
COST_KINDS = (Kind.COST, Kind.TIMING)
# Cells that train a variant with a recipe: their rows carry the recipe's columns (bench/plan/recipe.py).
TRAINED_KINDS = (Kind.QUALITY, Kind.CHECK, Kind.TUNE)
# The recipe axes' columns, each with its Python type (bench/plan/recipe.py parses and checks their values), and
# their value on rows no recipe trained (cost, timing, floor).
RECIPE_TYPES: dict[str, type] = {"lr": float, "lr_schedule": str, "weight_decay": float, "ema_decay": float}
RECIPE_COLUMNS = tuple(RECIPE_TYPES)
RECIPE_EMPTY: dict[str, Any] = {name: float("nan") if kind is float else "" for name, kind in RECIPE_TYPES.items()}

# Metrics that measurement writes and the report reads (docs/columns.md says what each is). Counted: parameters,
# FLOPs (a training step's: checkpointing's recompute included; ``model_flops`` leaves it out), the bytes autograd
# saves for the backward; measured: peak memory, throughput and the fraction of the machine's peak FLOP/s; quality:
# Frechet distance, kernel inception distance, sliced Wasserstein distance and held-out loss.
PARAMS, FLOPS, MODEL_FLOPS, SAVED_TENSOR_BYTES = "params", "flops", "model_flops", "saved_tensor_bytes"
PEAK_RSS_BYTES, PEAK_ALLOCATED_BYTES = "peak_rss_bytes", "peak_allocated_bytes"
IMAGES_PER_S, FRACTION_OF_PEAK = "images_per_s", "fraction_of_peak"
FD, KID, SWD, HELDOUT_LOSS = "fd", "kid", "swd", "heldout_loss"
# The timed metrics of a row of a timing cell: wall-clock and process CPU seconds per iteration.
SECONDS_PER_ITER = "seconds_per_iter"
CPU_SECONDS_PER_ITER = "cpu_seconds_per_iter"
# A quality cell's learning curve: its training time so far (evaluations excluded) at each checkpoint.
WALL_TIME = "wall_time"

# Phases of a row. Timed and measured in memory: the training step and inference. Counted in FLOPs: the forward
# pass and the training step (the forward of inference is the same computation).
TRAIN_STEP, INFERENCE, FORWARD = "train_step", "inference", "forward"
# The network itself (its parameters); a quality cell's training (its learning curve) and its samples' scores.
MODEL, TRAIN, SAMPLE = "model", "train", "sample"
TIMED_PHASES = (TRAIN_STEP, INFERENCE)
COUNTED_PHASES = (FORWARD, TRAIN_STEP)
# The phase of a failure row of a measurement that covers both (the FLOP counts of both come from one count).
BOTH_TIMED_PHASES, BOTH_COUNTED_PHASES = ",".join(TIMED_PHASES), ",".join(COUNTED_PHASES)
# Rows that describe the machine (load, matmul peak) or a timing group (its memory), not a variant.
MACHINE_PHASES = ("env", "calibration", "group")
# A training curve's last row, as the report names it (one value per seed: the end of training).
FINAL_STEP = "train (final step)"
# Samples scored at a checkpoint before the last (the last one's are phase ``SAMPLE``), and in the report the held-out
# loss at those checkpoints too: a switch's effect along training.
ALONG_TRAINING = "along_training"

# The verdict's confirmatory question per axis switch, one metric each (report/compute/effects.py: the primary
# family; tuning chooses on the quality one). Time: the training step. Quality: FD, which separated the variants
# better than held-out loss in a reference run (the figures: docs/statistics.md, "Families and resolved"), and is
# what ADM's tables report (FID).
PRIMARY_TIME = (TRAIN_STEP, SECONDS_PER_ITER)
PRIMARY_QUALITY = (SAMPLE, FD)

# The default execution: rows at these values go unnamed in a setting's label (``cpu``, not ``cpu · float32``).
DEFAULT_EXECUTION: dict[str, Any] = {"memory_format": "contiguous", "dtype": "float32", "compile": False,
                                     "cuda_graphs": False}

# Effects whose true value is zero by construction, by (axis, phase) of a % change: reported, and a warning if
# one ever comes out resolved.
KNOWN_NULLS = {("checkpoint", INFERENCE): "known null: checkpointing does nothing without autograd"}

# Identity of the cell a row belongs to, filled in by the runner: which model, then one column per ablation
# axis (variants.AXES) and per recipe axis (RECIPE_COLUMNS), then where and how it ran.
MODEL_COLUMNS = ("run_id", "cell_id", "kind", "variant", "spec_hash")
SETTING_COLUMNS = (
    "base_config", "quality_preset", "dataset", "device", "device_name", "host", "dtype", "threads", "batch_size",
    "peer", "memory_format", "compile", "cuda_graphs", "replica", "rung", "rung_index",
)
# What was measured, filled in by the measurement code.
MEASUREMENT_COLUMNS = (
    "phase", "block", "metric", "value", "unit", "method", "repeat", "position", "process", "seed", "step", "n",
    "status", "message",
)
# Integer columns: nullable, so "no seed" stays distinct from seed 0 through CSV and Parquet round trips.
INT_COLUMNS = ("threads", "batch_size", "replica", "rung_index", "repeat", "position", "process", "seed", "step",
               "n")
BOOL_COLUMNS = ("compile", "cuda_graphs")


def columns() -> tuple[str, ...]:
    """Every column, in order; axes added by a plugin (variants.add_axis) included once it is imported."""
    return (*MODEL_COLUMNS, *AXES, *RECIPE_COLUMNS, *SETTING_COLUMNS, *MEASUREMENT_COLUMNS)


def references() -> dict[str, object]:
    """The reference level of each axis, as the table holds it: its declared default, the smalldiffusion
    baseline."""
    return {name: axis.cell(axis.default) for name, axis in AXES.items()}


def dtypes() -> dict[str, str]:
    """The dtype of every column that is not text: the axes' own, nullable integers, booleans, float values."""
    typed_axes = {name: axis.dtype for name, axis in AXES.items() if axis.dtype != "str"} | \
        {name: "float64" for name, kind in RECIPE_TYPES.items() if kind is float}
    return typed_axes | dict.fromkeys(INT_COLUMNS, "Int64") | dict.fromkeys(BOOL_COLUMNS, "bool") | {"value": "float64"}


def typed(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (with every column) with every column's dtype: ``dtypes()``, text elsewhere."""
    typed_columns = dtypes()
    for col, dtype in typed_columns.items():
        frame[col] = frame[col].astype(dtype)
    for col in frame.columns:  # pandas 3 reads text as its own dtype, not object: every other column is text
        if col not in typed_columns:
            frame[col] = frame[col].fillna("").astype(str)
    return frame


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
    process: which of a timing cell's worker processes timed the row (0 = the first): rounds are spread over
            several fresh processes, a level of variation of its own
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
    process: int | None = None
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


def failure(phase: str, status: str, message: str, metric: str = "failure") -> Measurement:
    """The row a failed or skipped measurement leaves behind: never a silent gap."""
    return Measurement(phase=phase, metric=metric, value=float("nan"), unit="", method="", status=status,
                       message=message)


def exception_failure(phase: str, err: BaseException, metric: str = "failure") -> Measurement:
    """The failure row of an exception: ``oom`` for CUDA out-of-memory (an answer about the workload),
    else ``error``; the message has the exception's type, text and where it was raised."""
    import torch  # here, not at the top: a cell worker imports this module before torch, and must start fast

    status = "oom" if isinstance(err, torch.cuda.OutOfMemoryError) else "error"
    text = " ".join(str(err).split())[:500]
    frames = traceback.extract_tb(err.__traceback__)
    where = f" [{Path(frames[-1].filename).name}:{frames[-1].lineno}]" if frames else ""
    return failure(phase, status, f"{type(err).__name__}: {text}{where}", metric)


MeasurementResult = Measurement | Iterable[Measurement] | None


def measure_into(rows: list[Measurement], phase: str, metric: str,
                 measure: Callable[[], MeasurementResult]) -> list[Measurement]:
    """Take one measurement of a cell and append its rows; if it raises, append one failure row naming
    ``phase`` and ``metric`` instead, so the cell's other measurements are still taken and kept.
    Returns the rows appended by a measurement that succeeded (none if it failed or returned None)."""
    try:
        result = measure()
    except Exception as err:  # this measurement fails on its own; the cell goes on
        rows.append(exception_failure(phase, err, metric))
        return []
    new = [result] if isinstance(result, Measurement) else list(result or ())
    rows += new
    return new
