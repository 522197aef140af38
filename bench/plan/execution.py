"""Execution options: how a model runs, swept like block variants to see whether a conclusion survives them.

- memory format: ``contiguous`` (NCHW) or ``channels_last`` (NHWC; weights and inputs converted).
- dtype, the compute precision: ``float32`` (IEEE fp32 matmuls and convolutions: TF32 off); ``tf32`` (CUDA only:
  fp32 tensors, matmuls and convolutions on TF32 tensor cores); ``bfloat16`` autocast (CPU and CUDA); ``float16``
  autocast with a GradScaler (CUDA only). Weights and optimizer state stay fp32, as in mixed-precision training.
- compile: ``off`` (eager), ``on`` (``nn.Module.compile()``: ``torch.compile`` of the module's ``__call__``, default
  inductor backend) or ``cudagraphs`` (CUDA only: ``mode="reduce-overhead"``, inductor's code replayed as CUDA
  graphs; the AdamW step stays eager, one fused kernel per parameter group).

None changes the architecture or the FLOPs. How each is applied to a model: bench/measure/execution.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.schema import DEFAULT_EXECUTION

MEMORY_FORMATS = ("contiguous", "channels_last")
DTYPES = ("float32", "tf32", "bfloat16", "float16")
COMPILE_MODES = ("off", "on", "cudagraphs")
# What each CUDA-only value needs that a CPU lacks: said when one is asked for on a CPU.
CUDA_ONLY = {("--dtype", "float16"): "fp16 autocast with loss scaling",
             ("--dtype", "tf32"): "TF32 is a precision of NVIDIA tensor cores",
             ("--compile", "cudagraphs"): "CUDA graphs replay recorded GPU work"}


@dataclass(frozen=True)
class Execution:
    memory_format: str = DEFAULT_EXECUTION["memory_format"]
    dtype: str = DEFAULT_EXECUTION["dtype"]
    compile: str = "off"

    @property
    def compiled(self) -> bool:
        return self.compile != "off"

    @property
    def cuda_graphs(self) -> bool:
        return self.compile == "cudagraphs"

    def check(self, device: str) -> None:
        """Raise ValueError naming the option, the bad value and what is valid on ``device``."""
        for option, value, valid in (("--memory-format", self.memory_format, MEMORY_FORMATS),
                                     ("--dtype", self.dtype, DTYPES), ("--compile", self.compile, COMPILE_MODES)):
            if value not in valid:
                raise ValueError(f"{option} {value!r} is invalid; valid: {', '.join(valid)}")
            why = CUDA_ONLY.get((option, value))
            if why and not device.startswith("cuda"):
                on_cpu = [v for v in valid if (option, v) not in CUDA_ONLY]
                raise ValueError(f"{option} {value} is CUDA-only ({why}); valid on {device}: {', '.join(on_cpu)}")

    @property
    def is_default(self) -> bool:
        return self == Execution()

    def cell_fields(self) -> dict[str, Any]:
        """The execution's columns in a cell and in the table (bench.plan.cells.Cell)."""
        return {"memory_format": self.memory_format, "dtype": self.dtype, "compile": self.compiled,
                "cuda_graphs": self.cuda_graphs}

    @classmethod
    def of(cls, cell: Any) -> Execution:
        """The execution a cell (or anything with its columns) runs under."""
        mode = "cudagraphs" if cell.cuda_graphs else "on" if cell.compile else "off"
        return cls(cell.memory_format, cell.dtype, mode)


def compile_mode(value: Any) -> str:
    """A sweep file's or the command line's compile value as a mode: ``off``, ``on``, ``cudagraphs``; ``false`` and
    ``true`` (a sweep file's booleans) are ``off`` and ``on``."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return value


def executions(device: str, memory_formats: tuple[str, ...], dtypes: tuple[str, ...],
               compiles: tuple[str, ...]) -> list[Execution]:
    """Every combination of the options, each checked for ``device`` (ValueError before any work)."""
    for option, values, valid in (("--memory-format", memory_formats, MEMORY_FORMATS), ("--dtype", dtypes, DTYPES),
                                  ("--compile", compiles, COMPILE_MODES)):
        if not values:
            raise ValueError(f"{option}: no value given; valid: {', '.join(valid)} (comma-separated)")
    combos = [Execution(m, d, c) for m in memory_formats for d in dtypes for c in compiles]
    for execution in combos:
        execution.check(device)
    return combos
