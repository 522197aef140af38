"""Timing groups: which models of a setting are timed together, in one process, in randomized rounds."""
from __future__ import annotations

import dataclasses

import psutil
import torch

from bench.models.sizes import planned_state_bytes
from bench.plan.cells import Cell
from bench.schema import Kind
from variants import AXES, UNetSpec

# The models' states may take this share of the device's memory; the rest is for one step's activations.
MEMORY_SHARE = 0.5


def device_memory(device: str) -> int:
    """The device's total (not free) memory in bytes, so a plan, and with it every cell id, is the same from one
    run to the next on one machine."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_properties(torch.device(device)).total_memory
    return psutil.virtual_memory().total


def memory_budget(device: str) -> int:
    """Bytes the models of one timing group may hold: a share of the device's memory."""
    return int(MEMORY_SHARE * device_memory(device))


def timing_cells(costs: list[Cell], budget_bytes: int) -> list[Cell]:
    """The timing cells of one setting's cost cells: one, whose members are the baseline, its A/A copy and
    every other model, when all their states fit in ``budget_bytes``; otherwise several, each holding the
    baseline and its copy (so every group is tied to the others through them) and as many others as fit.

    The baseline is a ladder's first rung, or else our U-Net with the most axes at their reference level (the first
    such model of the sweep).
    """
    if not costs:
        return []
    ours = [c for c in costs if not c.peer]
    baseline = min(ours, key=lambda c: (c.rung_index, _levels_off_reference(c.spec))) if ours else costs[0]
    members = [dataclasses.replace(c, kind=Kind.TIMING) for c in costs if c is not baseline]
    anchor = [dataclasses.replace(baseline, kind=Kind.TIMING), dataclasses.replace(baseline, kind=Kind.TIMING, replica=1)]
    room = budget_bytes - sum(planned_state_bytes(m.spec) for m in anchor)
    groups: list[list[Cell]] = [[]]
    for member in members:
        size = planned_state_bytes(member.spec)
        if groups[-1] and sum(planned_state_bytes(m.spec) for m in groups[-1]) + size > room:
            groups.append([])
        groups[-1].append(member)
    first = costs[0]
    return [dataclasses.replace(first, kind=Kind.TIMING, spec=None, peer="", replica=0, rung="", rung_index=0,
                                members=tuple(anchor + group))
            for group in groups]


def _levels_off_reference(spec: UNetSpec) -> int:
    return sum(getattr(spec, name) != axis.default for name, axis in AXES.items())
