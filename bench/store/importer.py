"""Turn a pytest-benchmark JSON file into rows of the project's tidy table.

The JSON comes from ``pytest --benchmark-only --benchmark-json=FILE`` over
tests/benchmarks/test_variants_benchmark.py (or its ``--benchmark-autosave`` file). With
``--benchmark-save-data`` each timed round becomes a row (``repeat`` = round); without it only
pytest-benchmark's summary statistics exist, and each becomes its own metric (``seconds_median`` ...).
FLOPs, parameters and saved-tensor bytes come from each benchmark's ``extra_info``. The side-by-side
comparisons in tests/benchmarks (``extra_info["kind"] == "comparison"``: seeds one by one against packed, our
builder against smalldiffusion) time two things against each other, not one variant: they are left out and
named by ``comparison_names``, so the JSON of a whole ``pytest --benchmark-only`` imports.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bench.plan.cells import Cell
from bench.schema import (FLOPS, FORWARD, IMAGES_PER_S, INFERENCE, MODEL, MODEL_FLOPS, PARAMS, SAVED_TENSOR_BYTES,
                          SECONDS_PER_ITER, Kind, Measurement, columns)
from variants import UNetSpec

BENCHMARK_METHOD = "pytest-benchmark"
REQUIRED_EXTRA_INFO = ("spec", "phase", "device", "dtype", "batch_size", "device_name", "torch_threads")
SUMMARY_STATS = ("min", "max", "mean", "median", "stddev", "iqr")
COMPARISON = "comparison"  # extra_info["kind"] of a benchmark that compares two things side by side


def _read(path: str | Path) -> dict:
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or "benchmarks" not in data:
        raise ValueError(f"{path}: not a pytest-benchmark JSON file (no 'benchmarks' list)")
    return data


def comparison_names(path: str | Path) -> list[str]:
    """The side-by-side comparisons in the file, which ``import_benchmark_json`` leaves out."""
    return [b.get("fullname", b.get("name")) for b in _read(path)["benchmarks"]
            if b.get("extra_info", {}).get("kind") == COMPARISON]


def import_benchmark_json(path: str | Path) -> pd.DataFrame:
    """One row per observation, with every column of ``bench.schema.columns()``."""
    data = _read(path)
    run_id = f"pytest-benchmark-{data.get('datetime', Path(path).stem)}"
    host = data.get("machine_info", {}).get("node", "")
    rows = []
    for bench in data["benchmarks"]:
        info = bench.get("extra_info", {})
        if info.get("kind") == COMPARISON:
            continue
        missing = [key for key in REQUIRED_EXTRA_INFO if key not in info]
        if missing:
            raise ValueError(f"{path}: benchmark {bench.get('fullname', bench.get('name'))!r} lacks extra_info "
                             f"{missing}; valid: benchmarks from tests/benchmarks/test_variants_benchmark.py")
        cell = Cell(Kind.COST, UNetSpec.from_json(info["spec"]), info["device"], dtype=info["dtype"],
                    batch_size=info["batch_size"], threads=info["torch_threads"], base_config=BENCHMARK_METHOD)
        identity = {"run_id": run_id, **cell.identity_columns(), "device_name": info["device_name"], "host": host}
        rows += [{**identity, **m.as_dict()} for m in _timings(bench, info) + _counts(info)]
    # Both phases of a variant record its parameter count: one cell, one row.
    return pd.DataFrame(rows, columns=list(columns())).drop_duplicates(ignore_index=True)


def _timings(bench: dict, info: dict) -> list[Measurement]:
    phase, batch, stats = info["phase"], info["batch_size"], bench["stats"]
    if stats.get("data"):
        return [m for repeat, seconds in enumerate(stats["data"]) for m in (
            Measurement(phase, SECONDS_PER_ITER, seconds, "s", BENCHMARK_METHOD, repeat=repeat, n=batch),
            Measurement(phase, IMAGES_PER_S, batch / seconds, "images/s", BENCHMARK_METHOD, repeat=repeat, n=batch),
        )]
    # Statistics over rounds: n is the number of rounds behind each.
    return [Measurement(phase, f"seconds_{stat}", stats[stat], "s", BENCHMARK_METHOD, n=stats["rounds"])
            for stat in SUMMARY_STATS]


def _counts(info: dict) -> list[Measurement]:
    """The counts a benchmark recorded, in the rows the cost runner writes for them (totals only)."""
    flop_phase = FORWARD if info["phase"] == INFERENCE else info["phase"]
    known = [(MODEL, PARAMS, "count", "numel"),  # a benchmark's extra_info names each count as its metric
             (flop_phase, FLOPS, "FLOP", "torch.utils.flop_counter"),
             (flop_phase, MODEL_FLOPS, "FLOP", "torch.utils.flop_counter"),
             (info["phase"], SAVED_TENSOR_BYTES, "bytes", "saved_tensors_hooks")]
    return [Measurement(phase, metric, float(info[metric]), unit, method,
                        n=info["batch_size"] if metric != PARAMS else None)
            for phase, metric, unit, method in known if metric in info]
