"""Section: two runs side by side (CPU vs CUDA, before vs after), from compute/run_ratios.py."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.report.compute import run_ratios
from bench.report.compute.derived import Derived
from bench.report.render.document import Section, Table, save_figure
from bench.report.render.plots import ratio_heatmap
from bench.report.render.wording import bounds, effect_interval, number


def run_vs_run_section(a: Derived, b: Derived, figures_dir: Path) -> Section:
    """Each cost and quality measurement of both runs as a ratio B / A, flagged where it beats both noise floors."""
    label_a, label_b = run_ratios.run_labels(a, b)
    devices_a, devices_b = set(a.table["device"]) - {""}, set(b.table["device"]) - {""}
    across_devices = run_ratios.across_devices(a, b)
    # Runs laid out alike (a quick run costs two networks) are matched network by network.
    shared_bases = bool(set(a.table["base_config"]) & set(b.table["base_config"]) - {""})
    match = ("variant", *(("base_config",) if shared_bases else ()), *(() if across_devices else ("device",)),
             "execution", "label", "unit")
    how = (f"matched by variant and measurement across devices ({', '.join(devices_a)} vs {', '.join(devices_b)})"
           if across_devices else "matched by variant, device and measurement")
    cost = run_ratios.ratios(run_ratios.cost_values(a), run_ratios.cost_values(b), match, np.median,
                             (run_ratios.time_floor(a), run_ratios.time_floor(b)))
    quality = run_ratios.ratios(run_ratios.quality_over_seeds(a), run_ratios.quality_over_seeds(b),
                                ("variant", "base_config", "label", "unit"), np.mean,
                                (run_ratios.quality_floor(a), run_ratios.quality_floor(b)))
    method = " ".join(run_ratios.__doc__.split(chr(10) + chr(10))[1:]).replace(chr(10), " ")
    unpaired = cost.attrs.get("unpaired", 0) if not cost.empty else 0
    note = " ".join(filter(None, (
        run_ratios.setup_differences(a, b),
        f"{unpaired} memory measurement(s) of cells of different batches are not paired." if unpaired else "",
        f"Ratio = {label_b} / {label_a}; cells {how}. Costs: medians over repeats or rounds; quality: means over "
        f"seeds. {method}")))
    section = Section("Run against run", note)
    section.items.append(_effects_table(run_ratios.effect_differences(a.timing_fits, b.timing_fits, across_devices),
                                        label_a, label_b))
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
    return section


def _effects_table(differences: pd.DataFrame, label_a: str, label_b: str) -> Table:
    """Each time effect as both runs estimate it, and B vs A: the runs agree where it does not differ."""
    title = "Time effects on the wall time: each run's own 95% interval, and B vs A"
    if differences.empty:
        return Table(title, pd.DataFrame(), "No time effect has an interval in both runs.")
    differs = int(differences["differs"].sum())
    table = pd.DataFrame({
        "network": differences["base_config"],
        **({"setting": differences["setting"]} if "setting" in differences.columns else
           {"setting A": differences["setting_a"], "setting B": differences["setting_b"]}),
        "phase": differences["phase"],
        "effect": [f"{f}: {r} -> {lv}" for f, r, lv in
                   zip(differences["factor"], differences["reference"], differences["level"])],
        **{label: [effect_interval({"estimate": e, "ci_low": lo, "ci_high": hi}, "%") for e, lo, hi in
                   zip(*(differences[f"{column}_{side}"] for column in ("estimate", "ci_low", "ci_high")))]
           for label, side in ((label_a, "a"), (label_b, "b"))},
        "B vs A [95% CI]": [effect_interval({"estimate": d, "ci_low": lo, "ci_high": hi}, "%") for d, lo, hi in
                            zip(differences["difference"], differences["low"], differences["high"])],
        "differs (Holm)": differences["differs"].map(lambda d: "yes" if d else ""),
    })
    reading = (f"{differs} of {len(table)} effects differ between the runs beyond both runs' intervals" if differs
               else f"None of the {len(table)} effects differs between the runs beyond both runs' intervals")
    return Table(title, table, f"{reading}. {run_ratios.EFFECT_DIFFERENCE_METHOD}")


def _ratio_table(ratios: pd.DataFrame, label_a: str, label_b: str) -> pd.DataFrame:
    columns = [c for c in ("variant", "base_config", "base_config_a", "base_config_b", "setting_a", "setting_b",
                           "batch_size_a", "batch_size_b", "label") if c in ratios.columns]
    table = ratios[columns].rename(columns={"batch_size_a": "batch A", "batch_size_b": "batch B"})
    table[label_a] = [number(v, u) for v, u in zip(ratios["value_a"], ratios["unit"])]
    table[label_b] = [number(v, u) for v, u in zip(ratios["value_b"], ratios["unit"])]
    table["B / A [95% CI]"] = [f"{r:.3f} {bounds(lo, hi, '.3f')}" if pd.notna(lo) else
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
