"""Section: cost per variant."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.report.compute.frames import add_labels
from bench.report.render.document import Section, save_figure
from bench.report.render.plots import cost_bars
from bench.report.render.wording import number

# Measurements grouped into figures by unit; a unit not listed lands in "other", never nowhere.
FAMILIES = (
    ("size", "Size and work per iteration", {"count", "MAC", "FLOP"}),
    ("memory", "Memory", {"bytes"}),
    ("speed", "Speed", {"images/s", "s", "FLOP/s", "ratio"}),
)


def cost_section(cost_rows: pd.DataFrame, figures_dir: Path, hue: str = "setting", name: str = "cost") -> Section:
    """From ``Derived.cost_rows`` (of one run, or of two with a ``run`` column as ``hue``)."""
    rows = cost_rows[cost_rows["block"] == "total"]
    section = Section("Cost per variant", "Bars: median over repeats; error bars: interquartile range (25th-75th "
                      "percentile) of the repeat rows. Counted measurements (parameters, FLOPs, saved bytes) "
                      "have one row per cell and no spread. Settings (device and execution options) side by "
                      "side where the run has several; peers (reference models) as their own rows.")
    if rows.empty:
        section.note = "No successful cost rows in this run (e.g. a quality-only run), so no cost figures."
        return section
    rows = add_labels(rows)
    known = set().union(*(units for _, _, units in FAMILIES))
    families = [*FAMILIES, ("other", "Other cost measurements", set(rows["unit"]) - known)]
    for key, title, units in families:
        subset = rows[rows["unit"].isin(units)]
        if subset.empty:
            continue
        fig = cost_bars(subset, hue, title)
        section.items.append(save_figure(fig, figures_dir, f"{name}_{key}", title, spread_reading(subset, hue),
                                         detail=key not in ("size", "speed")))
    return section


def spread_reading(rows: pd.DataFrame, hue: str) -> str:
    """The measurement whose median varies most across variants, from its lowest to its highest variant."""
    medians = rows.groupby(["label", hue, "variant", "unit"])["value"].median().reset_index()
    best = None
    for (label, group_value), group in medians.groupby(["label", hue]):
        low, high = group.loc[group["value"].idxmin()], group.loc[group["value"].idxmax()]
        spread = high["value"] / low["value"] if low["value"] > 0 else float("inf")
        if best is None or spread > best[0]:
            best = (spread, label, group_value, low, high)
    if best is None:
        return "no measurements"
    spread, label, group_value, low, high = best
    if low["value"] == high["value"]:
        return f"{label} ({group_value}) is the same for every variant: {number(low['value'], low['unit'])}"
    return (f"Largest spread across variants: {label} on {group_value}, from {number(low['value'], low['unit'])} "
            f"({low['variant']}) to {number(high['value'], high['unit'])} ({high['variant']}), {spread:.2f}x")
