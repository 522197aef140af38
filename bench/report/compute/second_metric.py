"""KID beside FD: the verdict's second quality reading, and whether it reads a switch as FD does.

FD (``PRIMARY_QUALITY``) is biased by N, and at the N=250 of the reference runs that bias is large; KID
(``SECOND_QUALITY``, Binkowski et al. 2018) is unbiased at any N. FD stays the confirmatory metric: the verdict's
"resolved" is Holm's over the primary family (effects.py), which KID does not join. KID is read beside it, on the
same runs by the same seed-blocked model (quality_model.py), so its interval covers what FD's covers: the
variation between training seeds, with the reference images and the feature network fixed (neither interval
includes the variance of the reference set).

KID's interval here is at the level of FD's bound (robustness.bound_level: 1 - 0.05/m over the m primary tests),
and KID resolves a switch when that interval excludes zero: as strict as the bound FD's unresolved readings
print. Holm's later steps can resolve FD where that level would not, so "KID does not resolve it" beside a
narrowly resolved FD is a near call, not a contradiction.
"""
from __future__ import annotations

import pandas as pd

from bench.report.compute.effects import interval_at
from bench.statistics.stats import excludes

AGREES = "KID agrees"
DISAGREES = "KID disagrees in direction"
NOT_RESOLVED = "KID does not resolve it"
ONLY_KID = "only KID resolves it"
FIT_KEYS = ("base_config", "setting", "recipe", "phase", "metric")


def agreement(primary: float, primary_resolved: bool, second: float, second_resolved: bool) -> str:
    """How KID reads a switch against FD, from the two estimates and whether each is resolved. Direction counts
    only where at least one resolves: two unresolved estimates of opposite sign are both consistent with no
    effect, so they agree."""
    if (primary_resolved or second_resolved) and primary * second < 0:
        return DISAGREES
    if primary_resolved == second_resolved:
        return AGREES
    return NOT_RESOLVED if primary_resolved else ONLY_KID


def at_level(second: pd.Series, fits: pd.DataFrame, confidence: float) -> pd.Series:
    """The KID effect ``second`` (a row of effects.csv) with ``ci_low``/``ci_high`` at ``confidence`` and
    ``resolved`` when that interval excludes zero, from its fit in ``fits`` (quality_model.py: its standard error
    and degrees of freedom); no interval and unresolved when the model gave none."""
    match = (fits["factor"] == second["axis"]) & (fits["reference"].astype(str) == second["from_level"]) \
        & (fits["level"].astype(str) == second["to_level"]) & (fits["estimate"] == second["estimate"])
    for key in FIT_KEYS:
        match &= fits[key] == second[key]
    fit = fits[match].assign(scale="linear")  # a difference in the metric's unit, not a % change
    out = second.copy()
    if fit.empty or pd.isna(fit["se"].iloc[0]):
        out["ci_low"] = out["ci_high"] = float("nan")
    else:
        out["ci_low"], out["ci_high"] = interval_at(fit.iloc[0], 1 - confidence)
    out["resolved"] = excludes(out["ci_low"], out["ci_high"])
    return out
