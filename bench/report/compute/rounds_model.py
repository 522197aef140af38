"""Effects on time from the timing rounds: a blocked factorial model with a cluster bootstrap over rounds.

For one setting, phase and timed metric, every block of our variants is modelled as

    log(seconds) = round + sum of axis effects + control + noise

with treatment coding against each axis's reference level, and ``control`` the A/A term (the baseline's
second instance, whose true effect is zero). The round enters as a block, so drift that a round shares
(a busy neighbour, a slower spell of the VM) drops out: fitting by OLS after demeaning within rounds is OLS
with ``C(round)``. With a 2^k design every main effect uses every variant of every round, half against half.

The control's estimate comes from the baseline's two instances alone (the same model, round-blocked): in the
full model it would read the second instance against the main-effects fit at the baseline, which interactions
move away from the baseline's own time (by 9% in the adm_table1 reference run), and a control must not be able to
carry anything but the timing's own bias.

Intervals resample whole rounds (a cluster bootstrap: the round is the independent unit), percentile
method; the two-sided p-value comes from the same resamples. With fewer than ``MIN_ROUNDS_TO_TEST`` rounds
an effect is estimated but gets neither interval nor test. Estimates are quoted as % change,
``100 * (exp(beta) - 1)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm

from bench.report.compute.stats import BOOTSTRAP_SEED, N_RESAMPLES, PERCENTILES
from bench.schema import CPU_SECONDS_PER_ITER, SECONDS_PER_ITER, Kind

TIMED_METRICS = (SECONDS_PER_ITER, CPU_SECONDS_PER_ITER)
CONTROL = "control"
# Fewer rounds than this give a bootstrap over too few clusters to trust: estimate, but do not test.
MIN_ROUNDS_TO_TEST = 10
ROUNDS_MODEL_METHOD = ("OLS of log(time) with the round as a block and every axis as a main effect (statsmodels); "
          f"95% percentile cluster bootstrap over rounds ({N_RESAMPLES} resamples)")
# A ladder's rungs as one factor, coded cumulatively: the column of rung k is 1 on rung k and every rung after it,
# so its coefficient is the step from rung k - 1 to rung k.
RUNG = "rung"
CONTROL_METHOD = ("OLS of log(time) of the baseline's two instances with the round as a block (their within-round "
                  f"difference); 95% percentile cluster bootstrap over rounds ({N_RESAMPLES} resamples)")
LADDER_MODEL_METHOD = ("OLS of log(time) with the round as a block and each rung as a step over the rung before "
                       "(cumulative coding; statsmodels); "
                       f"95% percentile cluster bootstrap over rounds ({N_RESAMPLES} resamples)")


@dataclass(frozen=True)
class Term:
    factor: str      # a column of the frame
    reference: object
    level: object


def percent(beta):
    return 100.0 * np.expm1(beta)


def design(frame: pd.DataFrame, factors: list[str], reference: dict) -> tuple[np.ndarray, list[Term]]:
    """Treatment-coded columns for every factor with two or more levels in ``frame``."""
    columns, terms = [], []
    for factor in factors:
        if factor == RUNG:
            rungs = frame[["rung_index", "rung"]].drop_duplicates().sort_values("rung_index")
            steps = list(rungs.itertuples(index=False))
            for (_, previous), (index, name) in zip(steps[:-1], steps[1:]):
                columns.append((frame["rung_index"] >= index).to_numpy(dtype=float))
                terms.append(Term(name, previous, name))
            continue
        levels = sorted(frame[factor].dropna().unique().tolist(), key=str)
        if len(levels) < 2:
            continue
        ref = reference[factor] if reference.get(factor) in levels else levels[0]
        for level in levels:
            if level != ref:
                columns.append((frame[factor] == level).to_numpy(dtype=float))
                terms.append(Term(factor, ref, level))
    return (np.column_stack(columns) if columns else np.empty((len(frame), 0))), terms


def blocked_factorial(frame: pd.DataFrame, factors: list[str], reference: dict, block: str = "block",
                      value: str = "value", n_resamples: int = N_RESAMPLES,
                      seed: int = BOOTSTRAP_SEED) -> pd.DataFrame:
    """One row per term: ``beta`` (effect on log value), its 95% bootstrap interval ``low``/``high``, the
    bootstrap p-value and ``n`` (blocks). Also ``block_sd`` and ``round_sd``: the residual SD of one block and
    the SD of the round effects, on the log scale (where the noise comes from)."""
    x, terms = design(frame, factors, reference)
    if not terms:
        return pd.DataFrame()
    y = np.log(frame[value].to_numpy(dtype=float))
    codes, blocks = pd.factorize(frame[block])
    counts = np.bincount(codes)
    x_mean = np.stack([np.bincount(codes, x[:, j]) for j in range(x.shape[1])], 1) / counts[:, None]
    x_w = x - x_mean[codes]
    y_mean = np.bincount(codes, y) / counts
    y_w = y - y_mean[codes]
    fit = sm.OLS(y_w, x_w).fit()
    beta = np.asarray(fit.params)
    # Per-block cross products: a resample of blocks is a weighted sum of them, solved in one batch.
    xtx = np.zeros((len(blocks), x.shape[1], x.shape[1]))
    np.add.at(xtx, codes, x_w[:, :, None] * x_w[:, None, :])
    xty = np.zeros((len(blocks), x.shape[1]))
    np.add.at(xty, codes, x_w * y_w[:, None])
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(len(blocks), np.full(len(blocks), 1 / len(blocks)), size=n_resamples).astype(float)
    resampled_xtx = np.einsum("rb,bij->rij", weights, xtx)
    resampled_xty = weights @ xty
    boot = np.einsum("rij,rj->ri", np.linalg.pinv(resampled_xtx), resampled_xty)
    low, high = np.percentile(boot, PERCENTILES, axis=0)
    below, above = (boot <= 0).sum(0), (boot >= 0).sum(0)
    p = np.minimum(1.0, 2 * (np.minimum(below, above) + 1) / (n_resamples + 1))
    if len(blocks) < MIN_ROUNDS_TO_TEST:
        low, high, p = np.full_like(beta, np.nan), np.full_like(beta, np.nan), np.full_like(beta, np.nan)
    residual = y_w - x_w @ beta
    dof = max(1, len(y) - len(blocks) - len(terms))
    round_effects = y_mean - x_mean @ beta
    return pd.DataFrame({
        "factor": [t.factor for t in terms], "reference": [t.reference for t in terms],
        "level": [t.level for t in terms], "beta": beta, "low": low, "high": high, "p_value": p,
        "n": len(blocks), "block_sd": float(np.sqrt(residual @ residual / dof)),
        "round_sd": float(np.std(round_effects, ddof=1)) if len(blocks) > 1 else np.nan,
    })


def _control_from_its_own_instances(fit: pd.DataFrame, instances: pd.DataFrame, n_resamples: int) -> pd.DataFrame:
    """``fit`` with its control row (factor ``replica``) estimated from the baseline's two instances alone."""
    own = blocked_factorial(instances, ["replica"], {"replica": 0}, n_resamples=n_resamples)
    if own.empty:
        return fit
    row = fit["factor"] == "replica"
    for column in ("beta", "low", "high", "p_value", "n"):
        fit.loc[row, column] = own[column].iloc[0]
    fit.loc[row, "method"] = CONTROL_METHOD
    return fit


def timing_blocks(table: pd.DataFrame) -> pd.DataFrame:
    """The timed rows of our variants' timing blocks (peers excluded), with a ``block`` column: the round
    within its timing cell (groups of one setting share the baseline, so they fit together)."""
    rows = table[(table["kind"] == Kind.TIMING) & (table["status"] == "ok") & table["metric"].isin(TIMED_METRICS)
                 & (table["peer"] == "") & table["value"].gt(0)]
    return rows.assign(block=rows["cell_id"] + "/" + rows["repeat"].astype(str))


def timing_effects(table: pd.DataFrame, axes: tuple[str, ...], reference: dict,
                   n_resamples: int = N_RESAMPLES) -> pd.DataFrame:
    """Every axis's main effect and the A/A control, per base config, setting, phase and timed metric, as %
    change."""
    rows = timing_blocks(table)
    out = []
    for (base, setting, phase, metric), frame in rows.groupby(["base_config", "setting", "phase", "metric"],
                                                              sort=True):
        ladder = (frame["rung"] != "").all()  # a ladder's steps change several axes at once: fit the rungs
        factors = [RUNG, "replica"] if ladder else [*axes, "replica"]
        fit = blocked_factorial(frame, factors, reference | {"replica": 0}, n_resamples=n_resamples)
        if fit.empty:
            continue
        fit["method"] = LADDER_MODEL_METHOD if ladder else ROUNDS_MODEL_METHOD
        baseline = frame.loc[frame["replica"] == 1, "variant"]
        if len(baseline):
            fit = _control_from_its_own_instances(fit, frame[frame["variant"] == baseline.iloc[0]], n_resamples)
        # object columns: a level may be a number (heads, replica) or a name (the control's models)
        fit = fit.astype({"reference": object, "level": object}).assign(base_config=base, setting=setting,
                                                                         phase=phase, metric=metric)
        is_control = fit["factor"] == "replica"
        fit.loc[is_control, "factor"] = CONTROL
        if len(baseline):
            fit.loc[is_control, "reference"] = baseline.iloc[0]
            fit.loc[is_control, "level"] = f"{baseline.iloc[0]} (second instance)"
        out.append(fit)
    if not out:
        return pd.DataFrame()
    fits = pd.concat(out, ignore_index=True)
    return fits.assign(estimate=percent(fits["beta"]), ci_low=percent(fits["low"]), ci_high=percent(fits["high"]))


def widest_half_width(effects: pd.DataFrame) -> float:
    """The widest 95% interval half-width, in percentage points, of the primary time effects in ``effects``
    (timing_effects' rows): every main effect, or ladder step, on the wall time of each timed phase. A timing cell
    stops once this is within its precision target (bench/measure/timing_cell.py). With no effect but the A/A
    control (a sweep of one variant), the control's. NaN while some interval is missing (too few rounds)."""
    wall = effects[effects["metric"] == SECONDS_PER_ITER] if len(effects) else effects
    if wall.empty:
        return float("nan")
    primary = wall[wall["factor"] != CONTROL]
    half = (primary if len(primary) else wall).eval("(ci_high - ci_low) / 2")
    return float("nan") if half.isna().any() else float(half.max())


def timing_stops(table: pd.DataFrame) -> pd.DataFrame:
    """One row per timing cell that recorded how its rounds stopped: ``base_config``, ``setting``, ``target`` and
    ``reached`` (% points; NaN: no interval), ``rounds`` and ``why`` (timing_cell's message: precision, cap, or every
    member failed; NaN with no interval)."""
    timing = table[table["kind"] == Kind.TIMING]
    asked = timing[timing["metric"] == "time_precision_target"]
    reached = timing[timing["metric"] == "time_precision"].set_index("cell_id").reindex(asked["cell_id"])
    return pd.DataFrame({"base_config": asked["base_config"].to_numpy(), "setting": asked["setting"].to_numpy(),
                         "target": asked["value"].to_numpy(), "reached": reached["value"].to_numpy(),
                         "rounds": asked["n"].to_numpy(), "why": reached["message"].to_numpy()})
