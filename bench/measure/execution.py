"""Running a workload under an execution option (bench/plan/execution.py): autocast, loss scaling, memory
format and compilation. Compilation happens at the first call of each phase; its wall time is recorded as
``compile_seconds``. ``TOLERANCE`` states how far each option may move the outputs from fp32 eager
(tests/test_execution.py checks it).
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import ContextManager

import torch

from bench.measure.workload import Workload
from bench.plan.execution import Execution
from bench.schema import TIMED_PHASES, Measurement

# Largest allowed max|out - out_fp32_eager| / max|out_fp32_eager| of a forward pass, per compute dtype:
# fp32 allows reordered sums (channels_last kernels, inductor fusion); half types their 8 / 11-bit mantissa
# accumulated over a few dozen layers.
TOLERANCE = {"float32": 1e-4, "bfloat16": 5e-2, "float16": 1e-2}


@dataclass
class ExecutedWorkload(Workload):
    """A Workload run under an execution option: autocast around forward and loss, fp16 loss scaling."""

    execution: Execution = field(default_factory=Execution)
    scaler: torch.amp.GradScaler | None = None

    @property
    def device_type(self) -> str:
        return self.x0.device.type

    def autocast(self) -> ContextManager:
        if self.execution.dtype == "float32":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=getattr(torch, self.execution.dtype))

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
    execution.check(str(workload.x0.device))
    x0, eps = workload.x0, workload.eps
    if execution.memory_format == "channels_last":
        workload.model.to(memory_format=torch.channels_last)
        x0, eps = x0.contiguous(memory_format=torch.channels_last), eps.contiguous(memory_format=torch.channels_last)
    if execution.compile:
        workload.model.compile()
    scaler = torch.amp.GradScaler(x0.device.type) if execution.dtype == "float16" else None
    return ExecutedWorkload(workload.model, x0, workload.sigma, eps, workload.optimizer, execution, scaler)


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
