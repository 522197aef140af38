"""What design a run's quality runs (or, without quality, its timed variants) form, and its aliasing: read back from
the table, so the report states what was measured, not what was asked for."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bench.plan.designs.fractional import aliasing, resolution
from bench.report.compute.frames import reference_level
from variants import AXES


@dataclass(frozen=True)
class DesignSummary:
    kind: str                   # "fractional", "factorial", "one at a time", "other"
    runs: int                   # distinct variants
    axes: tuple[str, ...]       # the axes with two or more levels
    resolution: int | None = None
    aliases: tuple[str, ...] = field(default_factory=tuple)  # chains among terms of up to three factors


def summarise_design(variants: pd.DataFrame) -> DesignSummary | None:
    """``variants``: one row per variant with the axis columns. None when no axis has two levels."""
    varied = [a for a in AXES if variants[a].nunique(dropna=False) > 1]
    if not varied:
        return None
    runs = variants.drop_duplicates(subset=varied)
    references = {a: reference_level(runs, a) for a in varied}
    off = pd.DataFrame({a: runs[a] != references[a] for a in varied})
    if (off.sum(axis=1) <= 1).all() and len(runs) == 1 + sum(runs[a].nunique() - 1 for a in varied):
        return DesignSummary("one at a time", len(runs), tuple(varied))
    if all(runs[a].nunique() == 2 for a in varied):
        coded = np.where(off.to_numpy(), 1.0, -1.0)
        if len(runs) == 2 ** len(varied):
            return DesignSummary("factorial", len(runs), tuple(varied))
        balanced = (coded.sum(0) == 0).all() and np.allclose(coded.T @ coded, len(coded) * np.eye(len(varied)))
        if balanced and len(runs) & (len(runs) - 1) == 0:
            return DesignSummary("fractional", len(runs), tuple(varied), resolution(coded),
                                 tuple(aliasing(coded, varied)))
    full = int(np.prod([runs[a].nunique() for a in varied]))
    return DesignSummary("factorial" if len(runs) == full else "other", len(runs), tuple(varied))
