"""Does a switch's quality effect hold? Three readings, each from effects.csv and the runs behind it:

- along training: the effect at every checkpoint (the last is the final effect), and whether it is ``stable``,
  ``growing``, ``shrinking``, ``changes sign`` or ``not settled``; ``settled`` says whether it still moved over the
  last stretch;
- across scales: the primary effect on each network the quality cells trained, whether its direction holds
  (``holds``, ``reverses``, ``resolved at one scale only``, ``resolved at neither scale``) and the difference between
  the largest and the smallest network with its interval (the interaction of the switch with the scale);
- across recipes: the primary effect at the shared recipe and at the tuned one, and the difference between them
  with its interval.

A difference of two readings of the same runs (two checkpoints, two recipes) is fitted as the effect on the
per-run difference (the same model as the effects: quality_model.py), so its interval accounts for the two
readings sharing their runs; a difference of two networks' effects, from independent runs, combines their
standard errors (stats.independent_difference). These readings are exploratory: 95% intervals, no correction over
switches.
"""
from __future__ import annotations

import pandas as pd

from bench.report.compute.effects import quality_bases
from bench.report.compute.frames import parameter_count
from bench.report.compute.headline import HEADLINE_QUALITY
from bench.report.compute.quality_model import design_effects
from bench.report.compute.recipes import TUNED
from bench.schema import ALONG_TRAINING, PRIMARY_QUALITY
from bench.statistics.rounds_model import CONTROL
from bench.statistics.stats import ALPHA, excludes, independent_difference

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
        return _term(fits[stretch], pd.Series({"axis": axis, "from_level": from_level, "to_level": to_level}))

    points = trajectories(effects)
    for key, path in points.groupby([*SWITCH, "base_config", "recipe", "metric"], sort=False):
        if path["step"].nunique() < 2:
            continue
        first, last = path.iloc[0], path.iloc[-1]
        whole = change(key, first["step"], last["step"])
        stretch = change(key, path.iloc[-2]["step"], last["step"])
        rows.append(dict(zip([*SWITCH, "base_config", "recipe", "metric"], key)) | {
            "steps": list(path["step"].astype(int)), "estimates": list(path["estimate"]),
            "trend": trend_reading(first, last, whole), "settled": stretch is None or not _resolved(stretch),
            "last_change": stretch})
    return pd.DataFrame(rows, columns=TREND_COLUMNS)


def trend_reading(first: pd.Series, last: pd.Series, change: pd.Series | None) -> str:
    """``changes sign``: both ends resolved, with opposite signs. Otherwise a change within noise is ``stable``; a
    resolved change is ``growing`` or ``shrinking`` when both ends share a sign (away from or towards zero), and
    ``not settled`` when they do not (it crossed zero with an end within noise: its direction is open)."""
    crossed = (first["estimate"] > 0) != (last["estimate"] > 0)
    if crossed and _resolved(first) and _resolved(last):
        return "changes sign"
    if change is None or not _resolved(change):
        return "stable"
    if crossed:
        return "not settled"
    return "growing" if (change["estimate"] > 0) == (last["estimate"] > 0) else "shrinking"


def _resolved(row: pd.Series) -> bool:
    return pd.notna(row["ci_low"]) and excludes(row["ci_low"], row["ci_high"])


def _change_fit(values: pd.DataFrame, base: str, recipe: str, metric: str, start: float, end: float,
                axes: tuple[str, ...], reference: dict) -> pd.DataFrame:
    """Every switch's effect on (value at ``end`` minus value at ``start``) per run; empty if it cannot be fitted."""
    runs = values[(values["base_config"] == base) & (values["recipe"] == recipe) & (values["metric"] == metric)
                  & values["phase"].isin((ALONG_TRAINING, FINAL_PHASE[metric]))]
    return difference_fit(runs[runs["step"] == end], runs[runs["step"] == start], axes, reference)


RUN = ["variant", "seed", "setting", "dataset"]


def difference_fit(later: pd.DataFrame, earlier: pd.DataFrame, axes: tuple[str, ...], reference: dict
                   ) -> pd.DataFrame:
    """Every switch's effect on (value in ``later`` minus value in ``earlier``) per run, two readings of the same
    runs (matched by variant, seed, setting and data set): ``design_effects``' rows, each effect the difference of
    the two readings' effects; empty if it cannot be fitted."""
    if later.empty or earlier.empty:
        return pd.DataFrame()
    at_later, at_earlier = later.set_index(RUN), earlier.set_index(RUN)
    frame = at_later.copy()
    frame["value"] = at_later["value"] - at_earlier["value"].reindex(at_later.index)
    frame = frame.dropna(subset=["value"]).reset_index()
    return design_effects(frame, axes, reference) if not frame.empty else pd.DataFrame()


def _term(fit: pd.DataFrame, row: pd.Series) -> pd.Series | None:
    """The fitted term of ``fit`` that is ``row``'s switch, with ``resolved`` (its 95% interval excludes zero)."""
    if fit.empty:
        return None
    match = fit[(fit["factor"] == row["axis"]) & (fit["reference"].astype(str) == row["from_level"])
                & (fit["level"].astype(str) == row["to_level"])]
    return _with_resolved(match.iloc[0]) if len(match) else None


def _with_resolved(difference: pd.Series) -> pd.Series:
    out = difference.astype(object)
    out["resolved"] = _resolved(difference)
    return out


def primary_quality(effects: pd.DataFrame) -> pd.DataFrame:
    """The verdict's quality effects: the primary metric at the end of training, per switch, network and recipe."""
    phase, metric = PRIMARY_QUALITY
    return effects[(effects["family"] == "primary") & (effects["phase"] == phase) & (effects["metric"] == metric)]


def across_scales(effects: pd.DataFrame, fits: pd.DataFrame, sizes: dict[str, float] | None = None
                  ) -> pd.DataFrame:
    """Per switch and recipe reading measured on two networks or more: the primary quality effect on each (a column
    per network), whether its direction holds (``reading``, from the Holm-resolved effects), and the difference
    between the largest and the smallest network (``larger`` minus ``smaller``; ``difference``, with its 95%
    interval and ``resolved``) with the change in the effect's size that it makes (``size_change``, %, where the
    two share a sign). ``fits`` are the quality model's rows behind the effects (their standard errors and degrees
    of freedom); ``sizes``, each network's parameter count, orders the networks (``ordered``: whether it could)."""
    bases = quality_bases(effects)
    sizes = sizes or {}
    ordered = all(pd.notna(sizes.get(b)) and sizes.get(b, 0) > 0 for b in bases)
    if ordered:
        bases = sorted(bases, key=lambda b: sizes[b])
    primary = primary_quality(effects)
    rows = []
    for key, group in primary.groupby([*SWITCH, "recipe"], sort=False):
        if group["base_config"].nunique() < 2:
            continue
        resolved = group[group["resolved"].astype(bool)]
        signs = set(resolved["estimate"] > 0)
        if len(resolved) == len(group):
            reading = "holds" if len(signs) == 1 else "reverses"
        elif len(resolved) and len(signs) > 1:
            reading = "reverses"
        elif len(resolved):
            reading = f"resolved at one scale only ({', '.join(resolved['base_config'])})"
        else:
            reading = "resolved at neither scale"
        by_base = {base: group[group["base_config"] == base].iloc[0] for base in bases
                   if (group["base_config"] == base).any()}
        smaller, larger = list(by_base)[0], list(by_base)[-1]
        small, large = by_base[smaller], by_base[larger]
        difference = _independent(_fit_of(fits, small), _fit_of(fits, large))
        same_sign = (small["estimate"] > 0) == (large["estimate"] > 0) and small["estimate"] != 0
        size_change = 100 * (abs(large["estimate"]) / abs(small["estimate"]) - 1) if same_sign else float("nan")
        rows.append(dict(zip([*SWITCH, "recipe"], key)) | by_base | {
            "reading": reading, "smaller": smaller, "larger": larger, "ordered": ordered,
            "difference": difference, "size_change": size_change})
    return pd.DataFrame(rows)


def network_sizes(table: pd.DataFrame, bases: list[str]) -> dict[str, float]:
    """Each network's parameter count, to order them by scale: the largest counted in the run when the run counted
    every one, else its base config's own (variants.BASES), else NaN."""
    counted = {base: parameter_count(table, base) for base in bases}
    if len(bases) < 2 or all(counted.values()):
        return counted
    from bench.models.sizes import parameter_count as spec_count
    from variants import BASES

    return {base: float(spec_count(BASES[base])) if base in BASES else float("nan") for base in bases}


def _fit_of(fits: pd.DataFrame, effect: pd.Series) -> pd.Series | None:
    """The quality model's row behind an effect of effects.csv (its ``se`` and ``df``)."""
    if fits.empty:
        return None
    keys = ["base_config", "setting", "recipe", "phase", "metric"]
    match = fits[(fits["factor"] == effect["axis"]) & (fits["reference"].astype(str) == effect["from_level"])
                 & (fits["level"].astype(str) == effect["to_level"])
                 & (fits[keys] == effect[keys]).all(axis=1)
                 & ((fits["step"] == effect["step"]) | (fits["step"].isna() & pd.isna(effect["step"])))]
    return match.iloc[0] if len(match) else None


def _independent(a: pd.Series | None, b: pd.Series | None) -> pd.Series | None:
    if a is None or b is None:
        return None
    return _with_resolved(independent_difference(a, b))


def across_recipes(effects: pd.DataFrame, values: pd.DataFrame, axes: tuple[str, ...], reference: dict
                   ) -> pd.DataFrame:
    """Per switch and network: the primary quality effect at the main shared recipe (``shared``) and at the tuned one
    (``tuned``), and ``difference``, tuned minus shared with its 95% interval and ``resolved``: the model fitted to
    each run's tuned value minus its shared value (``values``: the quality values with their recipe), since a
    variant whose choice is its preset's recipe reads the same runs in both (None if it cannot be fitted)."""
    primary = primary_quality(effects)
    phase, metric = PRIMARY_QUALITY
    rows = []
    fits: dict[tuple, pd.DataFrame] = {}
    for key, group in primary.groupby([*SWITCH, "base_config"], sort=False):
        tuned = group[group["recipe"] == TUNED]
        shared = group[group["recipe"] != TUNED]
        if tuned.empty or shared.empty:
            continue
        a, b = shared.iloc[0], tuned.iloc[0]
        pair = (key[-1], a["recipe"])  # one fit per network and shared reading serves every switch
        if pair not in fits:
            runs = values[(values["base_config"] == key[-1]) & (values["phase"] == phase)
                          & (values["metric"] == metric)] if not values.empty else values
            fits[pair] = difference_fit(runs[runs["recipe"] == TUNED], runs[runs["recipe"] == a["recipe"]],
                                        axes, reference) if not runs.empty else pd.DataFrame()
        rows.append(dict(zip([*SWITCH, "base_config"], key)) | {"shared": a, "tuned": b,
                                                                 "difference": _term(fits[pair], a)})
    return pd.DataFrame(rows)


PAPER_READINGS = ("reproduced", "contradicted", "not resolved")  # how each reading below starts


def bound_level(effects: pd.DataFrame, row: pd.Series) -> float:
    """The confidence of the interval behind ``row``'s ``bound`` (effects.py): 1 - 0.05/m for a primary effect or a
    known null, m its family's tested effects (the Bonferroni level, which Holm's first step uses); 95% for an A/A
    reading (tested on its own) and a secondary effect."""
    if row["family"] not in ("primary", "control") or row["axis"] == CONTROL:
        return 1 - ALPHA
    tested = (effects["family"] == row["family"]) & effects["p_value"].notna() & (effects["axis"] != CONTROL)
    return 1 - ALPHA / max(int(tested.sum()), 1)


def confidence(level: float) -> str:
    """``99.67%``: an interval's confidence as the report prints it."""
    return f"{100 * level:.4g}%"


def paper_reading(change: float, mine: pd.Series, level: float) -> str:
    """A published change against our effect of the same switch: reproduced, contradicted or not resolved, this
    last with the largest difference its interval at ``level`` (``bound_level``) allows."""
    if pd.isna(mine["ci_low"]):
        return "not tested (too few runs)"
    if not bool(mine["resolved"]):
        return f"not resolved: no difference beyond ±{mine['bound']:.3g} ({confidence(level)} interval)"
    return "reproduced" if (change < 0) == (mine["estimate"] < 0) else "contradicted"
