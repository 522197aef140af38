"""The pytest-benchmark suite runs only when asked, and its JSON imports into the tidy table."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.measure.flops import flop_counter_flops
from bench.measure.params import count_params
from bench.plan.cells import Cell
from bench.schema import columns
from bench.store.importer import comparison_names, import_benchmark_json
from variants import build

from benchmarks import test_variants_benchmark as suite  # its VARIANTS, BATCH and ROUNDS

SUITE = "tests/benchmarks/test_variants_benchmark.py"
ROOT = Path(__file__).resolve().parents[2]


def pytest_run(*args: str) -> subprocess.CompletedProcess:
    # a pytest of its own: not an xdist worker, whose variables would make pytest-benchmark disable itself
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")} | {"BENCH_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "pytest", SUITE, "-p", "no:cacheprovider", "-q", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("flags", [(), ("--benchmark-skip",)], ids=["plain", "benchmark-skip"])
def test_benchmarks_are_skipped_unless_asked_for(flags):
    result = pytest_run("-rs", *flags)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "64 skipped" in result.stdout and "passed" not in result.stdout  # 16 variants x 2 phases x 2 devices
    if not flags:
        assert "run it with `pytest --benchmark-only`" in result.stdout


@pytest.fixture(scope="module")
def benchmark_json(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "one.json"
    result = pytest_run("--benchmark-only", "--benchmark-save-data", f"--benchmark-json={out}",
                        "-k", "inference and cpu and nearest_conv+additive+1h and not ckpt")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    return out


def test_every_round_becomes_a_row_with_the_projects_columns(benchmark_json):
    raw = json.loads(benchmark_json.read_text())["benchmarks"][0]
    frame = import_benchmark_json(benchmark_json)
    assert list(frame.columns) == list(columns())
    spec = suite.VARIANTS[0]
    assert spec.name == "nearest_conv+additive+1h+attn@8"  # attention at the full 8x8, not the usual half
    cell = Cell("cost", spec, "cpu", batch_size=suite.BATCH, threads=1, base_config="pytest-benchmark")
    assert set(frame.cell_id) == {cell.id} and set(frame.variant) == {spec.name} and set(frame.threads) == {1}

    seconds = frame[frame.metric == "seconds_per_iter"]
    assert list(seconds.repeat) == list(range(suite.ROUNDS))
    assert list(seconds.value) == raw["stats"]["data"]
    assert set(seconds.phase) == {"inference"} and set(seconds.unit) == {"s"}
    images = frame[frame.metric == "images_per_s"]
    assert list(images.value) == [suite.BATCH / s for s in raw["stats"]["data"]]

    model = build(spec)
    x, sigma = torch.zeros(suite.BATCH, 1, spec.in_dim, spec.in_dim), torch.ones(suite.BATCH, 1, 1, 1)
    counts = frame.set_index(["phase", "metric"]).value
    assert counts["model", "params"] == next(r.value for r in count_params(model) if r.block == "total")
    assert counts["forward", "flops"] == flop_counter_flops(model, x, sigma, "forward")[0]
    assert len(frame) == 2 * suite.ROUNDS + 2


def test_without_round_data_summary_statistics_become_metrics(benchmark_json, tmp_path):
    data = json.loads(benchmark_json.read_text())
    stats = data["benchmarks"][0]["stats"]
    del stats["data"]
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(data))
    timings = import_benchmark_json(path).query("method == 'pytest-benchmark'")
    assert dict(zip(timings.metric, timings.value)) == {f"seconds_{s}": stats[s] for s in
                                                        ("min", "max", "mean", "median", "stddev", "iqr")}
    assert set(timings.n) == {suite.ROUNDS}


def test_foreign_benchmarks_are_rejected_by_name(benchmark_json, tmp_path):
    data = json.loads(benchmark_json.read_text())
    del data["benchmarks"][0]["extra_info"]["spec"]
    path = tmp_path / "foreign.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"lacks extra_info \['spec'\]"):
        import_benchmark_json(path)
    path.write_text("[]")
    with pytest.raises(ValueError, match="not a pytest-benchmark JSON file"):
        import_benchmark_json(path)


def test_side_by_side_comparisons_are_left_out_by_name(benchmark_json, tmp_path):
    data = json.loads(benchmark_json.read_text())
    comparison = {"name": "test_our_training_step_against_smalldiffusion", "fullname": "tests/benchmarks/x.py::cmp",
                  "extra_info": {"kind": "comparison", "ratio_median": 1.02}, "stats": data["benchmarks"][0]["stats"]}
    data["benchmarks"].append(comparison)
    path = tmp_path / "whole-suite.json"
    path.write_text(json.dumps(data))
    assert import_benchmark_json(path).equals(import_benchmark_json(benchmark_json))
    assert comparison_names(path) == ["tests/benchmarks/x.py::cmp"] and comparison_names(benchmark_json) == []
    result = subprocess.run([sys.executable, "-m", "bench", "import", str(path), "--out", str(tmp_path / "t.csv")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "left out tests/benchmarks/x.py::cmp: a side-by-side comparison" in result.stderr
