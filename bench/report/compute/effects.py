"""effects.csv: one row per effect of a run, from which the report's effect figures and tables are drawn.

An effect is switching one axis from its reference level to another, everything else equal, on one
measurement in one setting; the A/A timing control is an effect too (``axis`` = ``control``). Three sources:

- time (timing cells): the blocked factorial model over the rounds (rounds_model.py), as % change;
- counts and memory (cost cells): % change over matched pairs of cells. Counted quantities (parameters,
  FLOPs, saved-tensor bytes) are exact: their interval is the range over the pairs and they are not tested;
  measured ones (peak RSS, CUDA peaks, compile time) get a 95% t-interval and a paired t-test;
- quality (quality cells): the difference over seed-matched pairs, 95% t-interval, paired t-test.

``resolved``: for a tested effect, its Holm-adjusted p-value is below 0.05, the adjustment running over every
tested effect of the run (controls included), so the run as a whole makes a false "resolved" claim with
probability at most 5%; for an exact count, the count changed; an effect that could not be tested (too few
pairs or rounds) is never resolved.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from bench.report.compute.rounds_model import CONTROL, MIN_ROUNDS_TO_TEST, ROUNDS_MODEL_METHOD
from bench.report.compute.stats import ALPHA, excludes, t_interval
from bench.schema import KNOWN_NULLS
from variants import AXES

COLUMNS = ("axis", "from_level", "to_level", "base_config", "setting", "phase", "metric", "unit", "estimate",
           "ci_low", "ci_high", "n", "p_value", "p_adjusted", "resolved", "method")
CORRECTION = "holm"
CORRECTION_TEXT = (f"Holm's step-down correction over every tested effect of the run (family-wise error "
                   f"{ALPHA:g}); counted quantities are exact and not tested")
COUNTED_METRICS = ("params", "flops", "model_flops", "saved_tensor_bytes")
DISTURBED = "timing disturbed"  # in the method of a time effect whose rounds ran on a busy machine


def effect_table(timing_fits: pd.DataFrame, cost_pairs: pd.DataFrame, quality_pairs: pd.DataFrame,
                 disturbance: pd.DataFrame) -> pd.DataFrame:
    """Every effect of the run in ``COLUMNS``, sorted by axis, setting, phase and metric, from the timing model's
    fits, the matched pairs of cost cells and the seed-matched pairs of quality cells (compute/frames.py). Time
    effects of a setting whose rounds ran on a busy machine (compute/disturbance.py) keep their estimate and
    interval but are not tested, so never resolved; their method says why."""
    frames = [f for f in (_time(timing_fits, disturbance), _cost(cost_pairs), _quality(quality_pairs)) if not f.empty]
    if not frames:
        return pd.DataFrame(columns=list(COLUMNS))
    effects = pd.concat(frames, ignore_index=True)
    tested = effects["p_value"].notna()
    effects["p_adjusted"] = np.nan
    if tested.any():
        effects.loc[tested, "p_adjusted"] = multipletests(effects.loc[tested, "p_value"], ALPHA, CORRECTION)[1]
    exact = effects["method"].str.startswith("exact")
    changed = np.array([excludes(low, high) for low, high in zip(effects["ci_low"], effects["ci_high"])], dtype=bool)
    effects["resolved"] = np.where(tested, effects["p_adjusted"] < ALPHA, exact & changed)
    for (axis, phase), why in KNOWN_NULLS.items():
        known = (effects["axis"] == axis) & (effects["phase"] == phase) & (effects["unit"] == "%")
        effects.loc[known, "method"] = effects.loc[known, "method"] + f"; {why}"
    order = {axis: i for i, axis in enumerate((CONTROL, *AXES))}
    effects = effects.sort_values(["axis", "base_config", "setting", "phase", "metric", "method"],
                                  key=lambda c: c.map(order) if c.name == "axis" else c, kind="stable")
    return effects[list(COLUMNS)].reset_index(drop=True)


def controls(effects: pd.DataFrame) -> pd.DataFrame:
    """The effects whose true value is zero: the A/A control and the known nulls."""
    null = effects["axis"] == CONTROL
    for axis, phase in KNOWN_NULLS:
        null |= (effects["axis"] == axis) & (effects["phase"] == phase) & (effects["unit"] == "%")
    return effects[null]


def failed_controls(effects: pd.DataFrame) -> pd.DataFrame:
    """Controls and known nulls that came out resolved: the timing has a bias the design did not remove."""
    null = controls(effects)
    return null[null["resolved"].astype(bool)]


def _time(fits: pd.DataFrame, disturbance: pd.DataFrame) -> pd.DataFrame:
    if fits.empty:
        return fits
    time = pd.DataFrame({
        "axis": fits["factor"], "from_level": fits["reference"].astype(str), "to_level": fits["level"].astype(str),
        "base_config": fits["base_config"], "setting": fits["setting"], "phase": fits["phase"],
        "metric": fits["metric"], "unit": "%", "estimate": fits["estimate"], "ci_low": fits["ci_low"],
        "ci_high": fits["ci_high"], "n": fits["n"],
        "p_value": fits["p_value"],
        "method": f"{ROUNDS_MODEL_METHOD}; n = rounds (untested below {MIN_ROUNDS_TO_TEST})",
    })
    for busy in disturbance[disturbance["disturbed"].astype(bool)].itertuples():
        hit = (time["base_config"] == busy.base_config) & (time["setting"] == busy.setting)
        time.loc[hit, "p_value"] = np.nan
        time.loc[hit, "method"] += f"; {DISTURBED}: {busy.why}, not interpreted"
    return time


def _cost(pairs: pd.DataFrame) -> pd.DataFrame:
    if pairs.empty:
        return pd.DataFrame()
    rows = []
    for key, group in pairs.dropna(subset=["percent"]).groupby(["axis", "comparison", "base_config", "setting",
                                                                 "phase", "metric", "method"], sort=True):
        axis, comparison, base, setting, phase, metric, how = key
        values = group["percent"].to_numpy(dtype=float)
        if metric in COUNTED_METRICS:
            low, high, p = values.min(), values.max(), np.nan
            method = (f"exact count ({how}): mean % change over matched pairs of cells; interval = range over "
                      "the pairs (interactions, not noise)")
        else:
            (low, high), p = t_interval(values), _t_test(values)
            method = f"{how}: % change over matched pairs of cells, 95% t-interval, paired t-test"
        rows.append(_row(axis, comparison, base, setting, phase, metric, "%", values, low, high, p, method))
    return pd.DataFrame(rows)


def _quality(pairs: pd.DataFrame) -> pd.DataFrame:
    if pairs.empty:
        return pd.DataFrame()
    rows = []
    for key, group in pairs.groupby(["axis", "comparison", "base_config", "setting", "phase", "metric", "unit",
                                     "method"], sort=True):
        axis, comparison, base, setting, phase, metric, unit, how = key
        values = group["difference"].to_numpy(dtype=float)
        (low, high), p = t_interval(values), _t_test(values)
        rows.append(_row(axis, comparison, base, setting, phase, metric, unit, values, low, high, p,
                         f"{how}: difference over seed-matched pairs, 95% t-interval, paired t-test"))
    return pd.DataFrame(rows)


def _row(axis, comparison, base, setting, phase, metric, unit, values, low, high, p, method) -> dict:
    from_level, to_level = comparison.split(" → ")
    return {"axis": axis, "from_level": from_level, "to_level": to_level, "base_config": base, "setting": setting,
            "phase": phase, "metric": metric, "unit": unit, "estimate": float(values.mean()), "ci_low": float(low),
            "ci_high": float(high), "n": len(values), "p_value": p, "method": method}


def _t_test(values: np.ndarray) -> float:
    """Two-sided paired t-test p-value; NaN (untestable) with fewer than two pairs or no spread."""
    if len(values) < 2 or values.std(ddof=1) == 0:
        return math.nan
    return float(stats.ttest_1samp(values, 0.0).pvalue)
