"""Section: the effect of switching one axis (or climbing one rung) with everything else equal.

Drawn from the run's effects (compute/effects.py, written as effects.csv), so the report and the file
cannot disagree.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.report.compute.derived import Derived
from bench.report.compute.effects import CORRECTION_TEXT
from bench.report.compute.headline import KEY_MEASUREMENTS
from bench.report.render.document import Section, Table, save_figure
from bench.report.render.plots import effect_forest
from bench.report.render.wording import add_effect_labels, effect_frame, effects_reading
from variants import AXES

AXIS_EFFECTS_NOTE = (
          "Every row is one effect from effects.csv: switching one axis from its reference level, everything else "
          "equal, in one setting (device, dtype, memory format, compilation). Time: a blocked factorial model of "
          "the timing rounds (log time, the round as a block, every axis a main effect), 95% cluster-bootstrap "
          "interval over rounds, quoted as % change. Counts and memory: % change over matched pairs of cost "
          "cells. Quality: difference in the metric's own unit over seed-matched pairs, 95% t-interval. "
          f"Resolved: {CORRECTION_TEXT}.")


LADDER_NOTE = (
          "Every row is one effect from effects.csv: one rung of the ladder against the rung before it, in one "
          "setting (device, dtype, memory format, compilation). Time: a model of the timing rounds (log time, the "
          "round as a block, each rung a step over the one before), 95% cluster-bootstrap interval over rounds, "
          "quoted as % change. Counts and memory: % change over matched pairs of cost cells. Quality: difference "
          f"in the metric's own unit over seed-matched pairs, 95% t-interval. Resolved: {CORRECTION_TEXT}.")


def axis_effects_section(derived: Derived, figures_dir: Path) -> Section:
    effects, rungs = derived.effects, list(derived.rungs)
    section = Section("Rung effects" if rungs else "Axis effects", LADDER_NOTE if rungs else AXIS_EFFECTS_NOTE)
    if effects.empty or not effects["axis"].isin([*AXES, *rungs]).any():
        section.note = "No axis has two levels with matched cells or rounds in this run, so no effect can be isolated."
        return section
    for number, axis in enumerate([*AXES, *rungs]):
        rows = effects[effects["axis"] == axis]
        for kind, subset in (("cost", rows[rows["unit"] == "%"]), ("quality", rows[rows["unit"] != "%"])):
            if subset.empty:
                continue
            what = "% change of each cost" if kind == "cost" else "quality difference"
            if axis in rungs:
                title = f"rung {axis} ({derived.rungs[axis]}): {what} against rung {subset['from_level'].iloc[0]}"
                figure = f"effect_rung{number - len(AXES)}_{kind}"  # a rung's name may be any text
            else:
                title, figure = f"{axis}: {what}, everything else equal", f"effect_{axis}_{kind}"
            subset = add_effect_labels(subset)
            key = subset[[pair in KEY_MEASUREMENTS for pair in zip(subset["phase"], subset["metric"])]]
            shown = key if len(key) else subset
            section.items.append(save_figure(effect_forest(shown, title), figures_dir, figure, title,
                                             effects_reading(shown)))
            section.items.append(Table(f"{axis}: every {kind} effect", effect_frame(subset), detail=True))
            if kind == "cost" and subset["setting"].nunique() > 1:
                section.items.append(Table(f"{axis}: does the cost effect survive the setting (device, dtype, memory "
                                           "format, compilation)?", across_settings(subset), detail=True))
    return section


def across_settings(rows: pd.DataFrame) -> pd.DataFrame:
    """Per comparison and measurement: the % change in each setting, and whether its direction holds."""
    out = []
    for (comparison, label), group in rows.groupby(["comparison", "label"], sort=True):
        signs = set(group["estimate"].map(lambda v: (v > 0) - (v < 0)))
        if len(signs) > 1:
            verdict = "no: the direction differs between settings"
        elif group["resolved"].astype(bool).all():
            verdict = "yes: same direction, resolved in every setting"
        else:
            verdict = "same direction, but not resolved in every setting"
        line = {"comparison": comparison, "measurement": label}
        line |= {setting: f"{value:+.3g}%" for setting, value in zip(group["setting"], group["estimate"])}
        out.append(line | {"holds in every setting": verdict})
    return pd.DataFrame(out)


