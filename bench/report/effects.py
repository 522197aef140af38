"""Section: the effect of switching one axis with everything else held equal."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .content import Section, Table, save_figure
from .plots import effect_plot
from .readings import add_labels, effects_sentence, interval
from .stats import AXES, cost_effects, quality_effects

METHOD = ("Each point is one matched pair: the same other axes, setting (device, dtype, memory format, "
          "compilation), batch size and base configuration "
          "(and, for quality, the same seed and dataset), differing only in the axis shown. Costs: % change of "
          "the per-cell medians over repeats, block totals. Quality: difference in the metric's own unit "
          "(training curves at their last step). Black diamond: mean over pairs with a 95% t-interval "
          "(scipy.stats.t, n-1 degrees of freedom); the x range follows the pairs, so a wider interval runs off "
          "the axis (its ends are in the table). An interval that straddles zero is not resolved at this N.")


def axis_effects_section(table: pd.DataFrame, figures_dir: Path) -> Section:
    section = Section("Axis effects (paired differences)", METHOD)
    cost_pairs, cost_summary = cost_effects(table)
    quality_pairs, quality_summary = quality_effects(table)
    if cost_pairs.empty and quality_pairs.empty:
        section.note = "No axis has two levels with matched pairs in this run, so no effect can be isolated."
        return section
    for axis in AXES:
        section.items += _cost_items(axis, cost_pairs, cost_summary, figures_dir)
        section.items += _quality_items(axis, quality_pairs, quality_summary, figures_dir)
    return section


def _cost_items(axis: str, pairs: pd.DataFrame, summary: pd.DataFrame, figures_dir: Path) -> list:
    if pairs.empty or not (pairs["axis"] == axis).any():
        return []
    pairs = add_labels(pairs[(pairs["axis"] == axis) & pairs["percent"].notna()])
    summary = add_labels(summary[summary["axis"] == axis])
    readings = [f"{comparison} on {setting}: {effects_sentence(group, '%')}"
                for (comparison, setting), group in summary.groupby(["comparison", "setting"])]
    title = f"{axis}: % change of each cost with everything else equal"
    fig = effect_plot(pairs, "percent", "label", row="setting" if pairs["setting"].nunique() > 1 else None,
                      col="comparison", title=title, xlabel="change vs reference level [%]")
    items = [save_figure(fig, figures_dir, f"effect_{axis}_cost", title, " | ".join(readings)),
             Table(f"{axis}: cost effects (% change, mean over matched pairs)", _effect_table(summary, "%"))]
    if summary["setting"].nunique() > 1:
        items.append(Table(f"{axis}: does the cost effect survive the setting (device, dtype, memory format, "
                           "compilation)?", across_settings(summary)))
    return items


def _quality_items(axis: str, pairs: pd.DataFrame, summary: pd.DataFrame, figures_dir: Path) -> list:
    if pairs.empty or not (pairs["axis"] == axis).any():
        return []
    pairs = add_labels(pairs[pairs["axis"] == axis])
    pairs["label"] = pairs["label"] + " [" + pairs["unit"] + "]"
    summary = add_labels(summary[summary["axis"] == axis])
    readings = [f"{comparison}: {effects_sentence(group, '')}" for comparison, group in summary.groupby("comparison")]
    title = f"{axis}: quality difference with everything else equal (pairs share a seed)"
    fig = effect_plot(pairs, "difference", "comparison", row=None, col="label", title=title,
                      xlabel="difference (unit in title)")
    return [save_figure(fig, figures_dir, f"effect_{axis}_quality", title, " | ".join(readings)),
            Table(f"{axis}: quality effects (difference, mean over seed-matched pairs)", _effect_table(summary, None))]


def across_settings(summary: pd.DataFrame) -> pd.DataFrame:
    """Per comparison and measurement: the mean % change in each setting, and whether its direction holds."""
    rows = []
    for (comparison, label), group in summary.groupby(["comparison", "label"], sort=True):
        signs = set(group["mean"].map(lambda v: (v > 0) - (v < 0)))
        if len(signs) > 1:
            verdict = "no: the direction differs between settings"
        elif group["resolved"].all():
            verdict = "yes: same direction, resolved in every setting"
        else:
            verdict = "same direction, but not resolved in every setting"
        row = {"comparison": comparison, "measurement": label}
        row |= {setting: f"{mean:+.3g}%" for setting, mean in zip(group["setting"], group["mean"])}
        rows.append(row | {"holds in every setting": verdict})
    return pd.DataFrame(rows)


def _effect_table(summary: pd.DataFrame, unit: str | None) -> pd.DataFrame:
    rows = []
    for _, row in summary.iterrows():
        shown = unit if unit is not None else row["unit"]
        resolved = "yes" if row["resolved"] else ("exact" if row["low"] == row["high"] else "no")
        rows.append({"comparison": row["comparison"], "setting": row["setting"], "measurement": row["label"],
                     "mean change": interval(row, shown, signed=True), "pairs": int(row["n"]),
                     "CI excludes 0": resolved})
    return pd.DataFrame(rows)
