"""effects.csv: one row per effect of a run, from which the report's effect figures and tables are drawn.

An effect is switching one axis from its reference level to another, everything else equal, on one
measurement in one setting; in a ladder (design "ladder"), one rung against the rung before it (``axis`` = the
rung's name, ``from_level`` the rung before); the A/A timing control is an effect too (``axis`` = ``control``).
Three sources:

- time (timing cells): the blocked factorial model over the rounds (bench/statistics/rounds_model.py), as % change;
- counts and memory (cost cells): % change over matched pairs of cells. Counted quantities (parameters,
  FLOPs, saved-tensor bytes) are exact: their interval is the range over the pairs and they are not tested;
  measured ones (peak RSS, CUDA peaks, compile time) get a 95% t-interval and a paired t-test;
- quality (quality cells): the seed-blocked linear model over every run of the design (quality_model.py), per
  recipe reading and per checkpoint (``step``; the last checkpoint's effect is the one in phase ``sample``).

Families (``family``). ``primary``, the confirmatory family, is what the verdict asks of each axis switch: one time
metric (the training step's time on the network the verdict weighs) and one quality metric (``PRIMARY_QUALITY``
at the end of training) on every network quality trained, at the shared recipe and, when the run tuned, at each
variant's tuned recipe (``recipe``: compute/recipes.py). Holm's step-down correction runs over that family alone,
so the run makes a false "resolved" claim among its primary effects with probability at most 5%. ``control``: the A/A control
and the known nulls. Each A/A reading is tested on its own at 5%, not diluted by a correction: it is the run's bias
check, and an interval of it that excludes zero is the signal it exists for (the verdict flags it). The known nulls
are Holm-corrected among themselves, so one of them failing is a false alarm with probability at most 5%. Every other effect is ``secondary``: exploratory, with its unadjusted 95% interval
and no adjusted p-value, ``resolved`` when that interval excludes zero (about one null effect in twenty does). An
exact count is resolved when it changed; an effect that could not be tested (too few pairs, rounds or residual
degrees of freedom) never is.

``bound``: the largest magnitude the effect's interval allows, so an unresolved effect reads "no difference beyond
±bound". Primary and control effects take the interval at their family's Bonferroni level (1 - 0.05/m), which
covers zero for every effect Holm leaves unresolved; secondary effects their 95% interval. ``resolvable``: for a
primary effect, the smallest true effect the run would resolve with 80% probability were it the family's only
real one (Holm's first step, at level 0.05/m): (t(1 - 0.025/m) + t(0.8)) times its standard error, on its own
degrees of freedom (time's: on the log scale, over its units: bench/statistics/rounds_model.py).

KID beside FD. KID (``SECOND_QUALITY``) is not in the primary family: the family, and so its family-wise error
claim, is the same with it or without it, and "resolved" in the verdict rests on FD alone. Its effects stay
secondary here (their unadjusted 95% interval in this file); the verdict prints KID beside FD at the level of
FD's bound and says whether the two agree (compute/second_metric.py).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from bench.report.compute.recipes import confirmatory_recipes
from bench.schema import (FLOPS, KNOWN_NULLS, MODEL_FLOPS, PARAMS, PRIMARY_QUALITY, PRIMARY_TIME, SAVED_TENSOR_BYTES,
                          SECONDS_PER_ITER)
from bench.statistics.rounds_model import CONTROL
from bench.statistics.stats import ALPHA, excludes, t_interval
from variants import AXES

COLUMNS = ("axis", "from_level", "to_level", "base_config", "setting", "recipe", "phase", "step", "metric", "unit",
           "estimate",
           "ci_low", "ci_high", "n", "p_value", "p_adjusted", "resolved", "method", "family", "bound", "resolvable")
FAMILIES = ("primary", "control", "secondary")
CORRECTION = "holm"
POWER = 0.8
CORRECTION_TEXT = (f"primary effects (per axis switch, the training step's time and {PRIMARY_QUALITY[1]}): Holm's "
                   f"step-down correction over that family (family-wise error {ALPHA:g}); controls: Holm over the "
                   f"controls; every other effect is exploratory, resolved when its unadjusted 95% interval excludes "
                   "zero; counted quantities are exact and not tested")
COUNTED_METRICS = (PARAMS, FLOPS, MODEL_FLOPS, SAVED_TENSOR_BYTES)
DISTURBED = "timing disturbed"  # in the method of a time effect whose rounds ran on a busy machine


def effect_table(timing_fits: pd.DataFrame, cost_pairs: pd.DataFrame, quality_fits: pd.DataFrame,
                 disturbance: pd.DataFrame, rungs: Sequence[str] = ()) -> pd.DataFrame:
    """Every effect of the run in ``COLUMNS``, sorted by axis, setting, phase and metric, from the timing model's
    fits, the matched pairs of cost cells and the quality model's fits. Time effects of a setting whose rounds ran
    on a busy machine (compute/disturbance.py) keep their estimate and interval but are not tested, so never
    resolved; their method says why. In a ladder the ``axis`` of an effect is a rung (``rungs``: their names,
    first rung first), compared with the rung before it (``from_level``)."""
    frames = [f for f in (_time(timing_fits, disturbance), _cost(cost_pairs), _quality(quality_fits))
              if not f.empty]
    if not frames:
        return pd.DataFrame(columns=list(COLUMNS))
    effects = pd.concat(frames, ignore_index=True)
    effects["family"] = _families(effects)
    tested = effects["p_value"].notna()
    effects["p_adjusted"] = np.nan
    aa = effects["axis"] == CONTROL
    effects.loc[tested & aa, "p_adjusted"] = effects.loc[tested & aa, "p_value"]  # each A/A reading on its own
    sizes = {}
    for family, members in (("primary", effects["family"] == "primary"), ("control", (effects["family"] == "control")
                                                                          & ~aa)):
        members &= tested
        sizes[family] = int(members.sum())
        if members.any():
            effects.loc[members, "p_adjusted"] = multipletests(effects.loc[members, "p_value"], ALPHA, CORRECTION)[1]
    exact = effects["method"].str.startswith("exact")
    changed = np.array([excludes(low, high) for low, high in zip(effects["ci_low"], effects["ci_high"])], dtype=bool)
    confirmatory = effects["family"] != "secondary"
    effects["resolved"] = np.where(tested & confirmatory, effects["p_adjusted"] < ALPHA,
                                   np.where(tested, effects["p_value"] < ALPHA, exact & changed))
    family_size = effects["family"].map(sizes).fillna(1).clip(lower=1).where(~aa, 1)
    level = np.where(confirmatory, ALPHA / family_size, ALPHA)
    effects["bound"] = [_bound(row, a) if t else np.nan for (_, row), a, t in zip(effects.iterrows(), level, tested)]
    effects["resolvable"] = [_resolvable(row, a) if t and f == "primary" else np.nan
                             for (_, row), a, t, f in zip(effects.iterrows(), level, tested, effects["family"])]
    for (axis, phase), why in KNOWN_NULLS.items():
        known = (effects["axis"] == axis) & (effects["phase"] == phase) & (effects["unit"] == "%")
        effects.loc[known, "method"] = effects.loc[known, "method"] + f"; {why}"
    order = {axis: i for i, axis in enumerate((CONTROL, *AXES, *rungs))}
    effects = effects.sort_values(["axis", "base_config", "setting", "recipe", "phase", "step", "metric", "method"],
                                  key=lambda c: c.map(order) if c.name == "axis" else c, kind="stable")
    return effects[list(COLUMNS)].reset_index(drop=True)


def quality_bases(effects: pd.DataFrame) -> list[str]:
    """The networks the quality cells trained (base configs with a quality effect), in order."""
    return sorted(set(effects.loc[effects["unit"] != "%", "base_config"]))


def quality_base(effects: pd.DataFrame) -> str | None:
    """The network the verdict reads quality on: the first that quality cells trained, if any."""
    bases = quality_bases(effects)
    return bases[0] if bases else None


def main_base(effects: pd.DataFrame) -> str | None:
    """The network the verdict weighs costs on: the quality network when its costs were measured, else the
    first cost base."""
    cost_bases = sorted(set(effects.loc[effects["unit"] == "%", "base_config"]))
    trained = quality_base(effects)
    return trained if trained in cost_bases or not cost_bases else cost_bases[0]


def _families(effects: pd.DataFrame) -> pd.Series:
    """Primary: per switch, the training step's time on the main network, and the final quality metric on every
    network quality trained, at the main shared recipe and at the tuned one (the readings the verdict states)."""
    family = pd.Series("secondary", index=effects.index)
    family[_is_control(effects)] = "control"
    switches = effects[family != "control"]
    questions = [(main_base(effects), "", PRIMARY_TIME, "%")]
    questions += [(base, recipe, PRIMARY_QUALITY, None) for base in quality_bases(effects)
                  for recipe in confirmatory_recipes(effects.loc[effects["unit"] != "%", "recipe"])]
    for _, rows in switches.groupby(["axis", "from_level", "to_level"], sort=False):
        for base, recipe, (phase, metric), unit in questions:
            found = rows[(rows["base_config"] == base) & (rows["recipe"] == recipe) & (rows["phase"] == phase)
                         & (rows["metric"] == metric) & ((rows["unit"] == "%") == (unit == "%"))
                         & rows["p_value"].notna()]
            if len(found):  # the default setting: the shortest name (cpu before cpu · bfloat16)
                first = found.assign(order=found["setting"].str.len()).sort_values(["order", "setting"]).index[0]
                family[first] = "primary"
    return family


def _is_control(effects: pd.DataFrame) -> pd.Series:
    null = effects["axis"] == CONTROL
    for axis, phase in KNOWN_NULLS:
        null |= (effects["axis"] == axis) & (effects["phase"] == phase) & (effects["unit"] == "%")
    return null


def controls(effects: pd.DataFrame) -> pd.DataFrame:
    """The effects whose true value is zero: the A/A control and the known nulls."""
    return effects[_is_control(effects)]


def aa_control(effects: pd.DataFrame, base: str | None = None) -> pd.DataFrame:
    """The A/A control's time effects (the baseline timed twice, as two instances), on ``base`` if given."""
    rows = effects[(effects["axis"] == CONTROL) & (effects["metric"] == SECONDS_PER_ITER)]
    return rows if base is None else rows[rows["base_config"] == base]


def failed_controls(effects: pd.DataFrame) -> pd.DataFrame:
    """Controls and known nulls that came out resolved: the timing has a bias the design did not remove."""
    null = controls(effects)
    return null[null["resolved"].astype(bool)]


def interval_at(row: pd.Series, level: float) -> tuple[float, float]:
    """The two-sided interval at confidence 1 - ``level`` of an effect with ``estimate``, ``se``, ``df`` and
    ``scale`` ("log": a % change, fitted on the log scale; else "linear")."""
    half = stats.t.ppf(1 - level / 2, row["df"]) * row["se"]
    if row["scale"] == "log":  # % change: symmetric on the log scale, as the model is fitted
        beta = math.log1p(row["estimate"] / 100)
        return 100 * math.expm1(beta - half), 100 * math.expm1(beta + half)
    return row["estimate"] - half, row["estimate"] + half


def _bound(row: pd.Series, level: float) -> float:
    low, high = (row["ci_low"], row["ci_high"]) if level == ALPHA else interval_at(row, level)
    return float(max(abs(low), abs(high)))


def _resolvable(row: pd.Series, level: float) -> float:
    size = (stats.t.ppf(1 - level / 2, row["df"]) + stats.t.ppf(POWER, row["df"])) * row["se"]
    return float(100 * math.expm1(size) if row["scale"] == "log" else size)


def _time(fits: pd.DataFrame, disturbance: pd.DataFrame) -> pd.DataFrame:
    if fits.empty:
        return pd.DataFrame()
    time = pd.DataFrame({
        "axis": fits["factor"], "from_level": fits["reference"].astype(str), "to_level": fits["level"].astype(str),
        "base_config": fits["base_config"], "setting": fits["setting"], "recipe": "", "phase": fits["phase"],
        "step": np.nan, "metric": fits["metric"], "unit": "%", "estimate": fits["estimate"], "ci_low": fits["ci_low"],
        "ci_high": fits["ci_high"], "n": fits["n"],
        "p_value": fits["p_value"],
        "method": fits["method"] + "; n = rounds",
        "se": fits["se"], "df": fits["df"], "scale": "log",
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
        se = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else np.nan
        from_level, to_level = comparison.split(" → ")
        rows.append({"axis": axis, "from_level": from_level, "to_level": to_level, "base_config": base,
                     "setting": setting, "recipe": "", "phase": phase, "step": np.nan, "metric": metric, "unit": "%",
                     "estimate": float(values.mean()), "ci_low": float(low), "ci_high": float(high),
                     "n": len(values), "p_value": p, "method": method, "se": se, "df": len(values) - 1,
                     "scale": "linear"})
    return pd.DataFrame(rows)


def _quality(fits: pd.DataFrame) -> pd.DataFrame:
    if fits.empty:
        return pd.DataFrame()
    return pd.DataFrame({
        "axis": fits["factor"], "from_level": fits["reference"].astype(str), "to_level": fits["level"].astype(str),
        "base_config": fits["base_config"], "setting": fits["setting"], "recipe": fits["recipe"],
        "phase": fits["phase"], "step": fits["step"], "metric": fits["metric"], "unit": fits["unit"],
        "estimate": fits["estimate"], "ci_low": fits["ci_low"],
        "ci_high": fits["ci_high"], "n": fits["n"], "p_value": fits["p_value"],
        "method": fits["method"] + ": " + fits["model"] + "; n = runs (variant x seed)",
        "se": fits["se"], "df": fits["df"], "scale": "linear",
    })


def _t_test(values: np.ndarray) -> float:
    """Two-sided paired t-test p-value; NaN (untestable) with fewer than two pairs or no spread."""
    if len(values) < 2 or values.std(ddof=1) == 0:
        return math.nan
    return float(stats.ttest_1samp(values, 0.0).pvalue)
