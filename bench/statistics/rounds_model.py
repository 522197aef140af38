"""Effects on time from the timing rounds: a blocked factorial model, with t-intervals over independent units.

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

Intervals: the model is fitted within each independent unit, and an effect is the mean of the units' estimates
with a 95% t-interval on ``units - 1`` degrees of freedom (and the matching t-test). When the rounds ran in
``MIN_PROCESSES`` or more worker processes (bench/measure/timing_cell.py), the unit is the process: a process's
memory layout and build order can favour one model over another for all its rounds, so its rounds are not
independent, and the process is the level at which the design replicates (Kalibera and Jones 2013). The mean of
per-process estimates has variance (model-in-process variance + round noise / rounds) / processes whatever the
split between the two, and the t-interval on processes - 1 degrees of freedom covers it exactly for normal errors;
a bootstrap over three processes (ten possible resamples) does not. With fewer processes the unit is the round,
and the interval says it leaves out the variation between processes. Too few units (fewer than
``MIN_ROUNDS_TO_TEST`` rounds, or processes) give an estimate but neither interval nor test. Estimates are quoted
as % change, ``100 * (exp(beta) - 1)``; the interval is symmetric on the log scale.

The noise by level, on the log scale (method-of-moments estimates of nested variance components, as Kalibera and
Jones 2013 estimate theirs): ``block_sd``, one block around its model within its round; ``round_sd``, the rounds'
own speed within their process (drift; the round as a block takes it out); ``process_speed_sd``, the processes'
own speed (taken out with the rounds); ``process_sd``, a model's own speed in one process (against that
process's speed) beyond its mean over the processes: the part no number of rounds in one process averages away,
which the per-process intervals include. A block's residual holds its model's offset in its process, so
``block_sd`` includes ``process_sd``: the noise within a round alone is their difference in variance. Each process
level is corrected for the level below it, and is NaN with one process.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from bench.schema import CPU_SECONDS_PER_ITER, SECONDS_PER_ITER, Kind
from bench.statistics.stats import ALPHA

TIMED_METRICS = (SECONDS_PER_ITER, CPU_SECONDS_PER_ITER)
CONTROL = "control"
# Fewer rounds than this (with rounds as the unit) give too few units to trust: estimate, but do not test.
MIN_ROUNDS_TO_TEST = 10
# From this many processes on, the process is the unit of every interval (the module's docstring).
MIN_PROCESSES = 3
ROUNDS_MODEL_METHOD = "OLS of log(time) with the round as a block and every axis as a main effect (statsmodels)"
CONTROL_METHOD = ("OLS of log(time) of the baseline's two instances with the round as a block (their within-round "
                  "difference)")
# A ladder's rungs as one factor, coded cumulatively: the column of rung k is 1 on rung k and every rung after it,
# so its coefficient is the step from rung k - 1 to rung k.
RUNG = "rung"
LADDER_MODEL_METHOD = ("OLS of log(time) with the round as a block and each rung as a step over the rung before "
                       "(cumulative coding; statsmodels)")
# How the interval was taken, by its unit: appended to a fit's model method.
OVER_PROCESSES = ("fitted in each timing process; 95% t-interval over the processes (P - 1 degrees of freedom; "
                  "measured coverage 94-96% on synthetic truth shaped like the quick preset: docs/statistics.md)")
OVER_ROUNDS = "fitted in each round; 95% t-interval over the rounds (R - 1 degrees of freedom)"
WITHOUT_PROCESSES = (f"; excludes the variation between processes (fewer than {MIN_PROCESSES} timing processes): "
                     "measured coverage 91% with no model-in-process level, 83% with 1% (docs/statistics.md)")


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
                      value: str = "value", process: str | None = None, noise: bool = True) -> pd.DataFrame:
    """One row per term: ``beta`` (effect on log value, the mean of the units' estimates), its standard error
    ``se`` and degrees of freedom ``df``, its 95% t-interval ``low``/``high`` and t-test ``p_value``, ``unit``
    (``process`` or ``round``), ``units``, ``n`` (blocks) and ``processes``. ``process``: the column naming the
    process each block ran in (blocks nest in processes). With ``noise``, also the noise by level on the log scale
    (the module's docstring): ``block_sd``, ``round_sd``, ``process_speed_sd`` and ``process_sd``."""
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
    beta_pooled = np.asarray(sm.OLS(y_w, x_w).fit().params)
    block_process = (pd.factorize(pd.Series(frame[process].to_numpy()).groupby(codes).first())[0] if process
                     else np.zeros(len(blocks), dtype=int))
    n_processes = int(block_process.max()) + 1
    over_processes = n_processes >= MIN_PROCESSES
    unit = block_process[codes] if over_processes else codes
    beta, se, df = unit_estimates(x_w, y_w, unit)
    low, high, p = t_interval_and_test(beta, se, df)
    if not over_processes and len(blocks) < MIN_ROUNDS_TO_TEST:
        low, high, p = np.full_like(beta, np.nan), np.full_like(beta, np.nan), np.full_like(beta, np.nan)
    levels = {}
    if noise:
        residual = y_w - x_w @ beta_pooled
        dof = max(1, len(y) - len(blocks) - len(terms))
        levels = noise_levels(residual @ residual / dof, residual, x, codes, y_mean - x_mean @ beta_pooled,
                              block_process)
    return pd.DataFrame({
        "factor": [t.factor for t in terms], "reference": [t.reference for t in terms],
        "level": [t.level for t in terms], "beta": beta, "se": se, "df": df, "low": low, "high": high,
        "p_value": p, "unit": "process" if over_processes else "round", "units": df + 1, "n": len(blocks),
        "processes": n_processes, **levels,
    })


def unit_estimates(x_w: np.ndarray, y_w: np.ndarray, unit: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each term's mean over the units of its OLS estimate within each unit (rows already demeaned within their
    round), the standard error of that mean and its degrees of freedom (units - 1), per term. A unit in which a
    term cannot be estimated (a member that failed before it) gives no estimate of that term."""
    k = x_w.shape[1]
    n_units = int(unit.max()) + 1
    xtx = np.zeros((n_units, k, k))
    np.add.at(xtx, unit, x_w[:, :, None] * x_w[:, None, :])
    xty = np.zeros((n_units, k))
    np.add.at(xty, unit, x_w * y_w[:, None])
    inverse = np.linalg.pinv(xtx)
    estimates = np.einsum("uij,uj->ui", inverse, xty)
    # a term is estimable in a unit when its unit vector lies in the row space of the unit's design (a timing cell
    # of a split setting holds some variants only)
    projection = np.einsum("uij,ujk->uik", inverse, xtx)
    estimable = np.abs(projection - np.eye(k)).max(axis=2) < 1e-6
    estimates[~estimable] = np.nan
    n = (~np.isnan(estimates)).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        beta = np.nansum(estimates, 0) / n
        se = np.sqrt(np.nansum((estimates - beta) ** 2, 0) / (n - 1) / n)
    return np.where(n > 0, beta, np.nan), np.where(n > 1, se, np.nan), (n - 1).astype(float)


def t_interval_and_test(beta: np.ndarray, se: np.ndarray, df: np.ndarray) -> tuple[np.ndarray, ...]:
    """95% t-interval (low, high) and two-sided t-test p-value of each estimate; NaN with under one degree of
    freedom. Zero spread (counted, not timed) gives a zero-width interval and no test."""
    with np.errstate(invalid="ignore", divide="ignore"):
        half = stats.t.ppf(1 - ALPHA / 2, np.where(df >= 1, df, np.nan)) * se
        p = 2 * stats.t.sf(np.abs(beta / se), np.where(df >= 1, df, np.nan))
    p = np.where(se > 0, p, np.nan)
    return beta - half, beta + half, p


def noise_levels(block_variance: float, residual: np.ndarray, x: np.ndarray, codes: np.ndarray,
                 round_effects: np.ndarray, block_process: np.ndarray) -> dict[str, float]:
    """The SD at each level (the module's docstring) from a fit's within-round residuals (rows), design rows ``x``
    (a model is a distinct row), each row's block ``codes``, the blocks' own effects and their processes."""
    n_processes = int(block_process.max()) + 1
    n_blocks = len(round_effects)
    process_mean = np.bincount(block_process, round_effects) / np.bincount(block_process)
    within = round_effects - process_mean[block_process]
    round_var = within @ within / (n_blocks - n_processes) if n_blocks > n_processes else np.nan
    levels = {"block_sd": float(np.sqrt(block_variance)), "round_sd": float(np.sqrt(round_var)),
              "process_speed_sd": np.nan, "process_sd": np.nan}
    if n_processes < 2:
        return levels
    rounds_per_process = n_blocks / n_processes
    speed_var = np.var(process_mean, ddof=1) - round_var / rounds_per_process
    # a model's mean residual per process, against its mean over the processes
    model = np.unique(x, axis=0, return_inverse=True)[1].ravel()
    cell = pd.DataFrame({"model": model, "process": block_process[codes], "residual": residual})
    means = cell.groupby(["model", "process"])["residual"].agg(["mean", "size"]).reset_index()
    deviation = means["mean"] - means.groupby("model")["mean"].transform("mean")
    spread = (deviation ** 2).sum() / (means["model"].nunique() * (n_processes - 1))
    # a block's residual holds its model's offset in its process: spread = var_p + (block_var - var_p) * share,
    # with share the mean of 1 / rounds over a model's processes
    share = np.mean(1 / means["size"])
    model_var = (spread - block_variance * share) / (1 - share)
    levels["process_speed_sd"] = float(np.sqrt(max(0.0, speed_var)))
    levels["process_sd"] = float(np.sqrt(max(0.0, model_var)))
    return levels


def _control_from_its_own_instances(fit: pd.DataFrame, instances: pd.DataFrame) -> pd.DataFrame:
    """``fit`` with its control row (factor ``replica``) estimated from the baseline's two instances alone."""
    own = blocked_factorial(instances, ["replica"], {"replica": 0}, process="process")
    if own.empty:
        return fit
    row = fit["factor"] == "replica"
    for column in ("beta", "se", "df", "low", "high", "p_value", "unit", "units", "n"):
        fit.loc[row, column] = own[column].iloc[0]
    fit.loc[row, "method"] = interval_method(CONTROL_METHOD, own.iloc[0])
    return fit


def interval_method(model: str, fit: pd.Series) -> str:
    """A model's method with the words for the interval its fit took: over processes, or over rounds."""
    if fit["unit"] == "process":
        return f"{model}; {OVER_PROCESSES}"
    return f"{model}; {OVER_ROUNDS}{WITHOUT_PROCESSES}"


def timing_blocks(table: pd.DataFrame) -> pd.DataFrame:
    """The timed rows of our variants' timing blocks (peers excluded), with a ``block`` column: the round
    within its timing cell (groups of one setting share the baseline, so they fit together); and a ``process``
    column: the worker process within its timing cell (a table from before processes were recorded: one)."""
    rows = table[(table["kind"] == Kind.TIMING) & (table["status"] == "ok") & table["metric"].isin(TIMED_METRICS)
                 & (table["peer"] == "") & table["value"].gt(0)]
    return rows.assign(block=rows["cell_id"] + "/" + rows["repeat"].astype(str),
                       process=rows["cell_id"] + "/" + rows["process"].fillna(0).astype(str))


def timing_effects(table: pd.DataFrame, axes: tuple[str, ...], reference: dict, primary_only: bool = False
                   ) -> pd.DataFrame:
    """Every axis's main effect and the A/A control, per base config, setting, phase and timed metric, as %
    change. ``primary_only``: the main effects (or ladder steps) alone, without the noise levels or the control's
    own fit, as a timing cell's stopping rule reads them after every round."""
    rows = timing_blocks(table)
    out = []
    for (base, setting, phase, metric), frame in rows.groupby(["base_config", "setting", "phase", "metric"],
                                                              sort=True):
        ladder = (frame["rung"] != "").all()  # a ladder's steps change several axes at once: fit the rungs
        factors = [RUNG, "replica"] if ladder else [*axes, "replica"]
        fit = blocked_factorial(frame, factors, reference | {"replica": 0}, process="process", noise=not primary_only)
        if fit.empty:
            continue
        fit["method"] = interval_method(LADDER_MODEL_METHOD if ladder else ROUNDS_MODEL_METHOD, fit.iloc[0])
        baseline = frame.loc[frame["replica"] == 1, "variant"]
        if len(baseline) and not primary_only:
            fit = _control_from_its_own_instances(fit, frame[frame["variant"] == baseline.iloc[0]])
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


def primary_wall_effects(effects: pd.DataFrame) -> pd.DataFrame:
    """The primary time effects in ``effects`` (timing_effects' rows): every main effect, or ladder step, on the
    wall time of each timed phase; with no effect but the A/A control (a sweep of one variant), the control's."""
    wall = effects[effects["metric"] == SECONDS_PER_ITER] if len(effects) else effects
    primary = wall[wall["factor"] != CONTROL] if len(wall) else wall
    return primary if len(primary) else wall


def widest_half_width(effects: pd.DataFrame) -> float:
    """The widest 95% interval half-width of the primary time effects, on the model's log scale and quoted as %
    (``100 * (exp(half) - 1)``: an interval of beta +- half reads as x/÷ that factor). NaN while an interval is
    missing (too few units)."""
    primary = primary_wall_effects(effects)
    if primary.empty:
        return float("nan")
    half = (primary["high"] - primary["low"]) / 2
    return float("nan") if half.isna().any() else float(percent(half.max()))


def timing_stops(table: pd.DataFrame) -> pd.DataFrame:
    """One row per timing cell that recorded how its rounds stopped: ``base_config``, ``setting``, ``target`` and
    ``reached`` (% points; NaN: no interval), ``rounds`` and ``why`` (timing_cell's message: precision, cap, or every
    member failed; NaN with no interval), and ``rounds_for_target``: the fewest rounds that could reach the target
    at the noise seen. A half-width falls as 1/sqrt(rounds) where the noise is between rounds; the part between
    processes does not fall with more rounds in them, so this is a lower bound."""
    timing = table[table["kind"] == Kind.TIMING]
    asked = timing[timing["metric"] == "time_precision_target"]
    reached = timing[timing["metric"] == "time_precision"].set_index("cell_id").reindex(asked["cell_id"])
    out = pd.DataFrame({"base_config": asked["base_config"].to_numpy(), "setting": asked["setting"].to_numpy(),
                        "target": asked["value"].to_numpy(), "reached": reached["value"].to_numpy(),
                        "rounds": asked["n"].to_numpy(), "why": reached["message"].to_numpy()})
    return out.assign(rounds_for_target=np.ceil(out["rounds"] * (out["reached"] / out["target"]) ** 2))
