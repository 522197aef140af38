"""Effects on quality from the whole design: a linear model over every trained run, with the seed as a block.

For one base config, setting, data set and quality measurement, every (variant, seed) value is modelled as

    value = intercept + sum of axis effects + seed + noise

with treatment coding against each axis's reference level (the same columns as the timing model's,
rounds_model.design) and the seed as a block: a seed that trains every variant a little better drops out. Fitted
by OLS (statsmodels); each main effect gets the model's 95% t-interval and two-sided t-test on the residual
degrees of freedom, so every run of the design informs every effect and its noise (in a fractional or full
factorial, each two-level effect compares half the runs with the other half). Interactions are not in the model:
in a factorial they add to the residual, in a fractional design they are aliased as the report states. A ladder's
rungs, each changing several axes at once, are one factor coded cumulatively: each term is a rung's step over the
rung before.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import statsmodels.api as sm

from bench.statistics.rounds_model import RUNG, design
from bench.statistics.stats import ALPHA

QUALITY_MODEL_METHOD = ("OLS of the value on every axis (treatment coded) with the seed as a block (statsmodels), "
                        "over every run of the design; 95% t-interval and t-test on the model's residual degrees of "
                        "freedom")
LADDER_MODEL_METHOD = ("OLS of the value on each rung as a step over the rung before (cumulative coding) with the "
                       "seed as a block (statsmodels); 95% t-interval and t-test on the model's residual degrees of "
                       "freedom")
GROUP = ["base_config", "setting", "dataset", "recipe", "phase", "step", "block", "metric", "unit", "method",
         "sample_size"]


def seed_blocked_model(frame: pd.DataFrame, factors: list[str], reference: dict, value: str = "value",
                       block: str = "seed") -> pd.DataFrame:
    """One row per term of ``factors``: ``factor``, ``reference``, ``level``, ``estimate`` (value at ``level`` minus
    at ``reference``, the rest equal), ``se``, ``df`` (residual degrees of freedom), ``ci_low``/``ci_high`` (95%),
    ``p_value`` and ``n`` (observations). No interval or test without residual degrees of freedom, or when the
    design cannot separate the terms."""
    x, terms = design(frame, factors, reference)
    if not terms:
        return pd.DataFrame()
    blocks = pd.get_dummies(frame[block].astype(str), drop_first=True, dtype=float).to_numpy()
    exog = np.column_stack([np.ones(len(frame)), x, blocks])
    y = frame[value].to_numpy(dtype=float)
    estimable = np.linalg.matrix_rank(exog) == exog.shape[1] and len(y) > exog.shape[1]
    with warnings.catch_warnings():  # a design that cannot separate its terms is reported untested, not warned of
        warnings.simplefilter("ignore")
        fit = sm.OLS(y, exog).fit()
    columns = slice(1, 1 + len(terms))
    if estimable:
        low, high = fit.conf_int(ALPHA)[columns].T
        se, p = fit.bse[columns], fit.pvalues[columns]
    else:
        low = high = se = p = np.full(len(terms), np.nan)
    return pd.DataFrame({
        "factor": [t.factor for t in terms], "reference": [t.reference for t in terms],
        "level": [t.level for t in terms], "estimate": fit.params[columns], "se": se,
        "df": fit.df_resid if estimable else np.nan, "ci_low": low, "ci_high": high, "p_value": p, "n": len(frame),
    })


def quality_effects(values: pd.DataFrame, axes: tuple[str, ...], reference: dict) -> pd.DataFrame:
    """Every axis's main effect on every quality measurement (``frames.scored_values`` with its ``recipe``), per
    base config, setting, data set, recipe reading and checkpoint, in the measurement's own unit."""
    if values.empty:
        return pd.DataFrame()
    out = []
    for key, frame in values.groupby(GROUP, dropna=False, sort=True):
        fit = design_effects(frame, axes, reference)
        if not fit.empty:
            out.append(fit.astype({"reference": object, "level": object}).assign(**dict(zip(GROUP, key))))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def design_effects(frame: pd.DataFrame, axes: tuple[str, ...], reference: dict, value: str = "value"
                   ) -> pd.DataFrame:
    """``seed_blocked_model`` of one measurement's runs over the design's terms, with the model's description
    (``model``): every axis, or in a ladder (whose steps change several axes at once) the rungs."""
    ladder = (frame["rung"] != "").all()
    fit = seed_blocked_model(frame, [RUNG] if ladder else list(axes), reference, value)
    return fit.assign(model=LADDER_MODEL_METHOD if ladder else QUALITY_MODEL_METHOD) if not fit.empty else fit
