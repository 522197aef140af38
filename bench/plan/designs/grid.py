"""Sweep designs over the ablation axes: the full factorial, a two-level fractional factorial, one factor at a time
around a baseline, or a ladder of cumulative steps (as in an ablation table where each row adds its change to the
row before)."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from variants import AXES, BASES, UNetSpec, default_grid, get_axis

from . import fractional

DESIGNS = ("factorial", "fractional", "one_at_a_time", "ladder")


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


def grid(base: UNetSpec = BASES["fmnist28"], design: str = "factorial", generator: str | None = None,
         **axes: Iterable[Any]) -> list[UNetSpec]:
    """One spec per variant of the design, everything not swept taken from ``base``.

    ``factorial``: every combination of the values given (with no axis given at all, the default grid's).
    ``one_at_a_time``: the baseline (each axis given at its first value) and, for each axis, each of its other
    values with every other axis at the baseline, as in ADM's ablation tables. ``fractional``: the runs of the
    two-level fractional factorial ``generator`` (bench/plan/designs/fractional.py; default: resolution IV in the fewest
    runs), one word per axis given, each axis with exactly two values (the first at level -1). ``ladder``: the
    baseline, then each other value of each axis in the order given, each rung keeping every change before it
    (``ladder_rungs``; for rungs that change several axes at once, see ``ladder``). In every design an axis not
    given stays at the base's level.
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
    if design == "ladder":
        return [spec for _, spec in ladder(base, ladder_rungs(**values))]
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
