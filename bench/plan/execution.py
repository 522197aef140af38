"""Execution options: how a model runs, swept like block variants to see whether a conclusion survives them.

- memory format: ``contiguous`` (NCHW) or ``channels_last`` (NHWC; weights and inputs converted).
- dtype: ``float32``; ``bfloat16`` autocast (CPU and CUDA); ``float16`` autocast with a GradScaler (CUDA
  only). Weights and optimizer state stay fp32, as in mixed-precision training.
- compile: eager, or ``nn.Module.compile()`` (``torch.compile`` of the module's ``__call__``, default
  inductor backend).

None changes the architecture or the FLOPs. How each is applied to a model: bench/measure/execution.py.
"""
from __future__ import annotations

from dataclasses import dataclass

from bench.schema import DEFAULT_EXECUTION

MEMORY_FORMATS = ("contiguous", "channels_last")
DTYPES = ("float32", "bfloat16", "float16")
CUDA_ONLY_DTYPES = ("float16",)


@dataclass(frozen=True)
class Execution:
    memory_format: str = DEFAULT_EXECUTION["memory_format"]
    dtype: str = DEFAULT_EXECUTION["dtype"]
    compile: bool = DEFAULT_EXECUTION["compile"]

    def check(self, device: str) -> None:
        """Raise ValueError naming the option, the bad value and what is valid on ``device``."""
        if self.memory_format not in MEMORY_FORMATS:
            raise ValueError(f"--memory-format {self.memory_format!r} is invalid; valid: {', '.join(MEMORY_FORMATS)}")
        if self.dtype not in DTYPES:
            raise ValueError(f"--dtype {self.dtype!r} is invalid; valid: {', '.join(DTYPES)}")
        if self.dtype in CUDA_ONLY_DTYPES and not device.startswith("cuda"):
            raise ValueError(f"--dtype {self.dtype} is CUDA-only (fp16 autocast with loss scaling); "
                             f"valid on {device}: {', '.join(d for d in DTYPES if d not in CUDA_ONLY_DTYPES)}")
        if not isinstance(self.compile, bool):
            raise ValueError(f"--compile {self.compile!r} is invalid; valid: off, on")

    @property
    def is_default(self) -> bool:
        return self == Execution()


def executions(device: str, memory_formats: tuple[str, ...], dtypes: tuple[str, ...],
               compiles: tuple[bool, ...]) -> list[Execution]:
    """Every combination of the options, each checked for ``device`` (ValueError before any work)."""
    for option, values, valid in (("--memory-format", memory_formats, MEMORY_FORMATS), ("--dtype", dtypes, DTYPES),
                                  ("--compile", compiles, ("off", "on"))):
        if not values:
            raise ValueError(f"{option}: no value given; valid: {', '.join(valid)} (comma-separated)")
    combos = [Execution(m, d, c) for m in memory_formats for d in dtypes for c in compiles]
    for execution in combos:
        execution.check(device)
    return combos
