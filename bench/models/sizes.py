"""The memory a model's training step takes: its state and the activations it saves, counted the same way for
the plan (a meta-device build, no storage) and the measurement."""
from __future__ import annotations

import functools

import torch
from torch import nn

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


def saved_bytes(model: nn.Module, x0: torch.Tensor, sigma: torch.Tensor, eps: torch.Tensor) -> int:
    """Bytes autograd keeps for backward in one training step of ``model`` (``get_loss`` at x0, sigma, eps): every
    tensor ``saved_tensors_hooks`` packs, the inputs that non-reentrant checkpointing keeps for its recompute
    among them; parameters excluded; a storage shared by several saved tensors counted once. Any device, the meta
    device included, so the plan and the measurement count alike."""
    params = {p.untyped_storage()._cdata for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage._cdata not in params:
            storages[storage._cdata] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model.get_loss(x0, sigma, eps)
    del loss
    return sum(storages.values())


@functools.lru_cache(maxsize=None)
def planned_step_bytes(spec: UNetSpec, batch_size: int) -> int:
    """Bytes one training step of our U-Net at ``spec`` holds at its peak, planned before any work: its state
    (``planned_state_bytes``) and the activations autograd saves for backward at ``batch_size``
    (``saved_bytes`` on the meta device: exact with checkpointing, else above the real count, by how much:
    docs/failures.md; the meta device runs torch's dropout, a float mask, where the CPU runs ours, a byte per
    element, and the rest of the gap is not traced)."""
    with torch.device("meta"):
        model = build(spec).train()
        x0 = torch.randn(batch_size, *model.input_dims)
        sigma, eps = torch.ones(batch_size, 1, 1, 1), torch.randn_like(x0)
        return planned_state_bytes(spec) + saved_bytes(model, x0, sigma, eps)


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
