"""Sections: the noise floor and controls, and the effect of switching one axis with everything else equal.

Both are drawn from the run's effects table (effect_table.py, written as effects.csv), so the report and the
file cannot disagree.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.report.render.document import Section, Table, save_figure
from bench.report.compute.effects import CORRECTION_TEXT, failed_controls
from bench.report.render.plots import effect_forest
from bench.report.render.wording import describe_effect
from bench.report.compute.stats import AXES, references
from bench.report.compute.rounds_model import CONTROL, timing_effects
from bench.report.sections.verdict import COSTS, QUALITY

METHOD = ("Every row is one effect from effects.csv: switching one axis from its reference level, everything else "
          "equal, in one setting (device, dtype, memory format, compilation). Time: a blocked factorial model of "
          "the timing rounds (log time, the round as a block, every axis a main effect), 95% cluster-bootstrap "
          "interval over rounds, quoted as % change. Counts and memory: % change over matched pairs of cost "
          "cells. Quality: difference in the metric's own unit over seed-matched pairs, 95% t-interval. "
          f"Resolved: {CORRECTION_TEXT}.")


# What an axis figure shows (the rest is in its table): the verdict's measurements.
KEY_MEASUREMENTS = {(phase, metric) for _, phase, metrics in COSTS for metric in metrics} | {
    (phase, metric) for _, phase, metric in QUALITY}


def noise_section(table: pd.DataFrame, effects: pd.DataFrame) -> Section:
    section = Section("Noise floor and controls", "The A/A control times the baseline twice, as two separately "
                      "built instances in every round: its true effect is zero, so its interval is the run's noise "
                      "floor for time. Checkpointing's effect on inference is a second known null (without autograd "
                      "it does nothing). Neither may come out resolved; if one does, the timing has a bias the "
                      "design did not remove. Noise by level: the residual SD of one timed block within its round, "
                      "and the SD of the rounds' own speed (drift the round-as-block model takes out).")
    controls = effects[(effects["axis"] == CONTROL) | ((effects["axis"] == "checkpoint") & (effects["phase"] ==
                                                                                          "inference"))]
    if controls.empty:
        section.note = "This run has no timing rounds, so no timing control and no noise floor."
        return section
    failed = failed_controls(effects)
    section.items.append(Table("Controls (true effect zero)", _effect_frame(controls, with_axis=True),
                               "WARNING: a control came out resolved; the timing is biased." if len(failed) else
                               "No control came out resolved."))
    section.items.append(Table("Where the timing noise comes from (log-scale SD, as %)", noise_levels(table),
                               detail=True))
    return section


def noise_levels(table: pd.DataFrame) -> pd.DataFrame:
    fits = timing_effects(table, tuple(AXES), references(), n_resamples=1)
    if fits.empty:
        return pd.DataFrame()
    levels = fits.groupby(["setting", "phase", "metric"])[["n", "block_sd", "round_sd"]].first().reset_index()
    return pd.DataFrame({"setting": levels["setting"], "phase": levels["phase"], "metric": levels["metric"],
                         "rounds": levels["n"], "one block, within its round [%]": (100 * levels["block_sd"]).round(2),
                         "between rounds [%]": (100 * levels["round_sd"]).round(2)})


def noise_floor_sentence(effects: pd.DataFrame) -> str:
    """One line for the top of the report: the A/A control's effect on time, per setting and phase."""
    control = effects[(effects["axis"] == CONTROL) & (effects["metric"] == "seconds_per_iter")]
    if control.empty:
        return ""
    parts = [f"{row['phase']} on {row['setting']} {describe_effect(row)}" for _, row in control.iterrows()]
    return "Noise floor (A/A control: the baseline timed twice as two instances): " + "; ".join(parts) + "."


def axis_effects_section(effects: pd.DataFrame, figures_dir: Path) -> Section:
    section = Section("Axis effects", METHOD)
    if effects.empty or not effects["axis"].isin(list(AXES)).any():
        section.note = "No axis has two levels with matched cells or rounds in this run, so no effect can be isolated."
        return section
    for axis in AXES:
        rows = effects[effects["axis"] == axis]
        for kind, subset in (("cost", rows[rows["unit"] == "%"]), ("quality", rows[rows["unit"] != "%"])):
            if subset.empty:
                continue
            what = "% change of each cost" if kind == "cost" else "quality difference"
            title = f"{axis}: {what}, everything else equal"
            subset = add_effect_labels(subset)
            key = subset[[pair in KEY_MEASUREMENTS for pair in zip(subset["phase"], subset["metric"])]]
            shown = key if len(key) else subset
            section.items.append(save_figure(effect_forest(shown, title), figures_dir, f"effect_{axis}_{kind}", title,
                                             effects_reading(shown)))
            section.items.append(Table(f"{axis}: every {kind} effect", _effect_frame(subset), detail=True))
            if kind == "cost" and subset["setting"].nunique() > 1:
                section.items.append(Table(f"{axis}: does the cost effect survive the setting (device, dtype, memory "
                                           "format, compilation)?", across_settings(subset), detail=True))
    return section


def checkpoint_section(effects: pd.DataFrame, figures_dir: Path) -> Section:
    section = Section("Checkpointing trade-off", "Checkpointing on vs off in the training step: the memory it "
                      "saves (exact saved-tensor bytes; measured peaks) against the time it adds (timing rounds' "
                      "model), from effects.csv.")
    rows = effects[(effects["axis"] == "checkpoint") & (effects["phase"] == "train_step")
                   & effects["metric"].isin(("saved_tensor_bytes", "peak_rss_bytes", "peak_allocated_bytes",
                                             "peak_reserved_bytes", "seconds_per_iter", "flops"))]
    if rows.empty:
        section.note = "Checkpointing was not varied in this run's cost cells, so there is no trade-off to show."
        return section
    rows = add_effect_labels(rows)
    title = "Checkpointing: memory saved against time added"
    section.items.append(save_figure(effect_forest(rows, title), figures_dir, "checkpoint_tradeoff", title,
                                     effects_reading(rows, top=len(rows))))
    return section


def add_effect_labels(effects: pd.DataFrame) -> pd.DataFrame:
    """``label``: phase/metric, with the counter where two rows share it (fvcore MACs and FLOP counts)."""
    label = effects["phase"] + "/" + effects["metric"]
    keys = [effects["axis"], effects["from_level"], effects["to_level"], effects["setting"], label]
    duplicated = pd.Series(list(zip(*keys)), index=effects.index).duplicated(keep=False)
    counter = effects["method"].str.extract(r"^exact count \(([^)]*)\)", expand=False).fillna("")
    return effects.assign(label=label.where(~duplicated, label + " · " + counter),
                          comparison=effects["from_level"] + " → " + effects["to_level"])


def effects_reading(rows: pd.DataFrame, top: int = 4) -> str:
    """The resolved effects, largest first, then how many are not resolved."""
    parts = []
    for (comparison, setting), group in rows.groupby(["comparison", "setting"], sort=True):
        resolved = group[group["resolved"].astype(bool)].assign(size=lambda f: f["estimate"].abs())
        resolved = resolved.sort_values("size", ascending=False)
        text = [f"{r['label']} {describe_effect(r)}" for _, r in resolved.head(top).iterrows()]
        if len(resolved) > top:
            text.append(f"{len(resolved) - top} more resolved")
        unresolved = group.drop(resolved.index)
        if len(unresolved):
            text.append("not resolved: " + ", ".join(unresolved["label"]))
        parts.append(f"{comparison} on {setting}: " + "; ".join(text))
    return " | ".join(parts)


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


def _effect_frame(rows: pd.DataFrame, with_axis: bool = False) -> pd.DataFrame:
    rows = rows if "label" in rows.columns else add_effect_labels(rows)
    comparison = rows["axis"] + ": " + rows["comparison"] if with_axis else rows["comparison"]
    return pd.DataFrame({"comparison": comparison, "setting": rows["setting"], "measurement": rows["label"],
                         "effect": [describe_effect(r) for _, r in rows.iterrows()],
                         "Holm-adjusted p": rows["p_adjusted"].map(lambda p: f"{p:.2g}" if pd.notna(p) else ""),
                         "resolved": rows["resolved"].map(lambda r: "yes" if r else "no")}).reset_index(drop=True)
