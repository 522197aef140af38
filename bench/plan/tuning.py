"""Tuned comparisons: each variant trains at its own best point of a recipe grid (``--tune lr=...``).

Selection without bias: a variant's point is chosen on tuning cells that train with tuning seeds
(``TUNING_SEED_OFFSET`` + i, never a seed of the final scores) and are scored against validation images of the
held-out split that the final scores never use (``QualityConfig.validation_start``). The chosen point is then
trained again with the usual seeds and scored as every quality cell is, so the final score carries none of the
luck that picked it. The runner and the report choose with the same function, ``choices``. A choice at an edge of
a numeric axis extends that variant's grid past the edge (bench/plan/bracket.py).
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from typing import TYPE_CHECKING, Any

from bench.plan.cells import Cell
from bench.plan.quality_presets import QUALITY_PRESETS
from bench.plan.recipe import recipe_changes, recipe_of, recipe_text
from bench.schema import PRIMARY_QUALITY, RECIPE_COLUMNS, Kind

if TYPE_CHECKING:  # imported where a table is read: planning a run needs no pandas
    import pandas as pd

TUNING_SEED_OFFSET = 10_000
# What identifies one tuned variant: its quality preset and network, its variant and ladder rung.
UNIT = ["quality_preset", "base_config", "variant", "rung"]
CRITERION = (f"mean over the tuning seeds of {PRIMARY_QUALITY[1]} against the validation images "
             "(lower is better)")


def tuning_seeds(count: int) -> list[int]:
    return [TUNING_SEED_OFFSET + i for i in range(count)]


def tuning_grid(grid: dict[str, tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Every point of a recipe grid (one empty point for an empty grid)."""
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def criteria(table: pd.DataFrame) -> pd.DataFrame:
    """Per tuned variant and grid point: the criterion (``CRITERION``) and the tuning seeds it averages."""
    import pandas as pd

    phase, metric = PRIMARY_QUALITY
    rows = table[(table["kind"] == Kind.TUNE) & (table["phase"] == phase) & (table["metric"] == metric)
                 & (table["status"] == "ok")]
    rows = rows[rows["value"].map(lambda v: math.isfinite(v))]  # a diverged run's NaN or inf picks nothing
    if rows.empty:
        return pd.DataFrame(columns=[*UNIT, *RECIPE_COLUMNS, "criterion", "seeds"])
    grouped = rows.groupby([*UNIT, *RECIPE_COLUMNS], dropna=False, sort=True)
    return pd.DataFrame({"criterion": grouped["value"].mean(), "seeds": grouped["seed"].nunique()}).reset_index()


def choices(table: pd.DataFrame) -> pd.DataFrame:
    """One row per tuned variant: its chosen recipe (the point with the lowest criterion; a tie goes to the
    quality preset's own value), ``criterion`` there, ``grid`` (every point and its criterion, as text) and
    ``tuned_axes`` (the recipe axes the grid varies)."""
    import pandas as pd

    points = criteria(table)
    rows = []
    for key, group in points.groupby(UNIT, dropna=False, sort=True):
        tuned = [c for c in RECIPE_COLUMNS if group[c].nunique(dropna=False) > 1]
        own = recipe_of(QUALITY_PRESETS[key[0]]) if key[0] in QUALITY_PRESETS else {}
        preference = group.apply(lambda r: any(r[c] != own.get(c) for c in tuned), axis=1)
        best = group.assign(other=preference).sort_values(["criterion", "other"], kind="stable").iloc[0]
        grid = "; ".join(f"{recipe_text((n, r[n]) for n in tuned)}: {r['criterion']:.4g}" for _, r in group.iterrows())
        rows.append({**dict(zip(UNIT, key)), **{c: best[c] for c in RECIPE_COLUMNS}, "criterion": best["criterion"],
                     "grid": grid, "tuned_axes": ",".join(tuned)})
    return pd.DataFrame(rows, columns=[*UNIT, *RECIPE_COLUMNS, "criterion", "grid", "tuned_axes"])


def tuned_cells(cells: list[Cell], table: pd.DataFrame) -> list[Cell]:
    """The quality cells that train each tuned variant at its chosen point with the usual seeds: the planned
    quality cells of that variant with the chosen recipe, less those already planned (a variant whose choice is
    its preset's own recipe)."""
    chosen = {tuple(row[c] for c in UNIT): {c: row[c] for c in RECIPE_COLUMNS}
              for _, row in choices(table).iterrows()}
    planned, out = set(cells), []
    for cell in cells:
        values = chosen.get((cell.quality, cell.base_config, cell.variant, cell.rung))
        if cell.kind != Kind.QUALITY or values is None:
            continue
        config = QUALITY_PRESETS[cell.quality]
        twin = dataclasses.replace(cell, recipe=recipe_changes(config, recipe_of(cell.config) | config_values(values)))
        if twin not in planned and twin not in out:
            out.append(twin)
    return out


def config_values(values: dict[str, Any]) -> dict[str, Any]:
    """A table's recipe values as the config holds them (numpy floats to float)."""
    return {name: float(v) if isinstance(v, float) else str(v) for name, v in values.items()}
