"""The attention-kernel record: on this machine's CPU it names the kernel that runs here, and a pinned kernel
when one is pinned; every SDPA call is counted, a model without SDPA reads 0, and timing cells carry the rows."""
from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from bench.measure.attention_kernels import BACKEND_OPS, sdpa_calls, sdpa_rows
from bench.measure.execution import prepare
from bench.measure.timing_cell import time_in_rounds
from bench.measure.workload import make_workload
from bench.plan.cells import Cell
from bench.plan.execution import Execution
from bench.plan.sweep import RoundsBudget
from variants import UNetSpec

# one attention level (4x4) plus the middle's: attention blocks at 4x4 in the encoder (1), decoder (2), middle (1)
TINY = UNetSpec(in_dim=8, in_ch=1, out_ch=1, ch=16, ch_mult=(1, 2), attn_resolutions=(4,), norm_groups=8,
                num_res_blocks=1, dropout=0.0)
ATTENTION_BLOCKS = 4


def calls(rows, phase: str) -> dict[str, float]:
    return {r.metric: r.value for r in rows if r.phase == phase}


def q_k_v(dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    return tuple(torch.randn(2, 4, 16, 8, dtype=dtype) for _ in range(3))


def cpu_choice(q, k, v) -> str:
    """The backend torch's CPU dispatcher chooses for these inputs, by SDPBackend name (lower case)."""
    return SDPBackend(torch._fused_sdp_choice(q, k, v)).name.lower()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_record_names_the_kernel_the_cpu_dispatcher_chooses(dtype):
    q, k, v = q_k_v(dtype)
    total, backends = sdpa_calls(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v), "cpu")
    assert total == 1 and backends == {cpu_choice(q, k, v): 1}


@pytest.mark.parametrize("pinned,name", [(SDPBackend.MATH, "math"), (SDPBackend.FLASH_ATTENTION, "flash_attention")])
def test_a_pinned_kernel_is_the_one_recorded(pinned, name):
    workload = prepare(make_workload(TINY, 2), Execution())
    with sdpa_kernel(pinned):
        rows = sdpa_rows(workload)
    for phase in ("train_step", "inference"):
        assert calls(rows, phase) == {"sdpa_calls": ATTENTION_BLOCKS, f"sdpa_calls_{name}": ATTENTION_BLOCKS}


def test_every_call_is_counted_under_autocast_heads_and_checkpointing():
    for spec, train_calls in ((TINY.replace(attn_heads=4), ATTENTION_BLOCKS),
                              (TINY.replace(checkpoint=True), 2 * ATTENTION_BLOCKS)):  # the recompute calls again
        rows = sdpa_rows(prepare(make_workload(spec, 2), Execution(dtype="bfloat16")))
        assert calls(rows, "train_step")["sdpa_calls"] == train_calls
        assert calls(rows, "inference")["sdpa_calls"] == ATTENTION_BLOCKS
        for phase in ("train_step", "inference"):
            per_backend = {m: v for m, v in calls(rows, phase).items() if m != "sdpa_calls"}
            assert sum(per_backend.values()) == calls(rows, phase)["sdpa_calls"]
            assert set(per_backend) <= {f"sdpa_calls_{b}" for b in BACKEND_OPS.values()}  # none unknown


def test_a_model_without_sdpa_reads_zero_calls():
    class NoAttention(torch.nn.Module):
        def forward(self, x):
            return x * 2

    total, backends = sdpa_calls(lambda: NoAttention()(torch.ones(2)), "cpu")
    assert total == 0 and not backends


def test_each_member_of_a_timing_cell_carries_its_attention_rows():
    members = tuple(Cell("timing", spec, "cpu", batch_size=2, threads=1, replica=replica)
                    for spec, replica in ((TINY, 0), (TINY, 1), (TINY.replace(attn_heads=4), 0)))
    cell = Cell("timing", None, "cpu", batch_size=2, threads=1, members=members)
    rows = []
    time_in_rounds(cell, RoundsBudget(warmup=1, block_seconds=0.001, min_rounds=2, max_seconds=0, processes=1), rows)
    recorded = {(r.member, r.phase) for r in rows if r.metric == "sdpa_calls" and r.value == ATTENTION_BLOCKS}
    assert recorded == {(m, p) for m in range(3) for p in ("train_step", "inference")}
    assert all(r.status == "ok" for r in rows)
