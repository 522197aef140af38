"""A grid that brackets: a tuned variant whose choice sits at an edge of its grid tries a point beyond that edge.

A choice at the lowest or highest value of a numeric recipe axis says only that the best lies there or beyond. So,
for each tuned variant alone, the runner plans tuning cells one step beyond the edge its choice sits at, the step
being the grid's own ratio at that edge (lr 0.004, 0.01: next above 0.025, next below 0.0016), runs them, chooses
again (``choices``) and repeats until the choice is interior or extending stops:

- ``MAX_EXTENSIONS`` points have been added beyond the grid on that side (the bound), or
- the point beyond is not a valid value of the axis (``ema_decay`` 1 or more), or has no ratio to step by (a 0 at
  the edge or next to it, as ``weight_decay`` 0).

Only the axis's values along the chosen point's other tuned axes count, and the point beyond keeps those values.
A diverged point (a NaN or infinite criterion) counts as tried and worse than any score, so it brackets; a tuning
cell that failed does not (``--resume`` retries it). Everything is derived from the finished tuning rows and the
grid asked for, so a resumed run plans the same extension cells. Non-numeric axes (``lr_schedule``) have no edge.
``edges`` names every choice still at an edge, and why it stayed there; the report states each one.
"""
from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

from bench.plan.cells import Cell
from bench.plan.quality_presets import QUALITY_PRESETS
from bench.plan.recipe import RECIPE_AXES, recipe_changes, recipe_of
from bench.plan.tuning import UNIT, choices, config_values
from bench.schema import PRIMARY_QUALITY, RECIPE_COLUMNS, Kind

if TYPE_CHECKING:  # imported where a table is read: planning a run needs no pandas
    import pandas as pd

MAX_EXTENSIONS = 2  # points added beyond the asked grid, per tuned variant, axis and side
LOW, HIGH = "lowest", "highest"
# Why a choice at an edge is not extended (``stop``); "" when the runner extends it.
BOUND, INVALID, NO_RATIO = "bound", "invalid", "no ratio"
EDGE_COLUMNS = [*UNIT, "axis", "side", "value", "beyond", "extensions", "stop"]


def edges(table: pd.DataFrame, grid: dict[str, tuple[Any, ...]] | None) -> pd.DataFrame:
    """One row per tuned variant and numeric tuned axis whose choice (``choices``) sits at the lowest or highest
    value it tried: ``side``, ``value`` (the choice's), ``beyond`` (the next point's value, NaN when there is none),
    ``extensions`` (values tried beyond ``grid``, the grid asked for, on that side; -1 when ``grid`` is None,
    unknown) and ``stop`` (why it is not extended: ``BOUND``, ``INVALID``, ``NO_RATIO``; "" when it is)."""
    import pandas as pd

    tried = dict(iter(_tried(table).groupby(UNIT, dropna=False, sort=False)))
    rows = []
    for _, chosen in choices(table).iterrows():
        key = tuple(chosen[c] for c in UNIT)
        tuned = [a for a in chosen["tuned_axes"].split(",") if a]
        for axis in (a for a in tuned if RECIPE_AXES[a].type is float):
            mine = tried[key]
            for other in (a for a in tuned if a != axis):  # along the chosen point's other axes
                mine = mine[mine[other] == chosen[other]]
            edge = _edge(chosen[axis], axis, sorted(set(mine[axis])), grid)
            if edge is not None:
                rows.append({**dict(zip(UNIT, key)), "axis": axis, **edge})
    position = dict(zip(table["rung"], table["rung_index"]))  # a ladder's rungs in the ladder's order
    return pd.DataFrame(rows, columns=EDGE_COLUMNS).sort_values(
        ["quality_preset", "base_config", "rung", "variant", "axis"], kind="stable", ignore_index=True,
        key=lambda column: column.map(position) if column.name == "rung" else column)


def extension_cells(cells: list[Cell], table: pd.DataFrame, grid: dict[str, tuple[Any, ...]]) -> list[Cell]:
    """The tuning cells one step beyond each choice at an edge that can still extend (``edges``): the planned
    tuning cells of that variant (one per tuning seed chunk) at its chosen point, the edge's axis moved beyond."""
    templates: dict[tuple, list[Cell]] = {}
    for cell in cells:  # every tuned variant's tuning cells at one point of the grid: their seeds
        if cell.kind == Kind.TUNE:
            points = templates.setdefault((cell.quality, cell.base_config, cell.variant, cell.rung), [])
            if not points or points[0].recipe == cell.recipe:
                points.append(cell)
    chosen = {tuple(row[c] for c in UNIT): row for _, row in choices(table).iterrows()}
    out = []
    for _, edge in edges(table, grid).iterrows():
        key = tuple(edge[c] for c in UNIT)
        if edge["stop"] or key not in templates:
            continue
        point = config_values({a: chosen[key][a] for a in chosen[key]["tuned_axes"].split(",") if a})
        point[edge["axis"]] = edge["beyond"]
        for cell in templates[key]:
            config = QUALITY_PRESETS[cell.quality]
            twin = dataclasses.replace(cell, recipe=recipe_changes(config, recipe_of(cell.config) | point))
            if twin not in out:
                out.append(twin)
    return out


def _tried(table: pd.DataFrame) -> pd.DataFrame:
    """The tuning points each variant has a score for, a diverged one's NaN or inf included."""
    phase, metric = PRIMARY_QUALITY
    rows = table[(table["kind"] == Kind.TUNE) & (table["phase"] == phase) & (table["metric"] == metric)
                 & (table["status"] == "ok")]
    return rows[[*UNIT, *RECIPE_COLUMNS]].drop_duplicates()


def _edge(value: float, axis: str, values: list[float], grid: dict[str, tuple[Any, ...]] | None
          ) -> dict[str, Any] | None:
    """The edge the chosen ``value`` sits at among the ``values`` tried on ``axis``, or None when it is interior."""
    if len(values) < 2 or values[0] < value < values[-1]:
        return None
    side = LOW if value == values[0] else HIGH
    neighbour = values[1] if side == LOW else values[-2]
    asked = None if grid is None else [float(v) for v in grid.get(axis, ())]
    if asked:
        extensions = sum(v < min(asked) for v in values) if side == LOW else sum(v > max(asked) for v in values)
    else:
        extensions = -1
    edge = {"side": side, "value": float(value), "beyond": math.nan, "extensions": extensions, "stop": ""}
    if value <= 0 or neighbour <= 0:
        return edge | {"stop": NO_RATIO}
    beyond = float(f"{value * value / neighbour:.12g}")  # the grid's own ratio; 12 digits: the same id every time
    edge["beyond"] = beyond
    if extensions >= MAX_EXTENSIONS:
        return edge | {"stop": BOUND}
    try:
        RECIPE_AXES[axis].check(beyond)
    except ValueError:
        return edge | {"stop": INVALID}
    return edge
