"""Running a workload under an execution option (bench/plan/execution.py): the fp32 precision of matmuls and
convolutions (IEEE or TF32), autocast, loss scaling, memory format and compilation. Compilation happens at the
first call of each phase; its wall time is recorded as ``compile_seconds``. ``TOLERANCE`` states how far each
option may move the outputs from fp32 eager (tests/measure/test_execution.py checks it).
"""
from __future__ import annotations

import contextlib
import importlib
import time
from dataclasses import dataclass, field
from typing import ContextManager, Sequence

import torch

from bench.measure.workload import Workload
from bench.plan.cells import Cell
from bench.plan.execution import Execution
from bench.schema import TIMED_PHASES, Measurement

# Largest allowed max|out - out_fp32_eager| / max|out_fp32_eager| of a forward pass, per compute dtype:
# fp32 allows reordered sums (channels_last kernels, inductor fusion); TF32 and the half types their 10 / 8 /
# 11-bit mantissa accumulated over a few dozen layers.
TOLERANCE = {"float32": 1e-4, "tf32": 1e-2, "bfloat16": 5e-2, "float16": 1e-2}


@dataclass
class ExecutedWorkload(Workload):
    """A Workload run under an execution option: autocast around forward and loss, fp16 loss scaling."""

    execution: Execution = field(default_factory=Execution)
    scaler: torch.amp.GradScaler | None = None

    @property
    def device_type(self) -> str:
        return self.x0.device.type

    def autocast(self) -> ContextManager:
        if self.execution.dtype not in AUTOCAST_DTYPES:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=torch_dtype(self.execution.dtype))

    def train_step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            loss = self.model.get_loss(self.x0, self.sigma, self.eps)
        if self.scaler is None:
            loss.backward()
            self.optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()

    @torch.no_grad()
    def inference(self) -> None:
        with self.autocast():
            self.model(self.x0 + self.sigma * self.eps, self.sigma)


def apply(workload: Workload, execution: Execution) -> ExecutedWorkload:
    """The same model, inputs and optimizer, run under ``execution`` (the model is changed in place)."""
    return compile_model(prepare(workload, execution))


def prepare(workload: Workload, execution: Execution) -> ExecutedWorkload:
    """Everything ``apply`` does but compiling: what an eager call under ``execution`` needs."""
    execution.check(str(workload.x0.device))
    set_precision(workload.x0.device, execution.dtype)
    x0, eps = workload.x0, workload.eps
    if execution.memory_format == "channels_last":
        workload.model.to(memory_format=torch.channels_last)
        x0, eps = x0.contiguous(memory_format=torch.channels_last), eps.contiguous(memory_format=torch.channels_last)
    scaler = torch.amp.GradScaler(x0.device.type) if execution.dtype == "float16" else None
    return ExecutedWorkload(workload.model, x0, workload.sigma, eps, workload.optimizer, execution, scaler)


def compile_model(workload: ExecutedWorkload) -> ExecutedWorkload:
    """Compile the model in place when its execution says so: ``torch.compile`` of its ``__call__``, with CUDA
    graphs (inductor's ``reduce-overhead`` mode) for ``cudagraphs``. Nothing is compiled before the first call."""
    if workload.execution.compiled:
        workload.model.compile(mode="reduce-overhead" if workload.execution.cuda_graphs else None)
    return workload


# Autocast dtypes; the others run in fp32, at the precision set_precision sets.
AUTOCAST_DTYPES = ("bfloat16", "float16")


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype of an execution dtype: ``tf32`` computes on fp32 tensors."""
    return torch.float32 if name == "tf32" else getattr(torch, name)


def enter_cell(cell_json: str, plugins: Sequence[str]) -> Cell:
    """The cell a fresh process measures, with the process set up for it: the user's variant modules imported
    first (the cell's spec may name their variants), then torch's threads and precision set."""
    for module in plugins:  # user modules that register extra variants
        importlib.import_module(module)
    cell = Cell.from_json(cell_json)
    torch.set_num_threads(cell.threads)
    set_precision(cell.device, cell.dtype)  # quality cells too: on CUDA their dtype says whether TF32 is on
    return cell


def set_precision(device: torch.device | str, dtype: str) -> None:
    """Process-wide precision of fp32 matmuls and convolutions on CUDA: TF32 for ``tf32``, IEEE fp32 for every other
    dtype (torch's own default lets cuDNN convolutions use TF32; here fp32 means fp32). No effect on a CPU."""
    if torch.device(device).type == "cuda":
        set_tf32(dtype == "tf32")


def set_tf32(on: bool) -> None:
    if _NEW_PRECISION_API:  # torch >= 2.9; mixing it with the allow_tf32 flags is an error there
        torch.backends.cuda.matmul.fp32_precision = "tf32" if on else "ieee"
        torch.backends.cudnn.conv.fp32_precision = "tf32" if on else "ieee"
    else:
        torch.backends.cuda.matmul.allow_tf32 = on
        torch.backends.cudnn.allow_tf32 = on


def tf32_settings() -> dict[str, str]:
    """Whether fp32 matmuls (cuBLAS) and convolutions (cuDNN) may use TF32, as torch reports it now."""
    if _NEW_PRECISION_API:  # reading the old flags (or get_float32_matmul_precision) after setting these fails
        return {"api": "fp32_precision", "matmul": torch.backends.cuda.matmul.fp32_precision,
                "cudnn_conv": torch.backends.cudnn.conv.fp32_precision}
    return {"api": "allow_tf32", "matmul": str(torch.backends.cuda.matmul.allow_tf32),
            "cudnn_conv": str(torch.backends.cudnn.allow_tf32)}


_NEW_PRECISION_API = hasattr(torch.backends.cudnn, "conv")


def compile_seconds(workload: ExecutedWorkload) -> list[Measurement]:
    """Wall time of each phase's first call after ``compile()``: compilation plus one run, one row per phase.

    Train and eval mode compile separate graphs, so each phase pays its own compilation.
    """
    rows = []
    for phase in TIMED_PHASES:
        run = workload.phase(phase)
        _synchronize(workload)
        start = time.perf_counter()
        run()
        _synchronize(workload)
        rows.append(Measurement(phase, "compile_seconds", time.perf_counter() - start, "s",
                                "first call after torch.compile", n=workload.batch_size))
    return rows


def _synchronize(workload: Workload) -> None:
    if workload.x0.device.type == "cuda":
        torch.cuda.synchronize(workload.x0.device)
