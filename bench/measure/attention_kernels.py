"""Which kernel ran each scaled-dot-product attention: flash, efficient (memory-efficient), cuDNN or math.

``F.scaled_dot_product_attention`` picks its kernel per call from the inputs' device, dtype, head size, strides
and whether gradients are needed: on CUDA, fp32 rules out flash and cuDNN, and 1 head of 256 channels against 4
heads of 64 can take different kernels, so the kernel is part of what an axis like ``attn_heads`` changes under
a setting. It is read here, not pinned: ``torch.profiler`` records the aten op each call dispatched to
(``aten::_scaled_dot_product_flash_attention`` and so on), counted over one eager call of a phase. A compiled
model runs the op the eager call picks (torch.compile decomposes SDPA into the chosen backend's op while
tracing from the same inputs), and a CUDA graph replay shows no ops to a profiler, so the eager call is the one
record that covers every setting.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections import Counter
from typing import Callable, Iterator

import torch
from torch.profiler import ProfilerActivity, profile

from bench.measure.workload import Workload
from bench.schema import TIMED_PHASES, Measurement

SDPA_OP = "aten::scaled_dot_product_attention"
# The op each backend dispatches to, by torch.nn.attention.SDPBackend's name (lower case).
BACKEND_OPS = {
    "aten::_scaled_dot_product_flash_attention": "flash_attention",
    "aten::_scaled_dot_product_flash_attention_for_cpu": "flash_attention",
    "aten::_scaled_dot_product_efficient_attention": "efficient_attention",
    "aten::_scaled_dot_product_cudnn_attention": "cudnn_attention",
    "aten::_scaled_dot_product_attention_math": "math",
    "aten::_scaled_dot_product_attention_math_for_mps": "math",
    "aten::_scaled_dot_product_fused_attention_overrideable": "overrideable",
}
BACKENDS = tuple(dict.fromkeys(BACKEND_OPS.values()))
UNKNOWN = "unknown"  # an SDPA call whose kernel op this table does not name: counted, never dropped
METHOD = "torch.profiler: aten SDPA ops of one eager call"


def sdpa_calls(run: Callable[[], object], device: torch.device | str) -> tuple[int, Counter]:
    """(SDPA calls, calls per backend) in one call of ``run``."""
    with _quiet_stderr():
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run()
            if torch.device(device).type == "cuda":
                torch.cuda.synchronize(device)
        names = Counter(event.name() for event in _outermost(prof.profiler.kineto_results.events(),
                                                             {SDPA_OP, *BACKEND_OPS}))
    backends = Counter({backend: 0 for backend in BACKENDS})
    for op, backend in BACKEND_OPS.items():
        backends[backend] += names[op]
    backends[UNKNOWN] = max(0, names[SDPA_OP] - sum(backends.values()))
    return sum(backends.values()), +backends  # +: backends that ran at least once


def _outermost(events: list, names: set[str]) -> list:
    """The raw profiler events named in ``names``, less each one nested in an event of its own name on its thread
    (autocast dispatches an op again inside itself): what ``prof.events()`` counts, without building every event's
    parent tree, which took longer than the profiled step itself (docs/timing.md)."""
    kept = sorted((e for e in events if e.name() in names), key=lambda e: (e.start_ns(), -e.duration_ns()))
    open_until: dict[tuple[str, int], int] = {}  # (name, thread) -> end of the outermost such event so far
    out = []
    for event in kept:
        key, end = (event.name(), event.start_thread_id()), event.start_ns() + event.duration_ns()
        if event.start_ns() < open_until.get(key, -1):
            continue
        open_until[key] = end
        out.append(event)
    return out


def sdpa_rows(workload: Workload) -> list[Measurement]:
    """Per timed phase: ``sdpa_calls`` (every call, 0 for a model without SDPA) and ``sdpa_calls_<backend>`` for
    each backend that ran, per call of the phase. ``workload`` must be eager (bench.measure.execution.prepare)."""
    rows = []
    for phase in TIMED_PHASES:
        total, backends = sdpa_calls(workload.phase(phase), workload.x0.device)
        rows.append(Measurement(phase, "sdpa_calls", float(total), "calls", METHOD, n=1))
        rows += [Measurement(phase, f"sdpa_calls_{backend}", float(count), "calls", METHOD, n=1)
                 for backend, count in sorted(backends.items())]
    return rows


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """The profiler's C++ library logs every start and stop to the process's stderr: keep that out of a run's
    output (an exception still propagates, with its message)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
