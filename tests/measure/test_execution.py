"""Execution options: each keeps outputs within its stated tolerance of fp32 eager, and bad ones fail early."""
import itertools

import pytest
import torch

from bench.cli import main
from bench.measure.execution import TOLERANCE, apply, compile_seconds, set_precision, tf32_settings
from bench.measure.workload import make_workload
from bench.plan.execution import Execution, executions
from variants import UNetSpec

TINY = UNetSpec(in_dim=8, in_ch=1, out_ch=1, ch=16, ch_mult=(1, 2), attn_resolutions=(4,), norm_groups=8,
                num_res_blocks=1, dropout=0.0)
# `pytest -m cuda` selects the tests that need a GPU (what `make gpu-check` runs); elsewhere they are skipped.
CUDA = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
EAGER_OPTIONS = [
    *(pytest.param("cpu", Execution(m, d), id=f"cpu-{m}-{d}")
      for m, d in itertools.product(("contiguous", "channels_last"), ("float32", "bfloat16"))),
    *(pytest.param("cuda", Execution(m, d), id=f"cuda-{m}-{d}", marks=CUDA)
      for m, d in itertools.product(("contiguous", "channels_last"), ("float32", "tf32", "bfloat16", "float16"))),
]
# compiled in fp32, the tightest tolerance; bf16 and CUDA graphs in timing and cost cells: tests/measure/test_cuda.py
COMPILED_OPTIONS = [
    pytest.param("cpu", Execution(compile="on"), id="cpu-compiled"),
    pytest.param("cuda", Execution(compile="cudagraphs"), id="cuda-cudagraphs", marks=CUDA),
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


@pytest.mark.parametrize("device,execution", COMPILED_OPTIONS)
def test_compiled_steps_stay_within_the_tolerance_of_fp32_eager(device, execution):
    """Inference and three AdamW training steps compiled (CUDA graphs: the third step is a replay) against the same
    steps in eager fp32, from the same weights and inputs."""
    eager = apply(make_workload(TINY, 4, device), Execution())
    compiled = apply(make_workload(TINY, 4, device), execution)
    for workload in (eager, compiled):
        for _ in range(3):
            workload.phase("train_step")()
        workload.phase("inference")()
    tolerance = 10 * TOLERANCE[execution.dtype]  # three optimizer steps compound the forward's error
    assert compiled.model._compiled_call_impl is not None  # nn.Module.compile() took effect
    for ref, out in zip(eager.model.parameters(), compiled.model.parameters()):
        assert relative_error(out.detach(), ref.detach()) <= tolerance
    outputs = []
    for workload in (eager, compiled):
        with torch.no_grad(), workload.autocast():
            outputs.append(workload.model.eval()(workload.x0 + workload.sigma * workload.eps, workload.sigma).float())
    assert relative_error(outputs[1], outputs[0]) <= tolerance


def test_cuda_graphs_compile_in_reduce_overhead_mode_and_are_refused_on_a_cpu(monkeypatch):
    with pytest.raises(ValueError, match="--compile cudagraphs is CUDA-only .*; valid on cpu: off, on"):
        apply(make_workload(TINY, 2), Execution(compile="cudagraphs"))
    modes = []
    monkeypatch.setattr(Execution, "check", lambda self, device: None)  # as on a GPU: the mode is what is checked
    workload = make_workload(TINY, 2)
    monkeypatch.setattr(workload.model, "compile", lambda mode=None: modes.append(mode))
    apply(workload, Execution(compile="cudagraphs"))
    apply(workload, Execution(compile="on"))
    assert modes == ["reduce-overhead", None]


def test_the_dtype_sets_the_fp32_precision_of_cuda_matmuls_and_convolutions():
    """TF32 is process-wide state: tf32 turns it on for cuBLAS and cuDNN, every other dtype off (IEEE fp32, not
    torch's default of TF32 convolutions), and a CPU changes nothing."""
    before = tf32_settings()
    try:
        set_precision("cuda", "tf32")
        assert (tf32_settings()["matmul"], tf32_settings()["cudnn_conv"]) in {("tf32", "tf32"), ("True", "True")}
        set_precision("cpu", "float32")
        assert tf32_settings()["matmul"] in ("tf32", "True")
        for dtype in ("float32", "bfloat16"):
            set_precision("cuda", dtype)
            assert (tf32_settings()["matmul"], tf32_settings()["cudnn_conv"]) in {("ieee", "ieee"), ("False", "False")}
    finally:
        if before["api"] == "fp32_precision":
            torch.backends.cuda.matmul.fp32_precision = before["matmul"]
            torch.backends.cudnn.conv.fp32_precision = before["cudnn_conv"]
        else:
            torch.backends.cuda.matmul.allow_tf32 = before["matmul"] == "True"
            torch.backends.cudnn.allow_tf32 = before["cudnn_conv"] == "True"


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
    combos = executions("cpu", ("contiguous", "channels_last"), ("float32", "bfloat16"), ("off", "on"))
    assert len(set(combos)) == 8
    assert len(executions("cuda", ("contiguous",), ("float32", "tf32"), ("off", "on", "cudagraphs"))) == 6
    with pytest.raises(ValueError, match="--dtype float16 is CUDA-only"):
        executions("cpu", ("contiguous",), ("float32", "float16"), ("off",))
    with pytest.raises(ValueError, match="--dtype tf32 is CUDA-only"):
        executions("cpu", ("contiguous",), ("tf32",), ("off",))
    with pytest.raises(ValueError, match="--memory-format 'nhwc' is invalid; valid: contiguous, channels_last"):
        executions("cpu", ("nhwc",), ("float32",), ("off",))
    with pytest.raises(ValueError, match="--dtype: no value given"):
        executions("cpu", ("contiguous",), (), ("off",))


@pytest.mark.parametrize("args,message", [
    (["--dtype", "float16"], "--dtype float16 is CUDA-only"),
    (["--dtype", "tf32"], "--dtype tf32 is CUDA-only (TF32 is a precision of NVIDIA tensor cores); valid on cpu: "
                          "float32, bfloat16"),
    (["--dtype", "float64"], "--dtype 'float64' is invalid; valid: float32, tf32, bfloat16, float16"),
    (["--memory-format", "nhwc"], "--memory-format 'nhwc' is invalid; valid: contiguous, channels_last"),
    (["--compile", "yes"], "--compile 'yes' is invalid; valid: off, on, cudagraphs"),
    (["--compile", "cudagraphs"], "--compile cudagraphs is CUDA-only (CUDA graphs replay recorded GPU work); "
                                  "valid on cpu: off, on"),
    (["--time-limit", "0"], "--time-limit 0 is invalid; valid: seconds, a positive number"),
    (["--peers", "edm"], "--peers 'edm' is not a peer; valid: smalldiffusion, diffusers, lucidrains"),
])
def test_bad_execution_options_fail_before_any_work(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--preset", "smoke", "--only", "cost", *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
