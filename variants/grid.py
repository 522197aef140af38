"""Sweep designs over the ablation axes: the full factorial, or one factor at a time around a baseline."""
from __future__ import annotations

import itertools
from typing import Any, Iterable

from .axes import AXES, default_grid, get_axis
from .bases import BASES
from .spec import UNetSpec

DESIGNS = ("factorial", "one_at_a_time")


def grid(base: UNetSpec = BASES["fmnist28"], design: str = "factorial", **axes: Iterable[Any]) -> list[UNetSpec]:
    """One spec per variant of the design, everything not swept taken from ``base``.

    ``factorial``: every combination of the values given (with no axis given at all, the default grid's).
    ``one_at_a_time``: the baseline (each axis given at its first value) and, for each axis, each of its other
    values with every other axis at the baseline, as in ADM's ablation tables. Either way an axis not given stays
    at the base's level.
    Every spec is validated here, so a bad value fails before any work.
    """
    if design not in DESIGNS:
        raise ValueError(f"design={design!r} is invalid; valid: {', '.join(DESIGNS)}")
    values = {name: tuple(vals) for name, vals in axes.items()}
    for name, vals in values.items():
        get_axis(name)
        if not vals:
            example = AXES[name].values or (AXES[name].default,)
            raise ValueError(f"{name}: no values given; valid: at least one, e.g. {example}")
    if design == "factorial":
        values = values or default_grid()
        combos = [dict(zip(values, combo)) for combo in itertools.product(*values.values())]
    else:
        baseline = {name: vals[0] for name, vals in values.items()}
        combos = [baseline] + [baseline | {name: value} for name, vals in values.items() for value in vals[1:]]
    specs = [base.replace(**combo) for combo in combos]
    return list(dict.fromkeys(specs))  # a value listed twice is one variant
