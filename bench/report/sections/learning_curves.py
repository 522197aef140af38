"""Section: the learning curves of the quality cells, against training step and wall time."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.report.compute.derived import Derived
from bench.report.render.document import Section, save_figure
from bench.report.render.plots import learning_curves
from bench.report.render.wording import interval
from bench.schema import FINAL_STEP, RECIPE_COLUMNS, TRAIN, WALL_TIME, Kind
from bench.statistics.stats import apart


def curves_section(derived: Derived, figures_dir: Path) -> Section | None:
    table = derived.table
    section = Section("Learning curves", "Held-out measurements during training: mean over seeds, band = 95% "
                      "t-interval over seeds at each step. Against wall time, each step is placed at its mean "
                      "wall time over seeds.")
    rows = table[(table["kind"] == Kind.QUALITY) & (table["phase"] == TRAIN) & (table["status"] == "ok")
                 & table["value"].notna()]
    shown = derived.quality_values  # the main recipe's runs, on the first network trained
    if not shown.empty:
        runs = ["variant", "base_config", "seed", *RECIPE_COLUMNS]
        shown = shown[shown["base_config"] == shown["base_config"].min()][runs].drop_duplicates()
        rows = rows.merge(shown, on=runs)
    metrics = sorted(set(rows["metric"]) - {WALL_TIME})
    if not metrics:
        return None  # no training curves (no quality cells, or none that recorded a curve)
    wall = rows[rows["metric"] == WALL_TIME].groupby(["variant", "step"])["value"].mean().rename(WALL_TIME)
    for metric in metrics:
        curves = rows[rows["metric"] == metric].merge(wall, left_on=["variant", "step"], right_index=True, how="left")
        unit = curves["unit"].iloc[0]
        title = f"Learning curves: {metric}"
        fig = learning_curves(curves, f"{metric} [{unit}]", curves[WALL_TIME].notna().any(), title)
        quality = derived.quality[derived.quality["base_config"] == derived.quality["base_config"].min()]
        final = quality[(quality["phase"] == FINAL_STEP) & (quality["metric"] == metric)]
        section.items.append(save_figure(fig, figures_dir, f"curves_{metric}", title, _curve_reading(final, unit),
                                         detail=bool(section.items)))  # the first curve in view, the rest collapsed
    return section


def _curve_reading(final: pd.DataFrame, unit: str) -> str:
    """The lowest and highest variant at the last step (``final``: per-variant means and intervals)."""
    final = final.reset_index(drop=True)
    best, worst = final.loc[final["mean"].idxmin()], final.loc[final["mean"].idxmax()]
    if len(final) == 1:
        return f"One variant only; at the last step: {best['variant']} {interval(best, unit)}"
    text = f"At the last step, lowest: {best['variant']} {interval(best, unit)}; highest: {worst['variant']} " \
           f"{interval(worst, unit)}"
    if best["variant"] != worst["variant"] and not apart(best, worst):
        text += "; the intervals overlap: the difference is not resolved at this N"
    return text
