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
method; the two-sided p-value comes from the same resamples. When the rounds ran in several worker processes
(bench/measure/timing_cell.py), a process's layout can favour one model over another for all its rounds, so the
rounds of a process are not independent: the bootstrap then resamples processes, then rounds within each drawn
process (a two-stage bootstrap; Davison and Hinkley 1997, section 3.8), and the intervals include the variation
between processes. With fewer than ``MIN_ROUNDS_TO_TEST`` rounds an effect is estimated but gets neither interval
nor test. Estimates are quoted as % change, ``100 * (exp(beta) - 1)``.

The noise by level, on the log scale (method-of-moments estimates of nested variance components, as Kalibera and
Jones 2013 estimate theirs): ``block_sd``, one block around its model within its round; ``round_sd``, the rounds'
own speed within their process (drift; the round as a block takes it out); ``process_speed_sd``, the processes'
own speed (taken out with the rounds); ``process_sd``, a model's own speed in one process (against that
process's speed) beyond its mean over the processes: the part no number of rounds in one process averages away,
which the two-stage intervals include. A block's residual holds its model's offset in its process, so
``block_sd`` includes ``process_sd``: the noise within a round alone is their difference in variance. Each process
level is corrected for the level below it, and is NaN with one process.
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
# Over several processes the bootstrap has two stages: the methods say so in place of the one-stage phrase.
OVER_ROUNDS = "cluster bootstrap over rounds"
OVER_PROCESSES = "two-stage bootstrap (processes, then rounds within each)"
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
                      value: str = "value", process: str | None = None, n_resamples: int = N_RESAMPLES,
                      seed: int = BOOTSTRAP_SEED) -> pd.DataFrame:
    """One row per term: ``beta`` (effect on log value), its 95% bootstrap interval ``low``/``high``, the
    bootstrap p-value, ``n`` (blocks) and ``processes``. ``process``: the column naming the process each block ran
    in (blocks nest in processes); with two or more, the bootstrap has two stages. Also the noise by level on the
    log scale (the module's docstring): ``block_sd``, ``round_sd``, ``process_speed_sd`` and ``process_sd``."""
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
    block_process = (pd.factorize(pd.Series(frame[process].to_numpy()).groupby(codes).first())[0] if process
                     else np.zeros(len(blocks), dtype=int))
    weights = resampled_block_weights(np.random.default_rng(seed), n_resamples, block_process)
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
    levels = noise_levels(residual @ residual / dof, residual, x, codes, y_mean - x_mean @ beta, block_process)
    return pd.DataFrame({
        "factor": [t.factor for t in terms], "reference": [t.reference for t in terms],
        "level": [t.level for t in terms], "beta": beta, "low": low, "high": high, "p_value": p,
        "n": len(blocks), "processes": int(block_process.max()) + 1, **levels,
    })


def resampled_block_weights(rng: np.random.Generator, n_resamples: int, block_process: np.ndarray) -> np.ndarray:
    """How often each block enters each resample (``n_resamples`` x blocks). Blocks of one process: drawn with
    replacement. Of several (``block_process``: each block's process, 0 to P - 1): processes drawn with
    replacement, then, for each draw of a process, its blocks with replacement."""
    n_blocks = len(block_process)
    n_processes = int(block_process.max()) + 1
    if n_processes == 1:
        return rng.multinomial(n_blocks, np.full(n_blocks, 1 / n_blocks), size=n_resamples).astype(float)
    draws = rng.multinomial(n_processes, np.full(n_processes, 1 / n_processes), size=n_resamples)
    weights = np.zeros((n_resamples, n_blocks))
    for process in range(n_processes):
        own = np.flatnonzero(block_process == process)
        weights[:, own] = rng.multinomial(draws[:, process] * len(own), np.full(len(own), 1 / len(own)))
    return weights


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


def _control_from_its_own_instances(fit: pd.DataFrame, instances: pd.DataFrame, n_resamples: int) -> pd.DataFrame:
    """``fit`` with its control row (factor ``replica``) estimated from the baseline's two instances alone."""
    own = blocked_factorial(instances, ["replica"], {"replica": 0}, process="process", n_resamples=n_resamples)
    if own.empty:
        return fit
    row = fit["factor"] == "replica"
    for column in ("beta", "low", "high", "p_value", "n"):
        fit.loc[row, column] = own[column].iloc[0]
    fit.loc[row, "method"] = _over_processes(CONTROL_METHOD, own["processes"].iloc[0])
    return fit


def _over_processes(method: str, processes: int) -> str:
    """A method's words for the bootstrap its fit used: over rounds, or over processes then rounds."""
    return method.replace(OVER_ROUNDS, OVER_PROCESSES) if processes > 1 else method


def timing_blocks(table: pd.DataFrame) -> pd.DataFrame:
    """The timed rows of our variants' timing blocks (peers excluded), with a ``block`` column: the round
    within its timing cell (groups of one setting share the baseline, so they fit together); and a ``process``
    column: the worker process within its timing cell (a table from before processes were recorded: one)."""
    rows = table[(table["kind"] == Kind.TIMING) & (table["status"] == "ok") & table["metric"].isin(TIMED_METRICS)
                 & (table["peer"] == "") & table["value"].gt(0)]
    return rows.assign(block=rows["cell_id"] + "/" + rows["repeat"].astype(str),
                       process=rows["cell_id"] + "/" + rows["process"].fillna(0).astype(str))


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
        fit = blocked_factorial(frame, factors, reference | {"replica": 0}, process="process",
                                n_resamples=n_resamples)
        if fit.empty:
            continue
        fit["method"] = _over_processes(LADDER_MODEL_METHOD if ladder else ROUNDS_MODEL_METHOD,
                                        fit["processes"].iloc[0])
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
