"""A cost or quality cell: each measurement fails on its own, as a row with its status and message, and the
cell's other measurements are still taken and kept; only a model that does not build fails the cell."""
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

import bench.measure.cost_cell
import bench.measure.quality.cells
from bench.measure.cost_cell import measure_cost
from bench.measure.memory import _net_peak_row
from bench.measure.quality import real_floor
from bench.plan.cells import Cell
from bench.plan.quality_presets import QUALITY_PRESETS
from bench.run.runner import cell_outcome
from bench.schema import measure_into

from helpers import SMALL_SPECS

SPEC = SMALL_SPECS["8x8x1"]
BELOW_RSS = "below what the resident set resolves"


def cost_rows(tmp_path: Path, batch_size: int = 2) -> list:
    rows = []
    measure_cost(Cell("cost", SPEC, "cpu", batch_size=batch_size, threads=1), rows, tmp_path)
    return rows


def raises(err: Exception):
    def fail(*args, **kwargs):
        raise err
    return fail


def by_metric(rows: list) -> dict[str, set[str]]:
    """metric -> the statuses of its rows."""
    found: dict[str, set[str]] = {}
    for r in rows:
        found.setdefault(r.metric, set()).add(r.status)
    return found


def test_a_batch_of_one_measures_everything(tmp_path):
    rows = cost_rows(tmp_path, batch_size=1)
    statuses = by_metric(rows)
    assert all(s == {"ok"} for m, s in statuses.items() if m != "peak_rss_bytes"), statuses
    assert {"params", "flops", "model_flops", "saved_tensor_bytes", "peak_rss_bytes"} <= statuses.keys()
    for r in rows:  # a step this small may not lift the resident set: then it says so instead of a size
        if r.metric == "peak_rss_bytes":
            assert (r.status, r.value > 0) == ("ok", True) or (r.status == "skipped" and BELOW_RSS in r.message), r


def test_a_step_that_does_not_lift_the_resident_set_is_no_size():
    assert _net_peak_row("inference", 8192, 1).value == 8192.0
    for net in (0, -16384):  # what a batch-1 inference step of the smoke base read here
        row = _net_peak_row("inference", net, 1)
        assert row.status == "skipped" and math.isnan(row.value) and BELOW_RSS in row.message
    assert "read -16 KiB" in _net_peak_row("inference", -16384, 1).message


def test_failed_flop_counting_and_peak_rss_leave_rows_and_every_other_measurement(tmp_path, monkeypatch):
    monkeypatch.setattr(bench.measure.cost_cell, "count_flops", raises(RuntimeError("fvcore cannot count {'aten::x': 1}")))
    monkeypatch.setattr(bench.measure.cost_cell, "cpu_peak_rss", raises(MemoryError("no room")))
    rows = cost_rows(tmp_path)
    failed = {(r.phase, r.metric): r for r in rows if r.status == "error"}
    assert failed.keys() == {("forward,train_step", "flops"), ("train_step,inference", "peak_rss_bytes")}
    assert failed[("forward,train_step", "flops")].message.startswith(
        "RuntimeError: fvcore cannot count {'aten::x': 1} [test_cost_cell.py:")
    assert failed[("train_step,inference", "peak_rss_bytes")].message.startswith("MemoryError: no room [")
    statuses = by_metric(rows)
    for metric in ("params", "saved_tensor_bytes"):
        assert statuses[metric] == {"ok"}, metric


def test_cuda_out_of_memory_in_one_measurement_is_an_oom_row(tmp_path, monkeypatch):
    monkeypatch.setattr(bench.measure.cost_cell, "saved_tensor_bytes", raises(torch.cuda.OutOfMemoryError("Tried 1 EiB")))
    monkeypatch.setattr(bench.measure.cost_cell, "cpu_peak_rss", lambda *args: [])  # not the point here, and slow
    rows = cost_rows(tmp_path)
    oom = [r for r in rows if r.status == "oom"]
    assert [(r.phase, r.metric) for r in oom] == [("train_step", "saved_tensor_bytes")]
    assert by_metric(rows)["params"] == {"ok"}


def test_a_model_that_does_not_build_fails_the_cell(tmp_path, monkeypatch):
    monkeypatch.setattr(bench.measure.cost_cell, "make_workload", raises(RuntimeError("no such layer")))
    with pytest.raises(RuntimeError, match="no such layer"):  # the worker turns it into the cell's row
        cost_rows(tmp_path)


def test_a_failed_score_or_grid_keeps_the_floor_cell_s_other_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(bench.measure.quality.cells, "score", raises(ValueError("features of NaN images")))
    monkeypatch.setattr(bench.measure.quality.cells, "save_grid", raises(OSError("disk full")))
    rows = real_floor(QUALITY_PRESETS["smoke"], 0, tmp_path, tmp_path / "cache")
    assert [(r.phase, r.metric, r.status) for r in rows] == [
        ("sample", "scores", "error"), ("classifier", "accuracy", "ok"), ("sample", "sample_grid", "error")]
    assert rows[2].message.startswith("OSError: disk full [")


def test_measure_into_appends_what_a_measurement_returns_or_one_failure_row():
    rows = []
    assert measure_into(rows, "model", "params", lambda: None) == []
    assert measure_into(rows, "model", "params", raises(KeyError("x"))) == [] and rows[0].status == "error"
    assert rows[0].message.startswith("KeyError: 'x' [test_cost_cell.py:")


def test_cell_outcome_reads_a_failed_measurement_as_a_partial_failure():
    def frame(*rows):
        return pd.DataFrame(rows, columns=["phase", "metric", "status"])

    partial = cell_outcome(frame(("model", "params", "ok"), ("forward,train_step", "flops", "error")))
    assert partial == "partial: forward,train_step flops (error) failed, the other measurements are kept"
    assert cell_outcome(frame(("model", "params", "ok"), ("cell", "failure", "error"))) == "error"
