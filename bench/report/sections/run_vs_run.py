"""Two runs side by side (CPU vs CUDA, before vs after): ratios B / A per variant and measurement.

Each ratio carries a 95% percentile bootstrap interval that resamples each run's own repeats or timing rounds
(costs) or seeds (quality), independently. A change is flagged when its interval excludes 1 and it exceeds both
runs' noise floors: for time, each run's A/A control (the largest |bound| of its 95% interval, in %); for
quality, each run's real-versus-real floor of the metric; exact counts have no noise, so any change is one.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.report.render.document import Section, Table, save_figure
from bench.report.sections.cost_per_variant import cost_section
from bench.report.compute.effects import COUNTED_METRICS
from bench.report.compute.load import Run
from bench.report.render.plots import ratio_heatmap
from bench.report.render.wording import add_labels, number
from bench.report.compute.stats import AXES, cost_rows, per_variant_quality, quality_values, references
from bench.report.sections.tables import env_frame, failed_cells
from bench.report.compute.rounds_model import CONTROL, timing_effects

N_RESAMPLES = 2000
TIMED_UNITS = ("s", "images/s", "FLOP/s", "ratio")


def run_labels(a: Run, b: Run) -> tuple[str, str]:
    return f"A: {a.name}", f"B: {b.name}"


def compare_sections(a: Run, b: Run, figures_dir: Path) -> list[Section]:
    label_a, label_b = run_labels(a, b)
    devices_a, devices_b = set(a.table["device"]) - {""}, set(b.table["device"]) - {""}
    # Two single-device runs on different devices (the CPU vs CUDA case) are matched across devices, each
    # execution option (dtype, memory format, compilation) with the same option.
    across_devices = devices_a != devices_b and len(devices_a) == 1 and len(devices_b) == 1
    # Runs laid out alike (a quick run costs two networks) are matched network by network.
    shared_bases = bool(set(a.table["base_config"]) & set(b.table["base_config"]) - {""})
    match = ("variant", *(("base_config",) if shared_bases else ()), *(() if across_devices else ("device",)),
             "execution", "label", "unit")
    how = (f"matched by variant and measurement across devices ({', '.join(devices_a)} vs {', '.join(devices_b)})"
           if across_devices else "matched by variant, device and measurement")
    cost = _ratios(_cost_values(a), _cost_values(b), match, np.median, (_time_floor(a), _time_floor(b)))
    quality = _ratios(_quality_values(a), _quality_values(b), ("variant", "label", "unit"), np.mean,
                      (_quality_floor(a), _quality_floor(b)))
    note = (f"Ratio = {label_b} / {label_a}; cells {how}. Costs: medians over repeats or rounds; quality: means "
            f"over seeds. {__doc__.split(chr(10) + chr(10), 1)[1].strip()} " + _config_differences(a, b))
    section = Section("Run against run", note)
    for name, ratios, what in (("cost", cost, "cost"), ("quality", quality, "quality")):
        if ratios.empty:
            section.items.append(Table(f"{what.capitalize()} ratios", pd.DataFrame(),
                                       f"No {what} measurement appears in both runs."))
            continue
        title = f"{what.capitalize()}: {label_b} / {label_a} per variant"
        fig = ratio_heatmap(ratios, title, "A", "B")
        section.items.append(save_figure(fig, figures_dir, f"compare_ratio_{name}", title, _ratio_reading(ratios)))
        flagged = ratios[ratios["flag"]]
        section.items.append(Table(f"{what.capitalize()}: changes beyond both runs' noise floors",
                                   _ratio_table(flagged, label_a, label_b),
                                   "" if len(flagged) else "None: every change is within the noise."))
        section.items.append(Table(f"{what.capitalize()}: every value and ratio",
                                   _ratio_table(ratios, label_a, label_b), detail=True))
    sections = [section, _side_by_side(a, b, figures_dir, across_devices)]
    failed = pd.concat([failed_cells(r.table).frame.assign(run=label) for r, label in ((a, label_a), (b, label_b))])
    env = env_frame(a.env).merge(env_frame(b.env), on="field", how="outer", suffixes=(f" ({label_a})", f" ({label_b})"))
    env["differs"] = np.where(env.iloc[:, 1].fillna("") != env.iloc[:, 2].fillna(""), "yes", "")
    sections.append(Section("Tables", items=[Table("Failed cells of both runs", failed.reset_index(drop=True)),
                                             Table("Environments side by side (env.json)", env)]))
    return sections


def _cost_values(run: Run) -> pd.DataFrame:
    """One row per cell and measurement (block totals of our models and peers), its repeat or round values."""
    rows = cost_rows(run.table)
    rows = add_labels(rows[rows["block"] == "total"]) if not rows.empty else rows
    if rows.empty:
        return rows
    keys = ["variant", "base_config", "device", "setting", "execution", "label", "unit", "metric"]
    return rows.groupby(keys, sort=True)["value"].apply(lambda v: v.to_numpy(float)).rename("values").reset_index()


def _quality_values(run: Run) -> pd.DataFrame:
    """One row per variant (and the real floor) and metric, its values over seeds."""
    frames = [quality_values(run.table, kind) for kind in ("quality", "floor")]
    frames = [add_labels(f) for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame()
    values = pd.concat(frames)
    return values.groupby(["variant", "label", "unit", "metric"], sort=True)["value"].apply(
        lambda v: v.to_numpy(float)).rename("values").reset_index()


def _time_floor(run: Run) -> dict[tuple[str, str], float]:
    """(setting, phase) -> the A/A control's noise floor in %: the largest |bound| of its 95% interval."""
    fits = timing_effects(run.table, tuple(AXES), references())
    fits = fits[(fits["factor"] == CONTROL) & (fits["metric"] == "seconds_per_iter")] if not fits.empty else fits
    return {(r.setting, r.phase): max(abs(r.ci_low), abs(r.ci_high)) for r in fits.itertuples()
            if pd.notna(r.ci_low)}


def _quality_floor(run: Run) -> dict[str, float]:
    """metric -> the real-versus-real floor (mean over seeds)."""
    floor = per_variant_quality(run.table, "floor")
    return dict(zip(floor["metric"], floor["mean"])) if not floor.empty else {}


def _ratios(a: pd.DataFrame, b: pd.DataFrame, match: tuple[str, ...], statistic, floors: tuple[dict, dict]
            ) -> pd.DataFrame:
    if a.empty or b.empty:
        return pd.DataFrame()
    match = [m for m in match if m in a.columns and m in b.columns]
    merged = a.merge(b, on=match, suffixes=("_a", "_b"))
    if merged.empty:
        return merged
    rng = np.random.default_rng(0)
    out = []
    for row in merged.to_dict("records"):
        value_a, value_b = statistic(row["values_a"]), statistic(row["values_b"])
        exact = row["metric_a"] in COUNTED_METRICS
        low, high = _ratio_interval(row["values_a"], row["values_b"], statistic, exact, rng)
        floor, beyond = _beyond_floor(row, value_a, value_b, floors, exact)
        out.append({"value_a": value_a, "value_b": value_b, "ratio": value_b / value_a if value_a else np.nan,
                    "low": low, "high": high, "floor": floor,
                    "flag": beyond and pd.notna(low) and not low <= 1 <= high})
    merged = pd.concat([merged, pd.DataFrame(out, index=merged.index)], axis=1)
    for column in ("base_config", "device", "execution"):
        if column in match and merged[column].nunique() > 1:
            merged["label"] = merged["label"] + " · " + merged[column].replace("", "default")
    return merged


def _ratio_interval(a: np.ndarray, b: np.ndarray, statistic, exact: bool, rng: np.random.Generator
                    ) -> tuple[float, float]:
    """95% percentile bootstrap of statistic(B) / statistic(A), each run's values resampled on their own;
    an exact count's ratio is its own interval; one value in a run leaves no spread to resample."""
    if not statistic(a):
        return (np.nan, np.nan)
    if exact:
        return (statistic(b) / statistic(a),) * 2
    if min(len(a), len(b)) < 2:
        return (np.nan, np.nan)
    resample = lambda v: statistic(v[rng.integers(0, len(v), (N_RESAMPLES, len(v)))], axis=1)
    return tuple(np.percentile(resample(b) / resample(a), [2.5, 97.5]))


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


def _ratio_table(ratios: pd.DataFrame, label_a: str, label_b: str) -> pd.DataFrame:
    columns = [c for c in ("variant", "setting_a", "setting_b", "label") if c in ratios.columns]
    table = ratios[columns].copy()
    table[label_a] = [number(v, u) for v, u in zip(ratios["value_a"], ratios["unit"])]
    table[label_b] = [number(v, u) for v, u in zip(ratios["value_b"], ratios["unit"])]
    table["B / A [95% CI]"] = [f"{r:.3f} [{lo:.3f}, {hi:.3f}]" if pd.notna(lo) else
                               (f"{r:.3f}" if pd.notna(r) else "n/a (A is 0)")
                               for r, lo, hi in zip(ratios["ratio"], ratios["low"], ratios["high"])]
    table["noise floor"] = ratios["floor"]
    table["beyond both floors"] = ratios["flag"].map(lambda f: "yes" if f else "")
    return table.rename(columns={"label": "measurement"}).reset_index(drop=True)


def _ratio_reading(ratios: pd.DataFrame) -> str:
    finite = ratios[np.isfinite(ratios["ratio"])]
    if finite.empty:
        return "no finite ratio (A is 0 everywhere)"
    high, low = finite.loc[finite["ratio"].idxmax()], finite.loc[finite["ratio"].idxmin()]
    return (f"Median B/A over {len(finite)} matched values: {finite['ratio'].median():.3g}; highest "
            f"{high['ratio']:.3g} ({high['label']}, {high['variant']}); lowest {low['ratio']:.3g} "
            f"({low['label']}, {low['variant']})")


def _side_by_side(a: Run, b: Run, figures_dir: Path, across_devices: bool) -> Section:
    label_a, label_b = run_labels(a, b)
    tables = []
    for run, label in ((a, label_a), (b, label_b)):
        run_column = label + (" · " + run.table["setting"] if not across_devices else
                              run.table["execution"].map(lambda e: f" · {e}" if e else ""))
        tables.append(run.table.assign(run=run_column))
    section = cost_section(pd.concat(tables, ignore_index=True), figures_dir, hue="run", name="compare_cost")
    section.title = "Cost per variant, both runs"
    return section


def _config_differences(a: Run, b: Run) -> str:
    """Configuration columns whose values differ between the runs' cost cells (or quality cells)."""
    differ = []
    for kind, columns in (("cost", ("base_config", "batch_size", "dtype", "threads")),
                          ("quality", ("quality_preset", "dataset", "base_config"))):
        rows_a, rows_b = a.table[a.table["kind"] == kind], b.table[b.table["kind"] == kind]
        if rows_a.empty or rows_b.empty:
            continue
        for column in columns:
            values_a = set(rows_a[column].dropna().astype(str)) - {""}
            values_b = set(rows_b[column].dropna().astype(str)) - {""}
            if values_a != values_b:
                differ.append(f"{kind} {column} {sorted(values_a)} vs {sorted(values_b)}")
    if not differ:
        return "Where both runs have them, cost and quality cells share their configuration columns."
    return "Caution, the runs differ in " + "; ".join(differ) + ": a ratio compares unlike cells there."
