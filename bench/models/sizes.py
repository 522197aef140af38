"""The memory a model's training state takes, planned before any work from a meta-device build (no storage)."""
from __future__ import annotations

import functools

import torch

from variants import AXES, UNetSpec, build

# What holding one model ready for both phases costs: fp32 weights, their gradients and AdamW's two moments.
STATE_BYTES_PER_PARAM = 16
STATE_METHOD = f"{STATE_BYTES_PER_PARAM} bytes per parameter (fp32 weights, gradients, AdamW's two moments)"


@functools.lru_cache(maxsize=None)
def planned_state_bytes(spec: UNetSpec) -> int:
    """Bytes of one of our models' state (weights, gradients, optimizer moments), from a meta-device build."""
    with torch.device("meta"):
        params = sum(p.numel() for p in build(spec).parameters())
    return STATE_BYTES_PER_PARAM * params


@functools.lru_cache(maxsize=None)
def planned_step_bytes(spec: UNetSpec, batch_size: int) -> int:
    """Bytes one training step of our U-Net at ``spec`` holds at its peak, planned before any work: its state
    (``planned_state_bytes``) and the activations autograd saves for backward at ``batch_size``, counted by a
    forward on the meta device (shapes only; storages shared by several saved tensors counted once, within ~15%
    of the real saved bytes on the 8x8 and 28x28 bases)."""
    with torch.device("meta"):
        model = build(spec).train()
        x0 = torch.randn(batch_size, *model.input_dims)
        sigma, eps = torch.ones(batch_size, 1, 1, 1), torch.randn_like(x0)
    params = {p.untyped_storage()._cdata for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage._cdata not in params:
            saved[storage._cdata] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.get_loss(x0, sigma, eps)
    return planned_state_bytes(spec) + sum(saved.values())


def parameter_count(spec: UNetSpec) -> int:
    """Parameters of our U-Net at ``spec``, from a meta-device build."""
    return planned_state_bytes(spec) // STATE_BYTES_PER_PARAM


def base_summary(spec: UNetSpec) -> str:
    """One line for ``bench list``: shape, widths, blocks, attention, the axes off their reference level, size."""
    axes = [f"{name}={axis.text(getattr(spec, name))}" for name, axis in AXES.items()
            if name != "attn_resolutions" and getattr(spec, name) != axis.default]
    attention = "+".join(map(str, spec.attn_resolutions)) or "middle only"
    blocks = f"{spec.num_res_blocks} block{'s' if spec.num_res_blocks != 1 else ''} per level"
    return (f"{spec.in_dim}x{spec.in_dim}x{spec.in_ch}, ch {spec.ch}, ch_mult {'+'.join(map(str, spec.ch_mult))}, "
            f"{blocks}, attention at {attention}, {parameter_count(spec):,} parameters"
            + (f"; {', '.join(axes)}" if axes else ""))
