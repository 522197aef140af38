"""Sweep designs over the ablation axes: the full factorial, a two-level fractional factorial, or one factor at a
time around a baseline."""
from __future__ import annotations

import itertools
from typing import Any, Iterable

from . import fractional
from .axes import AXES, default_grid, get_axis
from .bases import BASES
from .spec import UNetSpec

DESIGNS = ("factorial", "fractional", "one_at_a_time")


def grid(base: UNetSpec = BASES["fmnist28"], design: str = "factorial", generator: str | None = None,
         **axes: Iterable[Any]) -> list[UNetSpec]:
    """One spec per variant of the design, everything not swept taken from ``base``.

    ``factorial``: every combination of the values given (with no axis given at all, the default grid's).
    ``one_at_a_time``: the baseline (each axis given at its first value) and, for each axis, each of its other
    values with every other axis at the baseline, as in ADM's ablation tables. ``fractional``: the runs of the
    two-level fractional factorial ``generator`` (variants/fractional.py; default: resolution IV in the fewest
    runs), one word per axis given, each axis with exactly two values (the first at level -1). In every design an
    axis not given stays at the base's level.
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
    if generator is not None and design != "fractional":
        raise ValueError(f"generator {generator!r} is only for design='fractional'; design={design!r} given")
    if design == "factorial":
        values = values or default_grid()
        combos = [dict(zip(values, combo)) for combo in itertools.product(*values.values())]
    elif design == "fractional":
        combos = _fractional(values, generator)
    else:
        baseline = {name: vals[0] for name, vals in values.items()}
        combos = [baseline] + [baseline | {name: value} for name, vals in values.items() for value in vals[1:]]
    specs = [base.replace(**combo) for combo in combos]
    return list(dict.fromkeys(specs))  # a value listed twice is one variant


def _fractional(values: dict[str, tuple[Any, ...]], generator: str | None) -> list[dict[str, Any]]:
    two_level = {name: vals for name, vals in values.items() if len(vals) == 2 and vals[0] != vals[1]}
    if len(two_level) != len(values):
        bad = next(name for name in values if name not in two_level)
        raise ValueError(f"{bad}={list(values[bad])}: a fractional design takes two values per axis; valid: exactly "
                         "two different values (reference first), or another design")
    levels = fractional.runs(fractional.resolve_generator(len(values), generator))
    return [{name: vals[int(level > 0)] for (name, vals), level in zip(values.items(), run)} for run in levels]


def fractional_generator(design: str, generator: str | None, **axes: Iterable[Any]) -> str | None:
    """The generator a ``fractional`` design of these axes runs (the default resolved), else None."""
    if design != "fractional":
        return None
    return fractional.resolve_generator(len(axes), generator)
