"""Sweep designs over the ablation axes: the full factorial, one factor at a time around a baseline, or a ladder of
cumulative steps (as in an ablation table where each row adds its change to the row before)."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from .axes import AXES, default_grid, get_axis
from .bases import BASES
from .spec import UNetSpec

DESIGNS = ("factorial", "one_at_a_time", "ladder")


@dataclass(frozen=True)
class Rung:
    """One step of a ladder: its name and the axis values it sets, on top of every rung before it."""

    name: str
    changes: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"rung name {self.name!r} is invalid; valid: a non-empty string")
        if isinstance(self.changes, dict):
            object.__setattr__(self, "changes", tuple(self.changes.items()))
        for name, value in self.changes:
            get_axis(name).check(value)

    def describe(self) -> str:
        """``layers=mp, act=mp_silu``: what the rung sets, as ``--axis`` writes it."""
        return ", ".join(f"{name}={AXES[name].text(value)}" for name, value in self.changes) or "the base"


def grid(base: UNetSpec = BASES["fmnist28"], design: str = "factorial", **axes: Iterable[Any]) -> list[UNetSpec]:
    """One spec per variant of the design, everything not swept taken from ``base``.

    ``factorial``: every combination of the values given, and of the default grid's values for the axes of the
    default grid that are not given (pass one value to hold one fixed). ``one_at_a_time``: the baseline (each
    axis given at its first value) and, for each axis, each of its other values with every other axis at the
    baseline, as in ADM's ablation tables; axes not given stay at the base's value. ``ladder``: the baseline,
    then each other value of each axis in the order given, each rung keeping every change before it
    (``ladder_rungs``; for rungs that change several axes at once, see ``ladder``).
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
    if design == "ladder":
        return [spec for _, spec in ladder(base, ladder_rungs(**values))]
    if design == "factorial":
        values = default_grid() | values
        combos = [dict(zip(values, combo)) for combo in itertools.product(*values.values())]
    else:
        baseline = {name: vals[0] for name, vals in values.items()}
        combos = [baseline] + [baseline | {name: value} for name, vals in values.items() for value in vals[1:]]
    specs = [base.replace(**combo) for combo in combos]
    return list(dict.fromkeys(specs))  # a value listed twice is one variant


def ladder_rungs(**axes: Iterable[Any]) -> list[Rung]:
    """The rungs of a ladder over single-axis steps: ``baseline`` (every axis at its first value), then one rung
    per further value, in the order given, named ``axis=value``."""
    values = {name: tuple(vals) for name, vals in axes.items()}
    rungs = [Rung("baseline", tuple((name, vals[0]) for name, vals in values.items()))]
    rungs += [Rung(f"{name}={AXES[name].text(value)}", ((name, value),))
              for name, vals in values.items() for value in vals[1:]]
    return rungs


def ladder(base: UNetSpec, rungs: Sequence[Rung]) -> list[tuple[str, UNetSpec]]:
    """(name, spec) of every rung: the first rung's changes applied to ``base``, each later rung's to the rung
    before it. ValueError, naming the rung, for a repeated name, an invalid spec, or a rung that changes
    nothing."""
    if not rungs:
        raise ValueError("a ladder needs rungs; valid: at least one rung (the baseline), e.g. an axis with two values")
    out: list[tuple[str, UNetSpec]] = []
    spec = base
    for rung in rungs:
        if any(rung.name == name for name, _ in out):
            raise ValueError(f"rung {rung.name!r} appears twice; valid: a distinct name for every rung")
        try:
            spec = spec.replace(**dict(rung.changes))
        except ValueError as err:
            raise ValueError(f"rung {rung.name!r}: {err}") from err
        if out and spec == out[-1][1]:
            raise ValueError(f"rung {rung.name!r} ({rung.describe()}) changes nothing from rung {out[-1][0]!r}; "
                             "valid: a rung that sets at least one axis to a new value")
        out.append((rung.name, spec))
    return out
