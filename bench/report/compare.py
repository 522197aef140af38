"""Two runs side by side (CPU vs CUDA, before vs after): ratios B / A per variant and measurement."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .content import Section, Table, save_figure
from .costs import cost_medians, cost_section
from .load import Run
from .plots import ratio_heatmap
from .readings import add_labels
from .stats import per_variant_quality
from .tables import env_frame, failed_cells


def run_labels(a: Run, b: Run) -> tuple[str, str]:
    return f"A: {a.name}", f"B: {b.name}"


def compare_sections(a: Run, b: Run, figures_dir: Path) -> list[Section]:
    label_a, label_b = run_labels(a, b)
    devices_a, devices_b = set(a.table["device"]) - {""}, set(b.table["device"]) - {""}
    # Two single-device runs on different devices (the CPU vs CUDA case) are matched across devices, each
    # execution option (dtype, memory format, compilation) with the same option.
    across_devices = devices_a != devices_b and len(devices_a) == 1 and len(devices_b) == 1
    match = ("variant", "execution", "label", "unit") if across_devices else ("variant", "setting", "label", "unit")
    how = (f"matched by variant and measurement across devices ({', '.join(devices_a)} vs {', '.join(devices_b)})"
           if across_devices else "matched by variant, device and measurement")
    cost = _ratios(_cost_values(a), _cost_values(b), match)
    quality = _ratios(_quality_values(a), _quality_values(b), ("variant", "label", "unit"))
    note = (f"Ratio = {label_b} / {label_a}; cells {how}. Costs: medians over repeats; quality: means over seeds "
            "(no interval on a ratio of two runs: see each run's own report for the spreads). "
            + _config_differences(a, b))
    section = Section("Run against run", note)
    for name, ratios, what in (("cost", cost, "cost"), ("quality", quality, "quality")):
        if ratios.empty:
            section.items.append(Table(f"{what.capitalize()} ratios", pd.DataFrame(),
                                       f"No {what} measurement appears in both runs."))
            continue
        title = f"{what.capitalize()}: {label_b} / {label_a} per variant"
        fig = ratio_heatmap(ratios, title, "A", "B")
        section.items.append(save_figure(fig, figures_dir, f"compare_ratio_{name}", title, _ratio_reading(ratios)))
        section.items.append(Table(f"{what.capitalize()} values and ratios", _ratio_table(ratios, label_a, label_b)))
    sections = [section, _side_by_side(a, b, figures_dir, across_devices)]
    failed = pd.concat([failed_cells(r.table).frame.assign(run=label) for r, label in ((a, label_a), (b, label_b))])
    env = env_frame(a.env).merge(env_frame(b.env), on="field", how="outer", suffixes=(f" ({label_a})", f" ({label_b})"))
    env["differs"] = np.where(env.iloc[:, 1].fillna("") != env.iloc[:, 2].fillna(""), "yes", "")
    sections.append(Section("Tables", items=[Table("Failed cells of both runs", failed.reset_index(drop=True)),
                                             Table("Environments side by side (env.json)", env)]))
    return sections


def _cost_values(run: Run) -> pd.DataFrame:
    cells = cost_medians(run.table)
    return cells[["variant", "setting", "execution", "label", "unit", "value"]] if not cells.empty else cells


def _quality_values(run: Run) -> pd.DataFrame:
    frames = [per_variant_quality(run.table, kind) for kind in ("quality", "floor")]
    frames = [add_labels(f) for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames).rename(columns={"mean": "value"})[["variant", "label", "unit", "value"]]


def _ratios(a: pd.DataFrame, b: pd.DataFrame, match: tuple[str, ...]) -> pd.DataFrame:
    if a.empty or b.empty:
        return pd.DataFrame()
    match = [m for m in match if m in a.columns and m in b.columns]
    merged = a.merge(b, on=match, suffixes=("_a", "_b"))
    merged["ratio"] = merged["value_b"] / merged["value_a"].where(merged["value_a"] != 0)
    for column in ("setting", "execution"):
        if column in match and merged[column].nunique() > 1:
            merged["label"] = merged["label"] + " · " + merged[column].replace("", "default")
    return merged


def _ratio_table(ratios: pd.DataFrame, label_a: str, label_b: str) -> pd.DataFrame:
    columns = [c for c in ("variant", "setting", "execution", "setting_a", "setting_b", "label", "unit")
               if c in ratios.columns]
    table = ratios[columns].copy()
    table[label_a] = ratios["value_a"].map(lambda v: f"{v:.4g}")
    table[label_b] = ratios["value_b"].map(lambda v: f"{v:.4g}")
    table["B / A"] = ratios["ratio"].map(lambda v: f"{v:.3f}" if pd.notna(v) else "n/a (A is 0)")
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
    for kind, columns in (("cost", ("base_config", "batch_size", "dtype", "threads")), ("quality", ("dataset",))):
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
