"""Memory and throughput measurements: exact where they can be, consistent where they cannot."""
from pathlib import Path

import pytest
import torch

from bench.measure.memory import cpu_peak_rss, saved_tensor_bytes
from bench.measure.speed import BlockTimer, MatmulPeak, matmul_as_conv
from bench.plan.sweep import RoundsBudget
from bench.measure.workload import make_workload
from bench.models.sizes import planned_state_bytes, planned_step_bytes
from variants import BASES
from variants import unet as unet_module

from helpers import SMALL_SPECS

TINY = SMALL_SPECS["8x8x1"]


def test_saved_tensor_bytes_scale_exactly_with_batch():
    small = saved_tensor_bytes(make_workload(TINY, 2)).value
    large = saved_tensor_bytes(make_workload(TINY, 6)).value
    assert small > 0 and large == 3 * small


def test_checkpointing_trades_saved_bytes_for_recompute():
    plain = saved_tensor_bytes(make_workload(TINY, 4)).value
    ckpt = saved_tensor_bytes(make_workload(TINY.replace(checkpoint=True), 4)).value
    # What remains: the checkpointed blocks' inputs plus what conv_in, the resamplers and the output keep.
    assert 0 < ckpt < plain / 2


@pytest.mark.parametrize("resblock_updown", [False, True])
def test_every_input_checkpointing_keeps_is_a_saved_tensor_the_count_sees(monkeypatch, resblock_updown):
    """The count hooks autograd's saved tensors only: that covers what checkpointing keeps for its recompute
    because non-reentrant checkpoint saves its inputs as saved tensors. Every block the U-Net checkpoints (the
    stages, the middle and, with resblock_updown, the resampling blocks) is checked."""
    inputs = []

    def recording_checkpoint(block, h, *args, **kwargs):
        inputs.append(h)
        return torch.utils.checkpoint.checkpoint(block, h, *args, **kwargs)

    monkeypatch.setattr(unet_module, "checkpoint", recording_checkpoint)
    workload = make_workload(TINY.replace(checkpoint=True, resblock_updown=resblock_updown), 2)
    packed = set()

    def pack(t):
        packed.add(t.untyped_storage()._cdata)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        workload.model.get_loss(workload.x0, workload.sigma, workload.eps)
    model = workload.model
    stages = sum(len(level.blocks) for level in (*model.downs, *model.ups)) + 1
    assert len(inputs) == stages + (2 * (len(model.downs) - 1) if resblock_updown else 0)
    assert all(h.untyped_storage()._cdata in packed for h in inputs)


@pytest.mark.parametrize("checkpoint", [False, True])
def test_the_plan_s_saved_bytes_bound_the_measured_ones(checkpoint):
    """The planner's count (bench/models/sizes.py: the same counter on the meta device) against the real step's,
    on two shapes: exact with checkpointing; without it an upper bound (by how much: docs/failures.md; the meta
    device runs torch's dropout, a float mask, where the CPU runs ours, a byte per element; the rest of the gap is
    not traced), so the plan refuses no step that fits."""
    for spec in SMALL_SPECS.values():
        for dropout in (0.0, 0.1):
            spec = spec.replace(checkpoint=checkpoint, dropout=dropout)
            planned = planned_step_bytes(spec, 3) - planned_state_bytes(spec)
            measured = saved_tensor_bytes(make_workload(spec, 3)).value
            assert measured > 0 and (planned == measured if checkpoint else measured < planned < 1.4 * measured)


def test_parameters_are_not_counted_as_saved_activations():
    workload = make_workload(TINY, 1)
    weights = sum(p.numel() * p.element_size() for p in workload.model.parameters())
    saved = saved_tensor_bytes(workload).value
    # Every conv and linear saves its weight for backward; counting them would add all the weights.
    assert saved < weights


def test_cpu_peak_rss_in_a_fresh_process(tmp_path: Path):
    rows = {r.phase: r for r in cpu_peak_rss(BASES["fmnist28"], 8, 1, tmp_path)}
    assert set(rows) == {"inference", "train_step"}
    assert all(r.unit == "bytes" and r.method == "VmHWM-net-of-baseline" and r.n == 8 for r in rows.values())
    assert 0 < rows["inference"].value < rows["train_step"].value
    assert list(tmp_path.iterdir()) == []  # the worker's hand-off file is cleaned up


def test_a_block_times_wall_and_cpu_seconds_per_call():
    calls = []
    timer = BlockTimer(lambda: calls.append(sum(range(20000))), "cpu", warmup=2, block_seconds=0.01)
    calls.clear()
    wall, cpu = timer()
    assert len(calls) == timer.number >= 1 and wall > 0 and cpu >= 0


def test_a_block_timer_told_its_calls_per_block_warms_up_without_a_calibrating_call():
    calls = []
    timer = BlockTimer(lambda: calls.append(1), "cpu", warmup=2, block_seconds=10.0, number=3)
    assert (len(calls), timer.number) == (2, 3)
    timer()
    assert len(calls) == 5


def test_train_step_updates_weights_and_inference_does_not():
    workload = make_workload(TINY, 2)
    before = [p.detach().clone() for p in workload.model.parameters()]
    workload.phase("inference")()
    assert all(torch.equal(a, b) for a, b in zip(before, workload.model.parameters()))
    assert not workload.model.training
    workload.phase("train_step")()
    assert workload.model.training
    assert any(not torch.equal(a, b) for a, b in zip(before, workload.model.parameters()))


def test_matmul_peak_rows_and_bad_budgets():
    peak, rows = MatmulPeak("cpu", torch.float32, size=128).measure(repeat=3)
    assert len(rows) == 2 and all(r.unit == "FLOP/s" and r.value > 0 and r.n == 128 and r.repeat == 3 for r in rows)
    assert peak == max(r.value for r in rows)
    with pytest.raises(ValueError, match="rounds budget .* is invalid"):
        RoundsBudget(min_rounds=1)
    with pytest.raises(ValueError, match="processes >= 1"):
        RoundsBudget(processes=0)
    with pytest.raises(ValueError, match="phase='backward' is invalid; valid: train_step, inference"):
        make_workload(TINY, 1).phase("backward")


def test_the_1x1_convolution_computes_the_same_matmul():
    a, b = torch.randn(5, 3), torch.randn(3, 4)
    out = torch.nn.functional.conv2d(*matmul_as_conv(a, b))
    assert out.shape == (1, 4, 5, 1)
    torch.testing.assert_close(out.reshape(4, 5).t(), a @ b)
