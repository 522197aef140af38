"""Memory and throughput measurements: exact where they can be, consistent where they cannot."""
from pathlib import Path

import pytest
import torch

from bench.measure.memory import cpu_peak_rss, saved_tensor_bytes
from bench.measure.speed import MATMULS, METHOD, MatmulPeak, TimingBudget, interleaved_speedup, matmul_as_conv, throughput
from bench.measure.workload import make_workload
from conftest import SMALL_SPECS
from variants import FASHION_MNIST_BASE

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


def test_saved_tensor_bytes_count_checkpoint_inputs_that_autograd_does_not_see():
    workload = make_workload(TINY.replace(checkpoint=True), 2)
    model = workload.model
    seen = []
    hooks = [m.register_forward_pre_hook(lambda m, args: seen.append(args[0])) for m in [model.mid]]
    counted = saved_tensor_bytes(workload).value
    for h in hooks:
        h.remove()
    # the middle block's input is held for recompute: it must be inside the count
    assert counted >= seen[0].untyped_storage().nbytes()


def test_parameters_are_not_counted_as_saved_activations():
    workload = make_workload(TINY, 1)
    weights = sum(p.numel() * p.element_size() for p in workload.model.parameters())
    saved = saved_tensor_bytes(workload).value
    # Every conv and linear saves its weight for backward; counting them would add all the weights.
    assert saved < weights


def test_cpu_peak_rss_in_a_fresh_process(tmp_path: Path):
    rows = {r.phase: r for r in cpu_peak_rss(FASHION_MNIST_BASE, 8, 1, tmp_path)}
    assert set(rows) == {"inference", "train_step"}
    assert all(r.unit == "bytes" and r.method == "VmHWM-net-of-baseline" and r.n == 8 for r in rows.values())
    assert 0 < rows["inference"].value < rows["train_step"].value
    assert list(tmp_path.iterdir()) == []  # the worker's hand-off file is cleaned up


def test_throughput_rows_are_consistent_per_repeat():
    workload = make_workload(TINY, 3)
    budget = TimingBudget(warmup=1, min_repeats=3, min_run_time=0.01, max_run_time=0.2)
    peak = MatmulPeak("cpu", torch.float32, size=64)
    rows = throughput(workload, budget, {"train_step": 3e9, "inference": 1e9}, peak)
    calibration = [r for r in rows if r.phase == "calibration"]
    for phase in ("train_step", "inference"):
        by_repeat: dict[int, dict[str, float]] = {}
        for r in rows:
            if r.phase == phase:
                by_repeat.setdefault(r.repeat, {})[r.metric] = r.value
        assert len(by_repeat) >= 3
        flops = 3e9 if phase == "train_step" else 1e9
        for values in by_repeat.values():
            assert values["images_per_s"] == pytest.approx(3 / values["seconds_per_iter"])
            assert values["achieved_flop_per_s"] == pytest.approx(flops / values["seconds_per_iter"])
    # each timed block is followed by one block of each matmul; its fraction is against the faster of them
    assert len(calibration) == len(MATMULS) * sum(r.metric == "fraction_of_peak" for r in rows)
    fractions = [r.value for r in rows if r.metric == "fraction_of_peak"]
    achieved = [r.value for r in rows if r.metric == "achieved_flop_per_s"]
    peaks = [max(c.value for c in calibration if c.repeat == i) for i in range(len(fractions))]
    assert fractions == pytest.approx([a / p for a, p in zip(achieved, peaks)])
    assert {r.method for r in calibration} == {f"{METHOD}, {how}" for how in MATMULS}


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
    peak, rows = MatmulPeak("cpu", torch.float32, size=128).measure()
    assert len(rows) == 2 and all(r.unit == "FLOP/s" and r.value > 0 and r.n == 128 for r in rows)
    assert peak == max(r.value for r in rows)
    with pytest.raises(ValueError, match="timing budget .* is invalid"):
        TimingBudget(min_repeats=1)
    with pytest.raises(ValueError, match="phase='backward' is invalid; valid: train_step, inference"):
        make_workload(TINY, 1).phase("backward")


def test_the_1x1_convolution_computes_the_same_matmul():
    a, b = torch.randn(5, 3), torch.randn(3, 4)
    out = torch.nn.functional.conv2d(*matmul_as_conv(a, b))
    assert out.shape == (1, 4, 5, 1)
    torch.testing.assert_close(out.reshape(4, 5).t(), a @ b)


def test_interleaved_speedup_gives_one_ratio_per_round_of_each_phase():
    ours, peer = make_workload(TINY, 2), make_workload(TINY.replace(upsample="conv_transpose"), 2)
    budget = TimingBudget(warmup=1, min_repeats=4, min_run_time=0.01, max_run_time=0.1)
    rows = interleaved_speedup(ours, peer, budget)
    for phase in ("train_step", "inference"):
        mine = [r for r in rows if r.phase == phase]
        assert [r.repeat for r in mine] == list(range(len(mine))) and len(mine) >= 4
        assert all(r.metric == "ours_speedup" and r.unit == "ratio" and r.value > 0 and r.n == 2 for r in mine)
        assert all(r.method.startswith("interleaved A/B") for r in mine)


def test_a_budget_wants_its_repeats_and_time_then_a_steady_median_or_its_maximum():
    budget = TimingBudget(warmup=0, min_repeats=3, min_run_time=1.0, max_run_time=4.0)
    assert not budget.done([1.0, 1.0], number=1)            # too few blocks
    assert not budget.done([0.1, 0.1, 0.1], number=1)       # too little time
    assert budget.done([1.0, 1.0, 1.0], number=1)           # steady
    assert not budget.done([1.0, 1.5, 0.5], number=1)       # noisy, and time is left
    assert budget.done([1.0, 1.5, 0.5, 1.2], number=1)      # noisy, but the maximum is spent
