"""What only a GPU can check: attention kernels, CUDA memory, timing cells (CUDA graphs included) and a quality
cell on CUDA. `pytest -m cuda` selects these and the CUDA cases of test_execution.py (`make gpu-check` runs
them); without a GPU they are skipped."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from bench.measure.attention_kernels import sdpa_rows
from bench.measure.cost_cell import measure_cost
from bench.measure.execution import prepare
from bench.measure.quality import run_quality_cell
from bench.measure.timing_cell import time_in_rounds
from bench.measure.workload import make_workload
from bench.plan.cells import Cell
from bench.plan.execution import Execution
from bench.plan.quality_presets import QUALITY_PRESETS
from bench.plan.sweep import RoundsBudget
from variants import UNetSpec

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

# attention at 8x8 (64 channels) and in the middle: 1 head of 64 channels, or 4 heads of 16
SPEC = UNetSpec(in_dim=16, in_ch=3, out_ch=3, ch=32, ch_mult=(1, 2), attn_resolutions=(8,), norm_groups=8,
                num_res_blocks=1, dropout=0.0)
ATTENTION_BLOCKS = 4
BUDGET = RoundsBudget(warmup=3, block_seconds=0.005, min_rounds=3, max_seconds=0, processes=1)


def backends(rows, phase: str) -> dict[str, float]:
    return {r.metric: r.value for r in rows if r.phase == phase and r.metric != "sdpa_calls"}


@pytest.mark.parametrize("pinned,name,dtype", [
    (SDPBackend.MATH, "math", "float32"),
    (SDPBackend.EFFICIENT_ATTENTION, "efficient_attention", "float32"),
    (SDPBackend.FLASH_ATTENTION, "flash_attention", "bfloat16"),
    (SDPBackend.CUDNN_ATTENTION, "cudnn_attention", "bfloat16"),
])
def test_a_pinned_cuda_kernel_is_the_one_recorded(pinned, name, dtype):
    workload = prepare(make_workload(SPEC, 4, "cuda"), Execution(dtype=dtype))
    try:
        with sdpa_kernel(pinned):
            rows = sdpa_rows(workload)
    except RuntimeError as err:  # this torch, driver or cuDNN has no such kernel for these inputs
        pytest.skip(f"{name} cannot run here: {' '.join(str(err).split())[:200]}")
    for phase in ("train_step", "inference"):
        assert backends(rows, phase) == {f"sdpa_calls_{name}": ATTENTION_BLOCKS}


@pytest.mark.parametrize("dtype", ["float32", "tf32", "bfloat16", "float16"])
@pytest.mark.parametrize("heads", [1, 4])
def test_every_cuda_attention_call_is_recorded_by_a_known_kernel(dtype, heads):
    rows = sdpa_rows(prepare(make_workload(SPEC.replace(attn_heads=heads), 4, "cuda"), Execution(dtype=dtype)))
    for phase in ("train_step", "inference"):
        found = backends(rows, phase)
        assert sum(found.values()) == ATTENTION_BLOCKS and "sdpa_calls_unknown" not in found
        if dtype == "float32":  # flash and cuDNN take half types only
            assert not {"sdpa_calls_flash_attention", "sdpa_calls_cudnn_attention"} & set(found)


@pytest.mark.parametrize("execution", [Execution(dtype="bfloat16"), Execution(dtype="bfloat16", compile="cudagraphs")],
                         ids=["bf16", "bf16-cudagraphs"])
def test_a_cuda_cost_cell_records_peak_memory_and_compilation(tmp_path: Path, execution):
    rows = []
    measure_cost(Cell("cost", SPEC, "cuda", batch_size=8, threads=1, **execution.cell_fields()), rows, tmp_path)
    assert all(r.status in ("ok", "skipped") for r in rows), [r for r in rows if r.status not in ("ok", "skipped")]
    peaks = {r.phase: r.value for r in rows if r.metric == "peak_allocated_bytes"}
    assert peaks["inference"] > 0 and peaks["train_step"] > 0
    compiled = {r.phase for r in rows if r.metric == "compile_seconds" and r.value > 0}
    assert compiled == ({"train_step", "inference"} if execution.compiled else set())
    if not execution.compiled:  # a replayed graph allocates nothing new: its peaks are the pool's, not the step's
        assert peaks["inference"] < peaks["train_step"]


# Same spec, batch and dtype as the cost cell above: the compiled graphs come from inductor's cache.
@pytest.mark.parametrize("execution,variants", [
    (Execution(dtype="tf32"), (SPEC, SPEC.replace(attn_heads=4))),
    (Execution(dtype="bfloat16", compile="cudagraphs"), (SPEC,)),
], ids=["tf32", "bf16-cudagraphs"])
def test_a_cuda_timing_cell_times_every_member_and_records_its_kernels(execution, variants):
    specs = [(variants[0], 0), (variants[0], 1), *((spec, 0) for spec in variants[1:])]  # baseline, A/A copy, others
    members = tuple(Cell("timing", spec, "cuda", batch_size=8, threads=1, replica=replica, **execution.cell_fields())
                    for spec, replica in specs)
    cell = Cell("timing", None, "cuda", batch_size=8, threads=1, members=members, **execution.cell_fields())
    rows = []
    time_in_rounds(cell, BUDGET, rows)
    assert all(r.status == "ok" for r in rows), [r for r in rows if r.status != "ok"]
    timed = {(r.member, r.phase) for r in rows if r.metric == "seconds_per_iter" and r.value > 0}
    assert timed == {(m, p) for m in range(len(members)) for p in ("train_step", "inference")}
    recorded = {(r.member, r.phase) for r in rows if r.metric == "sdpa_calls" and r.value == ATTENTION_BLOCKS}
    assert recorded == timed
    resident = next(r for r in rows if r.metric == "resident_bytes")
    assert resident.method.startswith("torch.cuda.memory_allocated") and resident.value > 0


def test_a_quality_cell_trains_samples_and_scores_on_cuda(tmp_path: Path):
    config = QUALITY_PRESETS["smoke"]
    rows = run_quality_cell(config.base, config, 0, "cuda", tmp_path, tmp_path / "cache")
    assert all(r.status == "ok" for r in rows), [r for r in rows if r.status != "ok"]
    losses = [r.value for r in rows if r.metric == "heldout_loss"]
    assert losses[-1] < losses[0]
    assert {"fd", "precision", "recall"} <= {r.metric for r in rows}
