"""The memory a model's training state takes, planned before any work from a meta-device build (no storage)."""
from __future__ import annotations

import functools

import torch

from variants import UNetSpec, build

# What holding one model ready for both phases costs: fp32 weights, their gradients and AdamW's two moments.
STATE_BYTES_PER_PARAM = 16
STATE_METHOD = f"{STATE_BYTES_PER_PARAM} bytes per parameter (fp32 weights, gradients, AdamW's two moments)"


@functools.lru_cache(maxsize=None)
def planned_state_bytes(spec: UNetSpec) -> int:
    """Bytes of one of our models' state (weights, gradients, optimizer moments), from a meta-device build."""
    with torch.device("meta"):
        params = sum(p.numel() for p in build(spec).parameters())
    return STATE_BYTES_PER_PARAM * params
