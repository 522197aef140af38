"""Labels and one-line readings: how numbers from the table are put into words."""
from __future__ import annotations

import math

import pandas as pd

from bench.plan.bracket import BOUND, INVALID, LOW, NO_RATIO
from bench.report.compute.effects import DISTURBED
from bench.schema import ALONG_TRAINING
from variants import value_text

PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
# Units that read better with an SI prefix (a ratio or a percentage does not).
SCALABLE = {"bytes", "FLOP", "MAC", "count", "FLOP/s", "images/s"}


def scale_for(unit: str, values) -> tuple[float, str]:
    """A divisor and the prefixed unit that make the largest value read as 1-999 (seconds below one as ms)."""
    top = pd.Series(values, dtype=float).abs().max()
    if unit == "s" and not pd.isna(top) and top < 1:
        return 1e-3, "ms"
    if unit in SCALABLE and not pd.isna(top):
        for factor, prefix in PREFIXES:
            if top >= factor:
                shown = {"count": " (count)", "bytes": "B"}.get(unit, unit)
                return factor, f"{prefix}{shown}"
    return 1.0, unit


def number(value: float, unit: str = "") -> str:
    if value is None or pd.isna(value):
        return "n/a"
    factor, shown = scale_for(unit, [value])
    text = f"{value / factor:.3g}"
    return f"{text} {shown}".strip() if shown else text


def signed(value: float, unit: str = "") -> str:
    """``+8.8%``: a change with its sign, three significant digits."""
    return f"{value:+.3g}{unit}"


def bounds(low: float, high: float, spec: str = ".3g", label: str = "") -> str:
    """``[low, high]``: an interval's ends in format ``spec``, after ``label`` (``95% CI ``). Every interval the
    report and the calibrations print is written here, so that they all read alike."""
    return f"[{label}{format(low, spec)}, {format(high, spec)}]"


def plus_minus(value: float, half_width: float, spec: str = ".3g", half_spec: str = ".3g") -> str:
    """``12.3 ± 0.45``: a value and the half-width of its interval (or its standard error)."""
    return f"{format(value, spec)} ± {format(half_width, half_spec)}"


def effect_interval(row: pd.Series, unit: str = "") -> str:
    """``+5.01 [+3.54, +6.47]``: an effects.csv row's estimate (in ``unit``) and its 95% interval."""
    return f"{signed(row['estimate'], unit)} {bounds(row['ci_low'], row['ci_high'], '+.3g')}"


def interval(row: pd.Series, unit: str = "", signed: bool = False) -> str:
    """``mean [low, high]`` with the pair/seed count; says so when the interval cannot be computed."""
    digits = _digits_to_separate(row["low"], row["high"])
    spec = ("+" if signed else "") + ("#" if digits > 3 else "") + f".{digits}g"  # '#': keep -4.340's zero
    fmt = lambda v: format(v, spec)
    suffix = "%" if unit == "%" else (f" {unit}" if unit else "")
    n = int(row["n"])
    if n < 2 or math.isnan(row["low"]):
        return f"{fmt(row['mean'])}{suffix} (n={n}: no interval)"
    if row["low"] == row["high"]:
        return f"{fmt(row['mean'])}{suffix} (identical in all n={n})"
    return f"{fmt(row['mean'])}{suffix} {bounds(row['low'], row['high'], spec, '95% CI ')} (n={n})"


def _digits_to_separate(low: float, high: float) -> int:
    """Significant digits (3 to 6) that show a narrow interval's ends apart: counted costs' % changes
    vary only in the fourth digit across pairs, and '[-4.34, -4.34]' would read as a zero-width interval."""
    for digits in range(3, 7):
        if math.isnan(low) or low == high or f"{low:.{digits}g}" != f"{high:.{digits}g}":
            return digits
    return 6


def describe_effect(row: pd.Series) -> str:
    """One effect of effects.csv in words: estimate, interval and n, and what kind of evidence it is."""
    unit = row["unit"]
    fmt = lambda v: f"{v:+.{_digits_to_separate(row['ci_low'], row['ci_high'])}g}" + ("%" if unit == "%" else "")
    suffix = "" if unit == "%" else f" {unit}"
    n = int(row["n"])
    if str(row["method"]).startswith("exact"):
        if row["ci_low"] == row["ci_high"]:
            return f"{fmt(row['estimate'])}{suffix} (exact, n={n})"
        return f"{fmt(row['estimate'])}{suffix} (exact; {fmt(row['ci_low'])} to {fmt(row['ci_high'])} over n={n} pairs)"
    if pd.isna(row["ci_low"]):
        return f"{fmt(row['estimate'])}{suffix} (n={n}: too few to test)"
    return f"{fmt(row['estimate'])}{suffix} [95% CI {fmt(row['ci_low'])}, {fmt(row['ci_high'])}] (n={n})"


def add_effect_labels(effects: pd.DataFrame) -> pd.DataFrame:
    """``label``: phase/metric (with the checkpoint along training, and the recipe reading other than the shared
    one), with the counter where two rows share it (fvcore MACs and FLOP counts)."""
    label = effects["phase"] + "/" + effects["metric"]
    if "step" in effects.columns:
        along = effects["phase"] == ALONG_TRAINING
        label = label.where(~along, label + " @ " + effects["step"].map(lambda s: f"{s:,.0f}" if pd.notna(s) else ""))
    if "recipe" in effects.columns:
        other = ~effects["recipe"].isin(("", "shared"))
        label = label.where(~other, label + " (" + effects["recipe"].astype(str) + ")")
    keys = [effects["axis"], effects["from_level"], effects["to_level"], effects["setting"], label]
    duplicated = pd.Series(list(zip(*keys)), index=effects.index).duplicated(keep=False)
    counter = effects["method"].str.extract(r"^exact count \(([^)]*)\)", expand=False).fillna("")
    return effects.assign(label=label.where(~duplicated, label + " · " + counter),
                          comparison=effects["from_level"] + " → " + effects["to_level"])


def effect_frame(rows: pd.DataFrame, with_axis: bool = False) -> pd.DataFrame:
    rows = rows if "label" in rows.columns else add_effect_labels(rows)
    comparison = rows["axis"] + ": " + rows["comparison"] if with_axis else rows["comparison"]
    return pd.DataFrame({"comparison": comparison, "setting": rows["setting"], "measurement": rows["label"],
                         "effect": [describe_effect(r) for _, r in rows.iterrows()],
                         "family": rows["family"].map(FAMILY_LABELS),
                         "Holm-adjusted p": rows["p_adjusted"].map(lambda p: f"{p:.2g}" if pd.notna(p) else ""),
                         "resolved": rows["resolved"].map(lambda r: "yes" if r else "no")}).reset_index(drop=True)


# effects.csv's families as the tables name them (compute/effects.py)
FAMILY_LABELS = {"primary": "primary", "control": "control", "secondary": "exploratory"}


def effects_reading(rows: pd.DataFrame, top: int = 4) -> str:
    """The resolved effects, largest first, then how many are not resolved."""
    parts = []
    for (comparison, setting), group in rows.groupby(["comparison", "setting"], sort=True):
        resolved = group[group["resolved"].astype(bool)].assign(size=lambda f: f["estimate"].abs())
        resolved = resolved.sort_values("size", ascending=False)
        text = [f"{r['label']} {describe_effect(r)}" for _, r in resolved.head(top).iterrows()]
        if len(resolved) > top:
            text.append(f"{len(resolved) - top} more resolved")
        unresolved = group.drop(resolved.index)
        if len(unresolved):
            text.append("not resolved: " + ", ".join(unresolved["label"]))
        parts.append(f"{comparison} on {setting}: " + "; ".join(text))
    return " | ".join(parts)


RESOLVED = " ✓"
EXPLORATORY = " (✓)"


def effect_cell(row: pd.Series | None) -> str:
    """A verdict table's cell: an exact count's change (with its range over settings), a disturbed or untested time
    effect, or the estimate and interval marked resolved (primary) or exploratory-resolved (secondary)."""
    if row is None:
        return "—"
    unit = "%" if row["unit"] == "%" else ""
    if str(row["method"]).startswith("exact"):
        if row["ci_low"] == row["ci_high"]:
            return signed(row["estimate"], unit)
        return f"{signed(row['estimate'], unit)} ({signed(row['ci_low'], unit)} to {signed(row['ci_high'], unit)})"
    if DISTURBED in str(row["method"]):
        return f"{signed(row['estimate'], unit)} (disturbed)"
    if pd.isna(row["ci_low"]):
        return f"{signed(row['estimate'], unit)} (untested)"
    text = effect_interval(row, unit)
    if not bool(row["resolved"]):
        return text
    return text + (EXPLORATORY if row["family"] == "secondary" else RESOLVED)


def plain_cell(row: pd.Series) -> str:
    """A cell without its resolved mark."""
    return effect_cell(row).removesuffix(RESOLVED).removesuffix(EXPLORATORY)


def scale_reading(row: pd.Series, with_difference: bool = True) -> str:
    """An across-scales row (robustness.across_scales) in words: whether the direction holds, and the difference
    between the largest and the smallest network with its 95% interval: ``holds, 71% smaller at the larger scale
    (digits8_ch32 − digits8_ch16: +1.37 [+1.1, +1.64])`` (without the difference itself when a table shows it)."""
    difference, label = row["difference"], row["reading"]
    if not isinstance(difference, pd.Series) or pd.isna(difference["ci_low"]):
        return f"{label}; the difference between the scales is untested"
    told = f" ({row['larger']} − {row['smaller']}: {effect_interval(difference)})" if with_difference else ""
    resolved = bool(difference["resolved"])
    if label == "holds":
        where = "at the larger scale" if row["ordered"] else f"on {row['larger']} than on {row['smaller']}"
        if resolved and pd.notna(row["size_change"]):
            size = f"{abs(row['size_change']):.0f}% {'smaller' if row['size_change'] < 0 else 'larger'} {where}"
            return f"holds, {size}{told}"
        return f"holds, its size not told apart between the scales{told}"
    if label == "reverses":
        return f"reverses{told}"
    return f"{label}; the scales {'differ' if resolved else 'are not told apart'}{told}"


def recipe_reading(row: pd.Series) -> str:
    """An across-recipes row (robustness.across_recipes) in words: the tuned reading minus the shared one, with its
    95% interval, and whether that difference is resolved."""
    difference = row["difference"]
    if not isinstance(difference, pd.Series) or pd.isna(difference["ci_low"]):
        return "the difference between the tuned and shared readings is untested"
    told = f"tuned − shared {effect_interval(difference)}"
    if bool(difference["resolved"]):
        return f"the tuned reading differs from the shared: {told}"
    return f"the tuned and shared readings are not told apart: {told}"


def edge_reading(row: pd.Series) -> str:
    """A choice still at an edge of its tuning grid (bracket.edges) in words: where its best may lie, and why the
    grid was not extended further."""
    name = row["rung"] or row["variant"]
    below = row["side"] == LOW
    where = (f"{name}'s best {row['axis']} may lie {'below' if below else 'above'} {value_text(row['value'])}: its "
             f"choice sits at the grid's {row['side']} point")
    done = row["extensions"]
    after = f" after {done} extension{'s' if done != 1 else ''}" if done > 0 else ""
    if row["stop"] == BOUND:
        return f"{where}{after}, the most a side takes"
    if row["stop"] == INVALID:
        return f"{where}{after}; the next step, {row['axis']}={value_text(row['beyond'])}, is not a valid value"
    if row["stop"] == NO_RATIO:
        return f"{where}, which has no ratio to step beyond by (a 0 at the edge or next to it)"
    if done < 0:  # the grid asked for is unknown: whether it was extended is too
        return where
    return f"{where}{after}, not yet extended to {row['axis']}={value_text(row['beyond'])} (--resume extends it)"


def edge_sentences(edges: pd.DataFrame) -> list[str]:
    """One sentence per choice still at an edge of its tuning grid."""
    return [f"{edge_reading(row)}." for _, row in edges.iterrows()]
