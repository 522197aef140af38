"""Execution options: each keeps outputs within its stated tolerance of fp32 eager, and bad ones fail early."""
import itertools

import pytest
import torch

from bench.cli import main
from bench.measure.execution import TOLERANCE, apply, compile_seconds
from bench.measure.workload import make_workload
from bench.plan.execution import Execution, executions
from variants import UNetSpec

TINY = UNetSpec(in_dim=8, in_ch=1, out_ch=1, ch=16, ch_mult=(1, 2), attn_resolutions=(4,), norm_groups=8,
                num_res_blocks=1, dropout=0.0)
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
EAGER_OPTIONS = [
    *(pytest.param("cpu", Execution(m, d), id=f"cpu-{m}-{d}")
      for m, d in itertools.product(("contiguous", "channels_last"), ("float32", "bfloat16"))),
    *(pytest.param("cuda", Execution(m, d), id=f"cuda-{m}-{d}", marks=CUDA)
      for m, d in itertools.product(("contiguous", "channels_last"), ("float32", "bfloat16", "float16"))),
]


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.float() - ref).abs().max() / ref.abs().max()).item()


def forward_and_loss(device: str, execution: Execution) -> tuple[torch.Tensor, float]:
    """Eval-mode forward and the training loss, from the same seeded weights and inputs."""
    workload = apply(make_workload(TINY, 4, device), execution)
    with torch.no_grad(), workload.autocast():
        out = workload.model.eval()(workload.x0 + workload.sigma * workload.eps, workload.sigma)
        loss = workload.model.train().get_loss(workload.x0, workload.sigma, workload.eps)
    return out.float().cpu(), loss.item()


@pytest.mark.parametrize("device,execution", EAGER_OPTIONS)
def test_every_eager_option_stays_within_its_tolerance_of_fp32_eager(device, execution):
    ref, ref_loss = forward_and_loss(device, Execution())
    out, loss = forward_and_loss(device, execution)
    error = relative_error(out, ref)
    assert error <= TOLERANCE[execution.dtype]
    assert abs(loss - ref_loss) <= TOLERANCE[execution.dtype] * ref_loss
    if execution.dtype != "float32":
        assert error > 0  # autocast really ran in the half type


@pytest.mark.parametrize("device,execution", EAGER_OPTIONS)
def test_a_training_step_runs_under_every_option_and_changes_the_weights(device, execution):
    workload = apply(make_workload(TINY, 2, device), execution)
    before = [p.detach().clone() for p in workload.model.parameters()]
    workload.phase("train_step")()
    workload.phase("inference")()
    assert all(torch.isfinite(p).all() for p in workload.model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, workload.model.parameters()))
    if execution.memory_format == "channels_last":
        conv = workload.model.downs[0].blocks[0].resnet.conv1.weight  # 16 in, 16 out: the layouts differ
        assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()


def test_compiled_forward_stays_within_fp32_tolerance_and_records_compile_time():
    ref, _ = forward_and_loss("cpu", Execution())
    workload = apply(make_workload(TINY, 4), Execution(compile=True))
    workload.model.eval()
    with torch.no_grad():
        out = workload.model(workload.x0 + workload.sigma * workload.eps, workload.sigma)
    assert relative_error(out, ref) <= TOLERANCE["float32"]
    assert workload.model._compiled_call_impl is not None  # nn.Module.compile() took effect


def test_compile_seconds_times_the_first_call_of_each_phase():
    calls = []
    workload = apply(make_workload(TINY, 2), Execution())
    workload.train_step = lambda: calls.append("train_step")  # stand-ins: the timing, not the compiler
    workload.inference = lambda: calls.append("inference")
    rows = compile_seconds(workload)
    assert calls == ["train_step", "inference"]
    assert [(r.phase, r.metric, r.unit) for r in rows] == [("train_step", "compile_seconds", "s"),
                                                           ("inference", "compile_seconds", "s")]
    assert all(r.value >= 0 for r in rows)


def test_executions_are_the_product_of_the_options_each_checked_for_the_device():
    combos = executions("cpu", ("contiguous", "channels_last"), ("float32", "bfloat16"), (False, True))
    assert len(set(combos)) == 8
    with pytest.raises(ValueError, match="--dtype float16 is CUDA-only"):
        executions("cpu", ("contiguous",), ("float32", "float16"), (False,))
    with pytest.raises(ValueError, match="--memory-format 'nhwc' is invalid; valid: contiguous, channels_last"):
        executions("cpu", ("nhwc",), ("float32",), (False,))
    with pytest.raises(ValueError, match="--dtype: no value given"):
        executions("cpu", ("contiguous",), (), (False,))


@pytest.mark.parametrize("args,message", [
    (["--dtype", "float16"], "--dtype float16 is CUDA-only"),
    (["--dtype", "float64"], "--dtype 'float64' is invalid; valid: float32, bfloat16, float16"),
    (["--memory-format", "nhwc"], "--memory-format 'nhwc' is invalid; valid: contiguous, channels_last"),
    (["--compile", "yes"], "--compile 'yes' is invalid; valid: off, on"),
    (["--peers", "edm"], "--peers 'edm' is not a peer; valid: smalldiffusion, diffusers, lucidrains"),
])
def test_bad_execution_options_fail_before_any_work(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--preset", "smoke", "--only", "cost", *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
