"""Which effects a verdict row reads: the run's switches, one switch's rows of effects.csv, and the one row of a
measurement at a base, a recipe and the default setting."""
from __future__ import annotations

import pandas as pd

from bench.schema import Kind
from bench.statistics.rounds_model import CONTROL


def switches(effects: pd.DataFrame) -> pd.DataFrame:
    """Each (axis, from_level, to_level) the run estimated, the A/A control aside, in effects.csv's order."""
    return effects[effects["axis"] != CONTROL][["axis", "from_level", "to_level"]].drop_duplicates()


def switch_effects(effects: pd.DataFrame, switch) -> pd.DataFrame:
    """The rows of effects.csv of one axis switch (``switch``: a row with axis, from_level, to_level)."""
    if effects.empty:  # an empty reading has no columns
        return effects
    return effects[(effects["axis"] == switch.axis) & (effects["from_level"] == switch.from_level)
                   & (effects["to_level"] == switch.to_level)]


def pick(effects: pd.DataFrame, base: str | None, phase: str, metrics: tuple[str, ...], unit: str | None,
         recipe: str = "") -> pd.Series | None:
    """The effect on the first of ``metrics`` recorded at ``base`` and ``recipe`` (a quality reading; costs have
    none), in its default setting (the shortest name); ``unit`` "%" picks a cost, anything else a quality effect."""
    rows = effects[(effects["base_config"] == base) & (effects["phase"] == phase) & (effects["recipe"] == recipe)]
    rows = rows[rows["unit"] == "%"] if unit == "%" else rows[rows["unit"] != "%"]
    for metric in metrics:
        found = rows[rows["metric"] == metric]
        if len(found):
            found = found.assign(order=found["setting"].str.len()).sort_values(["order", "method"])
            return found.iloc[0]
    return None


def checkpoint_checked(table: pd.DataFrame) -> bool:
    """Whether the run checked that checkpointing keeps the function (its check cells all ok)."""
    checks = table[table["kind"] == Kind.CHECK]
    return len(checks) > 0 and bool((checks["status"] == "ok").all())


def floor_means(floor: pd.DataFrame) -> dict[str, float]:
    """The real-versus-real floor's mean per sample metric (no floor: no entry)."""
    return {} if floor.empty else dict(zip(floor["metric"], floor["mean"]))
