"""Two runs side by side (CPU vs CUDA, before vs after): ratios B / A per variant and measurement, and each time
effect as both runs estimate it (``effect_differences``).

Each ratio carries a 95% percentile bootstrap interval that resamples each run's own repeats or timing rounds
(costs) or seeds (quality), independently. A change is flagged when its interval excludes 1 and it exceeds both
runs' noise floors: for time, each run's A/A control (the largest |bound| of its 95% interval, in %); for
quality, each run's real-versus-real floor of the metric; exact counts have no noise, so any change is one.

Cells of different batch sizes are compared per image where a measurement grows with the batch (FLOPs and time
per iteration, divided by the batch), as they are where it does not (parameters, images/s, FLOP/s, fractions of
peak), and not at all where it grows but not in proportion (memory: the weights do not grow with the batch).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from bench.report.compute.derived import Derived
from bench.report.compute.effects import COUNTED_METRICS
from bench.report.compute.frames import add_labels
from bench.schema import CPU_SECONDS_PER_ITER, FLOPS, MODEL_FLOPS, SECONDS_PER_ITER, Kind
from bench.statistics.rounds_model import CONTROL, percent
from bench.statistics.stats import ALPHA, bootstrap_interval, excludes, independent_difference

TIMED_UNITS = ("s", "images/s", "FLOP/s", "ratio")
# How a measurement scales with the batch, for pairing cells of different batches (the rest do not scale).
PER_IMAGE_METRICS = (FLOPS, MODEL_FLOPS, SECONDS_PER_ITER, CPU_SECONDS_PER_ITER)
UNPAIRABLE_UNITS = ("bytes",)


def run_labels(a: Derived, b: Derived) -> tuple[str, str]:
    return f"A: {a.name}", f"B: {b.name}"


def across_devices(a: Derived, b: Derived) -> bool:
    """Two single-device runs on different devices (the CPU vs CUDA case) are matched across devices, each
    execution option (dtype, memory format, compilation) with the same option."""
    devices_a, devices_b = set(a.table["device"]) - {""}, set(b.table["device"]) - {""}
    return devices_a != devices_b and len(devices_a) == 1 and len(devices_b) == 1


def side_by_side_rows(a: Derived, b: Derived) -> pd.DataFrame:
    """Both runs' cost rows, with a ``run`` column naming the run and its setting (its execution options alone
    when the runs are on different devices)."""
    label_a, label_b = run_labels(a, b)
    frames = []
    for run, label in ((a, label_a), (b, label_b)):
        rows = run.cost_rows
        setting = " · " + rows["setting"] if not across_devices(a, b) else \
            rows["execution"].map(lambda e: f" · {e}" if e else "")
        frames.append(rows.assign(run=label + setting))
    return pd.concat(frames, ignore_index=True)


def cost_values(run: Derived) -> pd.DataFrame:
    """One row per cell and measurement (block totals of our models and peers), its repeat or round values."""
    rows = run.cost_rows
    rows = add_labels(rows[rows["block"] == "total"]) if not rows.empty else rows
    if rows.empty:
        return rows
    keys = ["variant", "base_config", "device", "setting", "execution", "label", "unit", "metric", "batch_size"]
    return rows.groupby(keys, sort=True)["value"].apply(lambda v: v.to_numpy(float)).rename("values").reset_index()


def quality_over_seeds(run: Derived) -> pd.DataFrame:
    """One row per variant (and the real floor) and metric, its values over seeds."""
    frames = [run.quality_values, run.floor_values]
    frames = [add_labels(f) for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame()
    values = pd.concat(frames)
    return values.groupby(["variant", "base_config", "label", "unit", "metric"], sort=True)["value"].apply(
        lambda v: v.to_numpy(float)).rename("values").reset_index()


def time_floor(run: Derived) -> dict[tuple[str, str], float]:
    """(setting, phase) -> the A/A control's noise floor in %: the largest |bound| of its 95% interval."""
    fits = run.timing_fits
    fits = fits[(fits["factor"] == CONTROL) & (fits["metric"] == SECONDS_PER_ITER)] if not fits.empty else fits
    return {(r.setting, r.phase): max(abs(r.ci_low), abs(r.ci_high)) for r in fits.itertuples()
            if pd.notna(r.ci_low)}


# Keys of a time effect: which network, setting, phase and effect (timing_effects' rows).
EFFECT_KEYS = ("base_config", "setting", "phase", "factor", "reference", "level")
EFFECT_DIFFERENCE_METHOD = (
    "Time effects: each run's own estimate and 95% interval (its rounds model); B vs A is the ratio of the two "
    "runs' (1 + effect) as a % change, exp(beta_B - beta_A) - 1, with a t-interval on the log scale whose "
    "standard error combines both runs' (the runs are independent; Welch-Satterthwaite degrees of freedom); an effect "
    f"differs when Holm's correction over the table's effects (family-wise error {ALPHA:g}) rejects B = A. Measured "
    "on runs of one commit on one machine and day, the runs' spread is within their intervals (docs/timing.md, "
    "\"Run against run\"); across days, boots or machines it is not measured: read a difference there as an upper "
    "bound on what chance explains.")


def effect_differences(fits_a: pd.DataFrame, fits_b: pd.DataFrame, across_devices: bool = False) -> pd.DataFrame:
    """Each time effect on the wall time that both runs estimate with an interval (timing_effects' rows: main effects,
    ladder steps, the A/A control), matched by network, setting (not across devices), phase and effect: both runs'
    estimates and intervals, and B vs A (EFFECT_DIFFERENCE_METHOD) with ``low``, ``high``, ``p_value``,
    ``p_adjusted`` and ``differs``."""
    keys = [k for k in EFFECT_KEYS if not (across_devices and k == "setting")]
    tested = [f[(f["metric"] == SECONDS_PER_ITER) & f["low"].notna()] if not f.empty else f for f in (fits_a, fits_b)]
    if any(f.empty for f in tested):
        return pd.DataFrame()
    columns = list(dict.fromkeys([*keys, "setting", "beta", "se", "df", "estimate", "ci_low", "ci_high"]))
    a, b = (f[columns].astype({"reference": str, "level": str}) for f in tested)
    merged = a.merge(b, on=keys, suffixes=("_a", "_b"))
    if merged.empty:
        return merged
    on_log = pd.DataFrame([independent_difference(*(pd.Series({"estimate": row[f"beta_{s}"], "se": row[f"se_{s}"],
                                                               "df": row[f"df_{s}"]}) for s in ("a", "b")))
                           for _, row in merged.iterrows()], index=merged.index)
    merged["difference"] = percent(on_log["estimate"])
    merged["low"], merged["high"] = percent(on_log["ci_low"]), percent(on_log["ci_high"])
    merged["p_value"] = on_log["p_value"]
    merged["p_adjusted"] = multipletests(merged["p_value"], ALPHA, "holm")[1]
    merged["differs"] = merged["p_adjusted"] < ALPHA
    return merged.sort_values(keys, kind="stable").reset_index(drop=True)


def quality_floor(run: Derived) -> dict[str, float]:
    """metric -> the real-versus-real floor (mean over seeds)."""
    floor = run.floor
    return dict(zip(floor["metric"], floor["mean"])) if not floor.empty else {}


def ratios(a: pd.DataFrame, b: pd.DataFrame, match: tuple[str, ...], statistic, floors: tuple[dict, dict]
            ) -> pd.DataFrame:
    """B / A per matched measurement; ``unpaired`` (in ``attrs``) counts the pairs left out for their batches."""
    if a.empty or b.empty:
        return pd.DataFrame()
    match = [m for m in match if m in a.columns and m in b.columns]
    merged = per_image(a.merge(b, on=match, suffixes=("_a", "_b")))
    if merged.empty:
        return merged
    out = []
    for row in merged.to_dict("records"):
        value_a, value_b = statistic(row["values_a"]), statistic(row["values_b"])
        exact = row["metric_a"] in COUNTED_METRICS
        low, high = _ratio_interval(row["values_a"], row["values_b"], statistic, exact)
        floor, beyond = _beyond_floor(row, value_a, value_b, floors, exact)
        out.append({"value_a": value_a, "value_b": value_b, "ratio": value_b / value_a if value_a else np.nan,
                    "low": low, "high": high, "floor": floor,
                    "flag": beyond and excludes(low, high, 1.0)})
    unpaired = merged.attrs.get("unpaired", 0)
    merged = pd.concat([merged, pd.DataFrame(out, index=merged.index)], axis=1)
    for column in ("base_config", "device", "execution"):
        if column in match and merged[column].nunique() > 1:
            merged["label"] = merged["label"] + " · " + merged[column].replace("", "default")
    merged.attrs["unpaired"] = unpaired
    return merged


def per_image(merged: pd.DataFrame) -> pd.DataFrame:
    """Matched cost rows of different batches: per image where the measurement grows with the batch, dropped
    where it grows out of proportion (their count in ``attrs["unpaired"]``); quality rows as they are."""
    if merged.empty or "batch_size_a" not in merged.columns:
        return merged
    differ = merged["batch_size_a"] != merged["batch_size_b"]
    drop = differ & merged["unit"].isin(UNPAIRABLE_UNITS)
    kept = merged[~drop].reset_index(drop=True)
    scale = (kept["batch_size_a"] != kept["batch_size_b"]) & kept["metric_a"].isin(PER_IMAGE_METRICS)
    for side in ("a", "b"):
        kept[f"values_{side}"] = [values / batch if per else values for values, batch, per in
                                  zip(kept[f"values_{side}"], kept[f"batch_size_{side}"], scale)]
    kept["label"] = kept["label"].where(~scale, kept["label"] + " per image")
    kept.attrs["unpaired"] = int(drop.sum())
    return kept


def _ratio_interval(a: np.ndarray, b: np.ndarray, statistic, exact: bool) -> tuple[float, float]:
    """95% percentile bootstrap of statistic(B) / statistic(A), each run's values resampled on their own;
    an exact count's ratio is its own interval; one value in a run leaves no spread to resample."""
    if not statistic(a):
        return (np.nan, np.nan)
    if exact:
        return (statistic(b) / statistic(a),) * 2
    return bootstrap_interval((a, b), lambda a, b, axis=-1: statistic(b, axis=axis) / statistic(a, axis=axis))


def _beyond_floor(row: dict, value_a: float, value_b: float, floors: tuple[dict, dict], exact: bool
                  ) -> tuple[str, bool]:
    """The noise floor a change must exceed (the larger of the two runs'), in words, and whether it does."""
    if exact:
        return "none (exact count)", value_a != value_b
    if "setting_a" in row:  # a cost
        if row["unit"] not in TIMED_UNITS:
            return "n/a (no control for this measurement)", False
        phase = row["label"].split("/")[0]
        bounds = [floor.get((row[setting], phase)) for floor, setting in zip(floors, ("setting_a", "setting_b"))]
        if None in bounds:
            return "n/a (a run has no A/A control)", False
        return f"±{max(bounds):.3g}% (A/A)", abs(100 * (value_b / value_a - 1)) > max(bounds)
    bounds = [floor.get(row["metric_a"]) for floor in floors]
    if None in bounds or row["variant"] == "real":
        return "n/a (no real-vs-real floor)", False
    return f"{max(bounds):.3g} {row['unit']} (real vs real)", abs(value_b - value_a) > max(bounds)


def setup_differences(a: Derived, b: Derived) -> str:
    """Configuration columns whose values differ between the runs' cost cells (or quality cells)."""
    differ = []
    for kind, columns in ((Kind.COST, ("base_config", "batch_size", "dtype", "threads")),
                          (Kind.QUALITY, ("quality_preset", "dataset", "base_config"))):
        rows_a, rows_b = a.table[a.table["kind"] == kind], b.table[b.table["kind"] == kind]
        if rows_a.empty or rows_b.empty:
            continue
        for column in columns:
            values_a = set(rows_a[column].dropna().astype(str)) - {""}
            values_b = set(rows_b[column].dropna().astype(str)) - {""}
            if values_a != values_b:
                differ.append(f"{kind} {column} {sorted(values_a)} vs {sorted(values_b)}")
    if not differ:
        return ""
    return ("Caution, the runs differ in " + "; ".join(differ) + ": where the batch differs, FLOPs and time per "
            "iteration are compared per image and memory is not compared; elsewhere a ratio compares unlike cells.")
