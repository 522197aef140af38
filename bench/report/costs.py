"""Sections: cost per variant, and the checkpointing trade-off."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .content import Section, save_figure
from .plots import cost_bars, tradeoff_scatter
from .readings import add_labels, effect, number
from .stats import cost_cells, cost_effects, cost_rows, summarise

# Measurements grouped into figures by unit; a unit not listed lands in "other", never nowhere.
FAMILIES = (
    ("size", "Size and work per iteration", {"count", "MAC", "FLOP"}),
    ("memory", "Memory", {"bytes"}),
    ("speed", "Speed", {"images/s", "s", "FLOP/s", "ratio"}),
)


def cost_section(table: pd.DataFrame, figures_dir: Path, hue: str = "setting", name: str = "cost") -> Section:
    rows = cost_rows(table)
    rows = rows[rows["block"] == "total"]
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
        section.items.append(save_figure(fig, figures_dir, f"{name}_{key}", title, spread_reading(subset, hue)))
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


def checkpoint_section(table: pd.DataFrame, figures_dir: Path) -> Section:
    section = Section("Checkpointing trade-off", "Per matched pair (checkpointing on vs off, all else equal): "
                      "% change of each training-step memory measurement against % change of training-step "
                      "time (seconds per iteration, median over repeats). Means with 95% t-intervals over pairs.")
    pairs, _ = cost_effects(table)
    if pairs.empty or not (pairs["axis"] == "checkpoint").any():
        section.note = "Checkpointing was not varied in this run's cost cells, so there is no trade-off to show."
        return section
    pairs = pairs[(pairs["axis"] == "checkpoint") & (pairs["phase"] == "train_step")]
    keys = [c for c in pairs.columns if c not in ("metric", "unit", "method", "block", "value_ref", "value_alt",
                                                  "difference", "percent")]
    time = pairs[pairs["unit"] == "s"][keys + ["percent"]].rename(columns={"percent": "time_percent"})
    memory = pairs[pairs["unit"] == "bytes"].rename(columns={"percent": "memory_percent", "metric": "memory metric"})
    points = memory.merge(time, on=keys)
    if points.empty:
        section.note = ("Checkpointing was varied, but this run lacks training-step time or memory rows for "
                        "matched pairs, so the trade-off cannot be drawn.")
        return section
    saved = summarise(memory, ["memory metric"], "memory_percent").rename(columns={"memory metric": "label"})
    added = summarise(time.assign(label="training-step time"), ["label"], "time_percent").iloc[0]
    reading = "Checkpointing on vs off: " + "; ".join(effect(row, "%") for row in [added, *(r for _, r in saved.iterrows())])
    title = "Checkpointing: memory saved against time added"
    section.items.append(save_figure(tradeoff_scatter(points, title), figures_dir, "checkpoint_tradeoff", title,
                                     reading))
    return section


def cost_medians(table: pd.DataFrame) -> pd.DataFrame:
    """Labelled per-cell medians (block totals), for tables and comparisons."""
    cells = cost_cells(table)
    return add_labels(cells[cells["block"] == "total"]) if not cells.empty else cells
