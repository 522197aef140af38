"""Parameter counts: the whole model and each block type (exact; ``numel`` of every parameter)."""
from __future__ import annotations

from torch import nn

from bench.measure.blocks import block_modules, breakdown_rows, sum_by_block
from bench.schema import MODEL, PARAMS, Measurement


def count_params(model: nn.Module) -> list[Measurement]:
    """model / params / count / numel: a ``total`` row and one row per block type."""
    blocks = block_modules(model)
    modules = dict(model.named_modules())
    per_block_module = {name: sum(p.numel() for p in modules[name].parameters()) for name in blocks}
    total = sum(p.numel() for p in model.parameters())
    return breakdown_rows(MODEL, PARAMS, "count", "numel", total, sum_by_block(per_block_module, blocks))
