"""Numbers behind the report, from the tidy table: cell medians, seed means, paired effects, intervals.

Intervals are 95% t-intervals (scipy.stats.t) over independent units: matched pairs of variants for an
axis effect, seeds for a quality metric. With one unit there is no interval; with identical values
(counted, not timed) the interval has zero width.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from variants import AXES  # every declared axis, plugins' included once imported
# Besides the other axes, what must be equal for two cells to form a pair.
# ``setting`` (device plus execution options, see load.add_setting) keeps dtypes, memory formats and compiled
# runs apart; ``peer`` keeps reference models apart from our U-Net at the same axis values.
COST_CONTEXT = ("device", "setting", "execution", "dtype", "batch_size", "base_config", "threads", "peer")
QUALITY_CONTEXT = ("device", "setting", "dtype", "dataset", "base_config", "seed")
MEASURE = ("phase", "block", "metric", "unit", "method")
# Rows that describe the machine (load, matmul peak) or a timing group (its memory), not the variant: shown
# with the environment.
MACHINE_PHASES = ("env", "calibration", "group")
# Kinds whose rows are costs of a variant: counts and memory (cost cells), time (timing cells' rounds).
COST_KINDS = ("cost", "timing")
FINAL_STEP = "train (final step)"


def t_interval(values) -> tuple[float, float]:
    """(low, high) of the 95% t-interval of the mean; NaN with fewer than two values."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) < 2:
        return (math.nan, math.nan)
    mean = values.mean()
    if np.allclose(values, mean, rtol=1e-9, atol=0.0):  # counted, not timed: equal but for float rounding
        return (mean, mean)
    sem = values.std(ddof=1) / math.sqrt(len(values))
    half = stats.t.ppf(0.975, len(values) - 1) * sem
    return (mean - half, mean + half)


def mean_ci(values: pd.Series) -> pd.Series:
    low, high = t_interval(values)
    return pd.Series({"mean": values.mean(), "low": low, "high": high, "n": int(values.notna().sum())})


def summarise(frame: pd.DataFrame, by: list[str], value: str) -> pd.DataFrame:
    """Mean, 95% t-interval and count of ``value`` per group; ``resolved`` when the interval excludes 0."""
    if frame.empty:
        return pd.DataFrame(columns=[*by, "mean", "low", "high", "n", "resolved"])
    out = frame.groupby(by, dropna=False, sort=True)[value].apply(mean_ci).unstack().reset_index()
    out["n"] = out["n"].astype(int)
    out["resolved"] = (out["low"] > 0) | (out["high"] < 0)
    return out


def cost_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Successful cost observations of the variants (per-block rows included), one per repeat or round; the
    A/A control's second instance is left out (it is the baseline again)."""
    rows = table[table["kind"].isin(COST_KINDS) & (table["status"] == "ok") & ~table["phase"].isin(MACHINE_PHASES)
                 & (table["replica"] == 0)]
    return rows[rows["value"].notna()]


def cost_cells(table: pd.DataFrame) -> pd.DataFrame:
    """Median, quartiles and repeat count per cell and measurement."""
    rows = cost_rows(table)
    keys = ["variant", *AXES, *COST_CONTEXT, *MEASURE]
    grouped = rows.groupby(keys, dropna=False, sort=True)["value"]
    return pd.DataFrame({"value": grouped.median(), "q1": grouped.quantile(0.25), "q3": grouped.quantile(0.75),
                         "repeats": grouped.count()}).reset_index()


def quality_values(table: pd.DataFrame, kind: str = "quality") -> pd.DataFrame:
    """One value per variant, seed and metric: sample metrics as recorded, training curves at their last step."""
    rows = table[(table["kind"] == kind) & (table["status"] == "ok") & table["value"].notna()]
    curves = rows[rows["phase"] == "train"]
    if not curves.empty:
        order = curves.sort_values("step", na_position="first")
        curves = order.groupby(["variant", "seed", "metric"], dropna=False, sort=False).tail(1).copy()
        curves["phase"] = FINAL_STEP
    rows = pd.concat([rows[rows["phase"] != "train"], curves])
    keys = ["variant", *AXES, *QUALITY_CONTEXT, *MEASURE, "n"]
    values = rows.groupby(keys, dropna=False, sort=True)["value"].mean().reset_index()
    return values.rename(columns={"n": "sample_size"})  # "n" is reserved for the count behind an interval


def levels(frame: pd.DataFrame, axis: str) -> list:
    return sorted(frame[axis].dropna().unique().tolist(), key=str)


def references() -> dict[str, object]:
    """The reference level of each axis, as the table holds it: its declared default, the smalldiffusion
    baseline."""
    return {name: axis.cell(axis.default) for name, axis in AXES.items()}


def reference_level(frame: pd.DataFrame, axis: str):
    present = levels(frame, axis)
    reference = references()[axis]
    return reference if reference in present else present[0]


def paired_differences(frame: pd.DataFrame, axis: str, match_on: tuple[str, ...]) -> pd.DataFrame:
    """One row per matched pair: the reference level of ``axis`` against each other level, all of
    ``match_on`` (and every other axis) equal. ``difference`` is alt - ref in the metric's unit,
    ``percent`` is 100 * difference / ref (NaN where ref is 0)."""
    present = levels(frame, axis)
    if len(present) < 2:
        return pd.DataFrame()
    ref_level = reference_level(frame, axis)
    keys = [c for c in (*AXES, *match_on) if c != axis]
    per_level = frame.groupby([*keys, axis], dropna=False)["value"].mean().reset_index()
    ref = per_level[per_level[axis] == ref_level].drop(columns=axis)
    pairs = []
    for level in present:
        if level == ref_level:
            continue
        alt = per_level[per_level[axis] == level].drop(columns=axis)
        merged = ref.merge(alt, on=keys, suffixes=("_ref", "_alt"))
        merged.insert(0, "comparison", f"{ref_level} → {level}")
        pairs.append(merged)
    out = pd.concat(pairs, ignore_index=True)
    out.insert(0, "axis", axis)
    out["difference"] = out["value_alt"] - out["value_ref"]
    out["percent"] = 100 * out["difference"] / out["value_ref"].where(out["value_ref"] != 0)
    return out


def cost_effects(table: pd.DataFrame) -> pd.DataFrame:
    """Per axis, % change of every cost cell's measurement (block totals: counts and memory) over matched pairs,
    per setting. Time is not paired cell by cell: it comes from the timing rounds' model (timing.py). Peers have
    no axes to switch: they are left out."""
    cells = cost_cells(table[table["kind"] == "cost"])
    cells = cells[(cells["block"] == "total") & (cells["peer"] == "")]
    pairs = pd.concat([paired_differences(cells, axis, (*COST_CONTEXT, *MEASURE)) for axis in AXES],
                      ignore_index=True)
    return pairs


def quality_effects(table: pd.DataFrame) -> pd.DataFrame:
    """Per axis, difference of every quality metric over pairs matched on seed (and everything else)."""
    values = quality_values(table)
    pairs = pd.concat([paired_differences(values, axis, (*QUALITY_CONTEXT, *MEASURE, "sample_size")) for axis in AXES],
                      ignore_index=True)
    return pairs


def per_variant_quality(table: pd.DataFrame, kind: str = "quality") -> pd.DataFrame:
    """Mean and 95% t-interval over seeds per variant and metric (kind "floor" gives the real-data floor)."""
    values = quality_values(table, kind)
    return summarise(values, ["variant", "dataset", *MEASURE, "sample_size"], "value")


def pareto_front(points: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Points no other point beats on both x and y (lower is better on both), sorted by x."""
    ordered = points.sort_values([x, y])
    front, best = [], math.inf
    for index, row in ordered.iterrows():
        if row[y] < best:
            front.append(index)
            best = row[y]
    return ordered.loc[front]
