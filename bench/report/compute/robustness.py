"""Does a switch's quality effect hold? Three readings, each from effects.csv and the runs behind it:

- along training: the effect at every checkpoint (the last is the final effect), and whether it is ``stable``,
  ``growing``, ``shrinking`` or ``changes sign``; ``settled`` says whether it still moved over the last stretch;
- across scales: the primary effect on each network the quality cells trained: ``holds across scales``,
  ``reverses``, ``resolved at one scale only`` or ``resolved at neither scale``;
- across recipes: the primary effect at the shared recipe against the tuned one: whether the two readings agree.

A change between two checkpoints is fitted as the effect on the per-run difference (value at the later checkpoint
minus at the earlier, the same model as the effects: quality_model.py), so its interval accounts for the two
readings sharing their runs. These readings are exploratory: 95% intervals, no correction over switches.
"""
from __future__ import annotations

import pandas as pd

from bench.report.compute.effects import quality_bases
from bench.report.compute.headline import HEADLINE_QUALITY, PRIMARY_QUALITY
from bench.report.compute.quality_model import design_effects
from bench.report.compute.recipes import TUNED
from bench.report.compute.stats import excludes
from bench.schema import ALONG_TRAINING

SWITCH = ["axis", "from_level", "to_level"]
# The final phase of each metric read along training: FD's last checkpoint is the sample phase, the held-out
# loss's is the curve's last step.
FINAL_PHASE = {metric: phase for _, phase, metric in HEADLINE_QUALITY}
TREND_COLUMNS = [*SWITCH, "base_config", "recipe", "metric", "steps", "estimates", "trend", "settled", "last_change"]


def trajectories(effects: pd.DataFrame) -> pd.DataFrame:
    """Every headline quality metric's effect at each checkpoint, in step order: the rows of effects.csv along
    training and the final one."""
    along = effects["phase"] == ALONG_TRAINING
    final = pd.Series(False, index=effects.index)
    for metric, phase in FINAL_PHASE.items():
        final |= (effects["metric"] == metric) & (effects["phase"] == phase)
    rows = effects[(along | final) & effects["metric"].isin(list(FINAL_PHASE)) & effects["step"].notna()]
    return rows.sort_values([*SWITCH, "base_config", "recipe", "metric", "step"], kind="stable")


def trends(effects: pd.DataFrame, values: pd.DataFrame, axes: tuple[str, ...], reference: dict) -> pd.DataFrame:
    """One row per switch, network, recipe and metric read at two checkpoints or more (``TREND_COLUMNS``)."""
    rows = []
    fits: dict[tuple, pd.DataFrame] = {}  # one fit of a stretch serves every switch read over it

    def change(key: tuple, start: float, end: float) -> pd.Series | None:
        axis, from_level, to_level, *reading = key
        stretch = (*reading, start, end)
        if stretch not in fits:
            fits[stretch] = _change_fit(values, *stretch, axes, reference)
        fit = fits[stretch]
        match = fit[(fit["factor"] == axis) & (fit["reference"].astype(str) == from_level)
                    & (fit["level"].astype(str) == to_level)] if not fit.empty else fit
        return match.iloc[0] if len(match) else None

    points = trajectories(effects)
    for key, path in points.groupby([*SWITCH, "base_config", "recipe", "metric"], sort=False):
        if path["step"].nunique() < 2:
            continue
        first, last = path.iloc[0], path.iloc[-1]
        whole = change(key, first["step"], last["step"])
        stretch = change(key, path.iloc[-2]["step"], last["step"])
        rows.append(dict(zip([*SWITCH, "base_config", "recipe", "metric"], key)) | {
            "steps": list(path["step"].astype(int)), "estimates": list(path["estimate"]),
            "trend": _trend(first, last, whole), "settled": stretch is None or not _resolved(stretch),
            "last_change": stretch})
    return pd.DataFrame(rows, columns=TREND_COLUMNS)


def _trend(first: pd.Series, last: pd.Series, change: pd.Series | None) -> str:
    if _resolved(first) and _resolved(last) and (first["estimate"] > 0) != (last["estimate"] > 0):
        return "changes sign"
    if change is None or not _resolved(change):
        return "stable"
    return "growing" if (change["estimate"] > 0) == (last["estimate"] > 0) else "shrinking"


def _resolved(row: pd.Series) -> bool:
    return pd.notna(row["ci_low"]) and excludes(row["ci_low"], row["ci_high"])


def _change_fit(values: pd.DataFrame, base: str, recipe: str, metric: str, start: float, end: float,
                axes: tuple[str, ...], reference: dict) -> pd.DataFrame:
    """Every switch's effect on (value at ``end`` minus value at ``start``) per run; empty if it cannot be fitted."""
    runs = values[(values["base_config"] == base) & (values["recipe"] == recipe) & (values["metric"] == metric)
                  & values["phase"].isin((ALONG_TRAINING, FINAL_PHASE[metric]))]
    run = ["variant", "seed", "setting", "dataset"]
    at = {step: runs[runs["step"] == step].set_index(run) for step in (start, end)}
    if at[start].empty or at[end].empty:
        return pd.DataFrame()
    frame = at[end].copy()
    frame["value"] = at[end]["value"] - at[start]["value"].reindex(at[end].index)
    return design_effects(frame.dropna(subset=["value"]).reset_index(), axes, reference)


def primary_quality(effects: pd.DataFrame) -> pd.DataFrame:
    """The verdict's quality effects: the primary metric at the end of training, per switch, network and recipe."""
    phase, metric = PRIMARY_QUALITY
    return effects[(effects["family"] == "primary") & (effects["phase"] == phase) & (effects["metric"] == metric)]


def across_scales(effects: pd.DataFrame) -> pd.DataFrame:
    """Per switch and recipe reading measured on two networks or more: the primary quality effect on each and
    whether its direction holds (Holm-resolved effects only)."""
    bases = quality_bases(effects)
    primary = primary_quality(effects)
    rows = []
    for key, group in primary.groupby([*SWITCH, "recipe"], sort=False):
        if group["base_config"].nunique() < 2:
            continue
        resolved = group[group["resolved"].astype(bool)]
        signs = set(resolved["estimate"] > 0)
        if len(resolved) == len(group):
            reading = "holds across scales" if len(signs) == 1 else "reverses"
        elif len(resolved) and len(signs) > 1:
            reading = "reverses"
        elif len(resolved):
            reading = f"resolved at one scale only ({', '.join(resolved['base_config'])})"
        else:
            reading = "resolved at neither scale"
        by_base = {base: group[group["base_config"] == base] for base in bases}
        rows.append(dict(zip([*SWITCH, "recipe"], key)) | {
            base: rows_.iloc[0] for base, rows_ in by_base.items() if len(rows_)} | {"reading": reading})
    return pd.DataFrame(rows)


def across_recipes(effects: pd.DataFrame) -> pd.DataFrame:
    """Per switch and network: the primary quality effect at the main shared recipe and at the tuned one, and
    whether the two readings agree (Holm-resolved effects only)."""
    primary = primary_quality(effects)
    rows = []
    for key, group in primary.groupby([*SWITCH, "base_config"], sort=False):
        tuned = group[group["recipe"] == TUNED]
        shared = group[group["recipe"] != TUNED]
        if tuned.empty or shared.empty:
            continue
        a, b = shared.iloc[0], tuned.iloc[0]
        rows.append(dict(zip([*SWITCH, "base_config"], key)) | {"shared": a, "tuned": b,
                                                                 "agreement": _agreement(a, b)})
    return pd.DataFrame(rows)


def _agreement(shared: pd.Series, tuned: pd.Series) -> str:
    a, b = bool(shared["resolved"]), bool(tuned["resolved"])
    if a and b:
        return "agree" if (shared["estimate"] > 0) == (tuned["estimate"] > 0) else "disagree: opposite directions"
    if a or b:
        return f"disagree: resolved only at the {'shared' if a else 'tuned'} recipe"
    return "agree (neither resolved)"


PAPER_READINGS = ("reproduced", "contradicted", "not resolved")  # how each reading below starts


def paper_reading(change: float, mine: pd.Series) -> str:
    """A published change against our effect of the same switch: reproduced, contradicted or not resolved."""
    if pd.isna(mine["ci_low"]):
        return "not tested (too few runs)"
    if not bool(mine["resolved"]):
        return f"not resolved: no difference beyond ±{mine['bound']:.3g}"
    return "reproduced" if (change < 0) == (mine["estimate"] < 0) else "contradicted"
