"""Statistics every reader of the table shares, each defined once: the t-interval, the bootstrap, what
"resolved" means, the Pareto front.

Intervals over independent units (matched pairs of variants, seeds) are 95% t-intervals (scipy.stats.t); with
one unit there is none, with identical values (counted, not timed) it has zero width. Ratios and medians of
repeated timings get a 95% percentile bootstrap (scipy.stats.bootstrap), and the timing model a cluster
bootstrap over rounds (rounds_model.py); both draw ``N_RESAMPLES`` resamples from ``BOOTSTRAP_SEED``. An effect
is resolved when its Holm-adjusted p-value is below ``ALPHA`` within its family (primary or control; secondary effects
at their unadjusted 95% interval: bench/report/compute/effects.py).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05
# p-values down to 2e-4: Holm can then resolve effects in families of up to ~250.
N_RESAMPLES = 9999
BOOTSTRAP_SEED = 0
PERCENTILES = (2.5, 97.5)  # of a 95% percentile interval


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
    half = stats.t.ppf(1 - ALPHA / 2, len(values) - 1) * sem
    return (mean - half, mean + half)


def independent_difference(a: pd.Series, b: pd.Series) -> pd.Series:
    """``b`` minus ``a``, two estimates (``estimate``, ``se``, ``df``) from independent runs: ``estimate``, ``se``
    (the two combined, hypot), ``df`` (Welch-Satterthwaite: the degrees of freedom of a sum of two variances each
    estimated on its own), ``ci_low``/``ci_high`` (95% t-interval) and ``p_value`` (two-sided t-test of zero); NaN
    interval and test when either has none."""
    estimate = float(b["estimate"] - a["estimate"])
    se = float(np.hypot(a["se"], b["se"]))
    if not (se > 0 and a["df"] > 0 and b["df"] > 0):
        return pd.Series({"estimate": estimate, "se": se, "df": math.nan, "ci_low": math.nan, "ci_high": math.nan,
                          "p_value": math.nan})
    df = se ** 4 / (a["se"] ** 4 / a["df"] + b["se"] ** 4 / b["df"])
    half = stats.t.ppf(1 - ALPHA / 2, df) * se
    return pd.Series({"estimate": estimate, "se": se, "df": df, "ci_low": estimate - half,
                      "ci_high": estimate + half, "p_value": 2 * stats.t.sf(abs(estimate) / se, df)})


def mean_ci(values: pd.Series) -> pd.Series:
    low, high = t_interval(values)
    return pd.Series({"mean": values.mean(), "low": low, "high": high, "n": int(values.notna().sum())})


def summarise(frame: pd.DataFrame, by: list[str], value: str) -> pd.DataFrame:
    """Mean, 95% t-interval and count of ``value`` per group."""
    if frame.empty:
        return pd.DataFrame(columns=[*by, "mean", "low", "high", "n"])
    out = frame.groupby(by, dropna=False, sort=True)[value].apply(mean_ci).unstack().reset_index()
    out["n"] = out["n"].astype(int)
    return out


def bootstrap_interval(samples: tuple[np.ndarray, ...], statistic: Callable[..., np.ndarray]
                       ) -> tuple[float, float]:
    """95% percentile bootstrap interval of ``statistic(*samples, axis=...)``, each sample resampled on its
    own; NaN bounds when a sample has fewer than two values (no spread to resample)."""
    if min(len(s) for s in samples) < 2:
        return (math.nan, math.nan)
    interval = stats.bootstrap(samples, statistic, n_resamples=N_RESAMPLES, method="percentile",
                               random_state=BOOTSTRAP_SEED, vectorized=True).confidence_interval
    return (float(interval.low), float(interval.high))


def excludes(low: float, high: float, null: float = 0.0) -> bool:
    """Whether an interval lies wholly on one side of ``null`` (never, without an interval)."""
    return bool(low > null or high < null)


def apart(a: pd.Series, b: pd.Series) -> bool:
    """Whether two ``low``/``high`` intervals do not overlap."""
    return bool(a["high"] < b["low"] or b["high"] < a["low"])


def pareto_front(points: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Points no other point beats on both x and y (lower is better on both), sorted by x."""
    ordered = points.sort_values([x, y])
    front, best = [], math.inf
    for index, row in ordered.iterrows():
        if row[y] < best:
            front.append(index)
            best = row[y]
    return ordered.loc[front]
