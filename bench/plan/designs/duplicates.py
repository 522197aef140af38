"""Specs that build the same network: the same modules, parameter shapes and function under different axis values
(``num_head_channels=32`` on 32-channel attention is ``attn_heads=1``). A sweep measures each network once.

Two specs are one network when their meta-device builds print the same module tree with the same parameter and
buffer shapes (and they agree on gradient checkpointing, which changes cost but no module), and, built from the
same seed, they have equal weights and return bitwise-equal outputs on the same inputs at two noise levels.
"""
from __future__ import annotations

from typing import Any

import torch

from variants import UNetSpec, build


def distinct_networks(specs: list[UNetSpec]) -> tuple[list[UNetSpec], list[tuple[UNetSpec, UNetSpec]]]:
    """``specs`` less every one that builds the same network as an earlier one, and the (dropped, kept) pairs."""
    kept: list[UNetSpec] = []
    by_structure: dict[Any, list[UNetSpec]] = {}
    merged = []
    for spec in specs:
        candidates = by_structure.setdefault(_structure(spec), [])
        twin = next((other for other in candidates if _same_function(spec, other)), None)
        if twin is None:
            candidates.append(spec)
            kept.append(spec)
        else:
            merged.append((spec, twin))
    return kept, merged


def describe_merge(dropped: UNetSpec, kept: UNetSpec) -> str:
    """One line naming both specs and the axis values that differ."""
    mine, theirs = dropped.to_dict(), kept.to_dict()
    differ = ", ".join(f"{k}={mine.get(k)!r} vs {theirs.get(k)!r}" for k in sorted(mine.keys() | theirs.keys())
                       if mine.get(k) != theirs.get(k))
    return (f"{dropped.name or 'the base'} builds the same network as {kept.name or 'the base'} ({differ}: same "
            f"modules, parameter shapes, weights and outputs); it is measured once, as {kept.name or 'the base'}")


def _structure(spec: UNetSpec) -> tuple:
    with torch.device("meta"):
        model = build(spec)
    shapes = tuple((name, tuple(t.shape)) for name, t in (*model.named_parameters(), *model.named_buffers()))
    return spec.checkpoint, repr(model), shapes


@torch.no_grad()
def _same_function(a: UNetSpec, b: UNetSpec) -> bool:
    models = []
    for spec in (a, b):
        torch.manual_seed(0)
        models.append(build(spec).eval())
    states = [m.state_dict() for m in models]
    if any(not torch.equal(states[0][k], states[1][k]) for k in states[0]):
        return False
    x = torch.randn((2, *models[0].input_dims), generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([0.1, 5.0])
    return torch.equal(models[0](x, sigma), models[1](x, sigma))
