"""Which block type each part of a U-Net belongs to, for per-block cost breakdowns.

A block is the outermost module of a type; its submodules count towards it and are never blocks
themselves, so blocks do not overlap. Every count is checked to add up over the block types: work
or parameters outside every block are an error, never a silent gap in the breakdown.
"""
from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from bench.schema import Measurement
from variants import AttentionBlock, Downsample, ResnetBlock, Upsampler

BLOCK_TYPES = ("embed", "conv_in", "resnet", "attention", "downsample", "upsample", "out")

# Variant classes are found through their base classes, so new variants need no change here.
_BY_CLASS: tuple[tuple[type[nn.Module], str], ...] = (
    (ResnetBlock, "resnet"), (AttentionBlock, "attention"), (Downsample, "downsample"), (Upsampler, "upsample"),
)
# Blocks that are single attributes of the U-Net rather than instances of a block class.
_BY_ATTRIBUTE = {"sig_embed": "embed", "conv_in": "conv_in", "out": "out"}
# A level's resampler is one whatever its class (ADM's resampling residual blocks are ResnetBlocks).
_BY_LAST_ATTRIBUTE = {"downsample": "downsample", "upsample": "upsample"}


def block_modules(model: nn.Module) -> dict[str, str]:
    """Qualified module name -> block type, for the outermost module of each block, in model order."""
    blocks: dict[str, str] = {}
    for name, module in model.named_modules():
        if any(name.startswith(outer + ".") for outer in blocks):
            continue  # inside a block already found
        kind = (_BY_ATTRIBUTE.get(name) or _BY_LAST_ATTRIBUTE.get(name.rpartition(".")[2])
                or next((k for cls, k in _BY_CLASS if isinstance(module, cls)), None))
        if kind is not None:
            blocks[name] = kind
    if not blocks:
        raise ValueError(f"model: a {type(model).__name__} has no module of any block type {BLOCK_TYPES}")
    return blocks


def block_types(blocks: Mapping[str, str]) -> tuple[str, ...]:
    """The block types present in ``blocks``, in ``BLOCK_TYPES`` order."""
    present = set(blocks.values())
    return tuple(kind for kind in BLOCK_TYPES if kind in present)


def sum_by_block(per_module: Mapping[str, float], blocks: Mapping[str, str]) -> dict[str, float]:
    """Add up per-module counts (keyed by qualified module name) into per-block-type totals,
    one entry per block type present, even when its count is 0."""
    totals = dict.fromkeys(block_types(blocks), 0)
    for name, kind in blocks.items():
        totals[kind] += per_module.get(name, 0)
    return totals


def breakdown_rows(phase: str, metric: str, unit: str, method: str, total: float,
                   by_block: Mapping[str, float], n: int | None = None) -> list[Measurement]:
    """A ``total`` row and one row per block type, after checking that the blocks add up to the total."""
    unattributed = total - sum(by_block.values())
    if unattributed:
        raise RuntimeError(
            f"{phase}/{metric} ({method}): {unattributed} of {total} {unit} lie outside every block type "
            f"{tuple(by_block)}; bench/measure/blocks.py must learn where they belong"
        )
    return [Measurement(phase, metric, float(value), unit, method, block=block, n=n)
            for block, value in {"total": total, **by_block}.items()]
