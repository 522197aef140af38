"""Which recipe a quality value was trained at, as the report reads it: the ``recipe`` column of quality values
and effects.

- ``shared``: every variant at its quality preset's own recipe (the reading of every run without recipe axes);
- ``shared at lr=0.01``: every variant at another point of a swept recipe axis (``--axis lr=...``);
- ``tuned``: each variant at the recipe its tuning cells chose (bench/plan/tuning.py). A variant whose choice is
  its preset's recipe reads the same runs in both ``shared`` and ``tuned``.
"""
from __future__ import annotations

import math

import pandas as pd

from bench.plan.quality_presets import QUALITY_PRESETS
from bench.plan.recipe import recipe_of, recipe_text
from bench.plan.tuning import UNIT, choices
from bench.schema import RECIPE_COLUMNS

SHARED = "shared"
TUNED = "tuned"


def with_recipes(values: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """``values`` (frames.scored_values) with a ``recipe`` column, and the tuned variants' runs once more as
    ``tuned``."""
    if values.empty:
        return values.assign(recipe=pd.Series(dtype=str))
    labelled = values.assign(recipe=[_label(row) for _, row in values.iterrows()])
    chosen = choices(table)
    if chosen.empty:
        return labelled
    # a tuned run sweeps no recipe axis (the planner refuses both): its other recipes are tuned re-runs of some
    # variants, not a point every variant trained at
    labelled = labelled[labelled["recipe"] == SHARED]
    tuned = values.merge(chosen[[*UNIT, *RECIPE_COLUMNS]], on=[*UNIT, *RECIPE_COLUMNS], how="inner")
    return pd.concat([labelled, tuned.assign(recipe=TUNED)], ignore_index=True)


def main_recipe(recipes) -> str:
    """The reading the figures and tables show: the shared recipe, or the first swept point without it."""
    present = sorted(set(recipes) - {TUNED, ""})
    return SHARED if SHARED in present or not present else present[0]


def confirmatory_recipes(recipes) -> list[str]:
    """The readings the verdict states (primary effects): the main shared reading and the tuned one."""
    present = set(recipes)
    return [main_recipe(present)] + ([TUNED] if TUNED in present else [])


def _label(row: pd.Series) -> str:
    preset = QUALITY_PRESETS.get(row["quality_preset"])
    values = {name: row[name] for name in RECIPE_COLUMNS}
    if preset is None or all(_empty(v) for v in values.values()):  # a table from before recipe axes
        return SHARED
    own = recipe_of(preset)
    changed = [(name, value) for name, value in values.items() if value != own[name]]
    return f"{SHARED} at {recipe_text(changed)}" if changed else SHARED


def _empty(value) -> bool:
    return value == "" or (isinstance(value, float) and math.isnan(value))
