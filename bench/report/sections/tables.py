"""Section: the wide summary per variant, per-block breakdown, checks, failed cells and the environment."""
from __future__ import annotations

import pandas as pd

from bench.report.compute.derived import Derived
from bench.report.compute.frames import add_labels, by_variant, env_frame, failed_rows
from bench.report.render.document import Section, Table
from bench.report.render.wording import plus_minus, scale_for
from bench.schema import MACHINE_PHASES, Kind


def tables_section(derived: Derived) -> Section:
    table, env = derived.table, derived.env
    section = Section("Tables", "Every number behind the figures, per variant (open the details).")
    cost = cost_table(derived.cost_medians)
    if not cost.empty:
        section.items.append(Table("Cost per variant: median [interquartile range] over repeats", cost))
    quality = quality_table(derived)
    if not quality.empty:
        section.items.append(Table("Quality per variant: mean ± 95% t-interval half-width (seeds); 'real' is the "
                                   "real-versus-real floor", quality))
    blocks = block_table(derived.cost_cells)
    if not blocks.empty:
        section.items.append(Table("Per-block breakdown (medians)", blocks))
    machine = machine_table(table)
    if not machine.empty:
        section.items.append(Table("Machine measurements during the run (not properties of a variant)", machine))
    checks = table[table["kind"] == Kind.CHECK]
    if not checks.empty:
        section.items.append(Table("Checks", checks[["variant", "device", "phase", "metric", "value", "unit", "method",
                                                     "status", "message"]].reset_index(drop=True)))
    failed = failed_cells(table)
    section.items.append(failed)
    section.items.append(Table("Environment of the run (env.json)", env_frame(env) if env else
                               pd.DataFrame({"note": ["this run folder has no env.json"]})))
    for item in section.items:  # long tables, collapsed; failures stay in view
        item.detail = item is not failed or failed.frame.empty
    return section


def _scaled_text(median: float, q1: float, q3: float, factor: float) -> str:
    if q1 == q3:
        return f"{median / factor:.4g}"
    return f"{median / factor:.4g} [{q1 / factor:.3g}–{q3 / factor:.3g}]"


def cost_table(cells: pd.DataFrame) -> pd.DataFrame:
    """Every measurement of ``cost_medians`` as ``median [q1–q3]`` text, one row per variant and setting."""
    if cells.empty:
        return pd.DataFrame()
    columns = {}
    for label, rows in cells.groupby("label"):
        factor, unit = scale_for(rows["unit"].iloc[0], rows["value"])
        text = [_scaled_text(m, a, b, factor) for m, a, b in zip(rows["value"], rows["q1"], rows["q3"])]
        columns[f"{label} [{unit}]"] = by_variant(rows, text)
    return pd.DataFrame(columns).reset_index()


def quality_table(derived: Derived) -> pd.DataFrame:
    frames = [derived.quality, derived.floor]
    summary = pd.concat([f for f in frames if not f.empty], ignore_index=True) if any(
        not f.empty for f in frames) else pd.DataFrame()
    if summary.empty:
        return summary
    summary = add_labels(summary)
    half = (summary["high"] - summary["mean"]).abs()
    summary["text"] = [f"{plus_minus(m, h, '.4g', '.2g')} (n={n})" if pd.notna(h) else f"{m:.4g} (n={n})"
                       for m, h, n in zip(summary["mean"], half, summary["n"])]
    summary["column"] = summary["label"] + " [" + summary["unit"] + "]"
    return summary.pivot_table(index=["variant", "base_config", "dataset"], columns="column", values="text",
                               aggfunc="first").reset_index()


def block_table(cells: pd.DataFrame) -> pd.DataFrame:
    cells = cells[cells["block"] != "total"] if not cells.empty else cells
    if cells.empty:
        return pd.DataFrame()
    cells = add_labels(cells.assign(block="total")).assign(block=cells["block"])
    columns = {}
    for label, rows in cells.groupby("label"):  # each measurement in its own human unit (MB, GFLOP, ms)
        factor, unit = scale_for(rows["unit"].iloc[0], rows["value"])
        index = pd.MultiIndex.from_frame(rows[["variant", "setting", "block"]])
        columns[f"{label} [{unit}]"] = pd.Series([f"{v / factor:.4g}" for v in rows["value"]], index=index)
    return pd.DataFrame(columns).reset_index()


def machine_table(table: pd.DataFrame) -> pd.DataFrame:
    rows = table[table["phase"].isin(MACHINE_PHASES) & (table["status"] == "ok")]
    if rows.empty:
        return pd.DataFrame()
    out = []
    for (device, dtype, phase, metric, unit, method), group in rows.groupby(
            ["device", "dtype", "phase", "metric", "unit", "method"]):
        factor, shown = scale_for(unit, group["value"])
        values = group["value"] / factor
        out.append({"device": device, "dtype": dtype, "phase": phase, "metric": metric, "unit": shown,
                    "method": method, "median": f"{values.median():.4g}", "min": f"{values.min():.4g}",
                    "max": f"{values.max():.4g}", "rows": len(values)})
    return pd.DataFrame(out)


def failed_cells(table: pd.DataFrame) -> Table:
    failed = failed_rows(table)
    if failed.empty:
        return Table("Failed cells", failed, "No row of this run failed.")
    return Table("Failed cells (status other than ok)", failed)
