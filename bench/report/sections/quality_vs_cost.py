"""Section: quality against cost, and the Pareto front of the variants."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.report.compute.derived import Derived
from bench.report.render.document import Section, save_figure
from bench.report.render.plots import pareto_plot
from bench.report.render.wording import interval
from bench.schema import (FD, FINAL_STEP, FLOPS, HELDOUT_LOSS, KID, SECONDS_PER_ITER, SWD, TRAIN_STEP, WALL_TIME,
                          Kind)
from bench.statistics.stats import apart, pareto_front

# Lower is better for each; the first one the run has is drawn against cost (all appear in the tables).
PARETO_METRICS = (FD, KID, SWD, HELDOUT_LOSS)


def pareto_section(derived: Derived, figures_dir: Path) -> Section | None:
    section = Section("Quality against cost", "Quality: mean over seeds with a 95% t-interval (scipy.stats.t). "
                      "Cost: per-variant medians from the cost cells of the network the quality cells train (same "
                      "base config, at the quality training batch: the axis label says which), or the quality "
                      "cells' own training wall time. Dashed: the Pareto front (lower is better on both axes). "
                      "Red line and band: the real-versus-real floor at the same N (mean and 95% CI over seeds).")
    quality = derived.quality
    if quality.empty:
        return None  # no successful quality rows (e.g. a cost-only run)
    quality = quality[quality["base_config"] == quality["base_config"].min()]  # the first network trained
    metric, phase = _pareto_metric(quality)
    if metric is None:
        section.note = f"None of {', '.join(PARETO_METRICS)} was recorded, so no quality-against-cost plot."
        return section
    points = quality[(quality["metric"] == metric) & (quality["phase"] == phase)]
    unit = points["unit"].iloc[0]
    points = points.groupby("variant")[["mean", "low", "high", "n"]].first().reset_index()
    panels = []
    for column, label, cost_unit, values in _cost_axes(derived):
        points = points.merge(values.rename(column), left_on="variant", right_index=True, how="left")
        if points[column].notna().any():
            panels.append((column, label, cost_unit))
    if not panels:
        section.note = "No cost matches the quality variants (no cost cells and no training wall time)."
        return section
    floor_rows = derived.floor
    if not floor_rows.empty:
        floor_rows = floor_rows[(floor_rows["metric"] == metric) & (floor_rows["phase"] == phase)]
    floor = floor_rows.iloc[0] if len(floor_rows) else None
    title = f"{metric} ({phase}) against training cost"
    fig = pareto_plot(points, panels, f"{metric} [{unit}] (mean, 95% CI over seeds)", floor, title)
    section.items.append(save_figure(fig, figures_dir, "pareto", title, _pareto_reading(points, panels, floor, unit)))
    return section


def _pareto_metric(quality: pd.DataFrame) -> tuple[str | None, str | None]:
    for metric in PARETO_METRICS:
        phases = quality.loc[quality["metric"] == metric, "phase"].unique()
        if len(phases):
            return metric, phases[0]
    return None, None


def _cost_axes(derived: Derived):
    """(column, label, unit, per-variant values) for each cost the run can put on the x axis: costs of the very
    network the quality cells trained (same base config), never those of another network."""
    table, quality, cells = derived.table, derived.quality, derived.cost_cells
    trained = {quality["base_config"].min()}  # the network the figure's quality was read on
    cells = cells[(cells["block"] == "total") & cells["base_config"].isin(trained)
                  & (cells["execution"] == "")] if not cells.empty else cells
    if not cells.empty:
        devices = list(cells["device"].unique())
        quality_devices = table.loc[table["kind"] == Kind.QUALITY, "device"].unique()
        device = next((d for d in devices if d in quality_devices), devices[0])
        for metric, unit, what in ((FLOPS, "FLOP", "training-step FLOPs"),
                                   (SECONDS_PER_ITER, "s", "training-step time")):
            rows = cells[(cells["phase"] == TRAIN_STEP) & (cells["metric"] == metric) & (cells["unit"] == unit)
                         & (cells["device"] == device)]
            if not rows.empty:
                config = ", ".join(sorted({f"{b} batch {n}" for b, n in zip(rows["base_config"], rows["batch_size"])}))
                yield metric, f"{what} ({config}, {device})", unit, rows.groupby("variant")["value"].median()
    wall = quality[(quality["phase"] == FINAL_STEP) & (quality["metric"] == WALL_TIME)]
    if not wall.empty:
        yield "train_wall_time", "training wall time (quality cells, mean over seeds)", "s", \
            wall.groupby("variant")["mean"].first()


def _pareto_reading(points: pd.DataFrame, panels, floor: pd.Series | None, unit: str) -> str:
    best = points.loc[points["mean"].idxmin()]
    worst = points.loc[points["mean"].idxmax()]
    column = panels[0][0]
    names = pareto_front(points[points[column].notna()], column, "mean")["variant"]
    if len(points) == 1:
        text = f"One variant only: {best['variant']} {interval(best, unit)}"
    else:
        text = f"Best: {best['variant']} {interval(best, unit)}; worst: {worst['variant']} {interval(worst, unit)}"
    if best["variant"] != worst["variant"]:
        text += "; best and worst are resolved apart" if apart(best, worst) else \
            "; the intervals of best and worst overlap: the ranking is not resolved at this N"
    if floor is not None:
        text += f"; real-data floor {interval(floor, unit)}"
    return text + f"; front against {panels[0][1]}: {', '.join(names)}"
